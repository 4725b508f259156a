package test

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netobs/netobs/internal/ctrtest"
	"github.com/netobs/netobs/internal/nstest"
)

// runtimeCase is one runtime of TestRuntimeMatrix: one running container
// (or pod) shared by every subtest, the references that name it, and what
// a restart of it does.
type runtimeCase struct {
	// runtime is the "runtime" field of netobs's JSON for it.
	runtime string
	// flags go before the command (--runtime-endpoint of the test's own
	// containerd).
	flags []string
	// refs name the container: by name (first), by ID prefix, and any
	// other form the runtime has (pod:NS/NAME, cri:ID).
	refs []string
	// label is how outputs name it (eth0@LABEL, "net:[N] LABEL").
	label string
	// selector matches its labels only.
	selector string
	// pid is a process in its network namespace; gw an address that
	// answers pings from it on eth0.
	pid int
	gw  string
	// stopped names a container of the runtime that is not running.
	stopped string
	// restart restarts the container (or replaces the pod's container)
	// and returns a process of its namespace afterwards; keepsNS says the
	// namespace survives it (a pod's), so a capture goes on.
	restart func(t *testing.T) int
	keepsNS bool
}

// listenCmd serves one line on TCP port 7777 for as many connections as
// come, so forward can be tried while the container stays up.
var listenCmd = []string{"/bin/sh", "-c", "ip link set lo up 2>/dev/null; while true; do echo hello-from-container | nc -l -p 7777; done"}

// TestRuntimeMatrix runs, for each runtime (Docker, podman through its API
// service, containerd's own API with a plain container in namespace
// default, a CRI pod), everything the containers issue asks of every
// runtime against one container: resolve by name, by ID prefix (and pod
// name) and by selector; ns id, sockets, forward, capture, attach and
// events against it; a stopped container and a runtime whose daemon does
// not answer fail with one line, exit 1; and a restart mid-capture does
// what docs/CONTAINERS.md says it does for that runtime. Each is checked
// against the kernel (the namespace nsenter enters) or a real peer
// (tshark reads the capture, a TCP client reads the forward).
func TestRuntimeMatrix(t *testing.T) {
	nstest.RequireTools(t, "nsenter", "ip", "ping", "tshark")
	dir := t.TempDir()
	dead := filepath.Join(dir, "dead.sock")
	l, err := net.Listen("unix", dead)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()

	for i, setup := range []struct {
		name string
		mk   func(t *testing.T) runtimeCase
	}{
		{"docker", func(t *testing.T) runtimeCase { return cliRuntimeCase(t, ctrtest.Docker(t), nil) }},
		// podman drops NET_ADMIN; lo is up anyway.
		{"podman", func(t *testing.T) runtimeCase { return cliRuntimeCase(t, ctrtest.Podman(t), nil) }},
		{"containerd", containerdRuntimeCase},
		{"cri", criRuntimeCase},
	} {
		t.Run(setup.name, func(t *testing.T) {
			rc := setup.mk(t)
			runRuntimeCase(t, rc, i, dead)
		})
	}
}

// cliRuntimeCase is a Docker or podman container, through its API.
func cliRuntimeCase(t *testing.T, r *ctrtest.Runtime, opts []string) runtimeCase {
	app := nstest.UniqueName("app")
	name := r.Run(t, append([]string{"--label", "app=" + app}, opts...), listenCmd...)
	id := r.Inspect(t, name, "{{.Id}}")
	pid, err := strconv.Atoi(r.Inspect(t, name, "{{.State.Pid}}"))
	if err != nil {
		t.Fatal(err)
	}
	return runtimeCase{
		runtime:  r.Name,
		refs:     []string{r.Name + ":" + name, r.Name + ":" + id[:10], "container:" + id[:12]},
		label:    r.Name + ":" + name,
		selector: "app=" + app,
		pid:      pid,
		gw:       r.Inspect(t, name, "{{.NetworkSettings.Gateway}}"),
		stopped:  r.Name + ":" + r.Create(t, nil),
		restart: func(t *testing.T) int {
			r.Cmd(t, "restart", "-t", "0", name)
			pid, err := strconv.Atoi(r.Inspect(t, name, "{{.State.Pid}}"))
			if err != nil {
				t.Fatal(err)
			}
			return pid
		},
	}
}

// containerdRuntimeCase is a plain containerd container (namespace
// default, as nerdctl makes one) with a veth named eth0 from a namespace
// of the test's own, whose address answers its pings.
func containerdRuntimeCase(t *testing.T) runtimeCase {
	c := ctrtest.Containerd(t)
	id, name, app := ctrtest.NewID(), nstest.UniqueName("web"), nstest.UniqueName("app")
	c.RunPlainLabelled(t, id, name, map[string]string{"app": app}, listenCmd...)
	pid := c.PlainPID(t, id)
	_, hostAddr, _ := vethIntoContainer(t, pid, (os.Getpid()+1)%250)
	stopped, stoppedName := ctrtest.NewID(), nstest.UniqueName("web")
	c.CreatePlain(t, stopped, stoppedName)
	return runtimeCase{
		runtime:  "containerd",
		flags:    []string{"--runtime-endpoint", c.Socket},
		refs:     []string{"containerd:" + name, "containerd:default/" + id[:10], "container:" + id[:12]},
		label:    "containerd:default/" + id[:12],
		selector: "app=" + app,
		pid:      pid,
		gw:       hostAddr,
		stopped:  "containerd:" + stoppedName,
		restart:  func(t *testing.T) int { return c.RestartPlain(t, id) },
	}
}

// criRuntimeCase is a pod made through the CRI as the kubelet makes one,
// with one container; a restart replaces the container, as the kubelet
// restarts one, in the pod's namespace.
func criRuntimeCase(t *testing.T) runtimeCase {
	c := ctrtest.Containerd(t)
	ns, name, app := nstest.UniqueName("ns"), nstest.UniqueName("web"), nstest.UniqueName("app")
	pod := c.RunPod(t, ns, name, map[string]string{"app": app}, false)
	ctr := c.RunContainer(t, pod, "main", listenCmd...)
	stopped := c.RunPod(t, ns, nstest.UniqueName("web"), nil, false)
	c.StopPod(t, stopped)
	return runtimeCase{
		runtime:  "cri",
		flags:    []string{"--runtime-endpoint", c.Socket},
		refs:     []string{"pod:" + ns + "/" + name, "pod:" + name, "cri:" + ctr[:10], "cri:" + pod.ID[:10], "container:" + pod.ID[:12]},
		label:    "pod:" + ns + "/" + name,
		selector: "app=" + app,
		pid:      c.PID(t, ctr),
		gw:       c.Gateway,
		stopped:  "pod:" + ns + "/" + stopped.Name,
		restart: func(t *testing.T) int {
			c.RemoveContainer(t, ctr)
			return c.PID(t, c.RunContainer(t, pod, "main"))
		},
		keepsNS: true,
	}
}

// pingFrom sends count pings to addr from the network namespace of pid.
func pingFrom(t *testing.T, pid int, addr string, count int) {
	t.Helper()
	nstest.Run(t, "nsenter", "-t", strconv.Itoa(pid), "-n", "ping", "-c", strconv.Itoa(count), "-i", "0.2", "-W", "5", addr)
}

func runRuntimeCase(t *testing.T, rc runtimeCase, i int, dead string) {
	nsOf := func(pid int) string {
		t.Helper()
		return strings.TrimSpace(nstest.Run(t, "nsenter", "-t", strconv.Itoa(pid), "-n", "readlink", "/proc/self/ns/net"))
	}
	want := nsOf(rc.pid)
	run := func(args ...string) result { t.Helper(); return netobs(t, append(rc.flags, args...)...) }
	must := func(args ...string) string { t.Helper(); return mustNetobs(t, append(rc.flags, args...)...) }
	start := func(args ...string) *bgNetobs { t.Helper(); return startNetobs(t, append(rc.flags, args...)...) }
	ref := rc.refs[0]

	t.Run("resolve", func(t *testing.T) {
		for _, r := range rc.refs {
			if res := run("ns", "id", r); res.code != 0 || !strings.HasPrefix(res.stdout, r+" "+want) {
				t.Errorf("ns id %s: %+v, want %s (nsenter's)", r, res, want)
			}
		}
		if out := must("ns", "exec", "--net", ref, "readlink", "/proc/self/ns/net"); strings.TrimSpace(out) != want {
			t.Errorf("ns exec --net %s: in %q, want %s", ref, out, want)
		}
		// Shell completion offers it by the name outputs use.
		if out := must("__complete", "ns", "id", ""); !strings.Contains("\n"+out, "\n"+rc.label+"\n") {
			t.Errorf("completion of ns id does not offer %s: %q", rc.label, out)
		}
	})

	t.Run("sockets", func(t *testing.T) {
		for _, args := range [][]string{{"sockets", ref, "-tl"}, {"sockets", "--selector", rc.selector, "-tl"}} {
			for n := 0; ; n++ {
				out := must(args...)
				if strings.Contains(out, ":7777 ") {
					if first := strings.SplitN(out, "\n", 2)[0]; first != want+" "+rc.label {
						t.Fatalf("%s: first line %q, want %q", args, first, want+" "+rc.label)
					}
					break
				}
				if n == 500 {
					t.Fatalf("%s never showed the listener on 7777:\n%s", args, out)
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
	})

	t.Run("forward", func(t *testing.T) {
		_, addr := startForward(t, append(rc.flags, ref, "0", "7777")...)
		for n := 0; ; n++ {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			c.SetDeadline(time.Now().Add(time.Minute))
			got, _ := io.ReadAll(c)
			c.Close()
			if string(got) == "hello-from-container\n" {
				break
			}
			// Between two nc's of the loop nothing listens for a moment.
			if n == 100 {
				t.Fatalf("forward to %s:7777 read %q", ref, got)
			}
			time.Sleep(20 * time.Millisecond)
		}
	})

	t.Run("capture", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "ctr.pcapng")
		p := start("capture", ref, "-i", "eth0", "-c", "3", "-w", file, "--", "icmp[icmptype] = icmp-echo")
		p.waitStderr(t, "capturing on")
		pingFrom(t, rc.pid, rc.gw, 3)
		if code := p.wait(t); code != 0 {
			t.Fatalf("capture %s -c 3: exit %d: %s", ref, code, p.stderr.String())
		}
		out := nstest.Run(t, "tshark", "-r", file, "-T", "fields", "-e", "frame.interface_name", "-e", "icmp.type")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		for _, line := range lines {
			if line != "eth0@"+rc.label+"\t8" {
				t.Fatalf("tshark line %q: want an echo request on eth0@%s", line, rc.label)
			}
		}
		if len(lines) != 3 {
			t.Fatalf("tshark read %d packets, want 3: %q", len(lines), out)
		}
	})

	t.Run("attach", func(t *testing.T) {
		dev := nstest.UniqueName("tap")
		sub := fmt.Sprintf("10.84.%d", i)
		at := start("attach", ref, "--tap", "--name", dev, "--addr", sub+".1/24", "--json")
		at.waitStderr(t, "netobs: attached")
		// No one has .2: the container's ARP requests for it leave by
		// the device netobs reads.
		exec.Command("nsenter", "-t", strconv.Itoa(rc.pid), "-n", "ping", "-c", "2", "-W", "1", sub+".2").Run()
		frame := at.waitStdout(t, "the ARP for "+sub+".2", func(l string) bool {
			return strings.Contains(l, `"`+sub+`.2"`) || strings.Contains(l, sub+".2 ")
		})
		if code := at.stop(t, syscall.SIGINT); code != 0 {
			t.Fatalf("attach exited %d: %s", code, at.stderr.String())
		}
		var fr frameLine
		if err := json.Unmarshal([]byte(frame), &fr); err != nil || fr.Interface != dev || fr.Runtime != rc.runtime || fr.ContainerID == "" {
			t.Fatalf("attach frame %s (%v): want it from %s labelled with runtime %s and an ID", frame, err, dev, rc.runtime)
		}
	})

	t.Run("events", func(t *testing.T) {
		addr := fmt.Sprintf("10.83.%d.1/32", i)
		ev := start("events", ref, "--kinds", "addr", "-c", "1", "--json")
		ev.waitStderr(t, "watching 1 namespaces")
		nstest.Run(t, "nsenter", "-t", strconv.Itoa(rc.pid), "-n", "ip", "addr", "add", addr, "dev", "lo")
		if code := ev.wait(t); code != 0 {
			t.Fatalf("events %s: exit %d: %s", ref, code, ev.stderr.String())
		}
		var e evLine
		if err := json.Unmarshal(ev.stdout.Bytes(), &e); err != nil || "net:["+strconv.FormatUint(e.NS.Inode, 10)+"]" != want ||
			e.NS.Label != rc.label || e.NS.Runtime != rc.runtime || e.Action != "add" || !strings.Contains(e.Text, addr) {
			t.Fatalf("events %s: %s (%v); want the add of %s in %s labelled %s", ref, ev.stdout.String(), err, addr, want, rc.label)
		}
	})

	oneLine := func(t *testing.T, res result, args []string, wants ...string) {
		t.Helper()
		if res.code != 1 || res.stdout != "" || strings.Count(res.stderr, "\n") != 1 || !strings.HasPrefix(res.stderr, "netobs: ") {
			t.Fatalf("netobs %s: %+v; want exit 1 and one line", args, res)
		}
		for _, w := range wants {
			if !strings.Contains(res.stderr, w) {
				t.Errorf("netobs %s: %q lacks %q", args, res.stderr, w)
			}
		}
	}

	t.Run("stopped", func(t *testing.T) {
		for _, args := range [][]string{{"ns", "id", rc.stopped}, {"capture", rc.stopped, "-c", "1"}} {
			oneLine(t, run(args...), args, rc.stopped, "not running")
		}
	})

	t.Run("daemon-not-running", func(t *testing.T) {
		for _, args := range [][]string{{"--runtime-endpoint", dead, "ns", "id", ref}, {"--runtime-endpoint", dead, "sockets", "--selector", rc.selector}} {
			oneLine(t, netobs(t, args...), args, dead, "connection refused (daemon not running)", "start it or give --runtime-endpoint")
		}
	})

	// Last: it changes the container.
	t.Run("restart-mid-capture", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "restart.pcapng")
		p := start("capture", ref, "-i", "eth0", "-w", file, "--", "icmp[icmptype] = icmp-echo")
		p.waitStderr(t, "capturing on")
		pingFrom(t, rc.pid, rc.gw, 2)
		pid := rc.restart(t)
		after := nsOf(pid)
		wantPackets := 2
		if rc.keepsNS {
			// The pod's namespace and the capture in it go on, and see
			// the new container's traffic too.
			if after != want {
				t.Fatalf("the pod's namespace changed across a container restart: %s, then %s", want, after)
			}
			pingFrom(t, pid, rc.gw, 2)
			wantPackets = 4
			for n := 0; ; n++ {
				if out := nstest.Run(t, "tshark", "-r", file, "-T", "fields", "-e", "icmp.type"); len(strings.Fields(out)) == 4 {
					break
				}
				if n == 500 {
					t.Fatalf("the capture never held 4 echo requests: %s", p.stderr.String())
				}
				time.Sleep(10 * time.Millisecond)
			}
			if code := p.stop(t, syscall.SIGINT); code != 0 {
				t.Fatalf("capture across a container restart in the pod: exit %d: %s", code, p.stderr.String())
			}
		} else {
			// A new namespace: the capture's part ends with one line
			// saying so and how to go on; it was the only part, so exit 1.
			// (The new namespace may have the old one's inode number: the
			// kernel reuses them once the old is freed.)
			p.waitStderr(t, rc.runtime+` container \S+ was stopped or restarted; .* capture `+regexp.QuoteMeta(rc.label)+` again`)
			if code := p.wait(t); code != 1 {
				t.Fatalf("capture across a restart: exit %d, want 1: %s", code, p.stderr.String())
			}
			if n := strings.Count(p.stderr.String(), "was stopped or restarted"); n != 1 {
				t.Fatalf("the restart reported %d times: %s", n, p.stderr.String())
			}
		}
		if out := nstest.Run(t, "tshark", "-r", file, "-T", "fields", "-e", "icmp.type"); len(strings.Fields(out)) != wantPackets {
			t.Fatalf("tshark read %q, want %d echo requests", out, wantPackets)
		}
		// The reference now names the namespace the container is in.
		if got := must("ns", "id", ref); !strings.HasPrefix(got, ref+" "+after) {
			t.Fatalf("ns id %s after the restart: %q, want %s", ref, got, after)
		}
	})
}
