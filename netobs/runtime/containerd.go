package runtime

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	containers "github.com/containerd/containerd/api/services/containers/v1"
	namespaces "github.com/containerd/containerd/api/services/namespaces/v1"
	tasks "github.com/containerd/containerd/api/services/tasks/v1"
	"github.com/containerd/containerd/api/types/task"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// containerdAPI is containerd reached through its own gRPC API (the v1
// containers, tasks and namespaces services), which every containerd
// since 1.0 serves on its socket. Its containers are those of every
// containerd namespace: nerdctl's (default), Kubernetes' (k8s.io, the CRI
// plugin's), Docker's (moby).
type containerdAPI struct {
	addr     string
	hostRoot string
	conn     *grpc.ClientConn
	cs       containers.ContainersClient
	ts       tasks.TasksClient
	ns       namespaces.NamespacesClient
}

var _ Runtime = (*containerdAPI)(nil)

// errNotContainerd: something answered on the socket, but not containerd's
// API (CRI-O, Docker, another protocol).
var errNotContainerd = errors.New("not containerd's API")

// nsHeader is the gRPC metadata key that carries the containerd namespace
// of a request.
const nsHeader = "containerd-namespace"

// dialContainerd connects to containerd at ep and checks that it answers.
func dialContainerd(ctx context.Context, ep Endpoint, hostRoot string) (*containerdAPI, error) {
	conn, err := grpc.NewClient(ep.Address, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	c := &containerdAPI{addr: ep.Address, hostRoot: hostRoot, conn: conn,
		cs: containers.NewContainersClient(conn), ts: tasks.NewTasksClient(conn), ns: namespaces.NewNamespacesClient(conn)}
	if _, err := c.namespaces(ctx); err != nil {
		conn.Close()
		switch status.Code(err) {
		case codes.Unimplemented, codes.Unavailable, codes.Internal, codes.Unknown:
			return nil, fmt.Errorf("%w: %s", errNotContainerd, status.Convert(err).Message())
		}
		return nil, err
	}
	return c, nil
}

func (c *containerdAPI) Name() string     { return "containerd" }
func (c *containerdAPI) Endpoint() string { return c.addr }
func (c *containerdAPI) Close() error     { return c.conn.Close() }

// namespaces lists containerd's namespaces, sorted.
func (c *containerdAPI) namespaces(ctx context.Context) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	res, err := c.ns.List(ctx, &namespaces.ListNamespacesRequest{})
	if err != nil {
		return nil, err
	}
	var names []string
	for _, n := range res.Namespaces {
		names = append(names, n.Name)
	}
	sort.Strings(names)
	return names, nil
}

// List gives the containers of every containerd namespace, Detailed: the
// containers service returns each container's runtime spec, the tasks
// service each running task's PID.
func (c *containerdAPI) List(ctx context.Context) ([]Container, error) {
	nss, err := c.namespaces(ctx)
	if err != nil {
		return nil, fmt.Errorf("list containerd namespaces: %w", err)
	}
	var out []Container
	for _, ns := range nss {
		cs, err := c.listIn(ctx, ns)
		if err != nil {
			return nil, err
		}
		out = append(out, cs...)
	}
	return out, nil
}

func (c *containerdAPI) listIn(ctx context.Context, ns string) ([]Container, error) {
	ctx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(ctx, nsHeader, ns), apiTimeout)
	defer cancel()
	res, err := c.cs.List(ctx, &containers.ListContainersRequest{})
	if err != nil {
		return nil, fmt.Errorf("list containerd containers in namespace %q: %w", ns, err)
	}
	ts, err := c.ts.List(ctx, &tasks.ListTasksRequest{})
	if err != nil {
		return nil, fmt.Errorf("list containerd tasks in namespace %q: %w", ns, err)
	}
	procs := map[string]*task.Process{}
	for _, p := range ts.Tasks {
		switch {
		case p == nil:
		case p.ContainerID != "":
			procs[p.ContainerID] = p
		default:
			// containerd 1.x names a task's container in ID alone (the
			// init process's ID is its container's).
			procs[p.ID] = p
		}
	}
	var out []Container
	for _, k := range res.Containers {
		if k == nil {
			continue
		}
		ct, err := c.container(ns, k, procs[k.ID])
		if err != nil {
			return nil, err
		}
		out = append(out, ct)
	}
	joinSandboxes(out)
	return out, nil
}

// joinSandboxes gives the containers of a Kubernetes pod their sandbox's
// pinned netns file. containerd's CRI plugin makes a pod's containers
// join the sandbox's network namespace by its process
// (/proc/SANDBOX-PID/ns/net in their spec, which container() does not
// trust as a pin: the PID may be reused); the sandbox is the running
// container of that PID in the same containerd namespace.
func joinSandboxes(cs []Container) {
	byPID := map[int]int{}
	for i, c := range cs {
		if c.Running && c.PID > 0 && c.Netns != "" {
			byPID[c.PID] = i
		}
	}
	for i, c := range cs {
		if !c.Running || c.joinsPID <= 0 {
			continue
		}
		if j, ok := byPID[c.joinsPID]; ok && j != i {
			cs[i].Netns, cs[i].PodSandboxID = cs[j].Netns, cs[j].ID
		}
	}
}

// Inspect returns the container with this ID: NAMESPACE/ID, or an ID
// alone, looked for in every namespace (ErrAmbiguous if several have it).
func (c *containerdAPI) Inspect(ctx context.Context, id string) (Container, error) {
	if ns, id, ok := strings.Cut(id, "/"); ok {
		return c.inspectIn(ctx, ns, id)
	}
	nss, err := c.namespaces(ctx)
	if err != nil {
		return Container{}, fmt.Errorf("inspect containerd container %s: %w", shortID(id), err)
	}
	var found []Container
	for _, ns := range nss {
		ct, err := c.inspectIn(ctx, ns, id)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return Container{}, err
		}
		found = append(found, ct)
	}
	switch len(found) {
	case 0:
		return Container{}, fmt.Errorf("inspect containerd container %s: %w", shortID(id), ErrNotFound)
	case 1:
		return found[0], nil
	}
	return Container{}, &AmbiguousError{Ref: "containerd:" + id, Matches: found}
}

// inspectIn lists the namespace, not the one container: a pod's container
// needs its sandbox to name the pinned netns (see joinSandboxes).
func (c *containerdAPI) inspectIn(ctx context.Context, ns, id string) (Container, error) {
	cs, err := c.listIn(ctx, ns)
	if err != nil {
		return Container{}, fmt.Errorf("inspect containerd container %s/%s: %w", ns, shortID(id), err)
	}
	for _, ct := range cs {
		if ct.ID == id {
			return ct, nil
		}
	}
	return Container{}, fmt.Errorf("inspect containerd container %s/%s: %w", ns, shortID(id), ErrNotFound)
}

// container makes the record of containerd container k in namespace ns
// with its task p (nil if it has none: created, or its task deleted).
// Only a running or paused task has a network namespace to observe; a
// task created but not started has one, but nothing in it yet, and is
// "created" as nerdctl says.
func (c *containerdAPI) container(ns string, k *containers.Container, p *task.Process) (Container, error) {
	ct := Container{Runtime: "containerd", Endpoint: c.addr, ID: k.ID, Name: k.ID, ContainerdNamespace: ns,
		Labels: k.Labels, hostRoot: c.hostRoot, Detailed: true, State: "created"} // no task: as nerdctl says
	if n := k.Labels["nerdctl/name"]; n != "" {
		ct.Name = n
	}
	ct.Pod, ct.PodNamespace = podLabels(k.Labels)
	if sb := k.Labels["io.kubernetes.sandbox.id"]; sb != "" && validKey(sb) {
		ct.PodSandboxID = sb
	}
	var spec []byte
	if k.Spec != nil {
		spec = k.Spec.Value
	}
	n, err := parseSpec(spec)
	if err != nil {
		return Container{}, fmt.Errorf("containerd container %s/%s: %w", ns, shortID(k.ID), err)
	}
	if !n.Own && k.Spec != nil {
		ct.NetworkMode = "host"
	}
	if p != nil {
		switch p.Status {
		case task.Status_RUNNING:
			ct.State, ct.Running = "running", true
		case task.Status_PAUSED, task.Status_PAUSING:
			ct.State, ct.Running = strings.ToLower(p.Status.String()), true
		case task.Status_CREATED:
			ct.State = "created"
		case task.Status_STOPPED:
			ct.State = "exited"
		default:
			ct.State = "unknown"
		}
	}
	if ct.Running {
		if p.Pid > 0 && p.Pid < maxPID {
			ct.PID = int(p.Pid)
		}
		if n.JoinsPID > 0 {
			ct.joinsPID = n.JoinsPID
		} else if n.Path != "" {
			ct.Netns = HostPath(c.hostRoot, n.Path)
		}
	}
	return ct, nil
}
