package test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/netobs/netobs/internal/ctrtest"
	"github.com/netobs/netobs/internal/nstest"
)

// A plain containerd container (namespace default, as nerdctl makes one)
// is an NSREF everywhere: ns id agrees with the kernel's name of its
// task's namespace, sockets shows its listener with the containerd label,
// a capture holds the pings from a namespace the test joined to it by a
// veth on an interface named eth0@containerd:default/ID as tshark reads
// it, and ps --json lists it with runtime containerd.
func TestContainerdCLI(t *testing.T) {
	c := ctrtest.Containerd(t)
	ep := []string{"--runtime-endpoint", c.Socket}
	id, name := ctrtest.NewID(), nstest.UniqueName("web")
	c.RunPlain(t, id, name, "/bin/sh", "-c", "ip link set lo up; exec nc -l -p 7789")
	pid := c.PlainPID(t, id)
	want := readlink(t, "/proc/"+strconv.Itoa(pid)+"/ns/net")
	label := "containerd:default/" + id[:12]

	for _, ref := range []string{"containerd:" + id, "containerd:default/" + id[:10], "container:" + id[:12]} {
		res := netobs(t, append(ep, "ns", "id", ref)...)
		if res.code != 0 || !strings.Contains(res.stdout, want) {
			t.Fatalf("ns id %s: %+v, want %s", ref, res, want)
		}
	}

	ref := "containerd:" + id[:12]
	for i := 0; ; i++ {
		out := mustNetobs(t, append(ep, "sockets", ref, "-tl")...)
		if strings.Contains(out, ":7789") {
			if first := strings.SplitN(out, "\n", 2)[0]; first != want+" "+label {
				t.Fatalf("sockets %s -tl: first line %q, want %q", ref, first, want+" "+label)
			}
			break
		}
		if i == 500 {
			t.Fatalf("sockets %s -tl never showed the listener on 7789:\n%s", ref, out)
		}
		time.Sleep(10 * time.Millisecond)
	}

	out := mustNetobs(t, append([]string{"__complete"}, append(ep, "ns", "id", "")...)...)
	if !strings.Contains("\n"+out, "\n"+label+"\n") {
		t.Fatalf("completion of ns id does not offer %s:\n%s", label, out)
	}

	// A veth from a namespace of the test's own into the container, named
	// eth0 there, for traffic to capture.
	peer, _, ctrAddr := vethIntoContainer(t, pid, os.Getpid()%250)

	file := filepath.Join(t.TempDir(), "ctrd.pcapng")
	p := startNetobs(t, append(ep, "capture", ref, "-i", "eth0", "-c", "6", "-w", file, "icmp")...)
	p.waitStderr(t, "capturing on")
	nstest.Run(t, "ip", "netns", "exec", peer, "ping", "-c", "3", "-i", "0.2", "-W", "5", ctrAddr)
	if code := p.wait(t); code != 0 {
		t.Fatalf("capture %s -c 6: exit %d: %s", ref, code, p.stderr.String())
	}
	wantThreePings(t, file, fmt.Sprintf("eth0@%s described as containerd container %s", label, name), func(ifc, desc string) bool {
		return ifc == "eth0@"+label && strings.Contains(desc, "containerd container \""+name+"\" (ID "+id[:12]+")")
	})

	// ps of every runtime at the socket and of containerd alone.
	for _, args := range [][]string{{"ps", "--json"}, {"ps", "--runtime", "containerd", "--json"}} {
		var found int
		res := netobs(t, append(ep, args...)...)
		if res.code != 0 || res.stderr != "" {
			t.Fatalf("netobs %s: %+v, want exit 0 and nothing on stderr", args, res)
		}
		for _, row := range jsonLines[psRow](t, "ps --json", res.stdout) {
			if row.ID == id {
				found++
				if row.Runtime != "containerd" || row.Container != name || row.ContainerdNamespace != "default" || row.State != "running" || row.NetnsID != want || row.PID != pid {
					t.Fatalf("%s: %+v; want runtime containerd, container %s, namespace default, running, %s, pid %d", args, row, name, want, pid)
				}
			}
		}
		if found != 1 {
			t.Fatalf("%s lists the container %d times, want once", args, found)
		}
	}
}

// vethIntoContainer links a new namespace of the test's own (peer) to the
// network namespace of process pid, a container's, by a veth named eth0
// there: hostAddr 10.252.SUB.1/24 on the test's side, ctrAddr
// 10.252.SUB.2/24 in the container, both up.
func vethIntoContainer(t *testing.T, pid, sub int) (peer, hostAddr, ctrAddr string) {
	t.Helper()
	peer = nstest.NetNS(t)
	hostAddr, ctrAddr = fmt.Sprintf("10.252.%d.1", sub), fmt.Sprintf("10.252.%d.2", sub)
	ifA := nstest.UniqueName("va")
	nstest.Run(t, "ip", "link", "add", ifA, "netns", peer, "type", "veth", "peer", "name", "eth0", "netns", strconv.Itoa(pid))
	nstest.Run(t, "ip", "-n", peer, "addr", "add", hostAddr+"/24", "dev", ifA)
	nstest.Run(t, "ip", "-n", peer, "link", "set", ifA, "up")
	nstest.Run(t, "nsenter", "-t", strconv.Itoa(pid), "-n", "ip", "addr", "add", ctrAddr+"/24", "dev", "eth0")
	nstest.Run(t, "nsenter", "-t", strconv.Itoa(pid), "-n", "ip", "link", "set", "eth0", "up")
	return peer, hostAddr, ctrAddr
}

// A container with the host's network (ctr run --net-host) resolves to the
// host's namespace with a warning.
func TestContainerdCLIHostNet(t *testing.T) {
	c := ctrtest.Containerd(t)
	id := ctrtest.NewID()
	c.RunPlainHostNet(t, id)
	res := netobs(t, "--runtime-endpoint", c.Socket, "ns", "id", "containerd:"+id[:12])
	if res.code != 0 || !strings.Contains(res.stdout, readlink(t, "/proc/self/ns/net")) || !strings.Contains(res.stderr, "warning:") || !strings.Contains(res.stderr, "host's network namespace (its runtime spec has none of its own: --net-host)") {
		t.Fatalf("ns id of a --net-host container: %+v, want the host's namespace and a warning", res)
	}
}

// A pod's container is containerd's too, in namespace k8s.io: its
// reference resolves to the pod's namespace and says it shares it.
func TestContainerdCLIK8sIO(t *testing.T) {
	c := ctrtest.Containerd(t)
	ep := []string{"--runtime-endpoint", c.Socket}
	ns, name := nstest.UniqueName("ns"), nstest.UniqueName("web")
	pod := c.RunPod(t, ns, name, nil, false)
	ctr := c.RunContainer(t, pod, "main")
	want := readlink(t, "/proc/"+strconv.Itoa(c.PID(t, ctr))+"/ns/net")
	res := netobs(t, append(ep, "ns", "id", "containerd:k8s.io/"+ctr[:12])...)
	if res.code != 0 || !strings.Contains(res.stdout, want) || !strings.Contains(res.stderr, "of pod "+ns+"/"+name+" and shares the pod's network namespace (sandbox "+pod.ID[:12]+")") {
		t.Fatalf("ns id containerd:k8s.io/%s: %+v, want %s and a note that it shares the pod's", ctr[:12], res, want)
	}
}

// Bad containerd references: malformed ones are usage errors (exit 2),
// an unknown ID, a stopped or never started container and a daemon not
// running are one line and exit 1; an ambiguous prefix lists both.
func TestContainerdCLIBadInput(t *testing.T) {
	c := ctrtest.Containerd(t)
	ep := []string{"--runtime-endpoint", c.Socket}
	id1 := ctrtest.NewID()
	id2 := id1[:6] + ctrtest.NewID()[6:]
	created, stopped := ctrtest.NewID(), ctrtest.NewID()
	c.RunPlain(t, id1, "")
	c.RunPlain(t, id2, "")
	c.CreatePlain(t, created, "")
	c.RunPlain(t, stopped, "")
	c.KillPlain(t, stopped)
	missing := filepath.Join(t.TempDir(), "containerd.sock")
	for _, tc := range []struct {
		args []string
		code int
		want []string
	}{
		{[]string{"ns", "id", "containerd:"}, 2, []string{`"containerd:"`}},
		{[]string{"ns", "id", "containerd:a/b/c"}, 2, []string{`"containerd:a/b/c"`, "containerd:NAMESPACE/ID"}},
		{[]string{"capture", "containerd:/x"}, 2, []string{`"containerd:/x"`}},
		{[]string{"ns", "id", "containerd:" + id1[:6]}, 1, []string{"containerd:default/" + id1[:12], "containerd:default/" + id2[:12], "give more of the ID"}},
		{[]string{"ns", "id", "containerd:" + id1[:6] + "zz"}, 1, []string{"no such container", "containerd:default/" + id1[:6] + "zz"}},
		{[]string{"sockets", "containerd:" + created[:12]}, 1, []string{"not running", "is created"}},
		{[]string{"capture", "containerd:" + stopped[:12]}, 1, []string{"not running", "is exited"}},
		{[]string{"--runtime-endpoint", missing, "ns", "id", "containerd:" + id1[:12]}, 1, []string{missing, "no such socket", "containerd"}},
	} {
		args := tc.args
		if args[0] != "--runtime-endpoint" {
			args = append(append([]string{}, ep...), args...)
		}
		res := netobs(t, args...)
		if res.code != tc.code || res.stdout != "" || strings.Count(res.stderr, "\n") != 1 {
			t.Fatalf("netobs %s: %+v, want exit %d and one line on stderr", args, res, tc.code)
		}
		for _, w := range tc.want {
			if !strings.Contains(res.stderr, w) {
				t.Fatalf("netobs %s: %q does not say %q", args, res.stderr, w)
			}
		}
	}
	// Without flags, the usual sockets under the host root, each named.
	root := t.TempDir()
	res := netobs(t, "--host-root", root, "ns", "id", "containerd:"+id1[:12])
	if res.code != 1 || strings.Count(res.stderr, "\n") != 1 {
		t.Fatalf("no containerd under %s: %+v, want exit 1 and one line", root, res)
	}
	for _, s := range []string{"/run/containerd/containerd.sock", "/run/k3s/containerd/containerd.sock", "/run/k0s/containerd.sock", "/var/snap/microk8s/common/run/containerd.sock"} {
		if !strings.Contains(res.stderr, filepath.Join(root, s)) {
			t.Fatalf("no containerd under %s: %q does not name %s", root, res.stderr, filepath.Join(root, s))
		}
	}
}
