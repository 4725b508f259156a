package nsjoin

import (
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

type nsKey struct {
	typ      Type
	dev, ino uint64
}

// List returns every namespace of the given types (all types when none is
// given) that a process or an `ip netns` name holds, like lsns: it scans
// /proc/*/ns/* and /run/netns, groups by identity, and sorts by type and
// inode. Processes that exit during the scan are skipped, not errors.
// Seeing other users' processes needs root or CAP_SYS_PTRACE.
func List(types ...Type) ([]Info, error) {
	infos, err := list("/", types, true)
	return infos, wrap("list", "namespaces", err)
}

// ListUnder is List of the system whose /proc and /run are mounted under
// root (netobs in a container, the host's / mounted at root): it scans
// root/proc/*/ns/* and root/run/netns. PIDs are that system's.
func ListUnder(root string, types ...Type) ([]Info, error) {
	infos, err := list(root, types, true)
	return infos, wrap("list", "namespaces under "+root, err)
}

// Scan is List without opening any namespace or reading any command line:
// identity, process count, lowest PID and its owner, and `ip netns` names
// only (Command, UserNS and ID.NSID stay zero). It is cheap enough to
// repeat every second on a system with thousands of namespaces.
func Scan(types ...Type) ([]Info, error) {
	infos, err := list("/", types, false)
	return infos, wrap("scan", "namespaces", err)
}

// ScanUnder is Scan of the system whose /proc and /run are mounted under
// root, as ListUnder is List's.
func ScanUnder(root string, types ...Type) ([]Info, error) {
	infos, err := list(root, types, false)
	return infos, wrap("scan", "namespaces under "+root, err)
}

func list(root string, types []Type, details bool) ([]Info, error) {
	procDir := filepath.Join(root, "proc")
	if len(types) == 0 {
		types = AllTypes
	}
	for _, t := range types {
		if !t.Valid() {
			return nil, errors.New("invalid namespace type")
		}
	}
	procs, err := os.ReadDir(procDir)
	if err != nil {
		return nil, err
	}
	found := map[nsKey]*Info{}
	paths := map[nsKey]string{} // a file to open for the owning user namespace
	var order []nsKey
	add := func(k nsKey, path string) *Info {
		if in, ok := found[k]; ok {
			return in
		}
		in := &Info{Type: k.typ, ID: ID{Dev: k.dev, Inode: k.ino}}
		found[k], paths[k] = in, path
		order = append(order, k)
		return in
	}
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		var st unix.Stat_t
		if unix.Stat(filepath.Join(procDir, p.Name()), &st) != nil {
			continue // exited
		}
		uid := int(st.Uid)
		for _, t := range types {
			path := filepath.Join(procDir, p.Name(), "ns", t.String())
			var nst unix.Stat_t
			if unix.Stat(path, &nst) != nil {
				continue // exited, or the kernel lacks this type
			}
			in := add(nsKey{t, nst.Dev, nst.Ino}, path)
			in.NProcs++
			if in.PID == 0 || pid < in.PID {
				in.PID, in.UID = pid, uid
			}
		}
	}
	if wantsNet(types) {
		netnsDir := filepath.Join(root, NetnsRunDir)
		names, _ := namesIn(netnsDir)
		for _, name := range names {
			path := filepath.Join(netnsDir, name)
			var sfs unix.Statfs_t
			var st unix.Stat_t
			if unix.Statfs(path, &sfs) != nil || sfs.Type != unix.NSFS_MAGIC || unix.Stat(path, &st) != nil {
				continue // a stale file whose mount is gone
			}
			in := add(nsKey{Net, st.Dev, st.Ino}, path)
			in.Names = append(in.Names, name)
			if in.NProcs == 0 {
				paths[nsKey{Net, st.Dev, st.Ino}] = path
			}
		}
	}
	infos := make([]Info, 0, len(order))
	for _, k := range order {
		in := found[k]
		if details {
			if in.PID != 0 {
				in.Command = commandLine(procDir, in.PID)
			}
			in.UserNS, in.ID.NSID = ownerAndNSID(paths[k])
		}
		infos = append(infos, *in)
	}
	sort.Slice(infos, func(i, j int) bool {
		if infos[i].Type != infos[j].Type {
			return typeOrder(infos[i].Type) < typeOrder(infos[j].Type)
		}
		return infos[i].ID.Inode < infos[j].ID.Inode
	})
	return infos, nil
}

func wantsNet(types []Type) bool {
	for _, t := range types {
		if t == Net {
			return true
		}
	}
	return false
}

// ownerAndNSID opens a namespace file once for the inode of its owning
// user namespace and its 64-bit ID. Zeros where either cannot be had.
func ownerAndNSID(path string) (userns, nsid uint64) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, 0
	}
	defer unix.Close(fd)
	if id, err := fdID(fd); err == nil {
		nsid = id.NSID
	}
	ufd, err := unix.IoctlRetInt(fd, nsGetUserns)
	if err != nil {
		return 0, nsid
	}
	defer unix.Close(ufd)
	var st unix.Stat_t
	if unix.Fstat(ufd, &st) == nil {
		userns = st.Ino
	}
	return userns, nsid
}

// commandLine returns the process's command line as lsns shows it, or its
// name in brackets for kernel threads.
func commandLine(procDir string, pid int) string {
	b, err := os.ReadFile(filepath.Join(procDir, strconv.Itoa(pid), "cmdline"))
	if err == nil && len(b) > 0 {
		return strings.TrimSpace(strings.ReplaceAll(strings.TrimRight(string(b), "\x00"), "\x00", " "))
	}
	comm, _ := os.ReadFile(filepath.Join(procDir, strconv.Itoa(pid), "comm"))
	return strings.TrimSpace(string(comm))
}
