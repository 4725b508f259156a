package agent

import (
	"net"
	"syscall"

	"github.com/netobs/netobs/internal/rawio"
)

// quietConn reads and writes a socket with read(2) and write(2) made as
// raw system calls on its non-blocking descriptor (internal/rawio), and
// waits in Go's poller only when the kernel answers EAGAIN: a call on a
// non-blocking socket never waits in the kernel, and telling the runtime
// of it wakes sysmon (pktout's rawFile does the same for regular files).
// Deadlines and Close still end a wait, as the poller keeps them.
type quietConn struct {
	net.Conn
	rc syscall.RawConn
}

// quiet returns c as a quietConn when it is a socket of this process
// (TCP, unix), else c itself (a port-forward's stream, a pipe in tests).
func quiet(c net.Conn) net.Conn {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return c
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return c
	}
	return &quietConn{Conn: c, rc: rc}
}

func (c *quietConn) Read(b []byte) (int, error)  { return rawio.Read(c.rc, b) }
func (c *quietConn) Write(b []byte) (int, error) { return rawio.Write(c.rc, b) }

// Writev writes all of bufs with one writev(2) where the socket has room.
func (c *quietConn) Writev(bufs [][]byte) (int64, error) { return rawio.Writev(c.rc, bufs) }
