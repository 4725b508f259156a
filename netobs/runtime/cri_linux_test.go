package runtime_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/netobs/netobs/internal/ctrtest"
	"github.com/netobs/netobs/internal/nstest"
	"github.com/netobs/netobs/netobs/runtime"
)

// A pod made through the CRI as the kubelet makes it resolves, as
// pod:NS/NAME, pod:NAME, cri:SANDBOX-PREFIX, cri:CONTAINER-PREFIX and
// container:PREFIX, to the namespace the container's process is in
// (readlink /proc/PID/ns/net) and that nsenter finds at the pinned netns
// path, opened through that path.
func TestCRIPodAndContainer(t *testing.T) {
	c := ctrtest.Containerd(t)
	o := runtime.Options{Endpoint: c.Socket}
	ns, name := nstest.UniqueName("ns"), nstest.UniqueName("web")
	pod := c.RunPod(t, ns, name, map[string]string{"app": "web"}, false)
	ctr := c.RunContainer(t, pod, "main")
	pid := c.PID(t, ctr)
	want, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	self, _ := os.Readlink("/proc/self/ns/net")
	if want == self {
		t.Fatalf("the pod's container %d is in the host's namespace %s", pid, want)
	}
	var netns string
	for _, ref := range []string{"pod:" + ns + "/" + name, "pod:" + name, "cri:" + pod.ID[:12], "cri:" + ctr[:12], "container:" + ctr[:10]} {
		n, got, err := runtime.Open(context.Background(), ref, o)
		if err != nil {
			t.Fatalf("Open %s: %v", ref, err)
		}
		s, path := n.String(), n.Path()
		n.Close()
		if s != want {
			t.Fatalf("Open %s = %s, the container's process is in %s", ref, s, want)
		}
		if got.Runtime != "cri" || got.Pod != name || got.PodNamespace != ns || got.PodSandboxID != pod.ID || got.Netns == "" || path != got.Netns {
			t.Fatalf("Open %s: %+v opened %s; want pod %s/%s, sandbox %s, opened through its netns path", ref, got, path, ns, name, pod.ID)
		}
		if netns == "" {
			netns = got.Netns
			if by := nsenterInode(t, "--net="+netns); by != want {
				t.Fatalf("nsenter --net=%s: %s, want %s", netns, by, want)
			}
		}
		if got.Netns != netns {
			t.Fatalf("Open %s: netns %s, the pod's is %s", ref, got.Netns, netns)
		}
		isCtr := strings.HasPrefix(ctr, strings.TrimPrefix(strings.TrimPrefix(ref, "cri:"), "container:"))
		if isCtr != got.SharesPod() || (isCtr && (got.ID != ctr || got.Name != "main" || got.PID != pid)) || (!isCtr && (got.Kind != runtime.KindPod || got.ID != pod.ID)) {
			t.Fatalf("Open %s: %+v; want the container %s (pid %d) sharing the pod's namespace, or the sandbox", ref, got, ctr, pid)
		}
		if got.Labels["app"] != "web" && !isCtr {
			t.Fatalf("Open %s: labels %v lack app=web", ref, got.Labels)
		}
	}
	// The listing has both, Detailed.
	all, err := runtime.List(context.Background(), "cri", o)
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, x := range all {
		if (x.ID == pod.ID || x.ID == ctr) && x.Netns == netns && x.Running {
			seen++
		}
	}
	if seen != 2 {
		t.Fatalf("List: %d of the pod and its container with netns %s: %+v", seen, netns, all)
	}
}

// A hostNetwork pod resolves to the host's namespace and says so in its
// network mode.
func TestCRIHostNetworkPod(t *testing.T) {
	c := ctrtest.Containerd(t)
	pod := c.RunPod(t, "default", nstest.UniqueName("host"), nil, true)
	n, got, err := runtime.Open(context.Background(), "cri:"+pod.ID, runtime.Options{Endpoint: c.Socket})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	self, _ := os.Readlink("/proc/self/ns/net")
	if n.String() != self || !got.HostNetwork() {
		t.Fatalf("hostNetwork pod: %s, %+v; want the host's %s and network mode host", n, got, self)
	}
}

// Globs expand to every matching pod; a name in two namespaces without
// NAMESPACE/ is ambiguous and lists both; a stopped pod is not running.
func TestCRIPodGlobAmbiguousStopped(t *testing.T) {
	c := ctrtest.Containerd(t)
	o := runtime.Options{Endpoint: c.Socket}
	ns1, ns2, base := nstest.UniqueName("a"), nstest.UniqueName("b"), nstest.UniqueName("web")
	p1 := c.RunPod(t, ns1, base+"-0", nil, false)
	p2 := c.RunPod(t, ns1, base+"-1", nil, false)
	c.RunPod(t, ns2, base+"-0", nil, false)
	ref, _ := runtime.ParseRef("pod:" + ns1 + "/" + base + "-*")
	cs, err := runtime.LookupAll(context.Background(), ref, o)
	if err != nil || len(cs) != 2 || cs[0].ID != p1.ID || cs[1].ID != p2.ID || cs[0].Netns == "" || cs[0].Netns == cs[1].Netns {
		t.Fatalf("%s: %+v, %v; want %s and %s with their own netns", ref, cs, err, p1.ID, p2.ID)
	}
	// Where one namespace is wanted, a glob that matches two is an error.
	if _, _, err := runtime.Open(context.Background(), ref.String(), o); !errors.Is(err, runtime.ErrAmbiguous) || !strings.Contains(err.Error(), p2.Name) {
		t.Fatalf("Open %s: %v, want an ambiguity listing both pods", ref, err)
	}
	_, _, err = runtime.Open(context.Background(), "pod:"+base+"-0", o)
	if !errors.Is(err, runtime.ErrAmbiguous) || !strings.Contains(err.Error(), "pod:"+ns1+"/"+base+"-0") || !strings.Contains(err.Error(), "pod:"+ns2+"/"+base+"-0") {
		t.Fatalf("pod:%s-0 in two namespaces: %v", base, err)
	}
	c.StopPod(t, p2)
	_, _, err = runtime.Open(context.Background(), "pod:"+ns1+"/"+base+"-1", o)
	if !errors.Is(err, runtime.ErrNotRunning) {
		t.Fatalf("stopped pod: %v, want ErrNotRunning", err)
	}
	if _, _, err := runtime.Open(context.Background(), "pod:"+nstest.UniqueName("none"), o); !errors.Is(err, runtime.ErrNotFound) {
		t.Fatalf("unknown pod: %v, want ErrNotFound", err)
	}
}

// No CRI runtime at the endpoint: the socket tried and why.
func TestCRINotRunning(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "containerd.sock")
	_, _, err := runtime.Open(context.Background(), "pod:default/web", runtime.Options{Endpoint: sock})
	var ue *runtime.UnreachableError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), sock) || !strings.Contains(err.Error(), "no such socket") || !strings.Contains(err.Error(), "CRI") {
		t.Fatalf("pod: with no runtime: %v", err)
	}
}
