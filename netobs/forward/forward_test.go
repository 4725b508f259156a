package forward

import (
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
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

// udpEchoService answers each datagram on 127.0.0.1 with "re:" and the
// datagram, until the test ends.
func udpEchoService(t *testing.T) net.PacketConn {
	t.Helper()
	svc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() })
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
	return svc
}

func TestUDPSessions(t *testing.T) {
	svc := udpEchoService(t)
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

// echoServer accepts connections on a loopback port and echoes them.
func echoServer(t *testing.T) string {
	t.Helper()
	svc, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() })
	go func() {
		for {
			c, err := svc.Accept()
			if err != nil {
				return
			}
			// Not io.Copy(c, c): that splices through pipes of Go's pool.
			go func() { io.Copy(struct{ io.Writer }{c}, struct{ io.Reader }{c}); c.Close() }()
		}
	}()
	return svc.Addr().String()
}

// TestStatsCountOpenConnections: the totals ServeTCP returns include what
// connections still open at the cancellation relayed.
func TestStatsCountOpenConnections(t *testing.T) {
	var mu sync.Mutex
	var conns []Conn
	addr, stop := serveTCP(t, echoServer(t), func(c Conn) { mu.Lock(); conns = append(conns, c); mu.Unlock() })
	var clients []net.Conn
	for i := 0; i < 5; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
		c.Write([]byte("hello\n"))
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.ReadFull(c, make([]byte, 6)); err != nil {
			t.Fatal(err)
		}
	}
	st := stop() // with the five connections open
	for _, c := range clients {
		c.Close()
	}
	if st.Conns != 5 || st.Up != 30 || st.Down != 30 {
		t.Errorf("stats %+v, want 5 connections, 30 bytes each way", st)
	}
	for _, c := range conns {
		if c.Up != 6 || c.Down != 6 || c.Err != nil {
			t.Errorf("connection %+v, want 6 bytes each way", c)
		}
	}
}

// TestHalfCloseTimeout: once one side has ended its stream, the other
// direction is closed after HalfCloseTimeout without data, and data keeps
// it open.
func TestHalfCloseTimeout(t *testing.T) {
	svc, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	got := make(chan []byte, 1)
	go func() {
		c, err := svc.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.Write([]byte("hi"))
		c.(*net.TCPConn).CloseWrite() // and never closes its reading side
		b, _ := io.ReadAll(c)         // until forward closes the connection
		got <- b
	}()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ended := make(chan Conn, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go ServeTCP(ctx, ln, Config{
		Dial:             func(ctx context.Context) (net.Conn, error) { return net.Dial("tcp", svc.Addr().String()) },
		HalfCloseTimeout: 300 * time.Millisecond,
		Done:             func(c Conn) { ended <- c },
	})
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if b, err := io.ReadAll(c); string(b) != "hi" || err != nil {
		t.Fatalf("read %q, %v", b, err)
	}
	// Data every 50 ms for three timeouts' worth keeps the connection.
	for i := 0; i < 18; i++ {
		if _, err := c.Write([]byte{'a' + byte(i)}); err != nil {
			t.Fatalf("write %d after the half-close: %v", i, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	select {
	case cn := <-ended:
		if !cn.HalfCloseTimeout || cn.Err != nil || cn.Up != 18 || cn.Down != 2 {
			t.Errorf("connection %+v, want closed by the half-close timeout after 18 bytes up, 2 down", cn)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the half-closed connection was not closed")
	}
	if b := <-got; string(b) != "abcdefghijklmnopqr" {
		t.Errorf("the target got %q", b)
	}
}

// pipeFDs counts the pipes among the process's descriptors.
func pipeFDs() int {
	ents, _ := os.ReadDir("/proc/self/fd")
	n := 0
	for _, e := range ents {
		if l, _ := os.Readlink("/proc/self/fd/" + e.Name()); strings.HasPrefix(l, "pipe:") {
			n++
		}
	}
	return n
}

// TestUDPSlowDialHoldsUpOnlyItsClient: while one client's dial hangs,
// other clients are served; the waiting client's datagrams go out once
// its dial is done.
func TestUDPSlowDialHoldsUpOnlyItsClient(t *testing.T) {
	svc := udpEchoService(t)
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	release, dialling := make(chan struct{}), make(chan struct{})
	var first atomic.Bool
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		var d net.Dialer
		ServeUDP(ctx, pc, Config{Dial: func(ctx context.Context) (net.Conn, error) {
			if !first.Swap(true) {
				close(dialling)
				select { // a host name that takes long to look up
				case <-release:
				case <-ctx.Done():
					return nil, ctx.Err()
				}
			}
			return d.DialContext(ctx, "udp", svc.LocalAddr().String())
		}})
	}()
	defer func() { cancel(); <-done }()
	slow, err := net.Dial("udp", pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	slow.Write([]byte("slow1"))
	<-dialling
	slow.Write([]byte("slow2"))
	fast, err := net.Dial("udp", pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer fast.Close()
	read := func(c net.Conn) string {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		b := make([]byte, 100)
		n, err := c.Read(b)
		if err != nil {
			return err.Error()
		}
		return string(b[:n])
	}
	fast.Write([]byte("fast"))
	if got := read(fast); got != "re:fast" {
		t.Fatalf("while another client's dial hangs: %q", got)
	}
	close(release)
	if a, b := read(slow), read(slow); a != "re:slow1" || b != "re:slow2" {
		t.Fatalf("the waiting client got %q, %q", a, b)
	}
}

// TestUDPSessionMemory: an idle session holds no datagram buffer: 500
// sessions take far less than 500 × 64 KiB of heap.
func TestUDPSessionMemory(t *testing.T) {
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
			svc.WriteTo(buf[:n], from)
		}
	}()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		var d net.Dialer
		ServeUDP(ctx, pc, Config{Dial: func(ctx context.Context) (net.Conn, error) {
			return d.DialContext(ctx, "udp", svc.LocalAddr().String())
		}})
	}()
	defer func() { cancel(); <-done }()
	heap := func() uint64 {
		runtime.GC()
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	const n = 500
	before := heap()
	for i := 0; i < n; i++ {
		c, err := net.Dial("udp", pc.LocalAddr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write([]byte("x"))
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Read(make([]byte, 10)); err != nil {
			t.Fatalf("session %d: %v", i, err)
		}
	}
	per := (int64(heap()) - int64(before)) / n
	t.Logf("%d bytes of heap per idle session", per)
	if per > 16<<10 {
		t.Errorf("%d bytes of heap per idle session, want well under a 64 KiB buffer", per)
	}
}
