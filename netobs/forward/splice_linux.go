package forward

import (
	"net"
	"os"

	"golang.org/x/sys/unix"
)

// maxSplice is the most one splice moves, and the size asked for the pipe
// (the default limit of /proc/sys/fs/pipe-max-size), as Go's own splice.
const maxSplice = 1 << 20

// copyStream copies src to dst until src ends (nil) or fails, calling
// progress after each chunk written. Between two TCP sockets it splices
// through a pipe of its own, created here and closed on return: Go's
// io.Copy would splice too, but through pipes from a process-wide pool
// that keeps one pair per peak connection open until the garbage collector
// runs, thousands of fds after a burst. src's and dst's deadlines apply.
func copyStream(dst, src net.Conn, progress func(int)) error {
	s, ok1 := src.(*net.TCPConn)
	d, ok2 := dst.(*net.TCPConn)
	if !ok1 || !ok2 {
		return copyBuffered(dst, src, progress)
	}
	rs, err := s.SyscallConn()
	if err != nil {
		return err
	}
	rd, err := d.SyscallConn()
	if err != nil {
		return err
	}
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		return os.NewSyscallError("pipe2", err)
	}
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	unix.FcntlInt(uintptr(p[0]), unix.F_SETPIPE_SZ, maxSplice) // a smaller pipe works too

	const flags = unix.SPLICE_F_MOVE | unix.SPLICE_F_NONBLOCK
	for {
		var n int64
		var serr error
		// The pipe is empty here, so EAGAIN means src has nothing yet.
		err := rs.Read(func(fd uintptr) bool {
			for {
				n, serr = unix.Splice(int(fd), nil, p[1], nil, maxSplice, flags)
				if serr != unix.EINTR {
					return serr != unix.EAGAIN
				}
			}
		})
		if err != nil {
			return err // a deadline, or closed
		}
		if serr != nil {
			return os.NewSyscallError("splice", serr)
		}
		if n == 0 {
			return nil // end of stream
		}
		left := n
		err = rd.Write(func(fd uintptr) bool {
			for left > 0 {
				m, werr := unix.Splice(p[0], nil, int(fd), nil, int(left), flags)
				switch werr {
				case nil:
					left -= m
				case unix.EINTR:
				case unix.EAGAIN:
					return false
				default:
					serr = werr
					return true
				}
			}
			return true
		})
		if err != nil {
			return err
		}
		if serr != nil {
			return os.NewSyscallError("splice", serr)
		}
		progress(int(n))
	}
}
