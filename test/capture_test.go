package test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netobs/netobs/internal/nstest"
	"github.com/netobs/netobs/internal/nstest/nsopen"
	"golang.org/x/sys/unix"
)

// captureNets makes two namespaces joined by a veth, with IPv6 off so that
// neighbour discovery does not add packets one capture sees and another,
// started a moment later, does not.
func captureNets(t *testing.T) (nsA, nsB, ifA, ifB string) {
	t.Helper()
	nstest.RequireTools(t, "tcpdump", "tshark", "ping")
	nsA, nsB = nstest.NetNS(t), nstest.NetNS(t)
	for _, ns := range []string{nsA, nsB} {
		nstest.Run(t, "ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
	}
	ifA, ifB = nstest.Veth(t, nsA, "10.93.0.1/24", nsB, "10.93.0.2/24")
	return
}

// proc is a capture process (netobs or tcpdump) running in the
// background: a bgNetobs that says on stderr when it captures.
type proc struct {
	*bgNetobs
	ready string // what stderr says once capturing
}

// startProc starts a capture and waits until its stderr says it is
// capturing (ready), so traffic sent afterwards is seen.
func startProc(t *testing.T, ready string, name string, args ...string) *proc {
	t.Helper()
	p := launch(t, ready, name, args...)
	p.waitReady(t)
	return p
}

// launch starts a capture without waiting for it to be ready.
func launch(t *testing.T, ready string, name string, args ...string) *proc {
	t.Helper()
	return &proc{bgNetobs: startCmd(t, exec.Command(name, args...)), ready: ready}
}

// waitReady waits until the capture's stderr says it is capturing.
func (p *proc) waitReady(t *testing.T) {
	t.Helper()
	p.waitStderr(t, regexp.QuoteMeta(p.ready))
}

// startCapture starts netobs capture and waits until it captures.
func startCapture(t *testing.T, args ...string) *proc {
	t.Helper()
	return startProc(t, "capturing on", netobsBin, args...)
}

// tcpdumpSettle is how long after the traffic tcpdump has handed over
// every packet: its block timeout and some.
const tcpdumpSettle = 1300 * time.Millisecond

func startTcpdump(t *testing.T, ns string, args ...string) *proc {
	t.Helper()
	// Not in immediate mode: libpcap 1.10's -i any then loses packets now
	// and then. tcpdump drops the block it is filling when interrupted,
	// so tests wait for its 1 s block timeout (tcpdumpSettle) first.
	return startProc(t, "listening on", "ip", append([]string{"netns", "exec", ns, "tcpdump", "-n", "-B", "1024"}, args...)...)
}

// stop interrupts the capture and waits for it (a hang guard only).
func (p *proc) stop(t *testing.T) int {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-p.done:
	case <-time.After(2 * time.Minute):
		t.Fatalf("%s did not stop on SIGINT: %s", p.cmd.Path, p.stderr)
	}
	return p.code
}

// captured reads "N packets captured" from the stats netobs or tcpdump
// printed on stderr.
func (p *proc) stat(t *testing.T, what string) int {
	t.Helper()
	for _, line := range strings.Split(p.stderr.String(), "\n") {
		if f := strings.Fields(line); len(f) >= 3 && strings.HasSuffix(line, what) {
			if n, err := strconv.Atoi(f[0]); err == nil {
				return n
			}
		}
	}
	t.Fatalf("no %q line in stderr: %s", what, p.stderr)
	return 0
}

// traffic sends a bounded mix between the namespaces: pings of two sizes,
// UDP to a few ports, a refused TCP connection (SYN and RST), ARP.
func traffic(t *testing.T, from, to, dst string) {
	t.Helper()
	nstest.Run(t, "ip", "netns", "exec", from, "ip", "neigh", "flush", "all")
	nstest.Run(t, "ip", "netns", "exec", from, "ping", "-q", "-c", "4", "-i", "0.01", "-W", "1", dst)
	nstest.Run(t, "ip", "netns", "exec", from, "ping", "-q", "-c", "3", "-i", "0.01", "-s", "1400", "-W", "1", dst)
	nstest.Run(t, "ip", "netns", "exec", to, "ping", "-q", "-c", "2", "-i", "0.01", "-W", "1", strings.TrimSuffix(dst, "2")+"1")
	script := fmt.Sprintf(`for p in 5000 5001 5002 53; do echo netobs-$p > /dev/udp/%s/$p; done; (echo > /dev/tcp/%s/80) 2>/dev/null; true`, dst, dst)
	nstest.Run(t, "ip", "netns", "exec", from, "bash", "-c", script)
	time.Sleep(100 * time.Millisecond)
}

// vlanFrames sends, from namespace ns onto interface dev, count[vid]
// broadcast 802.1Q frames tagged with each VLAN ID vid, carrying the local
// experimental EtherType 0x88b5. The kernel has no VLAN devices here, so
// they are written with an AF_PACKET socket; the receiving end strips the
// tag into the packet's metadata before packet sockets see it.
func vlanFrames(t *testing.T, ns, dev string, count map[uint16]int) {
	t.Helper()
	h := nsopen.Open(t, ns)
	fd := -1
	if err := h.Do(func() error {
		var err error
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		return err
	}); err != nil {
		t.Fatalf("packet socket in %s: %v", ns, err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq(dev)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFINDEX, ifr); err != nil {
		t.Fatalf("index of %s: %v", dev, err)
	}
	to := &unix.SockaddrLinklayer{Ifindex: int(ifr.Uint32()), Halen: 6, Addr: [8]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}}
	for vid, n := range count {
		frame := []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 0x01, 0x81, 0x00, byte(vid >> 8), byte(vid), 0x88, 0xb5}
		frame = append(frame, bytes.Repeat([]byte("netobs-vlan"), 5)...)
		for i := 0; i < n; i++ {
			if err := unix.Sendto(fd, frame, 0, to); err != nil {
				t.Fatalf("send a VLAN %d frame on %s: %v", vid, dev, err)
			}
		}
	}
	time.Sleep(100 * time.Millisecond)
}

// samePackets compares two capture files packet for packet: count, wire
// length and bytes; and the count and bytes tshark reads from both.
func samePackets(t *testing.T, what, ours, theirs string) int {
	t.Helper()
	a, _, err := nstest.ReadPcap(ours)
	if err != nil {
		t.Fatalf("%s: netobs file: %v", what, err)
	}
	b, _, err := nstest.ReadPcap(theirs)
	if err != nil {
		t.Fatalf("%s: tcpdump file: %v", what, err)
	}
	if len(a) != len(b) {
		t.Fatalf("%s: netobs captured %d packets, tcpdump %d", what, len(a), len(b))
	}
	for i := range a {
		if a[i].Length != b[i].Length || !bytes.Equal(a[i].Data, b[i].Data) {
			t.Fatalf("%s: packet %d differs: netobs %d bytes (%d on wire) % x..., tcpdump %d (%d) % x...", what, i,
				len(a[i].Data), a[i].Length, head(a[i].Data), len(b[i].Data), b[i].Length, head(b[i].Data))
		}
	}
	ta, tb := tsharkSummary(t, ours), tsharkSummary(t, theirs)
	if ta != tb {
		t.Fatalf("%s: tshark reads netobs's file as %s, tcpdump's as %s", what, ta, tb)
	}
	return len(a)
}

func head(b []byte) []byte {
	if len(b) > 24 {
		return b[:24]
	}
	return b
}

// tsharkSummary is "N packets, M bytes" as tshark reads a file; tshark
// failing (a truncated file) fails the test.
func tsharkSummary(t *testing.T, file string) string {
	t.Helper()
	out, err := nstest.Output("tshark", "-r", file, "-T", "fields", "-e", "frame.len")
	if err != nil {
		t.Fatalf("tshark -r %s: %v", file, err)
	}
	n, sum := 0, 0
	for _, f := range strings.Fields(out) {
		v, _ := strconv.Atoi(f)
		n, sum = n+1, sum+v
	}
	return fmt.Sprintf("%d packets, %d bytes", n, sum)
}

// wantThreePings checks, with tshark, that a capture of a `ping -c 3`
// holds its 3 echo requests and 3 replies, each on an interface whose name
// and description ok accepts (what says which, in a failure).
func wantThreePings(t *testing.T, file, what string, ok func(name, desc string) bool) {
	t.Helper()
	out := nstest.Run(t, "tshark", "-r", file, "-T", "fields", "-e", "frame.interface_name", "-e", "frame.interface_description", "-e", "icmp.type")
	types := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Split(line, "\t")
		if len(f) != 3 || !ok(f[0], f[1]) {
			t.Fatalf("tshark line %q: want interface %s", line, what)
		}
		types[f[2]]++
	}
	if types["8"] != 3 || types["0"] != 3 || len(types) != 2 {
		t.Fatalf("ICMP types %v, want 3 echo requests (8) and 3 replies (0)", types)
	}
}

// netobs capture and tcpdump in the same namespace agree packet for packet,
// for a specific interface (pcap and pcapng) and for -i any.
func TestCaptureAgreesWithTcpdump(t *testing.T) {
	nsA, nsB, _, ifB := captureNets(t)
	dir := t.TempDir()
	f := func(n string) string { return filepath.Join(dir, n) }
	td := startTcpdump(t, nsB, "-i", ifB, "-w", f("td.pcap"))
	tdAny := startTcpdump(t, nsB, "-i", "any", "-y", "LINUX_SLL", "-w", f("td-any.pcap"))
	no := startCapture(t, "capture", nsB, "-i", ifB, "-w", f("no.pcapng"))
	noPcap := startCapture(t, "capture", nsB, "-i", ifB, "-w", f("no.pcap"), "--format", "pcap")
	noAny := startCapture(t, "capture", nsB, "-w", f("no-any.pcapng"))
	traffic(t, nsA, nsB, "10.93.0.2")
	time.Sleep(tcpdumpSettle)
	for _, p := range []*proc{td, tdAny, no, noPcap, noAny} {
		if code := p.stop(t); code != 0 {
			t.Fatalf("%s exited %d: %s", p.cmd.Args, code, p.stderr)
		}
	}
	n := samePackets(t, "-i "+ifB, f("no.pcapng"), f("td.pcap"))
	samePackets(t, "-i "+ifB+" --format pcap", f("no.pcap"), f("td.pcap"))
	if os.Getenv("KEEP") != "" {
		exec.Command("cp", f("no-any.pcapng"), f("td-any.pcap"), "/tmp/").Run()
	}
	samePackets(t, "-i any", f("no-any.pcapng"), f("td-any.pcap"))
	if n < 25 {
		t.Fatalf("only %d packets captured; the traffic sends more", n)
	}
	if got := no.stat(t, "captured"); got != n {
		t.Fatalf("netobs says %d packets captured, the file has %d", got, n)
	}
	if got := no.stat(t, "dropped by kernel"); got != 0 {
		t.Fatalf("netobs says %d packets dropped", got)
	}
	_, ifs, _ := nstest.ReadPcap(f("no.pcapng"))
	if len(ifs) != 1 || ifs[0].Name != ifB+"@"+nsB || !ifs[0].HasStats || ifs[0].UsrDeliv != uint64(n) {
		t.Fatalf("pcapng interface %+v, want %s@%s with statistics", ifs, ifB, nsB)
	}
}

// Filters select exactly what tcpdump's select, for a table of expressions,
// on an Ethernet interface and with -i any (cooked headers, where libpcap's
// offsets are translated for the kernel).
func TestCaptureFiltersMatchTcpdump(t *testing.T) {
	nsA, nsB, ifA, ifB := captureNets(t)
	dir := t.TempDir()
	type run struct {
		name   string
		iface  string
		filter string
		td, no *proc
	}
	var runs []*run
	// Every row but the last matches some of the traffic, so that a
	// filter that matches nothing on both sides cannot pass.
	for i, c := range []struct{ iface, filter string }{
		{ifB, "icmp"},
		{ifB, "udp port 5001"},
		{ifB, "udp and not port 53"},
		{ifB, "tcp[tcpflags] & tcp-syn != 0"},
		{ifB, "arp"},
		{ifB, "host 10.93.0.1 and greater 1000"},
		{ifB, "ip[8] = 64 and icmp[icmptype] = icmp-echoreply"},
		{ifB, "ether broadcast"},
		{ifB, "portrange 5000-5001 or port 80"},
		{ifB, "vlan"},
		{ifB, "vlan 100"},
		{ifB, "vlan 200 and ether proto 0x88b5"},
		{ifB, "not vlan and ether broadcast"},
		{"any", "icmp or udp port 5002"},
		{"any", "inbound and icmp"},
		{"any", "outbound"},
		{"any", "arp or tcp"},
		{ifB, "vlan 300"},
	} {
		r := &run{name: fmt.Sprintf("-i %s %q", c.iface, c.filter), iface: c.iface, filter: c.filter}
		tdFile, noFile := filepath.Join(dir, fmt.Sprintf("td%d.pcap", i)), filepath.Join(dir, fmt.Sprintf("no%d.pcapng", i))
		tdArgs := []string{"-i", c.iface, "-w", tdFile}
		if c.iface == "any" {
			tdArgs = append(tdArgs, "-y", "LINUX_SLL")
		}
		r.td = launch(t, "listening on", "ip", append([]string{"netns", "exec", nsB, "tcpdump", "-n", "-B", "1024"}, append(tdArgs, c.filter)...)...)
		r.no = launch(t, "capturing on", netobsBin, "capture", nsB, "-i", c.iface, "-B", "256", "-w", noFile, "--", c.filter)
		runs = append(runs, r)
	}
	for _, r := range runs {
		r.td.waitReady(t)
		r.no.waitReady(t)
	}
	traffic(t, nsA, nsB, "10.93.0.2")
	vlanFrames(t, nsA, ifA, map[uint16]int{100: 3, 200: 2})
	time.Sleep(tcpdumpSettle)
	for _, r := range runs {
		r.td.cmd.Process.Signal(syscall.SIGINT)
		r.no.cmd.Process.Signal(syscall.SIGINT)
	}
	for i, r := range runs {
		r.td.stop(t)
		if code := r.no.stop(t); code != 0 {
			t.Fatalf("%s: netobs exited %d: %s", r.name, code, r.no.stderr)
		}
		n := samePackets(t, r.name, filepath.Join(dir, fmt.Sprintf("no%d.pcapng", i)), filepath.Join(dir, fmt.Sprintf("td%d.pcap", i)))
		t.Logf("%s: %d packets in both", r.name, n)
		if n == 0 && i != len(runs)-1 {
			t.Errorf("%s: no packet in either capture; the traffic has some that match", r.name)
		}
	}
}

// Several namespaces (by name and by PID) into one pcapng: tshark shows one
// interface per namespace named like any@NAME or eth@INODE, with the
// namespace in the description, and timestamps in order.
func TestCaptureMultiNamespace(t *testing.T) {
	nsA, nsB, ifA, _ := captureNets(t)
	pid := nstest.Sleeper(t)
	inode := strings.TrimSuffix(strings.TrimPrefix(readlink(t, fmt.Sprintf("/proc/%d/ns/net", pid)), "net:["), "]")
	file := filepath.Join(t.TempDir(), "multi.pcapng")
	p := startCapture(t, "capture", nsA, nsB, strconv.Itoa(pid), "-w", file)
	traffic(t, nsA, nsB, "10.93.0.2")
	nstest.Run(t, "ip", "netns", "exec", nsA, "ip", "link", "set", ifA, "mtu", "1400")
	// Every thread of netobs is back in the host namespace: the sockets
	// were made inside the targets, the threads did not stay there.
	own := readlink(t, "/proc/self/ns/net")
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/ns/net", p.cmd.Process.Pid))
	if len(tasks) == 0 {
		t.Fatal("no threads of netobs found")
	}
	for _, task := range tasks {
		if l, err := os.Readlink(task); err == nil && l != own {
			t.Fatalf("netobs thread %s is in %s, not the host's %s", task, l, own)
		}
	}
	if code := p.stop(t); code != 0 {
		t.Fatalf("netobs exited %d: %s", code, p.stderr)
	}
	out := nstest.Run(t, "tshark", "-r", file, "-T", "fields", "-e", "frame.interface_name", "-e", "frame.interface_description", "-e", "frame.time_epoch")
	names := map[string]int{}
	last := ""
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Split(line, "\t")
		if len(f) != 3 {
			t.Fatalf("tshark line %q", line)
		}
		names[f[0]]++
		if !strings.Contains(f[1], "network namespace net:[") {
			t.Fatalf("interface %s description %q lacks the namespace", f[0], f[1])
		}
		if f[2] < last {
			t.Fatalf("timestamps out of order: %s after %s", f[2], last)
		}
		last = f[2]
	}
	if names["any@"+nsA] == 0 || names["any@"+nsB] == 0 || names["any@"+nsA] != names["any@"+nsB] {
		t.Fatalf("packets per interface %v, want the same non-zero count on any@%s and any@%s", names, nsA, nsB)
	}
	// The sleeper's namespace has no traffic; its interface block is there.
	_, ifs, err := nstest.ReadPcap(file)
	if err != nil {
		t.Fatal(err)
	}
	if len(ifs) != 3 || ifs[2].Name != "any@"+inode || !strings.Contains(ifs[2].Description, "pid "+strconv.Itoa(pid)) {
		t.Fatalf("interfaces %+v, want the third any@%s with pid %d", ifs, inode, pid)
	}
	for _, ifc := range ifs {
		if !ifc.HasStats {
			t.Fatalf("interface %s has no statistics block", ifc.Name)
		}
	}
}

func readlink(t *testing.T, path string) string {
	t.Helper()
	s, err := os.Readlink(path)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// A reader that cannot keep up (stdout is a pipe nobody reads) makes the
// kernel drop packets: netobs reports them on stderr and in the pcapng
// statistics, and the file still holds every packet it counts as captured.
func TestCaptureReportsDrops(t *testing.T) {
	nsA, nsB, _, ifB := captureNets(t)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	cmd := exec.Command(netobsBin, "capture", nsB, "-i", ifB, "-B", "64K", "-w", "-")
	cmd.Stdout = pw
	p := &proc{bgNetobs: startCmd(t, cmd), ready: "capturing on"}
	pw.Close()
	p.waitReady(t)
	// 2 x 4000 packets of 1 KiB: more than the pipe, the writer's buffer
	// and a 64 KiB ring hold.
	nstest.Run(t, "ip", "netns", "exec", nsA, "ping", "-q", "-f", "-c", "4000", "-s", "1000", "-W", "1", "10.93.0.2")
	p.cmd.Process.Signal(syscall.SIGINT)
	file := filepath.Join(t.TempDir(), "drops.pcapng")
	out, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := out.ReadFrom(pr); err != nil {
		t.Fatal(err)
	}
	out.Close()
	<-p.done
	if p.code != 0 {
		t.Fatalf("netobs exited %d: %s", p.code, p.stderr)
	}
	dropped, captured := p.stat(t, "dropped by kernel"), p.stat(t, "captured")
	if dropped == 0 {
		t.Fatalf("no drops reported with a stalled reader: %s", p.stderr)
	}
	pkts, ifs, err := nstest.ReadPcap(file)
	if err != nil {
		t.Fatal(err)
	}
	if len(pkts) != captured || len(ifs) != 1 || ifs[0].OSDrop != uint64(dropped) || ifs[0].IfRecv < uint64(captured+dropped) {
		t.Fatalf("file: %d packets, statistics %+v; stderr: %d captured, %d dropped", len(pkts), ifs, captured, dropped)
	}
	tsharkSummary(t, file)
}

// SIGINT in the middle of a flood leaves a file tshark reads whole, with
// every packet netobs counts as captured.
func TestCaptureSIGINTUnderLoad(t *testing.T) {
	nsA, nsB, _, ifB := captureNets(t)
	file := filepath.Join(t.TempDir(), "int.pcapng")
	p := startCapture(t, "capture", nsB, "-i", ifB, "-w", file)
	flood := exec.Command("ip", "netns", "exec", nsA, "ping", "-q", "-f", "-c", "200000", "-s", "200", "-W", "1", "10.93.0.2")
	if err := flood.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { flood.Process.Kill(); flood.Wait() }()
	time.Sleep(500 * time.Millisecond)
	if code := p.stop(t); code != 0 {
		t.Fatalf("netobs exited %d: %s", code, p.stderr)
	}
	captured := p.stat(t, "captured")
	pkts, _, err := nstest.ReadPcap(file)
	if err != nil {
		t.Fatal(err)
	}
	if len(pkts) != captured || captured == 0 {
		t.Fatalf("file has %d packets, netobs says %d captured", len(pkts), captured)
	}
	if got := tsharkSummary(t, file); !strings.HasPrefix(got, strconv.Itoa(captured)+" packets") {
		t.Fatalf("tshark reads %s, netobs says %d captured", got, captured)
	}
}

// A namespace deleted mid-capture ends its part with a note; the others
// go on; the file stays valid and the exit status says something ended.
func TestCaptureNamespaceDeleted(t *testing.T) {
	nsA, nsB, _, _ := captureNets(t)
	file := filepath.Join(t.TempDir(), "gone.pcapng")
	p := startCapture(t, "capture", nsA, nsB, "-w", file, "--", "icmp")
	nstest.Run(t, "ip", "netns", "exec", nsA, "ping", "-q", "-c", "3", "-i", "0.01", "10.93.0.2")
	nstest.Run(t, "ip", "netns", "del", nsB)
	for i := 0; !strings.Contains(p.stderr.String(), "namespace went away"); i++ {
		if i == 3000 {
			t.Fatalf("no note after deleting %s: %s", nsB, p.stderr)
		}
		time.Sleep(10 * time.Millisecond)
	}
	nstest.Run(t, "ip", "netns", "exec", nsA, "ping", "-q", "-c", "2", "-i", "0.01", "-W", "1", "127.0.0.1")
	if code := p.stop(t); code != 1 {
		t.Fatalf("netobs exited %d, want 1 after a part ended: %s", code, p.stderr)
	}
	if !strings.Contains(p.stderr.String(), "capture any@"+nsB+": namespace went away") {
		t.Fatalf("stderr: %s", p.stderr)
	}
	count := tsharkPerInterface(t, file)
	// nsA: 3 requests and replies on the veth, then 2 each way on lo.
	if count["any@"+nsA] != 10 || count["any@"+nsB] != 6 {
		t.Fatalf("packets per interface %v, want 10 in %s and 6 in %s", count, nsA, nsB)
	}
	// A namespace named by PID goes away when the process exits.
	pid := nstest.Sleeper(t)
	r := startCapture(t, "capture", nsA, strconv.Itoa(pid), "-w", filepath.Join(t.TempDir(), "pid.pcapng"))
	syscall.Kill(pid, syscall.SIGKILL)
	want := fmt.Sprintf("namespace went away: process %d exited", pid) // not reaped yet: "exited or left it"
	for i := 0; !strings.Contains(r.stderr.String(), want); i++ {
		if i == 3000 {
			t.Fatalf("no note after killing %d: %s", pid, r.stderr)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if code := r.stop(t); code != 1 {
		t.Fatalf("exit %d, want 1: %s", code, r.stderr)
	}

	// One namespace only: the capture ends by itself.
	nsC := nstest.NetNS(t)
	q := startCapture(t, "capture", nsC, "-w", filepath.Join(t.TempDir(), "c.pcapng"))
	nstest.Run(t, "ip", "netns", "del", nsC)
	select {
	case <-q.done:
	case <-time.After(2 * time.Minute):
		t.Fatalf("capture of a deleted namespace did not end: %s", q.stderr)
	}
	if q.code != 1 || !strings.Contains(q.stderr.String(), "namespace went away") {
		t.Fatalf("exit %d: %s", q.code, q.stderr)
	}
}

// ptyPair opens a pseudo-terminal and returns its terminal side and its
// master side.
func ptyPair(t *testing.T) (tty, master *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		nstest.Unavailable(t, fmt.Sprintf("needs a pseudo-terminal: %v", err))
	}
	t.Cleanup(func() { m.Close() })
	sc, _ := m.SyscallConn()
	var n int
	var ierr error
	sc.Control(func(fd uintptr) {
		if ierr = unix.IoctlSetPointerInt(int(fd), unix.TIOCSPTLCK, 0); ierr == nil {
			n, ierr = unix.IoctlGetInt(int(fd), unix.TIOCGPTN)
		}
	})
	if ierr != nil {
		t.Fatal(ierr)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, m
}

// The bad-input table: one clear line each, the right exit status.
func TestCaptureBadInput(t *testing.T) {
	nsA, nsB, _, _ := captureNets(t)
	missing := nstest.UniqueName("no")
	dir := t.TempDir()
	for _, c := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"unknown namespace", []string{"capture", missing}, 1, `no such named network namespace "` + missing + `"`},
		{"unknown namespace after a good one", []string{"capture", nsA, missing, "--", "icmp"}, 1, missing},
		{"not a namespace file", []string{"capture", "/etc/hostname"}, 1, "/etc/hostname"},
		{"unknown interface", []string{"capture", nsA, "-i", "eth9"}, 1, "no interface eth9 in namespace " + nsA},
		{"filter syntax error", []string{"capture", nsA, "--", "tcp", "prot", "80"}, 2, `invalid filter "tcp prot 80": can't parse filter expression: syntax error`},
		{"filter unknown keyword", []string{"capture", nsA, "--", "udp", "portt", "53"}, 2, "invalid filter"},
		{"filter without --", []string{"capture", nsA, "udp", "portt", "53"}, 2, "put the filter after --"},
		{"vlan on a cooked socket", []string{"capture", nsA, "--", "vlan"}, 2, "no VLAN support for Linux cooked"},
		{"empty -i", []string{"capture", nsA, "-i", ""}, 2, `-i "": empty interface name`},
		{"-i of commas", []string{"capture", nsA, "-i", ",,,"}, 2, `-i ",,,": empty interface name`},
		{"16-byte interface name", []string{"capture", nsA, "-i", "abcdefghijklmnop"}, 2, `"abcdefghijklmnop" is 16 bytes`},
		{"-i repeated", []string{"capture", nsA, "-i", "lo", "-i", "lo"}, 2, `interface "lo" given twice`},
		{"pcap with two namespaces", []string{"capture", nsA, nsB, "--format", "pcap", "-w", filepath.Join(dir, "x")}, 2, "--format pcap holds exactly one interface"},
		{"snaplen too large", []string{"capture", nsA, "-s", "262145"}, 2, "snaplen 262145 out of range"},
		{"snaplen negative", []string{"capture", nsA, "-s", "-1"}, 2, "snaplen -1 out of range"},
		{"buffer too small", []string{"capture", nsA, "-B", "1K"}, 2, "out of range"},
		{"unknown format", []string{"capture", nsA, "--format", "erf", "-w", filepath.Join(dir, "x")}, 2, `unknown format "erf"`},
		{"unwritable path", []string{"capture", nsA, "-w", "/proc/netobs-no-such-dir/x.pcapng"}, 1, "no such file or directory"},
		{"directory as file", []string{"capture", nsA, "-w", dir}, 1, "is a directory"},
		{"no namespace", []string{"capture"}, 2, "needs at least one NSREF"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := netobs(t, c.args...)
			lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
			last := lines[len(lines)-1]
			if r.code != c.code || !strings.Contains(last, c.want) || !strings.HasPrefix(last, "netobs: ") || (c.code == 2 && len(lines) != 1) {
				t.Fatalf("exit %d, stderr %q; want exit %d and one line with %q", r.code, r.stderr, c.code, c.want)
			}
		})
	}
	t.Run("write to a terminal", func(t *testing.T) {
		tty, _ := ptyPair(t)
		for _, args := range [][]string{{"capture", nsA, "-w", "-"}, {"capture", nsA, "-w", tty.Name()}} {
			var stderr bytes.Buffer
			cmd := exec.Command(netobsBin, args...)
			cmd.Stdout, cmd.Stderr = tty, &stderr
			err := cmd.Run()
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !strings.Contains(stderr.String(), "refusing to write binary capture data to a terminal") {
				t.Fatalf("%v: %v, stderr %q", args, err, stderr.String())
			}
		}
	})
	nstest.CheckThreads(t)
}

// With stderr on a terminal and -w, a live counter is shown and erased.
func TestCaptureLiveCounter(t *testing.T) {
	nsA, nsB, _, _ := captureNets(t)
	tty, master := ptyPair(t)
	file := filepath.Join(t.TempDir(), "live.pcapng")
	cmd := exec.Command(netobsBin, "capture", nsB, "-w", file, "--", "icmp")
	cmd.Stderr = tty
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	out := &lockedBuffer{}
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := master.Read(buf)
			out.Write(buf[:n])
			if err != nil {
				return
			}
		}
	}()
	for i := 0; !strings.Contains(out.String(), "capturing on"); i++ {
		if i == 3000 {
			t.Fatalf("no start line: %q", out)
		}
		time.Sleep(10 * time.Millisecond)
	}
	nstest.Run(t, "ip", "netns", "exec", nsA, "ping", "-q", "-c", "3", "-i", "0.01", "10.93.0.2")
	for i := 0; !strings.Contains(out.String(), "Got 6 "); i++ {
		if i == 3000 {
			t.Fatalf("no live counter: %q", out)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGINT)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("netobs: %v: %q", err, out)
	}
	// Not just "dropped by kernel": the live counter says that too.
	for i := 0; !strings.Contains(out.String(), "packets dropped by kernel"); i++ {
		if i == 3000 {
			t.Fatalf("no statistics: %q", out)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.Contains(out.String(), "\r\033[K6 packets captured") {
		t.Fatalf("counter not erased before the statistics: %q", out)
	}
}

// --immediate -w - feeds a live reader: tshark prints the packets while
// the capture is still running.
func TestCaptureImmediatePipe(t *testing.T) {
	nsA, nsB, _, ifB := captureNets(t)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	no := exec.Command(netobsBin, "capture", nsB, "-i", ifB, "--immediate", "-w", "-", "--", "icmp")
	no.Stdout = pw
	ts := exec.Command("tshark", "-l", "-n", "-r", "-")
	tsOut := &lockedBuffer{}
	ts.Stdin, ts.Stdout = pr, tsOut
	p := &proc{bgNetobs: startCmd(t, no), ready: "capturing on"}
	if err := ts.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { ts.Process.Kill(); ts.Wait() }()
	pw.Close()
	pr.Close()
	p.waitReady(t)
	nstest.Run(t, "ip", "netns", "exec", nsA, "ping", "-q", "-c", "2", "-i", "0.2", "10.93.0.2")
	for i := 0; strings.Count(tsOut.String(), "ICMP") < 4; i++ {
		if i == 12000 {
			t.Fatalf("tshark shows %q while the capture runs", tsOut)
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case <-p.done:
		t.Fatal("netobs ended before tshark showed the packets")
	default:
	}
	if code := p.stop(t); code != 0 {
		t.Fatalf("netobs: exit %d: %s", code, p.stderr)
	}
}
