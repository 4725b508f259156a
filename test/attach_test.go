package test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/netobs/netobs/internal/nstest"
)

// inNS runs a command in a network namespace given as an `ip netns`
// name or a PID.
func inNS(target string, args ...string) *exec.Cmd {
	if _, err := strconv.Atoi(target); err == nil {
		return exec.Command("nsenter", append([]string{"-t", target, "-n"}, args...)...)
	}
	return exec.Command("ip", append([]string{"netns", "exec", target}, args...)...)
}

func nsOutput(t *testing.T, target string, args ...string) string {
	t.Helper()
	out, err := inNS(target, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%v in %s: %v: %s", args, target, err, out)
	}
	return string(out)
}

// waitLink waits until netobs says it is attached, which it says once it
// reads dev (its ring is bound: frames the namespace sends before
// that are dropped unseen), and checks that dev is in target.
func waitLink(t *testing.T, b *bgNetobs, target, dev string) {
	t.Helper()
	b.waitStderr(t, "netobs: attached")
	if out, err := inNS(target, "ip", "link", "show", "dev", dev).CombinedOutput(); err != nil {
		t.Fatalf("netobs says it is attached, but %s is not in %s: %v: %s", dev, target, err, out)
	}
}

// tunDevices lists the TUN/TAP devices in target.
func tunDevices(t *testing.T, target string) string {
	t.Helper()
	return strings.TrimSpace(nsOutput(t, target, "ip", "-o", "link", "show", "type", "tun"))
}

func tshark(t *testing.T, file, filter string) int {
	t.Helper()
	out, err := exec.Command("tshark", "-r", file, "-Y", filter, "-T", "fields", "-e", "frame.number").Output()
	if err != nil {
		t.Fatalf("tshark -r %s -Y %q: %v", file, filter, err)
	}
	return len(strings.Fields(string(out)))
}

func TestAttachNamedNSPcap(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.RequireTools(t, "ip", "ping", "arping", "tshark")
	ns := nstest.NetNS(t)
	dev := nstest.UniqueName("tap")
	file := filepath.Join(t.TempDir(), "a.pcap")
	b := startNetobs(t, "attach", ns, "--tap", "--name", dev, "--addr", "10.71.0.1/24", "--addr", "fd71::1/64", "--mac", "02:71:00:00:00:01", "-w", file)
	waitLink(t, b, ns, dev)
	if exec.Command("ip", "link", "show", "dev", dev).Run() == nil {
		t.Errorf("%s is in the host namespace", dev)
	}
	nstest.CheckThreadsOf(t, b.cmd.Process.Pid)
	// A neighbour that does not exist but has a static entry, so that
	// ICMP and UDP frames leave through the tap without waiting for ARP.
	nsOutput(t, ns, "ip", "neigh", "add", "10.71.0.9", "lladdr", "02:71:00:00:00:09", "dev", dev)
	inNS(ns, "ping", "-c", "3", "-i", "0.2", "-W", "1", "10.71.0.9").Run()
	inNS(ns, "arping", "-c", "2", "-w", "2", "-I", dev, "10.71.0.2").Run()
	nsOutput(t, ns, "bash", "-c", "for i in 1 2 3; do echo hello > /dev/udp/10.71.0.9/7777; done")
	if code := b.stop(t, syscall.SIGINT); code != 0 {
		t.Fatalf("exit %d after SIGINT: %s", code, b.stderr.String())
	}
	if !strings.Contains(b.stderr.String(), "frames read") || !strings.Contains(b.stderr.String(), "interrupted") {
		t.Errorf("no counts on stderr: %q", b.stderr.String())
	}
	if got := tshark(t, file, "icmp.type == 8 && ip.dst == 10.71.0.9"); got != 3 {
		t.Errorf("tshark found %d echo requests, want 3", got)
	}
	if got := tshark(t, file, "arp.opcode == 1 && arp.dst.proto_ipv4 == 10.71.0.2"); got < 2 {
		t.Errorf("tshark found %d ARP requests, want 2", got)
	}
	if got := tshark(t, file, "udp.dstport == 7777"); got != 3 {
		t.Errorf("tshark found %d UDP datagrams, want 3", got)
	}
	if b, err := os.ReadFile(file); err != nil || len(b) < 4 || binary.LittleEndian.Uint32(b) != 0xa1b23c4d {
		t.Errorf("%s is not a nanosecond pcap file (magic 0xa1b23c4d): %v", file, err)
	}
	if s := tunDevices(t, ns); s != "" {
		t.Errorf("device left after SIGINT: %s", s)
	}
}

func TestAttachSleeperTUNPcapng(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.RequireTools(t, "ip", "ping", "tshark", "nsenter")
	pid := nstest.Sleeper(t)
	target := strconv.Itoa(pid)
	// A second process in the same namespace keeps it alive after the
	// first exits, so that we can look inside once netobs is gone.
	keeper := exec.Command("nsenter", "-t", target, "-n", "sleep", "3600")
	if err := keeper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { keeper.Process.Kill(); keeper.Wait() })
	dev := nstest.UniqueName("tun")
	file := filepath.Join(t.TempDir(), "a.pcapng")
	b := startNetobs(t, "attach", "/proc/"+target+"/ns/net", "--tun", "--name", dev, "--addr", "10.72.0.1/24", "--queues", "2", "-w", file)
	waitLink(t, b, target, dev)
	if exec.Command("ip", "link", "show", "dev", dev).Run() == nil {
		t.Errorf("%s is in the host namespace", dev)
	}
	inNS(target, "ping", "-c", "2", "-i", "0.2", "-W", "1", "10.72.0.9").Run()
	nsOutput(t, target, "bash", "-c", "for i in 1 2; do echo hello > /dev/udp/10.72.0.9/7777; done")
	syscall.Kill(pid, syscall.SIGKILL)
	if code := b.wait(t); code != 3 {
		t.Fatalf("exit %d after the target died, want 3: %s", code, b.stderr.String())
	}
	if !strings.Contains(b.stderr.String(), "namespace gone") {
		t.Errorf("stderr does not say the namespace is gone: %q", b.stderr.String())
	}
	if !strings.Contains(b.stderr.String(), "read through an AF_PACKET ring") {
		t.Errorf("stderr does not say the tun is read through a ring: %q", b.stderr.String())
	}
	if got := tshark(t, file, "icmp.type == 8 && ip.dst == 10.72.0.9"); got != 2 {
		t.Errorf("tshark found %d echo requests, want 2", got)
	}
	if got := tshark(t, file, "udp.dstport == 7777"); got != 2 {
		t.Errorf("tshark found %d UDP datagrams, want 2", got)
	}
	// The statistics block at the end: every frame read is in the file.
	if pkts, ifcs, err := nstest.ReadPcap(file); err != nil || len(ifcs) != 1 || !ifcs[0].HasStats || ifcs[0].UsrDeliv != uint64(len(pkts)) || ifcs[0].IfRecv < uint64(len(pkts)) {
		t.Errorf("pcapng statistics %+v for %d packets: %v", ifcs, len(pkts), err)
	}
	if s := tunDevices(t, strconv.Itoa(keeper.Process.Pid)); s != "" {
		t.Errorf("device left after the target died: %s", s)
	}
}

func TestAttachNetnsDel(t *testing.T) {
	nstest.RequireRoot(t)
	ns := nstest.NetNS(t)
	keeper := exec.Command("ip", "netns", "exec", ns, "sleep", "3600")
	if err := keeper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { keeper.Process.Kill(); keeper.Wait() })
	dev := nstest.UniqueName("tap")
	b := startNetobs(t, "attach", ns, "--tap", "--name", dev, "--json")
	waitLink(t, b, ns, dev)
	nstest.Run(t, "ip", "netns", "del", ns)
	if code := b.wait(t); code != 3 {
		t.Fatalf("exit %d after ip netns del, want 3: %s", code, b.stderr.String())
	}
	if s := tunDevices(t, strconv.Itoa(keeper.Process.Pid)); s != "" {
		t.Errorf("device left after ip netns del: %s", s)
	}
}

func TestAttachCountSIGTERMPersist(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.RequireTools(t, "ip", "ping")
	ns := nstest.NetNS(t)
	dev := nstest.UniqueName("tap")
	b := startNetobs(t, "attach", ns, "--tap", "--name", dev, "--addr", "10.73.0.1/24", "-c", "2")
	waitLink(t, b, ns, dev)
	inNS(ns, "ping", "-c", "3", "-i", "0.2", "-W", "1", "10.73.0.2").Run()
	if code := b.wait(t); code != 0 {
		t.Fatalf("exit %d with -c: %s", code, b.stderr.String())
	}
	if n := strings.Count(b.stdout.String(), "\n"); n != 2 {
		t.Errorf("%d lines with -c 2:\n%s", n, b.stdout.String())
	}
	if !strings.Contains(b.stdout.String(), dev+" ") {
		t.Errorf("text output does not name the device:\n%s", b.stdout.String())
	}
	if s := tunDevices(t, ns); s != "" {
		t.Errorf("device left after -c: %s", s)
	}

	// The first frame may be IPv6 autoconfiguration or the ping's ARP.
	b = startNetobs(t, "attach", ns, "--tap", "--name", dev, "--addr", "10.73.0.1/24", "--json", "-c", "1")
	go inNS(ns, "ping", "-c", "3", "-i", "0.3", "-W", "1", "10.73.0.2").Run()
	if code := b.wait(t); code != 0 {
		t.Fatalf("exit %d with --json -c 1: %s", code, b.stderr.String())
	}
	var fr frameLine
	if err := json.Unmarshal(b.stdout.Bytes(), &fr); err != nil {
		t.Fatalf("--json output %q: %v", b.stdout.String(), err)
	}
	if fr.Interface != dev || fr.Length == 0 || fr.Time.IsZero() || fr.Summary == "" || fr.Proto == "" {
		t.Errorf("--json object lacks fields: %+v", fr)
	}

	b = startNetobs(t, "attach", ns, "--tap", "--name", dev, "--persist")
	waitLink(t, b, ns, dev)
	if code := b.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("exit %d after SIGTERM: %s", code, b.stderr.String())
	}
	if s := tunDevices(t, ns); !strings.Contains(s, dev) {
		t.Errorf("--persist device gone after exit")
	}
}

func TestAttachMirror(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.RequireTools(t, "ip", "ping", "tc", "tshark")
	a, bns := nstest.NetNS(t), nstest.NetNS(t)
	va, _ := nstest.Veth(t, a, "10.74.0.1/24", bns, "10.74.0.2/24")
	dev := nstest.UniqueName("tap")
	file := filepath.Join(t.TempDir(), "m.pcap")
	b := startNetobs(t, "attach", a, "--tap", "--name", dev, "--mirror", va, "-w", file)
	waitMirror(t, b, a, va)
	nsOutput(t, bns, "ping", "-c", "3", "-i", "0.2", "10.74.0.1")
	if code := b.stop(t, syscall.SIGINT); code != 0 {
		t.Fatalf("exit %d: %s", code, b.stderr.String())
	}
	if got := tshark(t, file, "icmp.type == 8 && ip.src == 10.74.0.2"); got != 3 {
		t.Errorf("mirrored echo requests (ingress of %s): %d, want 3", va, got)
	}
	if got := tshark(t, file, "icmp.type == 0 && ip.src == 10.74.0.1"); got != 3 {
		t.Errorf("mirrored echo replies (egress of %s): %d, want 3", va, got)
	}
	if out := nsOutput(t, a, "tc", "qdisc", "show", "dev", va); strings.Contains(out, "clsact") {
		t.Errorf("clsact left on %s: %s", va, out)
	}
	if s := tunDevices(t, a); s != "" {
		t.Errorf("device left: %s", s)
	}

	// A pipe reader that goes away ends netobs through its cleanup, with
	// status 0, instead of SIGPIPE killing it with the tc rules in place.
	ping := inNS(bns, "ping", "-c", "20", "-i", "0.2", "10.74.0.1")
	ping.Start()
	defer func() { ping.Process.Kill(); ping.Wait() }()
	out, err := exec.Command("bash", "-c", netobsBin+" attach "+a+" --tap --mirror "+va+" | head -1; exit ${PIPESTATUS[0]}").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "output closed") {
		t.Errorf("netobs | head -1: %v: %s", err, out)
	}
	if out := nsOutput(t, a, "tc", "qdisc", "show", "dev", va); strings.Contains(out, "clsact") {
		t.Errorf("clsact left on %s after a closed pipe: %s", va, out)
	}
}

// writePcap writes frames as a pcap file of the given link type.
func writePcap(t *testing.T, lt layers.LinkType, frames ...[]byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "in.pcap")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := pcapgo.NewWriter(f)
	w.WriteFileHeader(65535, lt)
	for _, fr := range frames {
		w.WritePacket(gopacket.CaptureInfo{Timestamp: time.Now(), CaptureLength: len(fr), Length: len(fr)}, fr)
	}
	return path
}

// appendFile appends byte strings to a file.
func appendFile(t *testing.T, path string, bs ...[]byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, b := range bs {
		if _, err := f.Write(b); err != nil {
			t.Fatal(err)
		}
	}
}

// writePcapng writes Ethernet frames as a pcapng file.
func writePcapng(t *testing.T, path string, frames ...[]byte) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w, err := pcapgo.NewNgWriter(f, layers.LinkTypeEthernet)
	if err != nil {
		t.Fatal(err)
	}
	for _, fr := range frames {
		w.WritePacket(gopacket.CaptureInfo{Timestamp: time.Now(), CaptureLength: len(fr), Length: len(fr)}, fr)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
}

func udpFrame(t *testing.T, dst net.IP, port uint16, payload string) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0x75, 0, 0, 0, 9}, DstMAC: net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: net.IPv4(10, 75, 0, 9), DstIP: dst}
	udp := &layers.UDP{SrcPort: 5555, DstPort: layers.UDPPort(port)}
	udp.SetNetworkLayerForChecksum(ip)
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, udp, gopacket.Payload(payload)); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestAttachInject(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.RequireTools(t, "ip", "tcpdump")
	ns := nstest.NetNS(t)
	var frames [][]byte
	for i := 0; i < 5; i++ {
		frames = append(frames, udpFrame(t, net.IPv4(10, 75, 0, 1), 7777, fmt.Sprintf("netobs-inject-%d", i)))
	}
	pcap := writePcap(t, layers.LinkTypeEthernet, frames...)
	// tcpdump on "any" inside the target sees devices made after it started.
	td := startCmd(t, inNS(ns, "tcpdump", "-i", "any", "-nn", "-l", "-A", "-c", "5", "udp", "port", "7777"))
	td.waitStderr(t, "listening on")
	tdOut := td.stdout
	dev := nstest.UniqueName("tap")
	r := netobs(t, "attach", ns, "--tap", "--name", dev, "--addr", "10.75.0.1/24", "--inject", pcap, "--inject-only")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "injected 5 frames") {
		t.Errorf("stderr does not report 5 injected frames: %s", r.stderr)
	}
	select {
	case <-td.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("tcpdump in the target did not see 5 frames:\n%s", tdOut.String())
	}
	for i := 0; i < 5; i++ {
		if !strings.Contains(tdOut.String(), fmt.Sprintf("netobs-inject-%d", i)) {
			t.Errorf("frame %d not seen by tcpdump in the target:\n%s", i, tdOut.String())
		}
	}
	if s := tunDevices(t, ns); s != "" {
		t.Errorf("device left: %s", s)
	}
}

// TestAttachInjectReportsPath: --inject says whether it wrote through
// io_uring batches or one write(2) per frame (NETOBS_NO_IO_URING=1), and
// every frame arrives either way (the device's RX counter, read with ip).
func TestAttachInjectReportsPath(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.RequireTools(t, "ip")
	frame := udpFrame(t, net.IPv4(10, 77, 0, 1), 9, "path")
	frames := make([][]byte, 200) // more than one batch of 64
	for i := range frames {
		frames[i] = frame
	}
	pcap := writePcap(t, layers.LinkTypeEthernet, frames...)
	for _, c := range []struct{ path, want string }{
		{"io_uring", "io_uring batches of 64)"},
		{"syscalls", "one write(2) per frame)"},
	} {
		t.Run(c.path, func(t *testing.T) {
			if c.path == "syscalls" {
				t.Setenv("NETOBS_NO_IO_URING", "1")
			} else if b, err := os.ReadFile("/proc/sys/kernel/io_uring_disabled"); err == nil && strings.TrimSpace(string(b)) != "0" {
				nstest.Unavailable(t, "io_uring disabled: sysctl kernel.io_uring_disabled="+strings.TrimSpace(string(b)))
			}
			ns := nstest.NetNS(t)
			dev := nstest.UniqueName("tap")
			r := netobs(t, "attach", ns, "--tap", "--name", dev, "--persist", "--inject", pcap, "--inject-only")
			t.Cleanup(func() { exec.Command("ip", "-n", ns, "link", "del", dev).Run() })
			if r.code != 0 {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			if !strings.Contains(r.stderr, "injected 200 frames") || !strings.Contains(r.stderr, c.want) {
				t.Errorf("stderr does not report 200 frames injected by %q:\n%s", c.want, r.stderr)
			}
			out, err := inNS(ns, "cat", "/sys/class/net/"+dev+"/statistics/rx_packets").Output()
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.TrimSpace(string(out)); got != "200" {
				t.Errorf("device RX counter %s, want 200", got)
			}
		})
	}
}

func TestAttachBadInput(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.RequireTools(t, "ip", "tc", "unshare", "setpriv", "script")
	ns := nstest.NetNS(t)
	nsB := nstest.NetNS(t)
	va, _ := nstest.Veth(t, ns, "10.76.0.1/24", nsB, "10.76.0.2/24")
	dir := t.TempDir()
	notPcap := filepath.Join(dir, "not.pcap")
	os.WriteFile(notPcap, []byte("this is not a capture file at all\n"), 0o644)
	rawPcap := writePcap(t, layers.LinkTypeRaw, []byte{0x45, 0, 0, 20, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2})
	ethPcap := writePcap(t, layers.LinkTypeEthernet, udpFrame(t, net.IPv4(10, 76, 0, 1), 9, "x"))
	// Damaged capture files: a truncated record, a capture length of
	// 0xfffffff0, a pcapng block with a bad length.
	frame := udpFrame(t, net.IPv4(10, 76, 0, 1), 9, "x")
	truncated := writePcap(t, layers.LinkTypeEthernet, frame, frame)
	if st, err := os.Stat(truncated); err != nil || os.Truncate(truncated, st.Size()-10) != nil {
		t.Fatal("truncate", err)
	}
	hugeCaplen := writePcap(t, layers.LinkTypeEthernet, frame)
	appendFile(t, hugeCaplen, binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint32(make([]byte, 8), 0xfffffff0), 0xfffffff0), frame)
	badBlock := filepath.Join(dir, "bad.pcapng")
	writePcapng(t, badBlock, frame)
	appendFile(t, badBlock, binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint32(nil, 6), 0xfffffff0), frame)
	gone := exec.Command("true")
	gone.Run()
	gonePID := strconv.Itoa(gone.Process.Pid)
	netobsCmd := func(args ...string) string { return netobsBin + " " + strings.Join(args, " ") }

	cases := []struct {
		name string
		args []string
		wrap []string // run netobs through this command line
		code int
		want string
	}{
		{"unknown PID", []string{"attach", "999999999", "--tap"}, nil, 1, "no such process"},
		{"vanished PID", []string{"attach", gonePID, "--tap"}, nil, 1, "no such process"},
		{"unknown name", []string{"attach", "nosuch" + nstest.Prefix(), "--tap"}, nil, 1, "no such named network namespace"},
		{"not a namespace", []string{"attach", "/etc/hostname", "--tap"}, nil, 1, "not a namespace"},
		{"not a net namespace", []string{"attach", "/proc/self/ns/uts", "--tap"}, nil, 1, "not net"},
		{"neither tap nor tun", []string{"attach", ns}, nil, 2, "--tap or --tun"},
		{"tap and tun", []string{"attach", ns, "--tap", "--tun"}, nil, 2, "exclude"},
		{"name too long", []string{"attach", ns, "--tap", "--name", "abcdefghijklmnopq"}, nil, 2, "longer than 15"},
		{"invalid name", []string{"attach", ns, "--tap", "--name", "a/b"}, nil, 2, "device name"},
		{"name present", []string{"attach", ns, "--tap", "--name", va}, nil, 1, "already in"},
		{"bad CIDR", []string{"attach", ns, "--tap", "--addr", "10.0.0.1"}, nil, 2, "--addr"},
		{"bad route", []string{"attach", ns, "--tap", "--route", "nowhere"}, nil, 2, "--route"},
		{"bad MAC", []string{"attach", ns, "--tap", "--mac", "zz:zz"}, nil, 2, "--mac"},
		{"multicast MAC", []string{"attach", ns, "--tap", "--mac", "01:00:5e:00:00:01"}, nil, 2, "multicast"},
		{"MAC on tun", []string{"attach", ns, "--tun", "--mac", "02:00:00:00:00:01"}, nil, 2, "tap device"},
		{"MTU too small", []string{"attach", ns, "--tap", "--mtu", "10"}, nil, 2, "MTU"},
		{"MTU too large", []string{"attach", ns, "--tap", "--mtu", "70000"}, nil, 2, "MTU"},
		{"mirror missing", []string{"attach", ns, "--tap", "--mirror", "nosuch0"}, nil, 1, "no such interface"},
		{"mirror missing, with -w", []string{"attach", ns, "--tap", "--mirror", "nosuch0", "-w", filepath.Join(dir, "made.pcap")}, nil, 1, "no such interface"},
		{"inject missing", []string{"attach", ns, "--tap", "--inject", filepath.Join(dir, "missing.pcap")}, nil, 1, "no such file"},
		{"inject not pcap", []string{"attach", ns, "--tap", "--inject", notPcap}, nil, 1, "not a pcap"},
		{"inject raw into tap", []string{"attach", ns, "--tap", "--inject", rawPcap}, nil, 1, "link type"},
		{"inject ethernet into tun", []string{"attach", ns, "--tun", "--inject", ethPcap}, nil, 1, "link type"},
		{"inject truncated record", []string{"attach", ns, "--tap", "--inject", truncated, "--inject-only"}, nil, 1, "record 2: truncated"},
		{"inject caplen 0xfffffff0", []string{"attach", ns, "--tap", "--inject", hugeCaplen, "--inject-only"}, nil, 1, "record 2:"},
		{"inject bad pcapng block", []string{"attach", ns, "--tap", "--inject", badBlock, "--inject-only"}, nil, 1, "record 2:"},
		{"unwritable -w", []string{"attach", ns, "--tap", "-w", "/nonexistent/dir/x.pcap"}, nil, 1, "no such file"},
		{"bad format", []string{"attach", ns, "--tap", "--format", "xml"}, nil, 2, "format"},
		{"cleanup with other flags", []string{"attach", ns, "--cleanup", "--tap"}, nil, 2, "--cleanup takes no other flags"},
		{"txqueuelen beyond 32 bits", []string{"attach", ns, "--tap", "--txqueuelen", "4294967296"}, nil, 2, "transmit queue length 4294967296 out of range"},
		{"duplicate address", []string{"attach", ns, "--tap", "--addr", "10.76.9.1/24", "--addr", "10.76.9.1/24"}, nil, 2, "given twice"},
		{"duplicate IPv6 address", []string{"attach", ns, "--tap", "--addr", "fd76::1/64", "--addr", "fd76::1/80"}, nil, 2, "given twice"},
		{"pcap to terminal", nil, []string{"script", "-qec", netobsCmd("attach", ns, "--tap", "-w", "-"), "/dev/null"}, 2, "terminal"},
		{"no /dev/net/tun", nil, []string{"unshare", "-m", "sh", "-c", "mount -t tmpfs none /dev/net && exec " + netobsCmd("attach", ns, "--tap")}, 1, "/dev/net/tun"},
		{"no CAP_NET_ADMIN", nil, []string{"setpriv", "--bounding-set", "-net_admin", "--inh-caps", "-net_admin", netobsBin, "attach", ns, "--tap", "--name", "nocap0"}, 1, "CAP_NET_ADMIN"},
		{"mirror without CAP_NET_ADMIN", nil, []string{"setpriv", "--bounding-set", "-net_admin", "--inh-caps", "-net_admin", netobsBin, "attach", ns, "--tap", "--mirror", va}, 1, "CAP_NET_ADMIN"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var r result
			if c.wrap == nil {
				r = netobs(t, c.args...)
			} else {
				var stdout, stderr bytes.Buffer
				cmd := exec.Command(c.wrap[0], c.wrap[1:]...)
				cmd.Stdout, cmd.Stderr = &stdout, &stderr
				cmd.Run()
				r = result{stdout.String(), stderr.String(), cmd.ProcessState.ExitCode()}
				// script puts the terminal's output on its stdout.
				r.stderr += r.stdout
			}
			if r.code != c.code {
				t.Errorf("exit %d, want %d; stderr: %s", r.code, c.code, r.stderr)
			}
			lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
			if len(lines) != 1 || !strings.HasPrefix(strings.TrimSpace(lines[0]), "netobs: ") {
				t.Errorf("want one line \"netobs: ...\", got %q", r.stderr)
			}
			if !strings.Contains(r.stderr, c.want) {
				t.Errorf("stderr %q lacks %q", r.stderr, c.want)
			}
			if s := tunDevices(t, ns); s != "" {
				t.Errorf("device left in the target: %s", s)
			}
			if out := nsOutput(t, ns, "tc", "qdisc", "show", "dev", va); strings.Contains(out, "clsact") {
				t.Errorf("clsact left on %s: %s", va, out)
			}
			if _, err := os.Stat(filepath.Join(dir, "made.pcap")); err == nil {
				t.Errorf("-w file left behind by a failed attach")
			}
		})
	}
}

// TestAttachEvents: with --events the namespace's netlink events come in
// the same stream as the frames, labelled with the namespace.
func TestAttachEvents(t *testing.T) {
	nstest.RequireRoot(t)
	ns := nstest.NetNS(t)
	dev := nstest.UniqueName("tap")
	b := startNetobs(t, "attach", ns, "--tap", "--name", dev, "--addr", "10.74.0.1/24", "--json", "--events", "--event-kinds", "addr")
	b.waitStderr(t, "netobs: attached") // said once the events are subscribed
	nstest.Run(t, "ip", "-n", ns, "addr", "add", "10.75.0.9/32", "dev", "lo")
	isEvent := func(line string) bool {
		e, err := parseAttachEvent(line)
		return err == nil && strings.Contains(e.Text, "10.75.0.9/32")
	}
	ev, _ := parseAttachEvent(b.waitStdout(t, "the address event", isEvent))
	if ev.NS.Name != ns || ev.Kind != "addr" {
		t.Errorf("event %+v, want kind addr in namespace %s", ev, ns)
	}
	if code := b.stop(t, syscall.SIGINT); code != 0 {
		t.Fatalf("exit %d after SIGINT: %s", code, b.stderr.String())
	}
}
