package forward

import (
	"bytes"
	"context"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// serve starts ServeTCP on a loopback listener towards target and returns
// the listener's address and a function that stops it and returns stats.
func serveTCP(t *testing.T, target string, done func(Conn)) (string, func() Stats) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var (
		st   Stats
		serr error
		wg   sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		var d net.Dialer
		st, serr = ServeTCP(ctx, ln, Config{
			Dial: func(ctx context.Context) (net.Conn, error) { return d.DialContext(ctx, "tcp", target) },
			Done: done,
		})
	}()
	return ln.Addr().String(), func() Stats {
		cancel()
		wg.Wait()
		if serr != nil {
			t.Errorf("ServeTCP: %v", serr)
		}
		return st
	}
}

// TestHalfClose: each side's end of stream reaches the other while the
// other direction stays open.
func TestHalfClose(t *testing.T) {
	svc, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	go func() {
		for {
			c, err := svc.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				// Greet and half-close first, then read to EOF, then
				// answer with the length read: both half-closes needed.
				c.Write([]byte("hello"))
				c.(*net.TCPConn).CloseWrite()
				b, _ := io.ReadAll(c)
				_ = b
			}()
		}
	}()
	addr, stop := serveTCP(t, svc.Addr().String(), nil)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(c) // EOF arrives while our side is still open
	if err != nil || string(got) != "hello" {
		t.Fatalf("read %q, %v", got, err)
	}
	if _, err := c.Write(bytes.Repeat([]byte("x"), 100000)); err != nil {
		t.Fatalf("write after the peer's half-close: %v", err)
	}
	c.(*net.TCPConn).CloseWrite()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("after both half-closes: %v, want EOF", err)
	}
	c.Close()
	st := stop()
	if st.Conns != 1 || st.Down != 5 {
		t.Errorf("stats %+v", st)
	}
}

func TestRefusedTargetKeepsServing(t *testing.T) {
	// A port nobody listens on: take one and close it.
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := l.Addr().String()
	l.Close()
	var mu sync.Mutex
	var conns []Conn
	addr, stop := serveTCP(t, dead, func(c Conn) { mu.Lock(); conns = append(conns, c); mu.Unlock() })
	for i := 0; i < 3; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if n, err := c.Read(make([]byte, 1)); n != 0 || err == nil {
			t.Fatalf("read from refused relay: %d, %v", n, err)
		}
		c.Close()
	}
	st := stop()
	if st.Conns != 3 || st.Failed != 3 || len(conns) != 3 || conns[0].Err == nil {
		t.Fatalf("stats %+v, conns %+v", st, conns)
	}
}

func TestUDPSessions(t *testing.T) {
	svc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	go func() {
		buf := make([]byte, 2000)
		for {
			n, from, err := svc.ReadFrom(buf)
			if err != nil {
				return
			}
			svc.WriteTo(append([]byte("re:"), buf[:n]...), from)
		}
	}()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ended := make(chan Conn, 10)
	var st Stats
	done := make(chan struct{})
	go func() {
		defer close(done)
		var d net.Dialer
		st, _ = ServeUDP(ctx, pc, Config{
			Dial: func(ctx context.Context) (net.Conn, error) {
				return d.DialContext(ctx, "udp", svc.LocalAddr().String())
			},
			UDPIdle: 200 * time.Millisecond,
			Done:    func(c Conn) { ended <- c },
		})
	}()
	for i := 0; i < 3; i++ {
		c, err := net.Dial("udp", pc.LocalAddr().String())
		if err != nil {
			t.Fatal(err)
		}
		for j := 0; j < 2; j++ {
			c.Write([]byte("ping"))
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			b := make([]byte, 100)
			n, err := c.Read(b)
			if err != nil || string(b[:n]) != "re:ping" {
				t.Fatalf("client %d: %q, %v", i, b[:n], err)
			}
		}
		c.Close()
	}
	// Idle sessions end by themselves.
	for i := 0; i < 3; i++ {
		select {
		case c := <-ended:
			if c.Up != 8 || c.Down != 14 || c.Err != nil {
				t.Errorf("session %+v", c)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("sessions did not end after the idle timeout")
		}
	}
	cancel()
	<-done
	if st.Conns != 3 || st.Up != 24 {
		t.Errorf("stats %+v", st)
	}
}

// TestUDPTargetRefusesThenComesUp: a session whose target refused
// datagrams (ICMP port unreachable) carries on once the target is there.
func TestUDPTargetRefusesThenComesUp(t *testing.T) {
	l, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	target := l.LocalAddr().String()
	l.Close()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ended := make(chan Conn, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		var d net.Dialer
		ServeUDP(ctx, pc, Config{
			Dial: func(ctx context.Context) (net.Conn, error) { return d.DialContext(ctx, "udp", target) },
			Done: func(c Conn) { ended <- c },
		})
	}()
	c, err := net.Dial("udp", pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("nobody"))
	time.Sleep(100 * time.Millisecond) // the ICMP error arrives
	svc, err := net.ListenPacket("udp", target)
	if err != nil {
		t.Fatalf("rebind the target port: %v", err)
	}
	defer svc.Close()
	go func() {
		b := make([]byte, 100)
		for {
			n, from, err := svc.ReadFrom(b)
			if err != nil {
				return
			}
			svc.WriteTo(b[:n], from)
		}
	}()
	var got string
	for try := 0; try < 5 && got == ""; try++ {
		c.Write([]byte("up"))
		c.SetReadDeadline(time.Now().Add(time.Second))
		b := make([]byte, 100)
		if n, err := c.Read(b); err == nil {
			got = string(b[:n])
		}
	}
	if got != "up" {
		t.Fatalf("no reply once the target is up")
	}
	cancel()
	<-done
	if s := <-ended; s.Err == nil || !strings.Contains(s.Err.Error(), "refused") {
		t.Errorf("session error %v, want the refusal recorded", s.Err)
	}
}
