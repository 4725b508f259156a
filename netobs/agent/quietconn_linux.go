package agent

import (
	"io"
	"net"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// quietConn reads and writes a socket with read(2) and write(2) made as
// raw system calls on its non-blocking descriptor, and waits in Go's
// poller only when the kernel answers EAGAIN. A call on a non-blocking
// socket never waits in the kernel, so the Go runtime gains nothing from
// being told of it (entersyscall), and telling it costs: each such call
// from a goroutine that keeps going idle and busy again wakes the
// runtime's monitor thread into a run of 20 µs sleeps (pktout's rawFile
// does the same for regular files, for the same reason). Deadlines and
// Close still end a wait, as the poller keeps them.
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

func (c *quietConn) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	var n int
	var rerr error
	err := c.rc.Read(func(fd uintptr) bool {
		for {
			r, _, errno := unix.RawSyscall(unix.SYS_READ, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
			switch errno {
			case 0:
				if n = int(r); n == 0 {
					rerr = io.EOF
				}
				return true
			case unix.EINTR:
				continue
			case unix.EAGAIN:
				return false // wait in the poller
			default:
				rerr = os.NewSyscallError("read", errno)
				return true
			}
		}
	})
	if err != nil {
		return 0, err // closed, or the deadline passed
	}
	return n, rerr
}

func (c *quietConn) Write(b []byte) (int, error) {
	done := 0
	var werr error
	err := c.rc.Write(func(fd uintptr) bool {
		for done < len(b) {
			r, _, errno := unix.RawSyscall(unix.SYS_WRITE, fd, uintptr(unsafe.Pointer(&b[done])), uintptr(len(b)-done))
			switch errno {
			case 0:
				if r == 0 {
					werr = io.ErrShortWrite
					return true
				}
				done += int(r)
			case unix.EINTR:
			case unix.EAGAIN:
				return false // wait in the poller for room
			default:
				werr = os.NewSyscallError("write", errno)
				return true
			}
		}
		return true
	})
	if err != nil {
		return done, err
	}
	return done, werr
}
