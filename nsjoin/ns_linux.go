package nsjoin

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// NetnsRunDir is where `ip netns add` keeps named network namespaces.
const NetnsRunDir = "/run/netns"

// Kernel ioctls on nsfs files (linux/nsfs.h); x/sys/unix does not carry them.
const (
	nsGetUserns = 0xb701     // NS_GET_USERNS: fd of the owning user namespace
	nsGetNstype = 0xb703     // NS_GET_NSTYPE: CLONE_NEW* of the namespace
	nsGetOwner  = 0xb704     // NS_GET_OWNER_UID (user namespaces only)
	nsGetID     = 0x8008b70d // NS_GET_ID: 64-bit namespace ID (6.18+)
)

var cloneFlags = map[Type]int{
	User: unix.CLONE_NEWUSER, Cgroup: unix.CLONE_NEWCGROUP, IPC: unix.CLONE_NEWIPC,
	UTS: unix.CLONE_NEWUTS, Net: unix.CLONE_NEWNET, PID: unix.CLONE_NEWPID,
	Mnt: unix.CLONE_NEWNS, Time: unix.CLONE_NEWTIME,
}

// CloneFlag returns the CLONE_NEW* flag of t, or 0 for an invalid type.
func (t Type) CloneFlag() int { return cloneFlags[t] }

func typeFromCloneFlag(flag int) Type {
	for t, f := range cloneFlags {
		if f == flag {
			return t
		}
	}
	return 0
}

// Open opens a network namespace by reference: a path to an nsfs file, a
// PID, an `ip netns` name or "self". A path to a namespace of another type
// is refused with a *WrongTypeError.
func Open(ref string) (*NS, error) { return OpenType(ref, Net) }

// OpenType opens the namespace of type t named by ref. For PID and "self"
// references t chooses the file under /proc/PID/ns; a path must be a
// namespace of type t; a name refers to /run/netns and needs t == Net.
func OpenType(ref string, t Type) (*NS, error) {
	ns, err := openRef(ref, t)
	return ns, wrap("open", ref, err)
}

// OpenFile opens the nsfs file at path, whatever type of namespace it is.
func OpenFile(path string) (*NS, error) {
	ns, err := openPath(path, path, 0)
	return ns, wrap("open", path, err)
}

// Self opens the calling process's own namespace of type t.
func Self(t Type) (*NS, error) { return OpenType("self", t) }

func openRef(ref string, t Type) (*NS, error) {
	if !t.Valid() {
		return nil, fmt.Errorf("invalid namespace type %v", t)
	}
	kind, pid, err := parseRef(ref)
	if err != nil {
		return nil, err
	}
	switch kind {
	case refPath:
		return openPath(ref, ref, t)
	case refSelf:
		return openPath(ref, "/proc/self/ns/"+t.String(), t)
	case refPID:
		return openPID(ref, pid, t)
	}
	if t != Net {
		return nil, fmt.Errorf("%w: names refer to network namespaces under %s, not %s namespaces", ErrWrongType, NetnsRunDir, t)
	}
	path := filepath.Join(NetnsRunDir, ref)
	ns, err := openPath(ref, path, t)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w %q (see ip netns list)", ErrNotFound, ref)
	}
	return ns, err
}

// pidfdThread is PIDFD_THREAD (Linux 6.9): a pidfd for a single thread.
const pidfdThread = unix.O_EXCL

// openPID opens /proc/PID/ns/TYPE while holding a pidfd of the process, and
// checks after opening that the process is still the one the pidfd holds,
// so a PID reused between the two steps is detected instead of silently
// giving another process's namespace. A thread ID names that thread's
// namespaces (threads can differ), as with nsenter -t TID.
func openPID(ref string, pid int, t Type) (*NS, error) {
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err == unix.ENOENT {
		// Not a thread-group leader: a thread of another process.
		pidfd, err = unix.PidfdOpen(pid, pidfdThread)
		if err == unix.EINVAL {
			return nil, fmt.Errorf("%w: %d is a thread of process %s, not a process (name the process)", ErrNoProcess, pid, tgidOf(pid))
		}
	}
	if err != nil {
		if err == unix.ESRCH || err == unix.ENOENT {
			return nil, noProcess(pid)
		}
		return nil, os.NewSyscallError("pidfd_open", err)
	}
	unix.CloseOnExec(pidfd) // pidfd_open sets it; stated here for the record
	ns, err := openPath(ref, fmt.Sprintf("/proc/%d/ns/%s", pid, t), t)
	if err != nil {
		unix.Close(pidfd)
		if errors.Is(err, fs.ErrNotExist) {
			if !pidfdExited(pidfd) && !kernelHas(t) {
				return nil, fmt.Errorf("%w: this kernel has no %s namespaces", ErrUnsupported, t)
			}
			return nil, fmt.Errorf("%w: PID %d exited", ErrNoProcess, pid)
		}
		return nil, err
	}
	if pidfdExited(pidfd) {
		unix.Close(pidfd)
		ns.Close()
		return nil, fmt.Errorf("%w: PID %d exited while it was being opened", ErrNoProcess, pid)
	}
	ns.pid, ns.pidfd = pid, pidfd
	return ns, nil
}

// noProcess says that no process has pid, and where a named namespace of
// that name would be, since digits are read as a PID.
func noProcess(pid int) error {
	path := filepath.Join(NetnsRunDir, strconv.Itoa(pid))
	if _, err := os.Lstat(path); err == nil {
		return fmt.Errorf("%w %d; for the named namespace use %s", ErrNoProcess, pid, path)
	}
	return fmt.Errorf("%w: PID %d (did the process exit?)", ErrNoProcess, pid)
}

// tgidOf returns the process a thread belongs to, from /proc/TID/status.
func tgidOf(tid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", tid))
	if err != nil {
		return "?"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "Tgid:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}

// KernelHas reports whether the running kernel has namespaces of type t
// (whether /proc/self/ns/TYPE exists).
func KernelHas(t Type) bool { return kernelHas(t) }

func kernelHas(t Type) bool {
	_, err := os.Lstat("/proc/self/ns/" + t.String())
	return err == nil
}

// openPath opens an nsfs file. want == 0 accepts any type.
func openPath(ref, path string, want Type) (*NS, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return nil, pathError("stat", path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, fmt.Errorf("%s%w", pathIfNot(ref, path), ErrNotNamespace)
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, pathError("open", path, err)
	}
	ns, err := newFromFD(ref, path, fd, want)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	return ns, nil
}

// newFromFD checks that fd is an nsfs file of type want (any when 0) and
// wraps it. It takes ownership of fd only on success.
func newFromFD(ref, path string, fd int, want Type) (*NS, error) {
	var sfs unix.Statfs_t
	if err := unix.Fstatfs(fd, &sfs); err != nil {
		return nil, os.NewSyscallError("fstatfs", err)
	}
	if sfs.Type != unix.NSFS_MAGIC {
		hint := ""
		if strings.HasPrefix(path, NetnsRunDir+"/") {
			hint = " (its bind mount is missing; remove it with: ip netns del " + filepath.Base(path) + ")"
		}
		return nil, fmt.Errorf("%s%w%s", pathIfNot(ref, path), ErrNotNamespace, hint)
	}
	t, err := fdType(fd)
	if err != nil {
		return nil, err
	}
	if want != 0 && t != want {
		return nil, &WrongTypeError{Got: t, Want: want}
	}
	id, err := fdID(fd)
	if err != nil {
		return nil, err
	}
	return &NS{typ: t, id: id, ref: ref, path: path, fd: fd, pidfd: -1}, nil
}

// pathIfNot returns "path " when it says more than ref does.
func pathIfNot(ref, path string) string {
	if ref == path {
		return ""
	}
	return path + " "
}

func fdType(fd int) (Type, error) {
	flag, err := unix.IoctlRetInt(fd, nsGetNstype)
	if err != nil {
		return 0, os.NewSyscallError("ioctl NS_GET_NSTYPE", err)
	}
	t := typeFromCloneFlag(flag)
	if t == 0 {
		return 0, fmt.Errorf("unknown namespace type flag %#x", flag)
	}
	return t, nil
}

func fdID(fd int) (ID, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return ID{}, os.NewSyscallError("fstat", err)
	}
	id := ID{Dev: st.Dev, Inode: st.Ino}
	var nsid uint64
	// Older kernels answer ENOTTY; the inode alone then identifies it.
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), nsGetID, uintptr(unsafe.Pointer(&nsid))); errno == 0 {
		id.NSID = nsid
	}
	return id, nil
}

// pathError turns a failed path syscall into a message that names the fix.
func pathError(op, path string, err error) error {
	switch err {
	case unix.ENOENT:
		return &fs.PathError{Op: op, Path: path, Err: unix.ENOENT} // errors.Is(err, fs.ErrNotExist)
	case unix.EACCES, unix.EPERM:
		return fmt.Errorf("%s %s: %w (needs root, or CAP_SYS_PTRACE for another user's process)", op, path, err)
	}
	return &fs.PathError{Op: op, Path: path, Err: os.NewSyscallError(op, err)}
}

// Close releases the handle. It is idempotent and safe to call while other
// goroutines use the handle: their later calls fail with ErrClosed.
func (ns *NS) Close() error {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	if ns.closed {
		return nil
	}
	ns.closed = true
	var err error
	if ns.fd >= 0 {
		err = unix.Close(ns.fd)
		ns.fd = -1
	}
	if ns.pidfd >= 0 {
		unix.Close(ns.pidfd)
		ns.pidfd = -1
	}
	return wrap("close", ns.ref, os.NewSyscallError("close", err))
}

// Fd returns the nsfs file descriptor, for calls that take one (such as
// netlink's RTM_GETNSID). It is valid until Close. Do not setns with it:
// only Do and Command switch threads, and they restore them.
func (ns *NS) Fd() int {
	ns.mu.RLock()
	defer ns.mu.RUnlock()
	return ns.fd
}

// ProcessAlive reports, for a handle opened by PID, whether that very
// process (held by its pidfd, so a reused PID does not count) is still
// running; a zombie counts as exited. It returns true for handles not opened by PID.
func (ns *NS) ProcessAlive() bool {
	ns.mu.RLock()
	defer ns.mu.RUnlock()
	if ns.pidfd < 0 {
		return !ns.closed
	}
	return !pidfdExited(ns.pidfd)
}

// pidfdExited reports whether the process a pidfd holds has exited. A pidfd
// polls readable from the moment the process exits, zombie or reaped, where
// pidfd_send_signal would still reach a zombie.
func pidfdExited(pidfd int) bool {
	fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
	n, err := unix.Poll(fds, 0)
	return err == nil && n > 0
}

// PidFD returns the pidfd that holds the process a PID reference named,
// or -1 for other handles. It polls readable once that process exits, so
// an event loop can wait on it; it is valid until Close.
func (ns *NS) PidFD() int {
	ns.mu.RLock()
	defer ns.mu.RUnlock()
	return ns.pidfd
}

// Gone reports whether the reference the handle was opened by no longer
// names its namespace, and why: the process a PID named exited (a zombie
// counts) or moved to another namespace, or the file a name or path named
// was removed or now names another namespace. The handle itself keeps the
// namespace alive; what users mean by "went away" is that nothing they
// named refers to it any more. "self" and /proc/self paths never go.
// After Close it reports true, "the handle was closed".
func (ns *NS) Gone() (bool, string) {
	ns.mu.RLock()
	defer ns.mu.RUnlock()
	if ns.closed {
		return true, "the handle was closed"
	}
	if ns.pid != 0 {
		// Look at /proc/PID first and ask the pidfd after: if the process
		// was still alive then, /proc/PID was this process, not another
		// that reused its PID in between.
		still := namesID(fmt.Sprintf("/proc/%d/ns/%s", ns.pid, ns.typ), ns.id)
		if pidfdExited(ns.pidfd) {
			return true, fmt.Sprintf("process %d exited", ns.pid)
		}
		if !still {
			// A dying process releases its namespaces before its pidfd
			// turns readable: /proc/PID/ns/TYPE then names nothing.
			// Only a link to another namespace means it left.
			var st unix.Stat_t
			switch err := unix.Stat(fmt.Sprintf("/proc/%d/ns/%s", ns.pid, ns.typ), &st); {
			case err != nil:
				return true, fmt.Sprintf("process %d exited", ns.pid)
			case st.Dev == ns.id.Dev && st.Ino == ns.id.Inode:
				return false, ""
			}
			return true, fmt.Sprintf("process %d left it", ns.pid)
		}
		return false, ""
	}
	path := ns.path
	if ns.ref == "self" || strings.HasPrefix(path, "/proc/self/") || strings.HasPrefix(path, "/proc/thread-self/") {
		return false, ""
	}
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return true, path + " was removed"
	}
	if st.Dev != ns.id.Dev || st.Ino != ns.id.Inode {
		return true, path + " now names another namespace"
	}
	return false, ""
}

// namesID reports whether path is the namespace id; tests replace it to
// run code between Gone's two checks.
var namesID = func(path string, id ID) bool {
	var st unix.Stat_t
	return unix.Stat(path, &st) == nil && st.Dev == id.Dev && st.Ino == id.Inode
}

// Dup returns an independent handle on the same namespace, with the same
// reference, path and process (its own descriptors), for a holder that
// must outlive the caller's handle.
func (ns *NS) Dup() (*NS, error) {
	d, err := ns.dup()
	return d, wrap("dup", ns.ref, err)
}

func (ns *NS) dup() (*NS, error) {
	ns.mu.RLock()
	defer ns.mu.RUnlock()
	if ns.closed {
		return nil, ErrClosed
	}
	fd, err := dupCloexec(ns.fd)
	if err != nil {
		return nil, err
	}
	d := &NS{typ: ns.typ, id: ns.id, ref: ns.ref, path: ns.path, pid: ns.pid, fd: fd, pidfd: -1}
	if ns.pidfd >= 0 {
		if d.pidfd, err = dupCloexec(ns.pidfd); err != nil {
			unix.Close(fd)
			return nil, err
		}
	}
	return d, nil
}

func dupCloexec(fd int) (int, error) {
	nfd, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return -1, os.NewSyscallError("fcntl", err)
	}
	return nfd, nil
}

// UserNS opens the user namespace that owns ns (NS_GET_USERNS).
func (ns *NS) UserNS() (*NS, error) {
	u, err := ns.related(nsGetUserns, "NS_GET_USERNS")
	return u, wrap("owner of", ns.ref, err)
}

func (ns *NS) related(req uint, name string) (*NS, error) {
	ns.mu.RLock()
	defer ns.mu.RUnlock()
	if ns.closed {
		return nil, ErrClosed
	}
	fd, err := unix.IoctlRetInt(ns.fd, req)
	if err != nil {
		if err == unix.EPERM {
			return nil, fmt.Errorf("%w: owner is outside this process's user namespace", fs.ErrPermission)
		}
		return nil, os.NewSyscallError("ioctl "+name, err)
	}
	unix.CloseOnExec(fd)
	path := fmt.Sprintf("/proc/self/fd/%d", fd)
	r, err := newFromFD(path, path, fd, 0)
	if err != nil {
		unix.Close(fd)
	}
	return r, err
}

// OwnerUID returns the UID that created a user namespace.
func (ns *NS) OwnerUID() (int, error) {
	if ns.typ != User {
		return 0, wrap("owner uid of", ns.ref, &WrongTypeError{Got: ns.typ, Want: User})
	}
	ns.mu.RLock()
	defer ns.mu.RUnlock()
	if ns.closed {
		return 0, wrap("owner uid of", ns.ref, ErrClosed)
	}
	var uid uint32
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(ns.fd), nsGetOwner, uintptr(unsafe.Pointer(&uid))); errno != 0 {
		return 0, wrap("owner uid of", ns.ref, os.NewSyscallError("ioctl NS_GET_OWNER_UID", errno))
	}
	return int(uid), nil
}
