package events

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/netobs/netobs/nsjoin"
	"golang.org/x/sys/unix"
)

// pendingRetry is how often a name that appeared under /run/netns is
// looked at again until its bind mount is there: `ip netns add` creates
// the file first and mounts onto it after, and a mount makes no inotify
// event.
const pendingRetry = 10 * time.Millisecond

// pendingFor is how long a new name may stay unmounted before it is
// forgotten (the periodic scan still finds it if it is mounted later).
const pendingFor = 5 * time.Second

// sighting is where a namespace was seen in one scan of the system.
type sighting struct {
	name string // first ip-netns name, if any
	pid  int    // lowest PID in it, if any
	path string // a file to open it by
}

// scanSystem finds every network namespace reachable by a name under
// /run/netns or by a process, keyed by identity (nsjoin.Scan), on the
// system whose / is root (Options.HostRoot; "" for netobs's own).
// Processes and names that vanish during the scan are skipped.
func scanSystem(root string) map[nsKey]*sighting {
	var infos []nsjoin.Info
	if root == "" || root == "/" {
		infos, _ = nsjoin.Scan(nsjoin.Net)
	} else {
		infos, _ = nsjoin.ScanUnder(root, nsjoin.Net)
	}
	seen := make(map[nsKey]*sighting, len(infos))
	for _, in := range infos {
		s := &sighting{pid: in.PID, path: filepath.Join(root, fmt.Sprintf("/proc/%d/ns/net", in.PID))}
		if len(in.Names) > 0 { // sorted: the first name wins
			s.name = in.Names[0]
			s.path = filepath.Join(root, nsjoin.NetnsRunDir, s.name)
		}
		seen[nsKey{in.ID.Dev, in.ID.Inode}] = s
	}
	return seen
}

// discovery is what Options.All adds to a watcher. Only the poller
// goroutine touches it.
type discovery struct {
	root     string // Options.HostRoot
	inofd    int
	watching bool // /run/netns is watched
	pending  map[string]time.Time
	failed   map[nsKey]bool // could not be watched; not tried again while it exists
	scanNow  bool           // a name went away: look at once
	started  bool           // namespaces found from now on are reported as Appeared
}

// Capability bits in /proc/self/status's CapEff.
const (
	capNetAdmin = 12
	capSysAdmin = 21
)

// hasCaps reports whether the process has every capability of bits in
// effect. All needs CAP_SYS_ADMIN to enter other namespaces (without it,
// All would quietly watch nothing but the process's own namespace, since
// /proc hides the others' namespace files) and CAP_NET_ADMIN to get a
// namespace back from its socket (socketNS).
func hasCaps(bits ...int) bool {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				return false
			}
			for _, bit := range bits {
				if caps&(1<<bit) == 0 {
					return false
				}
			}
			return true
		}
	}
	return false
}

func (w *Watcher) startDiscovery() (*discovery, error) {
	if !hasCaps(capSysAdmin, capNetAdmin) {
		return nil, fmt.Errorf("all namespaces: %w (needs root, or CAP_SYS_ADMIN, CAP_NET_ADMIN and CAP_SYS_PTRACE)", fs.ErrPermission)
	}
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, os.NewSyscallError("inotify_init1", err)
	}
	d := &discovery{root: w.opts.HostRoot, inofd: fd, pending: map[string]time.Time{}, failed: map[nsKey]bool{}}
	w.disc = d // so that release closes it if what follows fails
	if err := w.poll(fd); err != nil {
		return nil, err
	}
	d.ensureWatch()
	if err := d.addNew(w, scanSystem(d.root)); err != nil {
		return nil, err
	}
	d.started = true
	return d, nil
}

func (d *discovery) close() {
	if d.inofd >= 0 {
		unix.Close(d.inofd)
		d.inofd = -1
	}
}

// ensureWatch watches /run/netns once it exists; `ip netns add` creates it
// the first time it runs.
func (d *discovery) ensureWatch() {
	if d.watching {
		return
	}
	_, err := unix.InotifyAddWatch(d.inofd, filepath.Join(d.root, nsjoin.NetnsRunDir),
		unix.IN_CREATE|unix.IN_DELETE|unix.IN_MOVED_FROM|unix.IN_MOVED_TO|unix.IN_DELETE_SELF|unix.IN_ONLYDIR)
	d.watching = err == nil
}

func (d *discovery) readInotify(w *Watcher) {
	var buf [4096]byte
	now := time.Now()
	for {
		n, err := unix.Read(d.inofd, buf[:])
		if err == unix.EINTR {
			continue
		}
		if err != nil || n <= 0 {
			return
		}
		b := buf[:n]
		for len(b) >= unix.SizeofInotifyEvent {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&b[0]))
			end := unix.SizeofInotifyEvent + int(ev.Len)
			if end > len(b) {
				break
			}
			name := string(b[unix.SizeofInotifyEvent:end])
			for len(name) > 0 && name[len(name)-1] == 0 {
				name = name[:len(name)-1]
			}
			switch {
			case ev.Mask&(unix.IN_CREATE|unix.IN_MOVED_TO) != 0 && name != "":
				d.pending[name] = now.Add(pendingFor)
			case ev.Mask&(unix.IN_DELETE|unix.IN_MOVED_FROM) != 0:
				d.scanNow = true
			case ev.Mask&(unix.IN_IGNORED|unix.IN_DELETE_SELF|unix.IN_Q_OVERFLOW) != 0:
				d.watching = ev.Mask&unix.IN_Q_OVERFLOW != 0 && d.watching
				d.scanNow = true
			}
			b = b[end:]
		}
	}
}

// retryPending looks at names that appeared under /run/netns, and watches
// each once its namespace is mounted there.
func (d *discovery) retryPending(w *Watcher) error {
	now := time.Now()
	names := make([]string, 0, len(d.pending))
	for name := range d.pending {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		path := filepath.Join(d.root, nsjoin.NetnsRunDir, name)
		var st unix.Stat_t
		if unix.Stat(path, &st) != nil || st.Dev != w.nsfsDev {
			if now.After(d.pending[name]) {
				delete(d.pending, name)
			}
			continue
		}
		delete(d.pending, name)
		k := nsKey{st.Dev, st.Ino}
		if w.byKey[k] != nil {
			if w.byKey[k].info.Name == "" {
				w.byKey[k].info.Name = name
			}
			continue
		}
		if err := d.add(w, k, &sighting{name: name, path: path}); err != nil {
			return err
		}
	}
	return nil
}

// addNew watches the namespaces of a scan that are not watched yet.
func (d *discovery) addNew(w *Watcher, seen map[nsKey]*sighting) error {
	keys := make([]nsKey, 0, len(seen))
	for k := range seen {
		if w.byKey[k] == nil && !d.failed[k] {
			keys = append(keys, k)
		}
	}
	for k := range d.failed {
		if seen[k] == nil {
			delete(d.failed, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].ino < keys[j].ino })
	for _, k := range keys {
		if w.closing() {
			return nil // the poller sees it next
		}
		if err := d.add(w, k, seen[k]); err != nil {
			return err
		}
	}
	return nil
}

// add watches one discovered namespace. A namespace that vanished in the
// meantime is skipped; any other failure is fatal while starting (no
// privilege, most likely) and an event afterwards.
func (d *discovery) add(w *Watcher, k nsKey, s *sighting) error {
	ns, err := nsjoin.OpenFile(s.path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, nsjoin.ErrNotNamespace) {
			return nil
		}
		return d.addFailed(w, k, s, err)
	}
	if id := ns.ID(); (nsKey{id.Dev, id.Inode}) != k {
		ns.Close() // the PID was reused by a process elsewhere; next scan
		return nil
	}
	// The handle is needed only to make the socket: from then on the
	// socket holds the namespace, and gives it back when a dump needs it.
	defer ns.Close()
	n := &nsw{key: k, pidfd: -1, fd: -1, announce: d.started,
		info: Namespace{Dev: k.dev, Inode: k.ino, Name: s.name, PID: s.pid}}
	if err := w.open(n, ns); err != nil {
		n.close()
		return d.addFailed(w, k, s, err)
	}
	return nil
}

func (d *discovery) addFailed(w *Watcher, k nsKey, s *sighting, err error) error {
	label := Namespace{Dev: k.dev, Inode: k.ino, Name: s.name, PID: s.pid}
	if !d.started {
		return fmt.Errorf("%s: %w", label, err)
	}
	d.failed[k] = true
	if !w.emit(Event{Time: time.Now(), NS: label, Action: Failed, Text: err.Error()}) {
		return errStop
	}
	return nil
}
