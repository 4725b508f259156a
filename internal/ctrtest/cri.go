package ctrtest

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netobs/netobs/internal/nstest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	cri "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// CRI is a containerd with its CRI plugin that this test binary started
// for itself: its own root, state and socket under a temporary directory,
// a pause-like sandbox image built from busybox-static and imported
// locally, and CNI (bridge + host-local from /usr/lib/cni) on a bridge
// and private subnet of its own. It does not touch a containerd of the
// host. Shutdown removes every pod it made and stops it by PID.
type CRI struct {
	// Socket is containerd's gRPC socket (CRI and containerd API).
	Socket string
	// Image is the busybox image, also the sandbox image.
	Image string
	// Bridge is the CNI bridge and Gateway its address, the pods' gateway.
	Bridge, Gateway string
	// Runtime is the CRI runtime service client.
	Runtime cri.RuntimeServiceClient
	dir     string
	conn    *grpc.ClientConn
	cmd     *exec.Cmd
	exited  chan error
	// plainReady: the image is in PlainNamespace too (guarded by mu).
	plainReady bool
}

var criReady *CRI

// Containerd returns the test binary's containerd, started on first use.
// It needs root, containerd, ctr, runc, busybox and the CNI plugins.
func Containerd(tb testing.TB) *CRI {
	tb.Helper()
	nstest.RequireRoot(tb)
	nstest.RequireTools(tb, "containerd", "ctr", "containerd-shim-runc-v2", "runc", "busybox", "ip")
	for _, p := range []string{"bridge", "host-local", "loopback"} {
		if _, err := os.Stat(filepath.Join(cniBin, p)); err != nil {
			nstest.Unavailable(tb, fmt.Sprintf("CNI plugin %s/%s missing (install containernetworking-plugins: make deps)", cniBin, p))
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if criReady != nil {
		return criReady
	}
	c, err := startContainerd()
	if err != nil {
		tb.Fatal(err)
	}
	criReady = c
	return c
}

const cniBin = "/usr/lib/cni"

func startContainerd() (_ *CRI, err error) {
	dir, err := os.MkdirTemp("", "netobs-ctrd-")
	if err != nil {
		return nil, err
	}
	c := &CRI{dir: dir, Socket: filepath.Join(dir, "containerd.sock"),
		Image: "docker.io/library/netobs-test-pause:" + nstest.Prefix()}
	defer func() {
		if err != nil {
			c.stop()
		}
	}()
	pid := os.Getpid()
	// A bridge name of at most 15 bytes and a /24 of 10.254.0.0/16, both
	// unique to this process on this machine.
	c.Bridge = fmt.Sprintf("nobr%d", pid)
	if len(c.Bridge) > 15 {
		c.Bridge = c.Bridge[:15]
	}
	subnet := fmt.Sprintf("10.254.%d.0/24", pid%250)
	c.Gateway = fmt.Sprintf("10.254.%d.1", pid%250)
	cniDir := filepath.Join(dir, "cni")
	if err := os.MkdirAll(cniDir, 0o755); err != nil {
		return nil, err
	}
	conflist := map[string]any{
		"cniVersion": "0.4.0", "name": "netobs-test",
		"plugins": []any{map[string]any{
			"type": "bridge", "bridge": c.Bridge, "isGateway": true, "ipMasq": false,
			"ipam": map[string]any{"type": "host-local", "dataDir": filepath.Join(dir, "ipam"),
				"ranges": []any{[]any{map[string]any{"subnet": subnet, "gateway": c.Gateway}}}},
		}},
	}
	b, _ := json.Marshal(conflist)
	if err := os.WriteFile(filepath.Join(cniDir, "10-netobs.conflist"), b, 0o644); err != nil {
		return nil, err
	}
	config := fmt.Sprintf(`version = 2
root = %[1]q
state = %[2]q
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = %[3]q
[ttrpc]
  address = %[4]q
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %[5]q
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  # The kubelet's -998 for sandboxes needs CAP_SYS_RESOURCE, which the
  # test machine may lack; no lower than containerd's own instead.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "native"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = %[6]q
    conf_dir = %[7]q
    max_conf_num = 1
[plugins."io.containerd.internal.v1.opt"]
  path = %[8]q
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), c.Socket, c.Socket+".ttrpc",
		c.Image, cniBin, cniDir, filepath.Join(dir, "opt"))
	cfgPath := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfgPath, []byte(config), 0o644); err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(dir, "containerd.log"))
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command("containerd", "--config", cfgPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start containerd: %w", err)
	}
	c.cmd, c.exited = cmd, make(chan error, 1)
	go func() { c.exited <- cmd.Wait() }()
	for !answers(c.Socket) {
		select {
		case err := <-c.exited:
			c.cmd = nil
			log, _ := os.ReadFile(logf.Name())
			return nil, fmt.Errorf("containerd exited (%v) before answering on %s: %s", err, c.Socket, lastLines(string(log)))
		case <-time.After(100 * time.Millisecond):
		}
	}
	c.conn, err = grpc.NewClient("unix://"+c.Socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	c.Runtime = cri.NewRuntimeServiceClient(c.conn)
	if err := c.importImage(); err != nil {
		return nil, err
	}
	return c, nil
}

// importImage builds a docker-archive (manifest.json, config, one layer
// with /bin/busybox and its applets; entrypoint sleep, so it serves as
// the pause image too) and imports it with ctr into the k8s.io namespace,
// then waits until the CRI sees it.
func (c *CRI) importImage() error {
	busybox, err := exec.LookPath("busybox")
	if err != nil {
		return err
	}
	data, err := os.ReadFile(busybox)
	if err != nil {
		return err
	}
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	tw.WriteHeader(&tar.Header{Name: "bin/", Typeflag: tar.TypeDir, Mode: 0o755})
	tw.WriteHeader(&tar.Header{Name: "bin/busybox", Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(data))})
	tw.Write(data)
	for _, applet := range []string{"sh", "sleep", "ping", "ip", "nc", "true", "cat"} {
		tw.WriteHeader(&tar.Header{Name: "bin/" + applet, Typeflag: tar.TypeSymlink, Linkname: "busybox", Mode: 0o777})
	}
	for _, d := range []string{"proc/", "sys/", "dev/", "etc/", "tmp/"} {
		tw.WriteHeader(&tar.Header{Name: d, Typeflag: tar.TypeDir, Mode: 0o755})
	}
	if err := tw.Close(); err != nil {
		return err
	}
	sum := sha256.Sum256(layer.Bytes())
	config, _ := json.Marshal(map[string]any{
		"architecture": goruntime.GOARCH, "os": "linux",
		"config": map[string]any{"Entrypoint": []string{"/bin/sleep", "2147483647"}, "Env": []string{"PATH=/bin"}},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{"sha256:" + hex.EncodeToString(sum[:])}},
	})
	manifest, _ := json.Marshal([]map[string]any{{"Config": "config.json", "RepoTags": []string{c.Image}, "Layers": []string{"layer.tar"}}})
	var archive bytes.Buffer
	aw := tar.NewWriter(&archive)
	for _, f := range []struct {
		name string
		data []byte
	}{{"layer.tar", layer.Bytes()}, {"config.json", config}, {"manifest.json", manifest}} {
		aw.WriteHeader(&tar.Header{Name: f.name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(f.data))})
		aw.Write(f.data)
	}
	if err := aw.Close(); err != nil {
		return err
	}
	path := filepath.Join(c.dir, "image.tar")
	if err := os.WriteFile(path, archive.Bytes(), 0o644); err != nil {
		return err
	}
	out, err := exec.Command("ctr", "-a", c.Socket, "-n", "k8s.io", "images", "import", "--snapshotter", "native", path).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ctr images import: %v: %s", err, out)
	}
	is := cri.NewImageServiceClient(c.conn)
	for i := 0; ; i++ {
		res, err := is.ImageStatus(context.Background(), &cri.ImageStatusRequest{Image: &cri.ImageSpec{Image: c.Image}})
		if err == nil && res.Image != nil {
			return nil
		}
		if i == 100 {
			return fmt.Errorf("CRI does not see the imported image %s: %v", c.Image, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Pod is a pod sandbox made through the CRI as the kubelet makes one.
type Pod struct {
	ID, Name, Namespace string
	Config              *cri.PodSandboxConfig
}

// RunPod makes and starts a pod sandbox named name in Kubernetes
// namespace ns with these labels (and the kubelet's io.kubernetes.pod.*
// ones); hostNetwork puts it in the host's network namespace. The
// sandbox is stopped and removed when the test ends, even on failure.
func (c *CRI) RunPod(tb testing.TB, ns, name string, labels map[string]string, hostNetwork bool) *Pod {
	tb.Helper()
	uid := nstest.UniqueName("uid")
	l := map[string]string{"io.kubernetes.pod.name": name, "io.kubernetes.pod.namespace": ns, "io.kubernetes.pod.uid": uid}
	for k, v := range labels {
		l[k] = v
	}
	mode, hostname := cri.NamespaceMode_POD, "pod"
	if hostNetwork {
		// The host's UTS namespace too, as the kubelet does.
		mode, hostname = cri.NamespaceMode_NODE, ""
	}
	cfg := &cri.PodSandboxConfig{
		Metadata:     &cri.PodSandboxMetadata{Name: name, Namespace: ns, Uid: uid},
		Hostname:     hostname,
		LogDirectory: tb.TempDir(),
		Labels:       l,
		Linux: &cri.LinuxPodSandboxConfig{SecurityContext: &cri.LinuxSandboxSecurityContext{
			NamespaceOptions: &cri.NamespaceOption{Network: mode, Pid: cri.NamespaceMode_CONTAINER, Ipc: cri.NamespaceMode_POD},
		}},
	}
	res, err := c.Runtime.RunPodSandbox(context.Background(), &cri.RunPodSandboxRequest{Config: cfg})
	if err != nil {
		tb.Fatalf("RunPodSandbox %s/%s: %v", ns, name, err)
	}
	id := res.PodSandboxId
	tb.Cleanup(func() { c.removePod(id) })
	return &Pod{ID: id, Name: name, Namespace: ns, Config: cfg}
}

// StopPod stops the pod's sandbox (it stays, not ready), as the kubelet
// does before it removes one.
func (c *CRI) StopPod(tb testing.TB, p *Pod) {
	tb.Helper()
	if _, err := c.Runtime.StopPodSandbox(context.Background(), &cri.StopPodSandboxRequest{PodSandboxId: p.ID}); err != nil {
		tb.Fatalf("StopPodSandbox %s/%s: %v", p.Namespace, p.Name, err)
	}
}

func (c *CRI) removePod(id string) {
	ctx := context.Background()
	c.Runtime.StopPodSandbox(ctx, &cri.StopPodSandboxRequest{PodSandboxId: id})
	c.Runtime.RemovePodSandbox(ctx, &cri.RemovePodSandboxRequest{PodSandboxId: id})
}

// RunContainer creates and starts a container named name in pod p
// running command (default: sleep), with NET_RAW for ping. It goes with
// its pod.
func (c *CRI) RunContainer(tb testing.TB, p *Pod, name string, command ...string) string {
	tb.Helper()
	if len(command) == 0 {
		command = []string{"/bin/sleep", "3600"}
	}
	cfg := &cri.ContainerConfig{
		Metadata: &cri.ContainerMetadata{Name: name},
		Image:    &cri.ImageSpec{Image: c.Image},
		Command:  command,
		LogPath:  name + ".log",
		// The kubelet's labels: containerd keeps them on its container in
		// namespace k8s.io too.
		Labels: map[string]string{"io.kubernetes.container.name": name, "io.kubernetes.pod.name": p.Name,
			"io.kubernetes.pod.namespace": p.Namespace, "io.kubernetes.pod.uid": p.Config.Metadata.Uid},
		Linux: &cri.LinuxContainerConfig{SecurityContext: &cri.LinuxContainerSecurityContext{
			Capabilities: &cri.Capability{AddCapabilities: []string{"NET_RAW"}},
		}},
	}
	ctx := context.Background()
	res, err := c.Runtime.CreateContainer(ctx, &cri.CreateContainerRequest{PodSandboxId: p.ID, Config: cfg, SandboxConfig: p.Config})
	if err != nil {
		tb.Fatalf("CreateContainer %s in %s/%s: %v", name, p.Namespace, p.Name, err)
	}
	if _, err := c.Runtime.StartContainer(ctx, &cri.StartContainerRequest{ContainerId: res.ContainerId}); err != nil {
		tb.Fatalf("StartContainer %s: %v", name, err)
	}
	return res.ContainerId
}

// RemoveContainer stops (at once) and removes a container, as the kubelet
// does when it restarts one.
func (c *CRI) RemoveContainer(tb testing.TB, id string) {
	tb.Helper()
	ctx := context.Background()
	if _, err := c.Runtime.StopContainer(ctx, &cri.StopContainerRequest{ContainerId: id, Timeout: 0}); err != nil {
		tb.Fatalf("StopContainer %s: %v", id, err)
	}
	if _, err := c.Runtime.RemoveContainer(ctx, &cri.RemoveContainerRequest{ContainerId: id}); err != nil {
		tb.Fatalf("RemoveContainer %s: %v", id, err)
	}
}

// PID is the container's process, from its verbose status.
func (c *CRI) PID(tb testing.TB, id string) int {
	tb.Helper()
	res, err := c.Runtime.ContainerStatus(context.Background(), &cri.ContainerStatusRequest{ContainerId: id, Verbose: true})
	if err != nil {
		tb.Fatal(err)
	}
	var info struct {
		PID int `json:"pid"`
	}
	if err := json.Unmarshal([]byte(res.Info["info"]), &info); err != nil || info.PID <= 0 {
		tb.Fatalf("container %s: no pid in verbose info (%v): %s", id, err, res.Info["info"])
	}
	return info.PID
}

// Exec runs a command in a container and returns its output; it fails
// the test on a non-zero exit.
func (c *CRI) Exec(tb testing.TB, id string, cmd ...string) string {
	tb.Helper()
	res, err := c.Runtime.ExecSync(context.Background(), &cri.ExecSyncRequest{ContainerId: id, Cmd: cmd, Timeout: 60})
	if err != nil {
		tb.Fatalf("exec %s in %s: %v", strings.Join(cmd, " "), id, err)
	}
	if res.ExitCode != 0 {
		tb.Fatalf("exec %s in %s: exit %d: %s%s", strings.Join(cmd, " "), id, res.ExitCode, res.Stdout, res.Stderr)
	}
	return string(res.Stdout)
}

// stop removes every pod and plain container, stops containerd by PID, deletes the bridge and
// the directory.
func (c *CRI) stop() {
	if c.Runtime != nil {
		if l, err := c.Runtime.ListPodSandbox(context.Background(), &cri.ListPodSandboxRequest{}); err == nil {
			for _, p := range l.Items {
				c.removePod(p.Id)
			}
		}
		c.removeAllPlain()
	}
	if c.conn != nil {
		c.conn.Close()
	}
	if c.cmd != nil {
		c.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-c.exited:
		case <-time.After(60 * time.Second):
			c.cmd.Process.Kill()
			<-c.exited
		}
	}
	if c.Bridge != "" {
		exec.Command("ip", "link", "del", c.Bridge).Run()
	}
	os.RemoveAll(c.dir)
}
