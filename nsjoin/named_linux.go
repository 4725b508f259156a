package nsjoin

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"

	"golang.org/x/sys/unix"
)

// Names lists the named network namespaces under /run/netns, sorted, the
// way `ip netns list` finds them.
func Names() ([]string, error) { return namesIn(NetnsRunDir) }

// NamesUnder is Names of the system whose /run is mounted under root
// (root/run/netns).
func NamesUnder(root string) ([]string, error) { return namesIn(filepath.Join(root, NetnsRunDir)) }

func namesIn(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, wrap("list", dir, err)
	}
	names := make([]string, 0, len(ents))
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names, nil
}

// NamesOf returns the `ip netns` names bound to the namespace with id.
func NamesOf(id ID) []string {
	names, _ := Names()
	var out []string
	for _, name := range names {
		var st unix.Stat_t
		var sfs unix.Statfs_t
		path := filepath.Join(NetnsRunDir, name)
		if unix.Statfs(path, &sfs) == nil && sfs.Type == unix.NSFS_MAGIC &&
			unix.Stat(path, &st) == nil && st.Dev == id.Dev && st.Ino == id.Inode {
			out = append(out, name)
		}
	}
	return out
}

// NewNamed creates a network namespace and persists it as
// /run/netns/NAME exactly as `ip netns add NAME` does: /run/netns made a
// shared mount (bind-mounted onto itself first if need be), an empty file
// created, and the new namespace bind-mounted onto it. `ip netns exec` and
// `ip -n NAME` work with it. The new namespace has only a down loopback.
// Needs CAP_SYS_ADMIN. On failure nothing is left behind.
func NewNamed(name string) (*NS, error) {
	ns, err := newNamed(name)
	return ns, wrap("add", name, err)
}

func newNamed(name string) (*NS, error) {
	if err := ValidateNewName(name); err != nil {
		return nil, err
	}
	if err := prepareRunDir(); err != nil {
		return nil, err
	}
	path := filepath.Join(NetnsRunDir, name)
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0)
	if err == unix.EEXIST {
		return nil, fmt.Errorf("%w: %s (delete it with: netobs ns del %s)", ErrExists, path, name)
	}
	if err != nil {
		return nil, capError("create "+path, err)
	}
	unix.Close(fd)
	if err := bindNewNetns(path); err != nil {
		unix.Unlink(path)
		return nil, err
	}
	ns, err := openPath(name, path, Net)
	if err != nil {
		unix.Unmount(path, unix.MNT_DETACH)
		unix.Unlink(path)
		return nil, err
	}
	return ns, nil
}

// prepareRunDir makes /run/netns a shared mount point, so that namespaces
// mounted later propagate to mount namespaces made from this one (what
// iproute2 does, and what `ip netns exec` relies on).
func prepareRunDir() error {
	if err := os.MkdirAll(NetnsRunDir, 0o755); err != nil {
		return capError("mkdir "+NetnsRunDir, err)
	}
	for bound := false; ; bound = true {
		err := unix.Mount("", NetnsRunDir, "none", unix.MS_SHARED|unix.MS_REC, "")
		if err == nil {
			return nil
		}
		if err != unix.EINVAL || bound {
			return capError("make "+NetnsRunDir+" shared", os.NewSyscallError("mount", err))
		}
		// Not a mount point yet: bind it onto itself, then try again.
		if err := unix.Mount(NetnsRunDir, NetnsRunDir, "none", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return capError("bind "+NetnsRunDir, os.NewSyscallError("mount", err))
		}
	}
}

// bindNewNetns makes a new network namespace and binds it onto path.
func bindNewNetns(path string) error {
	var bindErr error
	err := inNewNetns(func() {
		src := fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())
		bindErr = unix.Mount(src, path, "none", unix.MS_BIND, "")
	})
	if err != nil {
		return errors.Join(capError("bind mount "+path, os.NewSyscallError("mount", bindErr)), err)
	}
	return capError("bind mount "+path, os.NewSyscallError("mount", bindErr))
}

// inNewNetns runs fn, which must make only leaf system calls, on a fresh
// goroutine locked to its thread, after unshare(CLONE_NEWNET) has put the
// thread in a new network namespace; then it returns the thread to the
// original namespace and unlocks it. If that fails, the goroutine ends
// locked, so the runtime terminates the thread, and the error wraps
// ErrThreadDiscarded (fn has run).
func inNewNetns(fn func()) error {
	orig, err := originalNS(Net)
	if err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			done <- capError("unshare", os.NewSyscallError("unshare", err))
			return
		}
		fn()
		if err := setns(orig, Net); err != nil {
			done <- fmt.Errorf("%w: return to own net namespace: %w", ErrThreadDiscarded, err)
			return // locked: the runtime terminates the thread
		}
		runtime.UnlockOSThread()
		done <- nil
	}()
	return <-done
}

// NewNet creates a network namespace without a name: it lives while the
// returned handle, or anything else (a process, a socket made in it, a
// bind mount), holds it, so nothing is left behind when the program ends,
// even by SIGKILL. The namespace has only a down loopback. The handle's Ref
// and path are /proc/self/fd/N of its descriptor. Needs CAP_SYS_ADMIN. The
// thread that makes it is returned home, or discarded (ErrThreadDiscarded).
func NewNet() (*NS, error) {
	ns, err := newNet()
	return ns, wrap("new", "net namespace", err)
}

func newNet() (*NS, error) {
	fd := -1
	var openErr error
	err := inNewNetns(func() {
		fd, openErr = unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	})
	if openErr != nil {
		err = errors.Join(os.NewSyscallError("open", openErr), err)
	}
	if err != nil {
		if fd >= 0 {
			unix.Close(fd)
		}
		return nil, err
	}
	path := fmt.Sprintf("/proc/self/fd/%d", fd)
	ns, err := newFromFD(path, path, fd, Net)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	return ns, nil
}

// DeleteNamed removes /run/netns/NAME as `ip netns del` does: detach the
// bind mount and remove the file. The namespace itself lives on while
// processes or open handles use it. Needs CAP_SYS_ADMIN.
func DeleteNamed(name string) error {
	return wrap("del", name, deleteNamed(name))
}

func deleteNamed(name string) error {
	if err := ValidateName(name); err != nil {
		return err
	}
	path := filepath.Join(NetnsRunDir, name)
	if _, err := os.Lstat(path); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%w %q (see ip netns list)", ErrNotFound, name)
		}
		return err
	}
	// EINVAL: not a mount point (a stale file); it is still removed.
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && err != unix.EINVAL {
		return capError("unmount "+path, os.NewSyscallError("umount2", err))
	}
	if err := unix.Unlink(path); err != nil {
		return capError("remove "+path, os.NewSyscallError("unlink", err))
	}
	return nil
}

// capError adds the missing capability to permission errors.
func capError(what string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
		return fmt.Errorf("%s: %w (needs root or CAP_SYS_ADMIN)", what, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}
