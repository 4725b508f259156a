package agent

import (
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ac := make(chan net.Conn, 1)
	go func() {
		c, _ := l.Accept()
		ac <- c
	}()
	a, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b := <-ac
	if b == nil {
		a.Close()
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

// A TCP conn becomes a quietConn that moves bytes both ways (the raw
// read and write loops themselves are internal/rawio's, tested there).
func TestQuietConnMovesBytes(t *testing.T) {
	a, b := tcpPair(t)
	qa, qb := quiet(a), quiet(b)
	if _, ok := qa.(*quietConn); !ok {
		t.Fatalf("quiet(TCP conn) = %T, want *quietConn", qa)
	}
	for _, dir := range [][2]net.Conn{{qa, qb}, {qb, qa}} {
		if _, err := dir[0].Write([]byte("netobs")); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, 6)
		if _, err := io.ReadFull(dir[1], got); err != nil || string(got) != "netobs" {
			t.Fatalf("read %q, %v; want \"netobs\"", got, err)
		}
	}
}

// A read waiting on a quietConn ends at its deadline and when the
// connection is closed, as a net.Conn's does.
func TestQuietConnDeadlineAndClose(t *testing.T) {
	a, _ := tcpPair(t)
	q := quiet(a)
	q.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	if _, err := q.Read(make([]byte, 10)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past the deadline: %v, want os.ErrDeadlineExceeded", err)
	}
	q.SetReadDeadline(time.Time{})
	done := make(chan error, 1)
	go func() {
		_, err := q.Read(make([]byte, 10))
		done <- err
	}()
	time.Sleep(10 * time.Millisecond)
	q.Close()
	if err := <-done; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("read on a closed conn: %v, want net.ErrClosed", err)
	}
}

// A conn that is not a socket of this process (a port-forward's stream)
// is used as it is.
func TestQuietLeavesOtherConns(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if q := quiet(a); q != a {
		t.Fatalf("quiet(net.Pipe) = %T, want the conn itself", q)
	}
}
