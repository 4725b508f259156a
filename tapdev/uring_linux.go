package tapdev

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// uring reads frames with io_uring: one io_uring_enter submits a batch of
// reads of the TUN/TAP descriptor and the kernel runs them at once, so a
// batch of frames costs one system call instead of one each. On kernels
// with page-table isolation a system call entry is a large share of the
// cost of reading one small frame.
//
// The descriptor is non-blocking, so io_uring completes every read inline
// (a frame or -EAGAIN) and never hands one to its worker threads; Read
// still waits for every completion before returning, so the kernel never
// writes into a buffer after ReadBatch returns.
type uring struct {
	fd      int
	sqRing  []byte
	cqRing  []byte
	sqes    []byte
	entries uint32

	sqHead, sqTail *uint32
	sqMask         *uint32
	sqArray        unsafe.Pointer
	cqHead, cqTail *uint32
	cqMask         *uint32
	cqes           unsafe.Pointer

	// gen numbers the batches; a completion's user data holds the batch
	// and the index in it, so a completion left from an earlier batch
	// can never be taken for one of this batch.
	gen uint32
}

type uringParams struct {
	sqEntries, cqEntries, flags, sqThreadCPU, sqThreadIdle, features, wqFD uint32
	resv                                                                   [3]uint32
	sqOff                                                                  struct {
		head, tail, ringMask, ringEntries, flags, dropped, array, resv1 uint32
		userAddr                                                        uint64
	}
	cqOff struct {
		head, tail, ringMask, ringEntries, overflow, cqes, flags, resv1 uint32
		userAddr                                                        uint64
	}
}

type uringSQE struct {
	opcode, flags uint8
	ioprio        uint16
	fd            int32
	off, addr     uint64
	len, rwFlags  uint32
	userData      uint64
	bufIndex      uint16
	personality   uint16
	spliceFdIn    int32
	addr3, pad    uint64
}

type uringCQE struct {
	userData uint64
	res      int32
	flags    uint32
}

// errNotTaken: the kernel took none of the requests of a batch (they were
// withdrawn); the caller does the batch with read(2) or write(2).
var errNotTaken = errors.New("io_uring took no request")

// uringOps are the opcodes of reads and writes (IORING_OP_READ and
// IORING_OP_WRITE, Linux 5.6). Kernels 5.1 to 5.5 fail them with EINVAL;
// tests set other values to play such a kernel.
var uringOps = struct{ read, write uint8 }{22, 23}

const (
	ioringEnterGetEvents = 1
	ioringFeatSingleMmap = 1
	ioringOffSQRing      = 0
	ioringOffCQRing      = 0x8000000
	ioringOffSQEs        = 0x10000000
)

// newUring sets up a ring for batches of up to entries reads; it returns
// an error where io_uring is missing or disabled (kernel.io_uring_disabled,
// seccomp), and the caller falls back to one read(2) per frame.
func newUring(entries uint32) (*uring, error) {
	var p uringParams
	fd, _, errno := unix.Syscall(unix.SYS_IO_URING_SETUP, uintptr(entries), uintptr(unsafe.Pointer(&p)), 0)
	if errno != 0 {
		return nil, os.NewSyscallError("io_uring_setup", errno)
	}
	// io_uring descriptors are close-on-exec from birth.
	r := &uring{fd: int(fd), entries: p.sqEntries}
	sqSize := int(p.sqOff.array + p.sqEntries*4)
	cqSize := int(p.cqOff.cqes + p.cqEntries*uint32(unsafe.Sizeof(uringCQE{})))
	single := p.features&ioringFeatSingleMmap != 0
	if single && cqSize > sqSize {
		sqSize = cqSize
	}
	var err error
	if r.sqRing, err = unix.Mmap(r.fd, ioringOffSQRing, sqSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
		r.close()
		return nil, os.NewSyscallError("mmap", err)
	}
	r.cqRing = r.sqRing
	if !single {
		if r.cqRing, err = unix.Mmap(r.fd, ioringOffCQRing, cqSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
			r.close()
			return nil, os.NewSyscallError("mmap", err)
		}
	}
	if r.sqes, err = unix.Mmap(r.fd, ioringOffSQEs, int(p.sqEntries)*int(unsafe.Sizeof(uringSQE{})), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
		r.close()
		return nil, os.NewSyscallError("mmap", err)
	}
	sq, cq := unsafe.Pointer(&r.sqRing[0]), unsafe.Pointer(&r.cqRing[0])
	r.sqHead = (*uint32)(unsafe.Add(sq, p.sqOff.head))
	r.sqTail = (*uint32)(unsafe.Add(sq, p.sqOff.tail))
	r.sqMask = (*uint32)(unsafe.Add(sq, p.sqOff.ringMask))
	r.sqArray = unsafe.Add(sq, p.sqOff.array)
	r.cqHead = (*uint32)(unsafe.Add(cq, p.cqOff.head))
	r.cqTail = (*uint32)(unsafe.Add(cq, p.cqOff.tail))
	r.cqMask = (*uint32)(unsafe.Add(cq, p.cqOff.ringMask))
	r.cqes = unsafe.Add(cq, p.cqOff.cqes)
	return r, nil
}

func (r *uring) close() {
	if r.sqes != nil {
		unix.Munmap(r.sqes)
	}
	if len(r.cqRing) > 0 && &r.cqRing[0] != &r.sqRing[0] {
		unix.Munmap(r.cqRing)
	}
	if r.sqRing != nil {
		unix.Munmap(r.sqRing)
	}
	unix.Close(r.fd)
}

// do submits op (read or write) of bufs[i] on fd for i < k, waits for
// the completion of every operation the kernel took and stores each
// result (a length or -errno) in res[i]. It returns how many it
// submitted: the kernel may take fewer than asked (it stops at the first
// request it cannot even start, as kernels without IORING_OP_READ do),
// and those it did not take are withdrawn from the submission queue, so
// no request of this batch runs later. Operations run in submission
// order.
func (r *uring) do(op uint8, fd int, bufs [][]byte, k int, res *[256]int32) (int, error) {
	k = min(k, int(r.entries), len(res))
	r.gen++
	tail := atomic.LoadUint32(r.sqTail)
	mask := *r.sqMask
	for i := 0; i < k; i++ {
		idx := (tail + uint32(i)) & mask
		sqe := (*uringSQE)(unsafe.Pointer(&r.sqes[int(idx)*int(unsafe.Sizeof(uringSQE{}))]))
		var addr uint64
		if len(bufs[i]) > 0 {
			addr = uint64(uintptr(unsafe.Pointer(&bufs[i][0])))
		}
		// RWF_NOWAIT: a read of an empty queue fails with EAGAIN at once
		// instead of being parked in the kernel, out of Close's reach.
		*sqe = uringSQE{opcode: op, fd: int32(fd), addr: addr, len: uint32(len(bufs[i])), rwFlags: unix.RWF_NOWAIT, userData: uint64(r.gen)<<32 | uint64(i)}
		*(*uint32)(unsafe.Add(r.sqArray, idx*4)) = idx
		res[i] = -int32(unix.ECANCELED)
	}
	atomic.StoreUint32(r.sqTail, tail+uint32(k))
	defer runtime.KeepAlive(bufs)

	// Submit and wait in one call. The kernel does not wait when it took
	// fewer than asked; the submission queue's head says how many it
	// took, whatever the call returned (EINTR included). The call is a raw
	// system call: with RWF_NOWAIT every operation completes (or fails
	// with EAGAIN) inline, so it never sleeps, however long a batch of 64
	// copies takes (tens of microseconds). Made as a blocking system call,
	// the runtime's monitor would see the P in a long system call, hand it
	// to another thread and wake that thread, batch after batch: measured
	// 15-20 % of attach's CPU per frame on a 2-core AMD VM.
	_, errno := r.enterNoWait(uint32(k), uint32(k), ioringEnterGetEvents)
	head := atomic.LoadUint32(r.sqHead)
	n := head - tail
	if n > uint32(k) {
		// Not what the kernel can report; never trust it past k.
		n = uint32(k)
	}
	if n < uint32(k) {
		// Withdraw what the kernel did not take: with no SQPOLL thread,
		// it reads entries only up to the tail, during io_uring_enter.
		atomic.StoreUint32(r.sqTail, head)
	}
	if n == 0 {
		if errno == 0 || errno == unix.EINTR {
			errno = unix.EAGAIN
		}
		return 0, fmt.Errorf("%w: %w", errNotTaken, os.NewSyscallError("io_uring_enter", errno))
	}
	got := r.reap(n, res)
	for got < n {
		_, errno := r.enter(0, n-got, ioringEnterGetEvents)
		if errno != 0 && errno != unix.EINTR {
			return int(n), os.NewSyscallError("io_uring_enter", errno)
		}
		got += r.reap(n, res)
	}
	return int(n), nil
}

// enterNoWait is io_uring_enter for a batch that cannot sleep (see do).
func (r *uring) enterNoWait(submit, wait uint32, flags uintptr) (int, unix.Errno) {
	n, _, errno := unix.RawSyscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), uintptr(submit), uintptr(wait), flags, 0, 0)
	return int(n), errno
}

// enter is io_uring_enter for a wait that may sleep.
func (r *uring) enter(submit, wait uint32, flags uintptr) (int, unix.Errno) {
	n, _, errno := unix.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), uintptr(submit), uintptr(wait), flags, 0, 0)
	return int(n), errno
}

// reap takes the completions of this batch (of n operations) from the
// completion queue into res and returns how many it took; completions of
// earlier batches are dropped.
func (r *uring) reap(n uint32, res *[256]int32) uint32 {
	head := atomic.LoadUint32(r.cqHead)
	ctail := atomic.LoadUint32(r.cqTail)
	cmask := *r.cqMask
	var got uint32
	for ; head != ctail; head++ {
		cqe := (*uringCQE)(unsafe.Add(r.cqes, uintptr(head&cmask)*unsafe.Sizeof(uringCQE{})))
		if uint32(cqe.userData>>32) == r.gen && uint32(cqe.userData) < n {
			res[uint32(cqe.userData)] = cqe.res
			got++
		}
	}
	atomic.StoreUint32(r.cqHead, head)
	return got
}

// read reads up to k frames of fd into bufs. Frames land in the order the
// device queued them; it returns how many were read, compacted to the
// front of bufs and sizes, and the first error other than EAGAIN.
func (r *uring) read(fd int, bufs [][]byte, sizes []int, k int) (int, error) {
	var res [256]int32
	k, err := r.do(uringOps.read, fd, bufs, k, &res)
	if err != nil {
		return 0, err
	}
	n := 0
	for i := 0; i < k; i++ {
		switch {
		case res[i] >= 0:
			if n != i {
				bufs[n], bufs[i] = bufs[i], bufs[n]
			}
			sizes[n] = int(res[i])
			n++
		case unix.Errno(-res[i]) == unix.EAGAIN || unix.Errno(-res[i]) == unix.EINTR:
		case err == nil:
			err = os.NewSyscallError("read", unix.Errno(-res[i]))
		}
	}
	return n, err
}
