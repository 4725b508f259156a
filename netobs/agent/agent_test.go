package agent

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/netobs/netobs/netobs/agent/agentpb"
	"github.com/netobs/netobs/netobs/capture"
	"github.com/netobs/netobs/netobs/pktout"
	"github.com/netobs/netobs/netobs/runtime"
	"github.com/netobs/netobs/nsjoin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/test/bufconn"
)

// scripted is an agent that streams a fixed capture: its interfaces,
// then its messages, then (unless cut) final counts.
type scripted struct {
	agentpb.UnimplementedAgentServer
	ifcs []*agentpb.Interface
	msgs []*agentpb.CaptureMessage
	cut  bool // end the stream with an error instead of Final
}

func (s *scripted) Capture(req *agentpb.CaptureRequest, st agentpb.Agent_CaptureServer) error {
	st.Send(&agentpb.CaptureMessage{Msg: &agentpb.CaptureMessage_Start{Start: &agentpb.Start{Interfaces: s.ifcs, Id: "x"}}})
	for _, m := range s.msgs {
		if err := st.Send(m); err != nil {
			return err
		}
	}
	if s.cut {
		return errors.New("agent killed")
	}
	return st.Send(&agentpb.CaptureMessage{Msg: &agentpb.CaptureMessage_Final{Final: &agentpb.Final{Reason: agentpb.EndReason_END_REASON_STOPPED}}})
}

func serve(t *testing.T, srv agentpb.AgentServer, opts ...grpc.ServerOption) func(context.Context) (net.Conn, error) {
	t.Helper()
	l := bufconn.Listen(1 << 20)
	g := grpc.NewServer(opts...)
	agentpb.RegisterAgentServer(g, srv)
	go g.Serve(l)
	t.Cleanup(g.Stop)
	return func(ctx context.Context) (net.Conn, error) { return l.DialContext(ctx) }
}

func packets(iface uint32, times ...int64) *agentpb.CaptureMessage {
	var b []byte
	for _, ts := range times {
		b = appendRecord(b, iface, false, ts, 4, nil, []byte{1, 2, 3, 4})
	}
	return &agentpb.CaptureMessage{Msg: &agentpb.CaptureMessage_Packets{Packets: &agentpb.Packets{Records: b, Count: uint32(len(times))}}}
}

type collect struct {
	ifcs  []*pktout.Interface
	times []int64
	names []string
}

func (c *collect) Packet(p *pktout.Packet) error {
	c.times = append(c.times, p.Time)
	c.names = append(c.names, p.Interface.Name)
	return nil
}
func (c *collect) Flush() error                                        { return nil }
func (c *collect) Ended(*pktout.Interface, error)                      {}
func (c *collect) open(i []*pktout.Interface) (capture.Handler, error) { c.ifcs = i; return c, nil }

// Two agents whose packets interleave in time come out as one stream in
// timestamp order, each interface named after its source; a third that
// breaks the protocol is named and left out, the others kept.
func TestCaptureMergedOrderAndNames(t *testing.T) {
	ifc := func(name string) []*agentpb.Interface {
		return []*agentpb.Interface{{Index: 0, Name: name, LinkType: 1, Snaplen: 100, Description: "netns"}}
	}
	a := &scripted{ifcs: ifc("eth0@pod:default/web"), msgs: []*agentpb.CaptureMessage{packets(0, 10, 30, 50), packets(0, 70)}}
	b := &scripted{ifcs: ifc("eth0@ns1"), msgs: []*agentpb.CaptureMessage{packets(0, 20, 40), packets(0, 60, 80)}}
	bad := &scripted{ifcs: ifc("eth0@x"), msgs: []*agentpb.CaptureMessage{packets(3, 15)}}
	srcs := []Source{{Name: "node-a", Dial: serve(t, a)}, {Name: "node-b", Dial: serve(t, b)}, {Name: "node-c", Dial: serve(t, bad)}}
	var stderr bytes.Buffer
	var c collect
	res, err := CaptureMergedTo(context.Background(), srcs, &agentpb.CaptureRequest{}, c.open, MergeOptions{Stderr: &stderr})
	if err != nil {
		t.Fatal(err)
	}
	want := []int64{10, 20, 30, 40, 50, 60, 70, 80}
	if len(c.times) != len(want) {
		t.Fatalf("merged times %v, want %v", c.times, want)
	}
	for i := range want {
		if c.times[i] != want[i] {
			t.Fatalf("merged times %v, want %v", c.times, want)
		}
	}
	if c.names[0] != "eth0@pod:default/web@node-a" || c.names[1] != "eth0@ns1@node-b" {
		t.Errorf("names %v", c.names[:2])
	}
	if !strings.HasPrefix(c.ifcs[0].Description, "node node-a, ") {
		t.Errorf("description %q", c.ifcs[0].Description)
	}
	if res[0].Stats[0].Captured != 4 || res[1].Stats[0].Captured != 4 || res[0].Err != nil || res[1].Err != nil {
		t.Errorf("results %+v %+v", res[0], res[1])
	}
	if !errors.Is(res[2].Err, ErrProtocol) || !strings.Contains(stderr.String(), "node-c") {
		t.Errorf("node-c: %v; stderr %q", res[2].Err, stderr.String())
	}
}

// An agent whose stream breaks midway leaves what it sent in the output
// and its failure in its result.
func TestCaptureMergedSourceDies(t *testing.T) {
	ifc := []*agentpb.Interface{{Index: 0, Name: "eth0@n", LinkType: 1, Snaplen: 100}}
	a := &scripted{ifcs: ifc, msgs: []*agentpb.CaptureMessage{packets(0, 1, 2, 3)}}
	b := &scripted{ifcs: ifc, msgs: []*agentpb.CaptureMessage{packets(0, 4)}, cut: true}
	var out bytes.Buffer
	var stderr bytes.Buffer
	res, err := CaptureMerged(context.Background(), []Source{{Name: "a", Dial: serve(t, a)}, {Name: "b", Dial: serve(t, b)}},
		&agentpb.CaptureRequest{}, &out, MergeOptions{Stderr: &stderr})
	if err != nil {
		t.Fatal(err)
	}
	if res[1].Err == nil || !strings.Contains(stderr.String(), "b:") {
		t.Errorf("b's failure not reported: %v, %q", res[1].Err, stderr.String())
	}
	if res[1].Stats[0].Captured != 1 || res[0].Stats[0].Captured != 3 {
		t.Errorf("captured %d and %d, want 3 and 1", res[0].Stats[0].Captured, res[1].Stats[0].Captured)
	}
	if out.Len() == 0 {
		t.Error("nothing written")
	}
}

// fakeBackend lists one container; everything else fails.
type fakeBackend struct{}

func (fakeBackend) Namespaces(context.Context, nsjoin.Type) ([]NamespaceInfo, error) { return nil, nil }
func (fakeBackend) Containers(context.Context, string) ([]ContainerInfo, error) {
	return []ContainerInfo{{Container: runtime.Container{Runtime: "docker", ID: "abc", Name: "web"}, NetnsID: "net:[1]"}}, nil
}
func (fakeBackend) OpenNetNS(context.Context, string, io.Writer) (*nsjoin.NS, *runtime.Container, error) {
	return nil, nil, errors.New("no")
}
func (fakeBackend) CaptureTargets(context.Context, []string, int, string, io.Writer) ([]capture.Target, string, error) {
	return nil, "", errors.New("no")
}
func (fakeBackend) IsUsage(error) bool { return false }

// A server with a token answers only calls that carry it.
func TestTokenChecked(t *testing.T) {
	srv, err := NewServer(Config{Backend: fakeBackend{}, Token: "0123456789abcdef0123"})
	if err != nil {
		t.Fatal(err)
	}
	l := bufconn.Listen(1 << 20)
	g := srv.GRPCServer()
	go g.Serve(l)
	defer g.Stop()
	dial := func(ctx context.Context) (net.Conn, error) { return l.DialContext(ctx) }
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, tc := range []struct {
		token string
		ok    bool
	}{{"", false}, {"0123456789abcdef012", false}, {"0123456789abcdef0123", true}} {
		c, err := New(Source{Name: "a", Dial: dial, Token: tc.token})
		if err != nil {
			t.Fatal(err)
		}
		cs, err := c.Containers(ctx, "")
		c.Close()
		if tc.ok && (err != nil || len(cs) != 1 || cs[0].Name != "web" || cs[0].NetnsID != "net:[1]") {
			t.Errorf("token %q: %v %v", tc.token, cs, err)
		}
		if !tc.ok && !errors.Is(err, ErrDenied) {
			t.Errorf("token %q: err %v, want ErrDenied", tc.token, err)
		}
	}
}

// A batch whose third record is malformed: the packets before it reach
// the output, packet by packet (Client.Capture) as whole records (the
// merge), and the source fails with ErrProtocol.
func TestMalformedBatchKeepsItsValidPrefix(t *testing.T) {
	ifc := []*agentpb.Interface{{Index: 0, Name: "eth0@n", LinkType: 1, Snaplen: 100}}
	m := packets(0, 5, 6)
	p := m.GetPackets()
	p.Records = appendRecord(p.Records, 7, false, 7, 4, nil, []byte{1, 2, 3, 4}) // interface 7 of 1
	p.Count++
	src := &scripted{ifcs: ifc, msgs: []*agentpb.CaptureMessage{m}}

	c, err := New(Source{Name: "a", Dial: serve(t, src)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var one collect
	h := &collectRemote{collect: &one}
	res, err := c.Capture(context.Background(), &agentpb.CaptureRequest{}, h)
	if !errors.Is(err, ErrProtocol) {
		t.Errorf("Capture: err = %v, want ErrProtocol", err)
	}
	if len(one.times) != 2 || res == nil || res.Stats[0].Captured != 2 {
		t.Errorf("Capture delivered %v (res %+v), want the 2 packets before the bad record", one.times, res)
	}

	var merged collect
	mres, err := CaptureMergedTo(context.Background(), []Source{{Name: "a", Dial: serve(t, src)}, {Name: "b", Dial: serve(t, &scripted{ifcs: ifc, msgs: []*agentpb.CaptureMessage{packets(0, 8)}})}},
		&agentpb.CaptureRequest{}, merged.open, MergeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if want := []int64{5, 6, 8}; len(merged.times) != 3 || merged.times[0] != 5 || merged.times[1] != 6 || merged.times[2] != 8 {
		t.Errorf("merged %v, want %v", merged.times, want)
	}
	if !errors.Is(mres[0].Err, ErrProtocol) || mres[0].Stats[0].Captured != 2 {
		t.Errorf("source a: err %v, captured %d; want ErrProtocol, 2", mres[0].Err, mres[0].Stats[0].Captured)
	}
}

// collectRemote is collect as a CaptureHandler.
type collectRemote struct{ *collect }

func (c *collectRemote) Start(ifcs []*pktout.Interface) error { c.ifcs = ifcs; return nil }
func (c *collectRemote) Notice(string)                        {}

// blocksRemote is collectRemote taking pcapng blocks whole
// (BlocksHandler).
type blocksRemote struct {
	collectRemote
	blocks  []byte
	packets uint64
}

func (b *blocksRemote) EnhancedPackets(blocks []byte, packets uint64) error {
	b.blocks = append(b.blocks, blocks...)
	b.packets += packets
	return nil
}

// With PACKET_FORMAT_PCAPNG the client checks the agent's blocks: a
// handler that takes them whole gets the valid ones as they came, one
// that does not gets them packet by packet, and a malformed block (here
// longer than the interface's snapshot length) ends the call with
// ErrProtocol after the blocks before it.
func TestPcapngBlocksChecked(t *testing.T) {
	ifc := []*agentpb.Interface{{Index: 0, Name: "eth0@n", LinkType: 1, Snaplen: 100}}
	p0 := &pktout.Interface{ID: 0}
	var good []byte
	for _, ts := range []int64{5, 6} {
		good = pktout.AppendEnhancedPacket(good, &pktout.Packet{Interface: p0, Time: ts, Length: 4, Data: []byte{1, 2, 3, 4}})
	}
	bad := pktout.AppendEnhancedPacket(append([]byte(nil), good...), &pktout.Packet{Interface: p0, Time: 7, Length: 101, Data: make([]byte, 101)})
	msg := func(b []byte) *agentpb.CaptureMessage {
		return &agentpb.CaptureMessage{Msg: &agentpb.CaptureMessage_Packets{Packets: &agentpb.Packets{Records: b}}}
	}
	req := &agentpb.CaptureRequest{PacketFormat: agentpb.PacketFormat_PACKET_FORMAT_PCAPNG}
	for _, tc := range []struct {
		name    string
		blocks  []byte
		wantErr bool
	}{{"valid", good, false}, {"malformed third", bad, true}} {
		src := &scripted{ifcs: ifc, msgs: []*agentpb.CaptureMessage{msg(tc.blocks)}}
		c, err := New(Source{Name: "a", Dial: serve(t, src)})
		if err != nil {
			t.Fatal(err)
		}
		whole := &blocksRemote{collectRemote: collectRemote{collect: &collect{}}}
		res, err := c.Capture(context.Background(), req, whole)
		if errors.Is(err, ErrProtocol) != tc.wantErr || res == nil || res.Stats[0].Captured != 2 {
			t.Errorf("%s, whole: err %v, res %+v; want protocol error %v and 2 captured", tc.name, err, res, tc.wantErr)
		}
		if !bytes.Equal(whole.blocks, good) || whole.packets != 2 || len(whole.times) != 0 {
			t.Errorf("%s, whole: got %d bytes in %d packets (and %d one by one), want the %d bytes of the 2 valid blocks", tc.name, len(whole.blocks), whole.packets, len(whole.times), len(good))
		}
		one := &collectRemote{collect: &collect{}}
		res, err = c.Capture(context.Background(), req, one)
		if errors.Is(err, ErrProtocol) != tc.wantErr || res == nil || res.Stats[0].Captured != 2 || len(one.times) != 2 || one.times[0] != 5 || one.times[1] != 6 {
			t.Errorf("%s, one by one: err %v, times %v; want protocol error %v and packets 5, 6", tc.name, err, one.times, tc.wantErr)
		}
		c.Close()
	}
}

// refusedDial is a typed dial error, as a port-forward refused by RBAC.
type refusedDial struct{ what string }

func (e *refusedDial) Error() string { return "refused: " + e.what }

// TestDialErrorKept: a call to an agent whose Source.Dial fails returns
// an ErrUnreachable error that keeps the dial's own error (errors.As
// finds it, its text is in the message): gRPC alone would leave its text
// inside a transport message and guess that the agent is not running.
func TestDialErrorKept(t *testing.T) {
	want := &refusedDial{"create pods/portforward"}
	c, err := New(Source{Name: "node-x", Dial: func(context.Context) (net.Conn, error) { return nil, want }})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = c.Namespaces(ctx, "")
	var got *refusedDial
	if !errors.Is(err, ErrUnreachable) || !errors.As(err, &got) || got != want ||
		err.Error() != "agent node-x: unreachable: refused: create pods/portforward" {
		t.Fatalf("Namespaces through a refused dial: %v (%T), want ErrUnreachable wrapping the dial's error", err, err)
	}
}
