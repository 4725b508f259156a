package runtime

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	cri "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// criAPI is a runtime reached through the Kubernetes Container Runtime
// Interface (containerd's CRI plugin, CRI-O) over gRPC on a unix socket.
// Its containers are both pod sandboxes (Kind "pod") and the containers
// of those pods.
type criAPI struct {
	addr     string
	hostRoot string
	// engine is what the runtime calls itself (containerd, cri-o).
	engine string
	conn   *grpc.ClientConn
	rs     cri.RuntimeServiceClient
}

var _ Runtime = (*criAPI)(nil)

// errNotCRI: something answered on the socket, but not the CRI (a
// containerd without its CRI plugin, or another protocol).
var errNotCRI = errors.New("not a CRI runtime")

// errGRPCNotCRI: a gRPC server answered, without the CRI.
var errGRPCNotCRI = fmt.Errorf("%w (a containerd without its CRI plugin?)", errNotCRI)

// dialCRI connects to a CRI runtime at ep and checks that it answers.
func dialCRI(ctx context.Context, ep Endpoint, hostRoot string) (*criAPI, error) {
	conn, err := grpc.NewClient(ep.Address, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	c := &criAPI{addr: ep.Address, hostRoot: hostRoot, conn: conn, rs: cri.NewRuntimeServiceClient(conn)}
	ctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	v, err := c.rs.Version(ctx, &cri.VersionRequest{})
	if err != nil {
		conn.Close()
		switch status.Code(err) {
		case codes.Unimplemented:
			return nil, errGRPCNotCRI
		case codes.Unavailable, codes.Internal, codes.Unknown:
			return nil, fmt.Errorf("%w: %s", errNotCRI, status.Convert(err).Message())
		}
		return nil, err
	}
	c.engine = v.RuntimeName
	return c, nil
}

func (c *criAPI) Name() string     { return "cri" }
func (c *criAPI) Endpoint() string { return c.addr }
func (c *criAPI) Close() error     { return c.conn.Close() }

func (c *criAPI) List(ctx context.Context) ([]Container, error) {
	ctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	pods, err := c.rs.ListPodSandbox(ctx, &cri.ListPodSandboxRequest{})
	if err != nil {
		return nil, fmt.Errorf("list CRI pod sandboxes: %w", err)
	}
	ctrs, err := c.rs.ListContainers(ctx, &cri.ListContainersRequest{})
	if err != nil {
		return nil, fmt.Errorf("list CRI containers: %w", err)
	}
	cs := make([]Container, 0, len(pods.Items)+len(ctrs.Containers))
	for _, p := range pods.Items {
		cs = append(cs, c.sandbox(p.Id, p.Metadata, p.State, p.Labels))
	}
	for _, k := range ctrs.Containers {
		cs = append(cs, c.container(k.Id, k.PodSandboxId, k.Metadata, k.State, k.Labels))
	}
	return cs, nil
}

func (c *criAPI) sandbox(id string, md *cri.PodSandboxMetadata, state cri.PodSandboxState, labels map[string]string) Container {
	ct := Container{Runtime: "cri", Kind: KindPod, Endpoint: c.addr, ID: id, PodSandboxID: id, Labels: labels, hostRoot: c.hostRoot,
		State: "notready", Running: state == cri.PodSandboxState_SANDBOX_READY}
	if ct.Running {
		ct.State = "ready"
	}
	if md != nil {
		ct.Name, ct.Pod, ct.PodNamespace = md.Name, md.Name, md.Namespace
	}
	if ct.Pod == "" {
		ct.Pod, ct.PodNamespace = podLabels(labels)
		ct.Name = ct.Pod
	}
	return ct
}

func (c *criAPI) container(id, sandbox string, md *cri.ContainerMetadata, state cri.ContainerState, labels map[string]string) Container {
	ct := Container{Runtime: "cri", Endpoint: c.addr, ID: id, PodSandboxID: sandbox, Labels: labels, hostRoot: c.hostRoot}
	ct.Pod, ct.PodNamespace = podLabels(labels)
	if md != nil {
		ct.Name = md.Name
	}
	switch state {
	case cri.ContainerState_CONTAINER_RUNNING:
		ct.State, ct.Running = "running", true
	case cri.ContainerState_CONTAINER_CREATED:
		ct.State = "created"
	case cri.ContainerState_CONTAINER_EXITED:
		ct.State = "exited"
	default:
		ct.State = "unknown"
	}
	return ct
}

// Inspect asks for the sandbox or container with this full ID, with the
// runtime's verbose information: a container's network namespace is its
// pod sandbox's pinned netns file (runtime spec), its PID the container's.
func (c *criAPI) Inspect(ctx context.Context, id string) (Container, error) {
	ctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	sb, err := c.inspectSandbox(ctx, id)
	if err == nil || !isNotFound(err) {
		return sb, err
	}
	res, err := c.rs.ContainerStatus(ctx, &cri.ContainerStatusRequest{ContainerId: id, Verbose: true})
	if err != nil {
		if isNotFound(err) {
			return Container{}, fmt.Errorf("inspect CRI container %s: %w", shortID(id), ErrNotFound)
		}
		return Container{}, fmt.Errorf("inspect CRI container %s: %w", shortID(id), err)
	}
	st := res.Status
	if st == nil {
		return Container{}, fmt.Errorf("inspect CRI container %s: %w", shortID(id), ErrNotFound)
	}
	info, err := parseVerboseInfo(res.Info["info"])
	if err != nil {
		return Container{}, fmt.Errorf("inspect CRI container %s: %w", shortID(id), err)
	}
	sandboxID := info.SandboxID
	ct := c.container(st.Id, sandboxID, st.Metadata, st.State, st.Labels)
	ct.Detailed = true
	if sandboxID == "" {
		sandboxID = st.Labels["io.kubernetes.sandbox.id"]
	}
	if sandboxID == "" {
		// CRI-O puts no sandbox in its verbose info; the listing has it.
		l, err := c.rs.ListContainers(ctx, &cri.ListContainersRequest{Filter: &cri.ContainerFilter{Id: st.Id}})
		if err == nil && len(l.Containers) == 1 {
			sandboxID = l.Containers[0].PodSandboxId
		}
	}
	ct.PodSandboxID = sandboxID
	if sandboxID != "" {
		sb, err := c.inspectSandbox(ctx, sandboxID)
		if err != nil && !isNotFound(err) {
			return Container{}, fmt.Errorf("inspect CRI container %s: %w", shortID(id), err)
		}
		if ct.Pod == "" {
			ct.Pod, ct.PodNamespace = sb.Pod, sb.PodNamespace
		}
		ct.NetworkMode, ct.Addresses = sb.NetworkMode, sb.Addresses
		if ct.Running {
			ct.Netns = sb.Netns
		}
	}
	if ct.Running {
		ct.PID = info.PID
	}
	return ct, nil
}

func (c *criAPI) inspectSandbox(ctx context.Context, id string) (Container, error) {
	res, err := c.rs.PodSandboxStatus(ctx, &cri.PodSandboxStatusRequest{PodSandboxId: id, Verbose: true})
	if err != nil {
		if isNotFound(err) {
			return Container{}, fmt.Errorf("inspect CRI pod sandbox %s: %w", shortID(id), ErrNotFound)
		}
		return Container{}, fmt.Errorf("inspect CRI pod sandbox %s: %w", shortID(id), err)
	}
	st := res.Status
	if st == nil {
		return Container{}, fmt.Errorf("inspect CRI pod sandbox %s: %w", shortID(id), ErrNotFound)
	}
	info, err := parseVerboseInfo(res.Info["info"])
	if err != nil {
		return Container{}, fmt.Errorf("inspect CRI pod sandbox %s: %w", shortID(id), err)
	}
	ct := c.sandbox(st.Id, st.Metadata, st.State, st.Labels)
	ct.Detailed = true
	if l := st.Linux; l != nil && l.Namespaces != nil && l.Namespaces.Options != nil && l.Namespaces.Options.Network == cri.NamespaceMode_NODE {
		ct.NetworkMode = "host"
	}
	if n := st.Network; n != nil {
		ct.Addresses = podAddresses(n)
	}
	if ct.Running {
		ct.PID, ct.Netns = info.PID, HostPath(c.hostRoot, info.Netns)
	}
	return ct, nil
}

// podAddresses reads the pod's IPs; the CRI gives no prefix length, so
// each is a host prefix.
func podAddresses(n *cri.PodSandboxNetworkStatus) []netip.Prefix {
	var ps []netip.Prefix
	add := func(s string) {
		if a, err := netip.ParseAddr(s); err == nil {
			ps = append(ps, netip.PrefixFrom(a, a.BitLen()))
		}
	}
	add(n.Ip)
	for _, ip := range n.AdditionalIps {
		if ip != nil {
			add(ip.Ip)
		}
	}
	return ps
}

func isNotFound(err error) bool {
	return status.Code(err) == codes.NotFound || errors.Is(err, ErrNotFound)
}
