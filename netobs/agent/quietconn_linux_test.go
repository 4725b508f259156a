package agent

import (
	"bytes"
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

// A quietConn moves every byte in order, also when the writer outruns a
// slow reader (its write waits in the poller on EAGAIN and goes on where
// it stopped) and the reader asks for less than is there.
func TestQuietConnMovesBytes(t *testing.T) {
	a, b := tcpPair(t)
	qa, qb := quiet(a), quiet(b)
	if _, ok := qa.(*quietConn); !ok {
		t.Fatalf("quiet(TCP conn) = %T, want *quietConn", qa)
	}
	want := make([]byte, 8<<20)
	for i := range want {
		want[i] = byte(i * 7)
	}
	werr := make(chan error, 1)
	go func() {
		n, err := qa.Write(want)
		if err == nil && n != len(want) {
			err = io.ErrShortWrite
		}
		a.(*net.TCPConn).CloseWrite()
		werr <- err
	}()
	var got bytes.Buffer
	buf := make([]byte, 4096)
	for {
		n, err := qb.Read(buf)
		got.Write(buf[:n])
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := <-werr; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), want) {
		t.Fatalf("got %d bytes, not the %d written", got.Len(), len(want))
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
