package attach

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/netobs/netobs/internal/nstest"
	"github.com/netobs/netobs/internal/nstest/nsopen"
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
// namespace into the tap or tun while netobs injects M frames into it;
// read through the ring (the default) and through the queue (ReadQueue),
// the output holds exactly the N frames sent, byte for byte, with the
// same link type either way (Ethernet for a tap, raw IP for a tun), none
// of the injected ones, nothing counts as dropped, the M frames are
// written, and the device is gone afterwards; also for a sender that
// bypasses the qdisc layer (trafgen without -Q, PACKET_QDISC_BYPASS),
// whose frames still pass the packet taps. Before tun devices could
// discard, a tun was always read through its queue (Result.Ring false).
func TestRingFramesCountsInject(t *testing.T) {
	nstest.RequireTools(t, "ip", "trafgen")
	nsName := nstest.NetNS(t)
	nstest.Run(t, "ip", "netns", "exec", nsName, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
	dir := t.TempDir()
	type kindCase struct {
		kind     tapdev.Kind
		cfg      string // trafgen's packet
		want     []byte // that packet
		inject   []byte // the frame injected
		linkType layers.LinkType
	}
	kinds := []kindCase{{
		// To a MAC nobody has, a distinct first payload byte so that
		// they cannot be taken for the injected ones, which are
		// addressed to another host's MAC: the namespace drops them
		// without answering.
		kind:     tapdev.TAP,
		cfg:      "{ 0x02,0,0,0,0,0x99, 0x02,0,0,0,0,0x98, 0x08,0x00, 0x5a, fill(0x00, 49) }\n",
		want:     append([]byte{2, 0, 0, 0, 0, 0x99, 2, 0, 0, 0, 0, 0x98, 8, 0, 0x5a}, make([]byte, 49)...),
		inject:   append([]byte{2, 0, 0, 0, 0, 0x97, 2, 0, 0, 0, 0, 0x96, 8, 0, 0xa5}, make([]byte, 49)...),
		linkType: layers.LinkTypeEthernet,
	}, {
		// An IPv4/UDP packet; the injected ones have a bad header
		// checksum, so the namespace drops them without answering.
		kind:     tapdev.TUN,
		cfg:      "{ 0x45,0,0,64, 0,0,0,0, 64,17,0,0, 10,9,9,1, 10,9,9,99, 0x30,0x39, 0,9, 0,44, 0,0, 0x5a, fill(0x00, 35) }\n",
		want:     append([]byte{0x45, 0, 0, 64, 0, 0, 0, 0, 64, 17, 0, 0, 10, 9, 9, 1, 10, 9, 9, 99, 0x30, 0x39, 0, 9, 0, 44, 0, 0, 0x5a}, make([]byte, 35)...),
		inject:   append([]byte{0x45, 0, 0, 64, 0, 0, 0, 0, 64, 17, 0, 0, 10, 9, 9, 97, 10, 9, 9, 98, 0x30, 0x39, 0, 9, 0, 44, 0, 0, 0xa5}, make([]byte, 35)...),
		linkType: layers.LinkTypeRaw,
	}}
	const injected = 500
	const sent = 20000
	for _, k := range kinds {
		cfg := dir + "/" + k.kind.String() + ".cfg"
		if err := os.WriteFile(cfg, []byte(k.cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		inPath := dir + "/" + k.kind.String() + "-in.pcap"
		{
			f, err := os.Create(inPath)
			if err != nil {
				t.Fatal(err)
			}
			w := pcapgo.NewWriter(f)
			w.WriteFileHeader(65535, k.linkType)
			for i := 0; i < injected; i++ {
				if err := w.WritePacket(ci(len(k.inject)), k.inject); err != nil {
					t.Fatal(err)
				}
			}
			f.Close()
		}
		for _, c := range []struct {
			readQueue, bypass bool
		}{{false, false}, {true, false}, {false, true}} {
			readQueue := c.readQueue
			t.Run(fmt.Sprintf("%v,ReadQueue=%v,bypass=%v", k.kind, readQueue, c.bypass), func(t *testing.T) {
				name := nstest.UniqueName(k.kind.String())
				in, err := OpenInject(inPath, k.kind)
				if err != nil {
					t.Fatal(err)
				}
				defer in.Close()
				log := &signalWriter{want: "netobs: injected", ready: make(chan struct{})}
				var out bytes.Buffer
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				done := runAsync(ctx, Options{Ref: nsName, Format: PCAP, Output: &out, Log: log, Inject: in, ReadQueue: readQueue,
					Device: tapdev.Config{Kind: k.kind, Name: name, TxQueueLen: 2 * sent}})
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
				if pr.LinkType() != k.linkType {
					t.Errorf("pcap link type %v, want %v", pr.LinkType(), k.linkType)
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
					if !bytes.Equal(data, k.want) {
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
	}
	nstest.CheckThreads(t)
}

func ci(n int) gopacket.CaptureInfo {
	return gopacket.CaptureInfo{Timestamp: time.Unix(1_800_000_000, 0), CaptureLength: n, Length: n}
}

// TestRingSeesFirstFrame: a sender in the namespace that sends the moment
// the device can take a packet (a UDP socket there, retried until its
// route exists, which is when the device goes up) has its first packet
// read through the ring, none dropped: the ring is bound before the
// device goes up. Before, it was bound after, and such a packet was
// dropped by the device's discard filter without the ring seeing it.
func TestRingSeesFirstFrame(t *testing.T) {
	nstest.RequireTools(t, "ip")
	nsName := nstest.NetNS(t)
	nstest.Run(t, "ip", "netns", "exec", nsName, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
	ns := nsopen.Open(t, nsName)
	for _, kind := range []tapdev.Kind{tapdev.TUN, tapdev.TAP} {
		t.Run(kind.String(), func(t *testing.T) {
			var fd int
			if err := ns.Do(func() error {
				var err error
				fd, err = unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
				return err
			}); err != nil {
				t.Fatal(err)
			}
			defer unix.Close(fd)
			name := nstest.UniqueName(kind.String())
			cfg := tapdev.Config{Kind: kind, Name: name, Addrs: []netip.Prefix{netip.MustParsePrefix("10.74.0.1/24")}}
			var out bytes.Buffer
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := runAsync(ctx, Options{Ref: nsName, Format: PCAP, Output: &out, Device: cfg})
			dst := &unix.SockaddrInet4{Port: 9, Addr: [4]byte{10, 74, 0, 9}}
			payload := []byte("first frame")
			for {
				err := unix.Sendto(fd, payload, 0, dst)
				if err == nil {
					break
				}
				if !errors.Is(err, unix.ENETUNREACH) && !errors.Is(err, unix.EHOSTUNREACH) && !errors.Is(err, unix.ENODEV) {
					t.Fatalf("sendto: %v", err)
				}
				select {
				case r := <-done:
					t.Fatalf("Run = %+v, %v", r.res, r.err)
				default:
				}
				runtime.Gosched()
			}
			// A tap sends an ARP request first (the datagram waits for an
			// answer that never comes): whatever the namespace sent, every
			// frame must have been read.
			time.Sleep(50 * time.Millisecond)
			cancel()
			r := <-done
			if r.err != nil || r.res.Reason != Cancelled {
				t.Fatalf("Run = %+v, %v", r.res, r.err)
			}
			if !r.res.Ring || r.res.Read == 0 || r.res.Dropped != 0 {
				t.Errorf("Result %+v: want the ring, frames read, none dropped", r.res)
			}
			if kind == tapdev.TUN {
				pr, err := pcapgo.NewReader(&out)
				if err != nil {
					t.Fatal(err)
				}
				data, _, err := pr.ReadPacketData()
				if err != nil || !bytes.HasSuffix(data, payload) {
					t.Errorf("first packet read % x (%v), want the datagram", data, err)
				}
			}
		})
	}
}
