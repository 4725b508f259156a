package forward_test

import (
	"context"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/netobs/netobs/internal/nstest"
	"github.com/netobs/netobs/netobs/forward"
	"github.com/netobs/netobs/netobs/nsnet"
	"github.com/netobs/netobs/nsjoin"
)

func init() { runtime.LockOSThread() }

func socketFDs() int {
	ents, _ := os.ReadDir("/proc/self/fd")
	n := 0
	for _, e := range ents {
		if l, _ := os.Readlink("/proc/self/fd/" + e.Name()); strings.HasPrefix(l, "socket:") {
			n++
		}
	}
	return n
}

// TestShutdownLeavesNothing: cancelling ServeTCP and ServeUDP with
// connections and sessions still open closes every socket and ends every
// goroutine they started, and no thread stays in the namespace.
func TestShutdownLeavesNothing(t *testing.T) {
	name := nstest.NetNS(t)
	ns, err := nsjoin.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	svc, err := nsnet.Listen(ns, "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	usvc, err := nsnet.ListenPacket(ns, "udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer usvc.Close()
	go func() {
		for {
			c, err := svc.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	go func() {
		b := make([]byte, 100)
		for {
			n, from, err := usvc.ReadFrom(b)
			if err != nil {
				return
			}
			usvc.WriteTo(b[:n], from)
		}
	}()
	time.Sleep(50 * time.Millisecond)
	baseG, baseS := nstest.Goroutines(), socketFDs()

	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	pc, _ := net.ListenPacket("udp", "127.0.0.1:0")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 2)
	go func() {
		_, err := forward.ServeTCP(ctx, ln, forward.Config{Dial: func(ctx context.Context) (net.Conn, error) {
			return nsnet.DialContext(ctx, ns, "tcp", svc.Addr().String())
		}})
		done <- err
	}()
	go func() {
		_, err := forward.ServeUDP(ctx, pc, forward.Config{Dial: func(ctx context.Context) (net.Conn, error) {
			return nsnet.DialContext(ctx, ns, "udp", usvc.LocalAddr().String())
		}})
		done <- err
	}()
	var clients []net.Conn
	for i := 0; i < 20; i++ {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
		c.Write([]byte("x"))
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
			t.Fatal(err)
		}
		u, _ := net.Dial("udp", pc.LocalAddr().String())
		clients = append(clients, u)
		u.Write([]byte("y"))
		u.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := u.Read(make([]byte, 10)); err != nil {
			t.Fatal(err)
		}
	}
	cancel() // with 20 TCP connections and 20 UDP sessions open
	for i := 0; i < 2; i++ {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range clients {
		c.Close()
	}
	var g, s int
	for i := 0; i < 400; i++ {
		if g, s = nstest.Goroutines(), socketFDs(); g <= baseG && s <= baseS {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if g > baseG || s > baseS {
		buf := make([]byte, 1<<16)
		t.Errorf("after shutdown: %d goroutines (%d before), %d sockets (%d before)\n%s", g, baseG, s, baseS, buf[:runtime.Stack(buf, true)])
	}
	nstest.CheckThreads(t)
}
