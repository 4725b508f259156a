package topo

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/netobs/netobs/internal/procfd"
	"golang.org/x/sys/unix"
)

// tunFD is a process's open /dev/net/tun descriptor and its device name.
type tunFD struct {
	pid, fd int
	name    string
}

// tunDev is /dev/net/tun's device number: misc major 10, minor 200.
var tunDev = unix.Mkdev(10, 200)

// findOwners adds the processes holding the graph's TUN/TAP devices, and
// their Owner edges. A device name is matched only after the kernel said
// which namespace the descriptor's device is in. Under a host root the
// processes are those of root/proc, looked at only if that /proc is of
// netobs's own PID namespace (its PIDs can then be opened as pidfds).
func findOwners(g *Graph, root string) error {
	proc := filepath.Join(root, "/proc")
	if self, err := os.Readlink(proc + "/self"); err != nil || self != strconv.Itoa(os.Getpid()) {
		return nil
	}
	byName := map[string][]*Interface{}
	inode := map[string]uint64{}
	for _, n := range g.Namespaces {
		inode[n.ID] = n.Inode
		for _, i := range n.Interfaces {
			if i.Kind == "tun" || i.Kind == "tap" {
				byName[i.Name] = append(byName[i.Name], i)
			}
		}
	}
	if len(byName) == 0 {
		return nil
	}
	fds, err := scanTunFDs(proc)
	if err != nil {
		return err
	}
	procs := map[int]*Process{}
	seen := map[Edge]bool{}
	for _, t := range fds {
		cands := byName[t.name]
		if len(cands) == 0 {
			continue
		}
		ino, err := tunNetns(t.pid, t.fd)
		if err != nil {
			continue // exited, closed, detached queue, or no right to look
		}
		for _, c := range cands {
			if inode[c.NS] != ino {
				continue
			}
			p := procs[t.pid]
			if p == nil {
				p = &Process{ID: "pid:" + strconv.Itoa(t.pid), PID: t.pid, Comm: comm(proc, t.pid)}
				procs[t.pid] = p
				g.Processes = append(g.Processes, p)
			}
			ed := Edge{Kind: Owner, From: p.ID, To: c.ID}
			if !seen[ed] {
				seen[ed] = true
				g.Edges = append(g.Edges, ed)
			}
		}
	}
	return nil
}

// scanTunFDs finds every open /dev/net/tun descriptor attached to a
// device. Processes and descriptors that go away meanwhile are skipped.
func scanTunFDs(proc string) ([]tunFD, error) {
	var out []tunFD
	err := procfd.Each(proc, func(pid, fd int, path string) bool {
		var st unix.Stat_t
		if unix.Stat(path, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != tunDev {
			return true
		}
		b, err := os.ReadFile(proc + "/" + strconv.Itoa(pid) + "/fdinfo/" + strconv.Itoa(fd))
		if err != nil {
			return true
		}
		if name, ok := tunIff(b); ok {
			out = append(out, tunFD{pid: pid, fd: fd, name: name})
		}
		return true
	})
	return out, err
}

// tunNetns returns the inode of the network namespace of the device that
// process pid's descriptor fd is attached to. It copies the descriptor
// (pidfd_getfd, which needs the right to ptrace the process) and asks the
// copy (TUNGETDEVNETNS); the process's own descriptor is not touched.
func tunNetns(pid, fd int) (uint64, error) {
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return 0, os.NewSyscallError("pidfd_open", err)
	}
	defer unix.Close(pidfd)
	dup, err := unix.PidfdGetfd(pidfd, fd, 0) // close-on-exec by the kernel
	if err != nil {
		return 0, os.NewSyscallError("pidfd_getfd", err)
	}
	defer unix.Close(dup)
	nsfd, err := unix.IoctlRetInt(dup, unix.TUNGETDEVNETNS)
	if err != nil {
		return 0, os.NewSyscallError("ioctl TUNGETDEVNETNS", err)
	}
	defer unix.Close(nsfd)
	var st unix.Stat_t
	if err := unix.Fstat(nsfd, &st); err != nil {
		return 0, os.NewSyscallError("fstat", err)
	}
	if st.Ino == 0 {
		return 0, errors.New("no namespace")
	}
	return st.Ino, nil
}

// comm returns a process's name, or "?" if it is gone.
func comm(proc string, pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("%s/%d/comm", proc, pid))
	if err != nil {
		return "?"
	}
	return strings.TrimSuffix(string(b), "\n")
}
