package attach

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/netobs/netobs/internal/nstest"
	"github.com/netobs/netobs/tapdev"
)

// signalWriter is a Log that closes ready when a line holding want has
// been written.
type signalWriter struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	want  string
	ready chan struct{}
	once  sync.Once
}

func (w *signalWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(b)
	if strings.Contains(w.buf.String(), w.want) {
		w.once.Do(func() { close(w.ready) })
	}
	return len(b), nil
}

func (w *signalWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// TestRingFramesCountsInject: trafgen sends N frames from inside the
// namespace into the tap while netobs injects M frames into it; read
// through the ring (the default) and through the queue (ReadQueue), the
// output holds exactly the N frames sent, byte for byte, none of the
// injected ones, nothing counts as dropped, the M frames are written, and
// the device is gone afterwards; also for a sender that bypasses the
// qdisc layer (trafgen without -Q, PACKET_QDISC_BYPASS), whose frames
// still pass the packet taps.
func TestRingFramesCountsInject(t *testing.T) {
	nstest.RequireTools(t, "ip", "trafgen")
	nsName := nstest.NetNS(t)
	nstest.Run(t, "ip", "netns", "exec", nsName, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
	dir := t.TempDir()
	// The frames trafgen sends: to a MAC nobody has, a distinct first
	// payload byte so that they cannot be taken for the injected ones.
	cfg := dir + "/frame.cfg"
	if err := os.WriteFile(cfg, []byte("{ 0x02,0,0,0,0,0x99, 0x02,0,0,0,0,0x98, 0x08,0x00, 0x5a, fill(0x00, 49) }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	want := append([]byte{2, 0, 0, 0, 0, 0x99, 2, 0, 0, 0, 0, 0x98, 8, 0, 0x5a}, make([]byte, 49)...)
	// The injected frames: addressed to another host's MAC, which the
	// namespace drops without answering.
	inPath := dir + "/in.pcap"
	const injected = 500
	{
		f, err := os.Create(inPath)
		if err != nil {
			t.Fatal(err)
		}
		w := pcapgo.NewWriter(f)
		w.WriteFileHeader(65535, layers.LinkTypeEthernet)
		frame := append([]byte{2, 0, 0, 0, 0, 0x97, 2, 0, 0, 0, 0, 0x96, 8, 0, 0xa5}, make([]byte, 49)...)
		for i := 0; i < injected; i++ {
			if err := w.WritePacket(ci(len(frame)), frame); err != nil {
				t.Fatal(err)
			}
		}
		f.Close()
	}
	const sent = 20000
	for _, c := range []struct {
		readQueue, bypass bool
	}{{false, false}, {true, false}, {false, true}} {
		readQueue := c.readQueue
		t.Run(fmt.Sprintf("ReadQueue=%v,bypass=%v", readQueue, c.bypass), func(t *testing.T) {
			name := nstest.UniqueName("tap")
			in, err := OpenInject(inPath, tapdev.TAP)
			if err != nil {
				t.Fatal(err)
			}
			defer in.Close()
			log := &signalWriter{want: "netobs: injected", ready: make(chan struct{})}
			var out bytes.Buffer
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			type ret struct {
				res Result
				err error
			}
			done := make(chan ret, 1)
			go func() {
				res, err := Run(ctx, Options{Ref: nsName, Format: PCAP, Output: &out, Log: log, Inject: in, ReadQueue: readQueue,
					Device: tapdev.Config{Kind: tapdev.TAP, Name: name, TxQueueLen: 2 * sent}})
				done <- ret{res, err}
			}()
			select {
			case <-log.ready:
			case r := <-done:
				t.Fatalf("Run = %+v, %v; log: %s", r.res, r.err, log.String())
			}
			args := []string{"netns", "exec", nsName, "trafgen", "-o", name, "-c", cfg, "-n", fmt.Sprint(sent), "-P", "1", "-C", "-q"}
			if !c.bypass {
				args = append(args, "-Q") // through the qdisc layer and the packet taps
			}
			if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
				t.Fatalf("trafgen: %v: %s", err, out)
			}
			cancel()
			r := <-done
			if r.err != nil || r.res.Reason != Cancelled {
				t.Fatalf("Run = %+v, %v; log: %s", r.res, r.err, log.String())
			}
			if r.res.Ring == readQueue {
				t.Errorf("Result.Ring %v with ReadQueue %v", r.res.Ring, readQueue)
			}
			if r.res.Read != sent || r.res.Dropped != 0 || r.res.Written != injected || r.res.InjectFailed != 0 {
				t.Errorf("Result %+v, want %d read, 0 dropped, %d written", r.res, sent, injected)
			}
			pr, err := pcapgo.NewReader(&out)
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for {
				data, _, err := pr.ReadPacketData()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("pcap record %d: %v", n+1, err)
				}
				if !bytes.Equal(data, want) {
					t.Fatalf("pcap record %d is % x, want the frame sent", n+1, data)
				}
				n++
			}
			if n != sent {
				t.Errorf("pcap holds %d frames, want %d", n, sent)
			}
			if out := nstest.Run(t, "ip", "-n", nsName, "-o", "link", "show", "type", "tun"); strings.TrimSpace(out) != "" {
				t.Errorf("devices left: %s", out)
			}
		})
	}
	nstest.CheckThreads(t)
}

func ci(n int) gopacket.CaptureInfo {
	return gopacket.CaptureInfo{Timestamp: time.Unix(1_800_000_000, 0), CaptureLength: n, Length: n}
}
