package tapdev

import (
	"fmt"
	"os"
	"runtime"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The discard program of a TUN device: an eBPF socket filter that returns
// 0 for every frame ("r0 = 0; exit"), attached with TUNSETFILTEREBPF. The
// kernel runs it in tun_net_xmit after the packet taps and drops the frame
// when it returns 0. The kernel takes TUNATTACHFILTER (classic BPF) only
// on TAP devices; this one works on both, but loading it needs CAP_BPF (or
// CAP_SYS_ADMIN) in the initial user namespace unless
// kernel.unprivileged_bpf_disabled is 0, where the classic filter needs
// nothing beyond the device's descriptor, so TAP devices keep the classic
// one.

// bpfInsn is struct bpf_insn.
type bpfInsn struct {
	code uint8
	regs uint8 // dst_reg:4, src_reg:4
	off  int16
	imm  int32
}

// bpfProgLoadAttr is the head of union bpf_attr for BPF_PROG_LOAD, up to
// prog_name; the kernel reads the fields after it as zero.
type bpfProgLoadAttr struct {
	progType    uint32
	insnCnt     uint32
	insns       uint64
	license     uint64
	logLevel    uint32
	logSize     uint32
	logBuf      uint64
	kernVersion uint32
	progFlags   uint32
	progName    [unix.BPF_OBJ_NAME_LEN]byte
}

// discardProgName is what `bpftool prog` shows for the program.
const discardProgName = "netobs_discard"

// bpfLicense is the empty license string: the program calls no helper,
// so it needs none. Package variables, like discardInsns, do not move
// while the kernel reads them.
var bpfLicense = [1]byte{}

var discardInsns = [2]bpfInsn{
	{code: unix.BPF_ALU64 | unix.BPF_MOV | unix.BPF_K}, // r0 = 0
	{code: unix.BPF_JMP | unix.BPF_EXIT},               // exit
}

// loadDiscardProg loads the discard program and returns its descriptor
// (close-on-exec: the kernel makes every BPF descriptor so). It runs in
// the caller's namespaces: a BPF program belongs to none.
func loadDiscardProg() (int, error) {
	attr := bpfProgLoadAttr{
		progType: unix.BPF_PROG_TYPE_SOCKET_FILTER,
		insnCnt:  uint32(len(discardInsns)),
		insns:    uint64(uintptr(unsafe.Pointer(&discardInsns[0]))),
		license:  uint64(uintptr(unsafe.Pointer(&bpfLicense[0]))),
	}
	copy(attr.progName[:], discardProgName)
	for {
		fd, _, errno := unix.Syscall(unix.SYS_BPF, unix.BPF_PROG_LOAD, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr))
		switch {
		case errno == unix.EINTR || errno == unix.EAGAIN:
			continue
		case errno == unix.EPERM || errno == unix.EACCES:
			return -1, fmt.Errorf("%w: %w (needs CAP_BPF or CAP_SYS_ADMIN, or kernel.unprivileged_bpf_disabled=0)", ErrNoDiscard, os.NewSyscallError("bpf BPF_PROG_LOAD", errno))
		case errno == unix.ENOSYS || errno == unix.EINVAL:
			return -1, fmt.Errorf("%w: %w (no eBPF socket filters in this kernel)", ErrNoDiscard, os.NewSyscallError("bpf BPF_PROG_LOAD", errno))
		case errno != 0:
			return -1, os.NewSyscallError("bpf BPF_PROG_LOAD", errno)
		}
		return int(fd), nil
	}
}

// setFilterEBPF attaches the program prog to the device of q as its
// transmit filter (TUNSETFILTEREBPF), or detaches it if prog is -1. The
// filter belongs to the device, not the queue: it applies to every queue,
// and the kernel holds its own reference to the program, released when
// the filter is replaced or the device is freed.
func (q *Queue) setFilterEBPF(prog int) error {
	arg := int32(prog)
	var errno syscall.Errno
	err := q.rc.Control(func(fd uintptr) {
		_, _, errno = unix.Syscall(unix.SYS_IOCTL, fd, uintptr(unix.TUNSETFILTEREBPF), uintptr(unsafe.Pointer(&arg)))
	})
	if err != nil {
		return err
	}
	if errno != 0 {
		err := os.NewSyscallError("ioctl TUNSETFILTEREBPF", errno)
		if errno == unix.EINVAL || errno == unix.ENOTTY {
			// Kernels before 4.15 have no eBPF filter on tun devices.
			return fmt.Errorf("%w: %w", ErrNoDiscard, err)
		}
		return err
	}
	return nil
}

// progID returns the kernel's ID of the program prog (BPF_OBJ_GET_INFO_BY_FD:
// the head of struct bpf_prog_info is its type and its ID).
func progID(prog int) (uint32, error) {
	// On the heap, which does not move, as the kernel writes it through
	// an address held in attr.
	info := new(struct{ typ, id uint32 })
	attr := struct {
		fd, infoLen uint32
		info        uint64
	}{fd: uint32(prog), infoLen: uint32(unsafe.Sizeof(*info)), info: uint64(uintptr(unsafe.Pointer(info)))}
	_, _, errno := unix.Syscall(unix.SYS_BPF, unix.BPF_OBJ_GET_INFO_BY_FD, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr))
	runtime.KeepAlive(info)
	if errno != 0 {
		return 0, os.NewSyscallError("bpf BPF_OBJ_GET_INFO_BY_FD", errno)
	}
	return info.id, nil
}
