// Package procfd walks the open file descriptors of every process, as
// /proc shows them: the one scan behind "which process holds this socket"
// (sockets) and "which process owns this TUN/TAP device" (topo).
//
// Reading another process's descriptors needs the right to ptrace it
// (root, in practice); processes that cannot be read or that exit during
// the walk are skipped, never reported as errors. Nothing is opened but
// /proc's own directories.
package procfd

import (
	"os"
	"strconv"
)

// Each calls fn for every descriptor of every process under proc (a /proc
// mount, normally "/proc"), with path the descriptor's /proc entry
// (proc/PID/fd/N), which fn may Readlink or Stat. fn returning false ends
// the walk of that process. The error is /proc's own, unreadable.
func Each(proc string, fn func(pid, fd int, path string) bool) error {
	procs, err := os.ReadDir(proc)
	if err != nil {
		return err
	}
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil || pid <= 0 {
			continue
		}
		dir := proc + "/" + p.Name() + "/fd/"
		fds, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, f := range fds {
			fd, err := strconv.Atoi(f.Name())
			if err != nil {
				continue
			}
			if !fn(pid, fd, dir+f.Name()) {
				break
			}
		}
	}
	return nil
}
