package rawio

import (
	"bytes"
	"errors"
	"io"
	"os"
	"testing"
)

// Write waits for room when the pipe is full (EAGAIN) and goes on where it
// stopped; Read returns what is there, then io.EOF once the writer closes.
func TestWriteWaitsReadEOF(t *testing.T) {
	r, w, err := os.Pipe() // non-blocking, in Go's poller
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	want := make([]byte, 1<<20) // far more than a pipe's 64 KiB
	for i := range want {
		want[i] = byte(i * 13)
	}
	wrc, err := w.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	werr := make(chan error, 1)
	go func() {
		n, err := Write(wrc, want)
		if err == nil && n != len(want) {
			err = io.ErrShortWrite
		}
		w.Close()
		werr <- err
	}()
	rrc, err := r.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	buf := make([]byte, 3000)
	for {
		n, err := Read(rrc, buf)
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
		t.Fatalf("read %d bytes, not the %d written", got.Len(), len(want))
	}
}

// A write error comes back as a *os.SyscallError naming write(2).
func TestWriteError(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	r.Close() // EPIPE (Go ignores SIGPIPE on descriptors other than 1 and 2)
	rc, err := w.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var se *os.SyscallError
	if _, err := Write(rc, []byte("x")); !errors.As(err, &se) || se.Syscall != "write" {
		t.Fatalf("write to a pipe without reader: %v, want a write SyscallError", err)
	}
}

// Writev writes every buffer in order, empty ones and more than IOV_MAX of
// them included, going on mid-buffer after the pipe fills (EAGAIN).
func TestWritevWholeInOrder(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var bufs [][]byte
	var want []byte
	for i := 0; i < 3000; i++ {
		b := bytes.Repeat([]byte{byte(i)}, i%700) // i%700 == 0: empty
		bufs = append(bufs, b)
		want = append(want, b...)
	}
	wrc, err := w.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	werr := make(chan error, 1)
	go func() {
		n, err := Writev(wrc, bufs)
		if err == nil && n != int64(len(want)) {
			err = io.ErrShortWrite
		}
		w.Close()
		werr <- err
	}()
	got, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-werr; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("read %d bytes, not the %d written in order", len(got), len(want))
	}
}
