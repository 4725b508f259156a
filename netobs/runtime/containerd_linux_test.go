package runtime_test

import (
	"bytes"
	"context"
	"errors"
	"log"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/netobs/netobs/internal/ctrtest"
	"github.com/netobs/netobs/internal/nstest"
	"github.com/netobs/netobs/netobs/runtime"
)

// A plain containerd container (namespace default, as nerdctl and ctr
// make one, with a network namespace of its own) resolves by full ID,
// unique prefix, nerdctl name and container:PREFIX to the namespace its
// task's process is in, through the PID (its spec pins no netns file); a
// prefix two containers share lists both, an unknown ID or another
// namespace finds nothing, and a container with no task or a stopped one
// is not running.
func TestContainerdPlain(t *testing.T) {
	c := ctrtest.Containerd(t)
	o := runtime.Options{Endpoint: c.Socket}
	ctx := context.Background()
	id1 := ctrtest.NewID()
	// id2 shares id1's first 8 digits, not its 9th: id1[:9] names id1 alone.
	other := "0"
	if id1[8] == '0' {
		other = "1"
	}
	id2 := id1[:8] + other + ctrtest.NewID()[9:]
	name := nstest.UniqueName("web")
	c.RunPlain(t, id1, name)
	c.RunPlain(t, id2, "")
	pid := c.PlainPID(t, id1)
	want, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	self, _ := os.Readlink("/proc/self/ns/net")
	if want == self {
		t.Fatalf("the container's task %d is in the host's namespace %s", pid, want)
	}
	for _, ref := range []string{"containerd:" + id1, "containerd:default/" + id1[:12], "containerd:" + id1[:9], "containerd:" + name, "container:" + id1[:12]} {
		n, got, err := runtime.Open(ctx, ref, o)
		if err != nil {
			t.Fatalf("Open %s: %v", ref, err)
		}
		s := n.String()
		n.Close()
		if s != want {
			t.Fatalf("Open %s = %s, the container's task %d is in %s", ref, s, pid, want)
		}
		if got.Runtime != "containerd" || got.ContainerdNamespace != "default" || got.ID != id1 || got.Name != name || got.PID != pid ||
			got.Netns != "" || got.HostNetwork() || !got.Running || got.Label() != "containerd:default/"+id1[:12] {
			t.Fatalf("Open %s: %+v; want containerd default/%s named %s, pid %d, its own netns", ref, got, id1, name, pid)
		}
	}
	if _, _, err := runtime.Open(ctx, "containerd:"+id2, o); err != nil {
		t.Fatalf("Open the unnamed container: %v", err)
	}

	_, _, err = runtime.Open(ctx, "containerd:"+id1[:8], o)
	if !errors.Is(err, runtime.ErrAmbiguous) || !strings.Contains(err.Error(), "containerd:default/"+id1[:12]) || !strings.Contains(err.Error(), "containerd:default/"+id2[:12]) {
		t.Fatalf("a prefix of both: %v, want an ambiguity listing both", err)
	}
	for _, ref := range []string{"containerd:" + ctrtest.NewID()[:12], "containerd:k8s.io/" + id1} {
		if _, _, err := runtime.Open(ctx, ref, o); !errors.Is(err, runtime.ErrNotFound) {
			t.Fatalf("Open %s: %v, want ErrNotFound", ref, err)
		}
	}

	created, stopped := ctrtest.NewID(), ctrtest.NewID()
	c.CreatePlain(t, created, "")
	c.RunPlain(t, stopped, "")
	c.KillPlain(t, stopped)
	for id, state := range map[string]string{created: "created", stopped: "exited"} {
		_, got, err := runtime.Open(ctx, "containerd:"+id[:12], o)
		if !errors.Is(err, runtime.ErrNotRunning) || got.State != state || !strings.Contains(err.Error(), "is "+state) {
			t.Fatalf("Open a %s container: %+v, %v; want ErrNotRunning saying %s", state, got, err, state)
		}
	}

	// ps's listing, of containerd alone and of every runtime at the
	// socket: each container once, the CRI's not again as containerd's.
	for _, rt := range []string{"containerd", ""} {
		all, err := runtime.List(ctx, rt, o)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]int{}
		for _, x := range all {
			seen[x.ID]++
			if x.ID == id1 && (x.Runtime != "containerd" || x.PID != pid || !x.Running || x.Name != name) {
				t.Fatalf("List %q: %+v", rt, x)
			}
			if seen[x.ID] > 1 {
				t.Fatalf("List %q: %s listed twice: %+v", rt, x.ID, all)
			}
		}
		if seen[id1]+seen[id2]+seen[created]+seen[stopped] != 4 {
			t.Fatalf("List %q lacks some of the four containers: %+v", rt, all)
		}
	}
}

// A container Kubernetes made through the CRI is containerd's in namespace
// k8s.io: containerd:k8s.io/ID of the pod's container and of its sandbox
// resolve to the pod's pinned netns file (the same inode as nsenter and
// the container's process), with the pod from the kubelet's labels.
func TestContainerdK8sIO(t *testing.T) {
	c := ctrtest.Containerd(t)
	o := runtime.Options{Endpoint: c.Socket}
	ctx := context.Background()
	ns, name := nstest.UniqueName("ns"), nstest.UniqueName("web")
	pod := c.RunPod(t, ns, name, nil, false)
	ctr := c.RunContainer(t, pod, "main")
	pid := c.PID(t, ctr)
	want, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	_, sb, err := runtime.Open(ctx, "pod:"+ns+"/"+name, o)
	if err != nil || sb.Netns == "" {
		t.Fatalf("pod:%s/%s: %+v, %v", ns, name, sb, err)
	}
	for _, id := range []string{ctr, pod.ID} {
		ref := "containerd:k8s.io/" + id[:12]
		n, got, err := runtime.Open(ctx, ref, o)
		if err != nil {
			t.Fatalf("Open %s: %v", ref, err)
		}
		s, path := n.String(), n.Path()
		n.Close()
		if s != want || got.Netns != sb.Netns || path != sb.Netns || got.Runtime != "containerd" || got.ContainerdNamespace != "k8s.io" ||
			got.ID != id || got.Pod != name || got.PodNamespace != ns || got.Label() != "containerd:k8s.io/"+id[:12] {
			t.Fatalf("Open %s: %s through %s, %+v; want %s through the pod's netns %s, pod %s/%s", ref, s, path, got, want, sb.Netns, ns, name)
		}
		if by := nsenterInode(t, "--net="+got.Netns); by != want {
			t.Fatalf("nsenter --net=%s: %s, want %s", got.Netns, by, want)
		}
	}
	// Kubernetes' containers are not in nerdctl's namespace.
	if _, _, err := runtime.Open(ctx, "containerd:"+ctr[:12], o); !errors.Is(err, runtime.ErrNotFound) {
		t.Fatalf("containerd:%s (namespace default): %v, want ErrNotFound", ctr[:12], err)
	}
}

// No containerd at the endpoint, and none at the usual sockets under a
// host root: the sockets tried and why.
func TestContainerdNotRunning(t *testing.T) {
	root := t.TempDir()
	sock := filepath.Join(root, "containerd.sock")
	_, _, err := runtime.Open(context.Background(), "containerd:web", runtime.Options{Endpoint: sock})
	var ue *runtime.UnreachableError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), sock) || !strings.Contains(err.Error(), "no such socket") || !strings.Contains(err.Error(), "containerd") {
		t.Fatalf("containerd: with no daemon: %v", err)
	}
	_, _, err = runtime.Open(context.Background(), "containerd:web", runtime.Options{HostRoot: root})
	if !errors.As(err, &ue) || len(ue.Tried) != len(runtime.ContainerdSockets) {
		t.Fatalf("containerd: under an empty host root: %v, want the %d usual sockets tried", err, len(runtime.ContainerdSockets))
	}
	for _, s := range runtime.ContainerdSockets {
		if !strings.Contains(err.Error(), filepath.Join(root, s)) {
			t.Fatalf("containerd: under an empty host root: %v, does not name %s", err, filepath.Join(root, s))
		}
	}
}

// An endpoint given without its runtime (container:ID, ps) that is
// containerd's socket is asked over gRPC first: an HTTP/1 probe of the
// Docker API there made net/http log the server's HTTP/2 frames to stderr
// ("Unsolicited response received on idle HTTP channel"), a few times in a
// hundred. Both the CRI and containerd's API answer there.
func TestEndpointWithoutRuntimeQuiet(t *testing.T) {
	c := ctrtest.Containerd(t)
	var logged bytes.Buffer
	log.SetOutput(&logged)
	defer log.SetOutput(os.Stderr)
	for i := 0; i < 300; i++ {
		rts, err := runtime.Connect(context.Background(), "", runtime.Options{Endpoint: c.Socket})
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, rt := range rts {
			names = append(names, rt.Name())
			rt.Close()
		}
		if strings.Join(names, ",") != "cri,containerd" {
			t.Fatalf("Connect at containerd's socket: %v, want cri and containerd", names)
		}
	}
	if logged.Len() > 0 {
		t.Fatalf("connecting logged: %s", logged.String())
	}
}
