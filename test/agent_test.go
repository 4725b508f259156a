package test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
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

// node stands for a cluster node: a network namespace with an agent in
// it (listening on a unix socket and on 127.0.0.1 of that namespace) and
// a "pod" namespace joined to it by a veth pair.
type node struct {
	name, ns, pod string
	sock          string
	port          int
	agent         *exec.Cmd
	stderr        *bytes.Buffer
	podAddr       string // the node's end of the veth, which the pod pings
}

// freePort picks a TCP port number for an agent inside a fresh namespace,
// where nothing else listens.
var nextPort = 17000 + os.Getpid()%5000

func startNode(t *testing.T, name, dir string, i int, extra ...string) *node {
	t.Helper()
	n := &node{name: name, ns: nstest.NetNS(t), pod: nstest.NetNS(t), sock: filepath.Join(dir, name+".sock")}
	nextPort++
	n.port = nextPort
	n.podAddr = fmt.Sprintf("10.77.%d.1", i)
	nstest.Veth(t, n.ns, n.podAddr+"/24", n.pod, fmt.Sprintf("10.77.%d.2/24", i))
	args := append([]string{"netns", "exec", n.ns, netobsBin, "agent", "--socket", n.sock, "--listen", fmt.Sprintf("127.0.0.1:%d", n.port)}, extra...)
	n.agent = exec.Command("ip", args...)
	n.stderr = &bytes.Buffer{}
	n.agent.Stderr = n.stderr
	if err := n.agent.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if n.agent.ProcessState == nil {
			n.stop(t)
		}
	})
	waitFor(t, "agent "+name+" socket", func() bool {
		c, err := net.Dial("unix", n.sock)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return n
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for i := 0; i < 300; i++ {
		if ok() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: not there after 15s", what)
}

// stop sends the agent SIGTERM and waits for it to exit, killing it if it
// has not within 10s (which fails the test): a hung agent must not hang
// the tests.
func (n *node) stop(t *testing.T) error {
	n.agent.Process.Signal(syscall.SIGTERM)
	exited := make(chan error, 1)
	go func() { exited <- n.agent.Wait() }()
	select {
	case err := <-exited:
		return err
	case <-time.After(10 * time.Second):
		n.agent.Process.Kill()
		<-exited
		t.Errorf("agent %s did not exit within 10s of SIGTERM", n.name)
		return errors.New("killed")
	}
}

// ping sends count pings from the node's pod to the node.
func (n *node) ping(t *testing.T, count int) {
	t.Helper()
	nstest.Run(t, "ip", "netns", "exec", n.pod, "ping", "-q", "-c", strconv.Itoa(count), "-i", "0.01", n.podAddr)
}

// tsharkFields reads a capture with tshark: interface name and epoch
// time of every packet.
func tsharkFields(t *testing.T, file string) (names []string, times []float64) {
	t.Helper()
	out := nstest.Run(t, "tshark", "-r", file, "-T", "fields", "-e", "frame.interface_name", "-e", "frame.time_epoch")
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Split(sc.Text(), "\t")
		if len(f) != 2 {
			continue
		}
		ts, err := strconv.ParseFloat(f[1], 64)
		if err != nil {
			t.Fatalf("tshark time %q: %v", f[1], err)
		}
		names, times = append(names, f[0]), append(times, ts)
	}
	return names, times
}

// tsharkPerInterface counts the packets of a capture per interface, as
// tshark reads it (which fails the test if it cannot).
func tsharkPerInterface(t *testing.T, file string) map[string]int {
	t.Helper()
	names, _ := tsharkFields(t, file)
	return countNames(names)
}

// mergedPerInterface is tsharkPerInterface of a capture merged from
// several sources, which must also keep the packets in time order.
func mergedPerInterface(t *testing.T, file string) map[string]int {
	t.Helper()
	names, times := tsharkFields(t, file)
	for i := 1; i < len(times); i++ {
		if times[i] < times[i-1] {
			t.Errorf("packet %d at %f is earlier than packet %d at %f", i+1, times[i], i, times[i-1])
		}
	}
	return countNames(names)
}

func countNames(names []string) map[string]int {
	n := map[string]int{}
	for _, name := range names {
		n[name]++
	}
	return n
}

var agentCountsRe = regexp.MustCompile(`(?m)^agent (\S+): (\d+) captured, (\d+) received by filter, (\d+) dropped by kernel, (\d+) dropped by agent; (.*)$`)

// TestAgentThreeNodesMerged: three agents, each in its own namespace
// standing for a node (two reached over their unix sockets, one over TCP
// through a forward into its namespace), captured into one pcapng that
// tshark reads: interfaces named per node and namespace, timestamps in
// order, each node's count what tshark counts on its interfaces.
func TestAgentThreeNodesMerged(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.RequireTools(t, "ip", "tshark", "ping")
	dir := t.TempDir()
	nodes := []*node{startNode(t, "node-a", dir, 1), startNode(t, "node-b", dir, 2), startNode(t, "node-c", dir, 3)}
	// node-c over TCP: a forward from the host into its namespace.
	nextPort++
	fwdPort := nextPort
	fwd := exec.Command(netobsBin, "forward", nodes[2].ns, fmt.Sprintf("127.0.0.1:%d", fwdPort), fmt.Sprintf("127.0.0.1:%d", nodes[2].port))
	if err := fwd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fwd.Process.Signal(syscall.SIGTERM); fwd.Wait() })
	waitFor(t, "forward", func() bool {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", fwdPort))
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	file := filepath.Join(dir, "merged.pcapng")
	// "self" is resolved on each agent: its own node namespace, which
	// sees its pod's pings on the veth.
	p := startCapture(t, "capture", "--agent", "node-a="+nodes[0].sock, "--agent", "node-b="+nodes[1].sock,
		"--agent", fmt.Sprintf("node-c=127.0.0.1:%d", fwdPort), "self", "-w", file, "--", "icmp")
	for i, n := range nodes {
		n.ping(t, 20+10*i)
	}
	time.Sleep(500 * time.Millisecond) // the merge runs behind the traffic
	if code := p.stop(t); code != 0 {
		t.Fatalf("capture exit %d: %s", code, p.stderr)
	}
	perIfc := mergedPerInterface(t, file)
	m := agentCountsRe.FindAllStringSubmatch(p.stderr.String(), -1)
	if len(m) != 3 {
		t.Fatalf("want 3 per-agent count lines, stderr:\n%s", p.stderr)
	}
	for i, n := range nodes {
		want := "any@" + n.ns + "@" + n.name
		if got := perIfc[want]; got != 2*(20+10*i) {
			t.Errorf("tshark counts %d packets on %s, want %d (echo requests and replies); all: %v", got, want, 2*(20+10*i), perIfc)
		}
		if m[i][1] != n.name {
			t.Fatalf("count line %d names %s, want %s", i, m[i][1], n.name)
		}
		if c, _ := strconv.Atoi(m[i][2]); c != perIfc[want] {
			t.Errorf("%s: stderr says %d captured, tshark counts %d", n.name, c, perIfc[want])
		}
		if m[i][6] != "to the end" {
			t.Errorf("%s: %s", n.name, m[i][6])
		}
		// The agent's final counts reached the client: with nothing
		// dropped it received what was captured.
		if m[i][3] != m[i][2] {
			t.Errorf("%s: %s captured, %s received by filter: the agent's final counts were lost", n.name, m[i][2], m[i][3])
		}
	}
	desc := nstest.Run(t, "tshark", "-r", file, "-T", "fields", "-e", "frame.interface_description", "-c", "1")
	if !strings.HasPrefix(desc, "node node-") {
		t.Errorf("interface description %q does not name the node", desc)
	}
}

// TestAgentKilledMidCapture: an agent SIGKILLed during a merged capture
// leaves the file valid; the client names that node, keeps capturing from
// the other, and exits 1.
func TestAgentKilledMidCapture(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.RequireTools(t, "ip", "tshark", "ping")
	dir := t.TempDir()
	a, b := startNode(t, "node-a", dir, 4), startNode(t, "node-b", dir, 5)
	file := filepath.Join(dir, "merged.pcapng")
	p := startCapture(t, "capture", "--agent", "node-a="+a.sock, "--agent", "node-b="+b.sock, "self", "-w", file, "--", "icmp")
	stderr := p.stderr
	a.ping(t, 5)
	b.ping(t, 5)
	time.Sleep(500 * time.Millisecond)
	b.agent.Process.Kill()
	waitFor(t, "client noticing node-b", func() bool { return strings.Contains(stderr.String(), "node-b:") })
	a.ping(t, 10)
	time.Sleep(500 * time.Millisecond)
	if code := p.stop(t); code != 1 {
		t.Fatalf("capture exit %d, want 1: %s", code, stderr)
	}
	if !strings.Contains(stderr.String(), "agent node-b:") || !strings.Contains(stderr.String(), "failed") {
		t.Errorf("stderr does not say node-b failed:\n%s", stderr)
	}
	perIfc := tsharkPerInterface(t, file)
	if got := perIfc["any@"+a.ns+"@node-a"]; got != 30 {
		t.Errorf("node-a: %d packets, want 30 (before and after node-b died): %v", got, perIfc)
	}
	if got := perIfc["any@"+b.ns+"@node-b"]; got != 10 {
		t.Errorf("node-b: %d packets, want the 10 sent before it died: %v", got, perIfc)
	}
}

// procCounts returns the agent's open fds, AF_PACKET sockets and threads.
func procCounts(t *testing.T, pid int) (fds, packet, threads int) {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	inodes := map[string]bool{}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/packet", pid)); err == nil {
		for _, l := range strings.Split(string(b), "\n")[1:] {
			if f := strings.Fields(l); len(f) >= 9 {
				inodes[f[8]] = true
			}
		}
	}
	for _, e := range ents {
		l, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, e.Name()))
		if ino, ok := strings.CutPrefix(l, "socket:["); ok && inodes[strings.TrimSuffix(ino, "]")] {
			packet++
		}
	}
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		t.Fatal(err)
	}
	return len(ents), packet, len(tasks)
}

// agentPID is the netobs agent's PID: ip netns exec execs it.
func (n *node) agentPID() int { return n.agent.Process.Pid }

// TestAgentClientGoneFreesEverything: clients that vanish mid-capture
// (SIGKILL) leave nothing in the agent: its fds, packet sockets and
// threads come back to what they were before.
func TestAgentClientGoneFreesEverything(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.RequireTools(t, "ip")
	dir := t.TempDir()
	n := startNode(t, "node-a", dir, 6)
	pid := n.agentPID()
	var fds0, pk0, th0 int
	const clients = 7 // the first is the warm-up
	for i := 0; i < clients; i++ {
		p := startCapture(t, "capture", "--agent", n.sock, n.pod, "self", "-w", filepath.Join(dir, "x.pcapng"))
		// /proc/PID/net/packet lists the sockets of the agent's own
		// namespace only: the one of "self"; the pod's shows in the fds.
		fds, pk, _ := procCounts(t, pid)
		if pk < 1 || fds < fds0+3 {
			t.Fatalf("agent holds %d fds (%d packet sockets in its namespace) during a 2-namespace capture, %d before", fds, pk, fds0)
		}
		p.cmd.Process.Kill()
		<-p.done
		if i == 0 {
			// The first capture warms up what the agent opens once per
			// process (nsjoin's handles of its own namespaces, its idle
			// locked threads): the baseline is taken after it.
			waitFor(t, "first client gone", func() bool { _, pk, _ := procCounts(t, pid); return pk == 0 })
			time.Sleep(200 * time.Millisecond)
			fds0, pk0, th0 = procCounts(t, pid)
		}
	}
	var fds, pk, th int
	for i := 0; i < 200; i++ {
		if fds, pk, th = procCounts(t, pid); fds <= fds0 && pk == pk0 && th < th0+clients-1 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if fds > fds0 || pk != pk0 {
		t.Errorf("after the clients went: %d fds (%d packet sockets), before: %d (%d)", fds, pk, fds0, pk0)
	}
	// The Go runtime keeps the threads it made meanwhile (a few on a busy
	// machine); a thread kept per client would show as one more per
	// client after the warm-up.
	if th >= th0+clients-1 {
		t.Errorf("after the clients went: %d threads, before: %d", th, th0)
	}
	// SIGTERM stops the agent cleanly: exit 0, its socket removed.
	if err := n.stop(t); err != nil {
		t.Errorf("agent after SIGTERM: %v; stderr:\n%s", err, n.stderr)
	}
	if _, err := os.Lstat(n.sock); !os.IsNotExist(err) {
		t.Errorf("socket %s left behind: %v", n.sock, err)
	}
}

// TestAgentRefusals: a non-loopback --listen is a usage error (exit 2);
// one stream beyond --max-streams is refused and says so (exit 1), and
// the agent then serves again.
func TestAgentRefusals(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.RequireTools(t, "ip")
	dir := t.TempDir()
	r := netobs(t, "agent", "--socket", filepath.Join(dir, "x.sock"), "--listen", "0.0.0.0:7999")
	if r.code != 2 || !strings.Contains(r.stderr, "not a loopback address") {
		t.Errorf("non-loopback listen: exit %d, stderr %q", r.code, r.stderr)
	}
	r = netobs(t, "agent", "--socket", filepath.Join(dir, "x.sock"), "--listen", "0.0.0.0:7999", "--allow-remote")
	if r.code != 2 {
		t.Errorf("--allow-remote without a token: exit %d, stderr %q", r.code, r.stderr)
	}
	n := startNode(t, "node-a", dir, 7, "--max-streams", "1")
	first := startCapture(t, "capture", "--agent", n.sock, "self")
	r = netobs(t, "capture", "--agent", n.sock, "self", "-c", "1")
	if r.code != 1 || !strings.Contains(r.stderr, "streams already served") {
		t.Errorf("second stream: exit %d, stderr %q", r.code, r.stderr)
	}
	first.stop(t)
	// A stale socket file (the agent killed) is replaced by the next.
	n.agent.Process.Kill()
	n.agent.Wait()
	r2 := startCmd(t, exec.Command("ip", "netns", "exec", n.ns, netobsBin, "agent", "--socket", n.sock))
	defer r2.stop(t, syscall.SIGTERM)
	r2.waitStderr(t, "listening")
	if out := mustNetobs(t, "ns", "ls", "--agent", n.sock, "--type", "net"); !strings.Contains(out, n.pod) {
		t.Errorf("ns ls through the agent does not list %s:\n%s", n.pod, out)
	}
	st, err := os.Stat(n.sock)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("socket mode: %v %v", st.Mode(), err)
	}
}

// vmHWM is a process's peak resident set size in KiB.
func vmHWM(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`VmHWM:\s+(\d+) kB`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("no VmHWM in /proc/%d/status", pid)
	}
	v, _ := strconv.Atoi(string(m[1]))
	return v
}

var droppedByAgentRe = regexp.MustCompile(`(?m)^(\d+) packets? dropped by agent$`)
var capturedRe = regexp.MustCompile(`(?m)^(\d+) packets? captured$`)

// TestAgentSlowClient: a client that stops reading makes the agent drop
// packets and count them, while its memory stays bounded: its peak RSS
// stays far below the bytes that went past.
func TestAgentSlowClient(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.RequireTools(t, "ip", "ping", "tshark")
	dir := t.TempDir()
	n := startNode(t, "node-a", dir, 8, "--stream-buffer", "1M")
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	cmd := exec.Command(netobsBin, "capture", "--agent", n.sock, n.pod, "-i", "any", "-w", "-", "--", "icmp")
	cmd.Stdout = pw
	p := &proc{bgNetobs: startCmd(t, cmd), ready: "capturing on"}
	pw.Close()
	p.waitReady(t)
	stderr := p.stderr
	const pings, size = 40000, 1400 // about 110 MB of frames each way
	nstest.Run(t, "ip", "netns", "exec", n.pod, "ping", "-q", "-f", "-c", strconv.Itoa(pings), "-s", strconv.Itoa(size), n.podAddr)
	hwm := vmHWM(t, n.agentPID())
	// Now read, so the client can finish after SIGINT.
	file := filepath.Join(dir, "slow.pcapng")
	out, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	copied := make(chan error, 1)
	go func() { _, err := out.ReadFrom(pr); copied <- err }()
	if code := p.stop(t); code != 0 {
		t.Fatalf("capture exit %d: %s", code, stderr.String())
	}
	<-copied
	out.Close()
	m := droppedByAgentRe.FindStringSubmatch(stderr.String())
	c := capturedRe.FindStringSubmatch(stderr.String())
	if m == nil || c == nil {
		t.Fatalf("no counts on stderr:\n%s", stderr.String())
	}
	dropped, _ := strconv.Atoi(m[1])
	captured, _ := strconv.Atoi(c[1])
	if dropped == 0 {
		t.Errorf("a client that did not read lost nothing (stderr:\n%s)", stderr.String())
	}
	if captured+dropped > 2*pings || captured+dropped < 2*pings*9/10 {
		t.Errorf("%d captured + %d dropped by agent, for %d packets sent", captured, dropped, 2*pings)
	}
	names, _ := tsharkFields(t, file)
	if len(names) != captured {
		t.Errorf("tshark reads %d packets, stderr says %d captured", len(names), captured)
	}
	// The ring (4 MiB), the 1 MiB stream buffer, gRPC's windows and the
	// Go runtime: far below the ~110 MB that went past.
	if hwm > 60<<10 {
		t.Errorf("agent peak RSS %d KiB while a client did not read", hwm)
	}
	t.Logf("agent peak RSS %d KiB; %d captured, %d dropped by agent", hwm, captured, dropped)
}

// TestAgentContainerAndCommands: through an agent in a node namespace, a
// Docker container is captured by name (labelled as a local capture
// labels it), and ps, sockets, topo and events print what they print
// locally.
func TestAgentContainerAndCommands(t *testing.T) {
	r := ctrtest.Docker(t)
	nstest.RequireTools(t, "ip", "tshark")
	name := r.Run(t, nil)
	gw := r.Inspect(t, name, "{{.NetworkSettings.Gateway}}")
	id := r.Inspect(t, name, "{{.Id}}")
	dir := t.TempDir()
	n := startNode(t, "node-a", dir, 9)
	file := filepath.Join(dir, "ctr.pcapng")
	p := startCapture(t, "capture", "--agent", n.sock, "docker:"+name, "-i", "eth0", "-w", file, "icmp")
	r.Cmd(t, "exec", name, "ping", "-c", "3", "-W", "5", gw)
	time.Sleep(300 * time.Millisecond)
	if code := p.stop(t); code != 0 {
		t.Fatalf("capture exit %d: %s", code, p.stderr)
	}
	out := nstest.Run(t, "tshark", "-r", file, "-T", "fields", "-e", "frame.interface_name", "-e", "frame.interface_description")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 6 {
		t.Fatalf("tshark reads %d packets, want 3 echo requests and 3 replies:\n%s", len(lines), out)
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, "eth0@docker:"+name+"\t") || !strings.Contains(l, id[:12]) {
			t.Fatalf("tshark line %q: want interface eth0@docker:%s described with ID %s", l, name, id[:12])
		}
	}
	if !strings.Contains(p.stderr.String(), "6 packets captured") {
		t.Errorf("stderr:\n%s", p.stderr)
	}

	// ps: the container's JSON line is the same through the agent.
	line := func(out string) string {
		for _, l := range strings.Split(out, "\n") {
			if strings.Contains(l, `"container":"`+name+`"`) {
				return l
			}
		}
		return ""
	}
	local, remote := line(mustNetobs(t, "ps", "--json")), line(mustNetobs(t, "ps", "--json", "--agent", n.sock))
	if local == "" || local != remote {
		t.Errorf("ps --json here:\n%s\nthrough the agent:\n%s", local, remote)
	}
	// sockets: the same listing for a namespace of the agent's host.
	nstest.Run(t, "ip", "netns", "exec", n.pod, "sh", "-c", "exec socat TCP-LISTEN:7777,fork /dev/null >/dev/null 2>&1 & echo $! > "+filepath.Join(dir, "socat.pid"))
	t.Cleanup(func() {
		if b, err := os.ReadFile(filepath.Join(dir, "socat.pid")); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				syscall.Kill(pid, syscall.SIGTERM)
			}
		}
	})
	waitFor(t, "socat listening", func() bool {
		return strings.Contains(mustNetobs(t, "sockets", n.pod, "-tl"), ":7777")
	})
	if l, rm := mustNetobs(t, "sockets", n.pod, "-tl", "--json"), mustNetobs(t, "sockets", "--agent", n.sock, n.pod, "-tl", "--json"); l != rm {
		t.Errorf("sockets --json here:\n%s\nthrough the agent:\n%s", l, rm)
	}
	// topo: the agent's graph, drawn here as here.
	if l, rm := mustNetobs(t, "topo", n.ns, n.pod), mustNetobs(t, "topo", "--agent", n.sock, n.ns, n.pod); l != rm || !strings.Contains(l, n.pod) {
		t.Errorf("topo here:\n%s\nthrough the agent:\n%s", l, rm)
	}
	// A usage mistake on the agent is one here too.
	if res := netobs(t, "sockets", "--agent", n.sock, "docker:"); res.code != 2 {
		t.Errorf("sockets of a bad reference through the agent: exit %d, stderr %q", res.code, res.stderr)
	}
	// events: a change in the agent's host's namespace, printed here.
	ev := startNetobs(t, "events", "--agent", n.sock, n.pod, "--count", "1", "--kinds", "addr")
	ev.waitStderr(t, "watching 1 namespaces")
	nstest.Run(t, "ip", "-n", n.pod, "addr", "add", "10.99.0.1/32", "dev", "lo")
	if code := ev.wait(t); code != 0 {
		t.Fatalf("events exit %d: %s", code, ev.stderr.String())
	}
	if !strings.Contains(ev.stdout.String(), "[ADDR]") || !strings.Contains(ev.stdout.String(), "10.99.0.1") {
		t.Errorf("events through the agent printed %q", ev.stdout.String())
	}
}
