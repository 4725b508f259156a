package rawio

import (
	"io"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Read reads into b once: the bytes there (io.EOF at the end), or waits
// in the poller while none are (a deadline or Close on the conn ends the
// wait, with the poller's error).
func Read(rc syscall.RawConn, b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	var n int
	var rerr error
	err := rc.Read(func(fd uintptr) bool {
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
		return 0, err
	}
	return n, rerr
}

// Write writes all of b, waiting in the poller for room whenever the
// kernel takes none (a deadline or Close ends the wait): the count written
// and, if short, why.
func Write(rc syscall.RawConn, b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	iov := []unix.Iovec{{Base: &b[0]}}
	iov[0].SetLen(len(b))
	n, err := writeAll(rc, iov)
	return int(n), err
}

// Writev writes all of bufs with writev(2), as Write does for one buffer:
// one call for a header and its data where the kernel takes them whole.
// It returns the count written.
func Writev(rc syscall.RawConn, bufs [][]byte) (int64, error) {
	var iov []unix.Iovec
	for _, b := range bufs {
		if len(b) > 0 {
			v := unix.Iovec{Base: &b[0]}
			v.SetLen(len(b))
			iov = append(iov, v)
		}
	}
	return writeAll(rc, iov)
}

// writeAll writes what iov points at, with write(2) while one piece is
// left and writev(2) while more are, going on where a short write stopped
// and waiting in the poller on EAGAIN. An error names the call that failed.
func writeAll(rc syscall.RawConn, iov []unix.Iovec) (int64, error) {
	var done int64
	var werr error
	err := rc.Write(func(fd uintptr) bool {
		for len(iov) > 0 {
			var r uintptr
			var errno unix.Errno
			call := "write"
			if len(iov) == 1 {
				r, _, errno = unix.RawSyscall(unix.SYS_WRITE, fd, uintptr(unsafe.Pointer(iov[0].Base)), uintptr(iov[0].Len))
			} else {
				call = "writev"
				r, _, errno = unix.RawSyscall(unix.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&iov[0])), uintptr(min(len(iov), maxIovecs)))
			}
			switch errno {
			case 0:
				if r == 0 {
					werr = io.ErrShortWrite
					return true
				}
				done += int64(r)
				iov = consumeIovecs(iov, int(r))
			case unix.EINTR:
			case unix.EAGAIN:
				return false // wait in the poller for room
			default:
				werr = os.NewSyscallError(call, errno)
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

// maxIovecs is IOV_MAX on Linux: the most iovecs one writev takes.
const maxIovecs = 1024

// consumeIovecs drops the first n bytes from iov.
func consumeIovecs(iov []unix.Iovec, n int) []unix.Iovec {
	for len(iov) > 0 && n >= int(iov[0].Len) {
		n -= int(iov[0].Len)
		iov = iov[1:]
	}
	if n > 0 {
		iov[0].Base = (*byte)(unsafe.Add(unsafe.Pointer(iov[0].Base), n))
		iov[0].Len -= uint64(n)
	}
	return iov
}
