package attach

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/netobs/netobs/internal/nstest"
	"github.com/netobs/netobs/tapdev"
)

// The main goroutine keeps the main thread, which must never enter a
// namespace (see nsjoin).
func init() { runtime.LockOSThread() }

func serialize(t *testing.T, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestTextSummaries: text and JSON output are pktout's summaries, in
// tcpdump -n's words (lengths of the payload, as tcpdump prints them), for
// frames of a TAP (Ethernet) and a TUN (raw IP) device.
func TestTextSummaries(t *testing.T) {
	mac1, mac2 := net.HardwareAddr{2, 0, 0, 0, 0, 1}, net.HardwareAddr{2, 0, 0, 0, 0, 2}
	eth := &layers.Ethernet{SrcMAC: mac1, DstMAC: mac2, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, SrcIP: net.IPv4(10, 0, 0, 1), DstIP: net.IPv4(10, 0, 0, 2)}
	udp := &layers.UDP{SrcPort: 1000, DstPort: 53}
	tcp := &layers.TCP{SrcPort: 40000, DstPort: 80, SYN: true, Seq: 7}
	icmp := &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(8, 0), Id: 5, Seq: 1}
	arp := &layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
		Operation: layers.ARPRequest, SourceHwAddress: mac1, SourceProtAddress: []byte{10, 0, 0, 1}, DstHwAddress: make([]byte, 6), DstProtAddress: []byte{10, 0, 0, 2}}
	udp.SetNetworkLayerForChecksum(ip)
	tcp.SetNetworkLayerForChecksum(ip)

	ipU := *ip
	ipU.Protocol = layers.IPProtocolUDP
	ipT := *ip
	ipT.Protocol = layers.IPProtocolTCP
	ipI := *ip
	ipI.Protocol = layers.IPProtocolICMPv4
	ethA := *eth
	ethA.EthernetType = layers.EthernetTypeARP
	cases := []struct {
		kind  tapdev.Kind
		data  []byte
		proto string
		want  string
	}{
		{tapdev.TAP, serialize(t, &ethA, arp), "arp", "ARP, Request who-has 10.0.0.2 tell 10.0.0.1, length 46"},
		{tapdev.TAP, serialize(t, eth, &ipU, udp, gopacket.Payload("hi")), "udp", "IP 10.0.0.1.1000 > 10.0.0.2.53: UDP, length 2"},
		{tapdev.TAP, serialize(t, eth, &ipT, tcp), "tcp", "IP 10.0.0.1.40000 > 10.0.0.2.80: Flags [S], seq 7, length 0"},
		{tapdev.TAP, serialize(t, eth, &ipI, icmp), "icmp", "IP 10.0.0.1 > 10.0.0.2: ICMP echo request, id 5, seq 1, length 8"},
		{tapdev.TUN, serialize(t, &ipI, icmp), "icmp", "IP 10.0.0.1 > 10.0.0.2: ICMP echo request, id 5, seq 1, length 8"},
		{tapdev.TUN, []byte{0x00, 1, 2}, "", "unknown, length 3"},
	}
	ts := time.Date(2026, 11, 30, 12, 34, 56, 789012345, time.Local)
	for _, c := range cases {
		var text, js bytes.Buffer
		for _, out := range []struct {
			w *bytes.Buffer
			f Format
		}{{&text, Text}, {&js, JSON}} {
			s, err := newSink(out.w, out.f, "dev0", c.kind, "net:[1]", nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.frame(ts, c.data); err != nil {
				t.Fatal(err)
			}
			if err := s.flush(true, &Result{}); err != nil {
				t.Fatal(err)
			}
		}
		if want := "12:34:56.789012 dev0 Out " + c.want + "\n"; text.String() != want {
			t.Errorf("text %q, want %q", text.String(), want)
		}
		var f struct {
			Time                    time.Time
			Interface, Netns, Proto string
			Direction, Summary      string
			Length                  int
		}
		if err := json.Unmarshal(js.Bytes(), &f); err != nil {
			t.Fatalf("JSON %q: %v", js.String(), err)
		}
		if f.Summary != c.want || f.Proto != c.proto || f.Interface != "dev0" || f.Netns != "net:[1]" || f.Direction != "Out" || f.Length != len(c.data) || !f.Time.Equal(ts) {
			t.Errorf("JSON %+v, want %q (%s)", f, c.want, c.proto)
		}
	}
}

func TestParseFormat(t *testing.T) {
	for _, s := range []string{"text", "json", "pcap", "pcapng"} {
		f, err := ParseFormat(s)
		if err != nil || f.String() != s {
			t.Errorf("ParseFormat(%q) = %v, %v", s, f, err)
		}
	}
	if _, err := ParseFormat("xml"); err == nil {
		t.Error("ParseFormat(xml) succeeded")
	}
}

// TestRunCycles attaches and detaches 500 times in this process and checks
// that no file descriptor, goroutine or device is left and that no thread
// stays in the target.
func TestRunCycles(t *testing.T) {
	nsName := nstest.NetNS(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // each Run creates, configures, reads, stops and removes
	opts := func(out *bytes.Buffer) Options {
		return Options{Ref: nsName, Format: PCAP, Output: out, WatchInterval: time.Millisecond,
			Device: tapdev.Config{Kind: tapdev.TAP, Addrs: []netip.Prefix{netip.MustParsePrefix("10.78.0.1/24")}}}
	}
	for i := 0; i < 5; i++ {
		var out bytes.Buffer
		if _, err := Run(ctx, opts(&out)); err != nil {
			t.Fatal(err)
		}
	}
	before := nstest.TakeSnapshot(t)
	for i := 0; i < 500; i++ {
		var out bytes.Buffer
		res, err := Run(ctx, opts(&out))
		if err != nil {
			t.Fatalf("cycle %d: %v", i, err)
		}
		if res.Reason != Cancelled || out.Len() < 24 {
			t.Fatalf("cycle %d: reason %v, %d bytes of pcap", i, res.Reason, out.Len())
		}
	}
	before.CheckLeaks(t, "500 attach/detach cycles")
	if out := nstest.Run(t, "ip", "-n", nsName, "-o", "link", "show", "type", "tun"); strings.TrimSpace(out) != "" {
		t.Errorf("devices left: %s", out)
	}
	nstest.CheckThreads(t)
}

// runResult is what Run returned.
type runResult struct {
	res Result
	err error
}

// runAsync runs Run on a goroutine; the channel receives what it returned.
func runAsync(ctx context.Context, o Options) <-chan runResult {
	done := make(chan runResult, 1)
	go func() {
		res, err := Run(ctx, o)
		done <- runResult{res, err}
	}()
	return done
}

// TestRunCountAndInject reads frames the namespace sends until Count, then
// injects them back, in process, so the race detector sees both paths.
func TestRunCountAndInject(t *testing.T) {
	nstest.RequireTools(t, "ip", "ping")
	nsName := nstest.NetNS(t)
	nstest.Run(t, "ip", "netns", "exec", nsName, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
	name := nstest.UniqueName("tap")
	var out, log bytes.Buffer
	done := runAsync(context.Background(), Options{Ref: nsName, Format: PCAP, Output: &out, Count: 3, Log: &log,
		Device: tapdev.Config{Kind: tapdev.TAP, Name: name, Addrs: []netip.Prefix{netip.MustParsePrefix("10.79.0.1/24")}}})
	for nstest.Run(t, "ip", "-n", nsName, "-o", "link", "show", "type", "tun") == "" {
		time.Sleep(10 * time.Millisecond)
	}
	var r runResult
	for sent := false; ; {
		select {
		case r = <-done:
		case <-time.After(100 * time.Millisecond):
			if !sent {
				// ARP requests for a neighbour nobody answers.
				go nstest.Output("ip", "netns", "exec", nsName, "ping", "-c", "4", "-i", "0.3", "-W", "1", "10.79.0.2")
				sent = true
			}
			continue
		}
		break
	}
	if r.err != nil || r.res.Reason != CountReached || r.res.Read != 3 || r.res.Device != name {
		t.Fatalf("Run = %+v, %v; log: %s", r.res, r.err, log.String())
	}
	path := t.TempDir() + "/c.pcap"
	if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	in, err := OpenInject(path, tapdev.TAP)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	res, err := Run(context.Background(), Options{Ref: nsName, Inject: in, InjectOnly: true, Log: &log,
		Device: tapdev.Config{Kind: tapdev.TAP, Name: name}})
	if err != nil || res.Reason != InjectDone || res.Written != 3 || res.InjectFailed != 0 {
		t.Fatalf("inject: %+v, %v; log: %s", res, err, log.String())
	}
	if _, err := OpenInject(path, tapdev.TUN); err == nil || !strings.Contains(err.Error(), "link type") {
		t.Errorf("Ethernet capture accepted for a TUN device: %v", err)
	}
	nstest.CheckThreads(t)
}

// TestFileSinkNanosecondsAndStats: attach's pcap keeps nanosecond
// timestamps (pktout's writer, magic 0xa1b23c4d), and its pcapng ends
// with an interface statistics block holding the frames the device passed
// (isb_ifrecv), those the kernel dropped (isb_osdrop) and those written
// (isb_usrdeliv). tshark and capinfos read both files.
func TestFileSinkNanosecondsAndStats(t *testing.T) {
	nstest.RequireTools(t, "tshark", "capinfos")
	ts := time.Unix(1_800_000_000, 123456789)
	frame := bytes.Repeat([]byte{0xab}, 60)
	for _, f := range []Format{PCAP, PCAPNG} {
		path := t.TempDir() + "/a." + f.String()
		file, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		s, err := newSink(file, f, "tap0", tapdev.TAP, "net:[4026531840]", nil)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			if err := s.frame(ts.Add(time.Duration(i)), frame); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.flush(true, &Result{Read: 3, Dropped: 7}); err != nil {
			t.Fatal(err)
		}
		file.Close()
		pkts, ifcs, err := nstest.ReadPcap(path)
		if err != nil || len(pkts) != 3 {
			t.Fatalf("%s: %d packets, %v", f, len(pkts), err)
		}
		for i, p := range pkts {
			if want := ts.UnixNano() + int64(i); p.Time != want || !bytes.Equal(p.Data, frame) {
				t.Errorf("%s: packet %d at %d, want %d (nanoseconds kept)", f, i, p.Time, want)
			}
		}
		out, err := exec.Command("capinfos", "-M", path).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "Number of packets:   3") || !strings.Contains(string(out), "nanoseconds") {
			t.Errorf("capinfos %s: %v\n%s", path, err, out)
		}
		if f == PCAPNG {
			if st := ifcs[0]; !st.HasStats || st.IfRecv != 10 || st.OSDrop != 7 || st.IfDrop != 7 || st.UsrDeliv != 3 || st.Name != "tap0" {
				t.Errorf("pcapng interface %+v, want statistics received 10, dropped 7, delivered 3", st)
			}
			if !strings.Contains(string(out), "Number of stat entries = 1") {
				t.Errorf("capinfos finds no statistics block:\n%s", out)
			}
		}
		if out, err := exec.Command("tshark", "-r", path, "-T", "fields", "-e", "frame.time_epoch").Output(); err != nil || !strings.Contains(string(out), "1800000000.123456789") {
			t.Errorf("tshark -r %s: %v %q, want nanosecond time 1800000000.123456789", path, err, out)
		}
	}
}
