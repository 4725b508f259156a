package sockdiag

import (
	"os"

	"github.com/netobs/netobs/internal/procfd"
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
	comms := map[int]string{}
	procfd.Each("/proc", func(pid, fd int, path string) bool {
		link, err := os.Readlink(path)
		if err != nil || !strings.HasPrefix(link, "socket:[") {
			return true
		}
		ino, err := strconv.ParseUint(strings.TrimSuffix(link[len("socket:["):], "]"), 10, 64)
		if err != nil {
			return true
		}
		idx, ok := want[ino]
		if !ok {
			return true
		}
		comm, ok := comms[pid]
		if !ok {
			b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
			comm = strings.TrimSpace(string(b))
			comms[pid] = comm
		}
		for _, i := range idx {
			socks[i].Procs = append(socks[i].Procs, Proc{PID: pid, Comm: comm, FD: fd})
		}
		return true
	})
	for i := range socks {
		sort.Slice(socks[i].Procs, func(a, b int) bool {
			pa, pb := socks[i].Procs[a], socks[i].Procs[b]
			return pa.PID < pb.PID || pa.PID == pb.PID && pa.FD < pb.FD
		})
	}
}
