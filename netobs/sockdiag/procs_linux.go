package sockdiag

import (
	"os"
	"sort"
	"strconv"
	"strings"
)

// addProcs fills in the processes holding each socket, by scanning every
// /proc/PID/fd for links "socket:[INODE]". Processes that exit or cannot
// be read during the scan are skipped.
func addProcs(socks []Socket) {
	want := map[uint64][]int{}
	for i := range socks {
		if socks[i].Inode != 0 {
			want[socks[i].Inode] = append(want[socks[i].Inode], i)
		}
	}
	if len(want) == 0 {
		return
	}
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return
	}
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		dir := "/proc/" + p.Name() + "/fd/"
		fds, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		comm := ""
		for _, fd := range fds {
			link, err := os.Readlink(dir + fd.Name())
			if err != nil || !strings.HasPrefix(link, "socket:[") {
				continue
			}
			ino, err := strconv.ParseUint(strings.TrimSuffix(link[len("socket:["):], "]"), 10, 64)
			if err != nil {
				continue
			}
			idx, ok := want[ino]
			if !ok {
				continue
			}
			if comm == "" {
				b, _ := os.ReadFile("/proc/" + p.Name() + "/comm")
				comm = strings.TrimSpace(string(b))
			}
			n, _ := strconv.Atoi(fd.Name())
			for _, i := range idx {
				socks[i].Procs = append(socks[i].Procs, Proc{PID: pid, Comm: comm, FD: n})
			}
		}
	}
	for i := range socks {
		sort.Slice(socks[i].Procs, func(a, b int) bool {
			pa, pb := socks[i].Procs[a], socks[i].Procs[b]
			return pa.PID < pb.PID || pa.PID == pb.PID && pa.FD < pb.FD
		})
	}
}
