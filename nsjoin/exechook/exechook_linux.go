//go:build linux && cgo

package exechook

// #include "nsexec.h"
import "C"

import (
	"unsafe"

	"github.com/netobs/netobs/nsjoin/internal/hookproto"
)

func init() { hookproto.SetLinked() }

// parseSpec runs the hook's own C parser on instructions, so that it can be
// fuzzed and checked against hookproto's encoder.
func parseSpec(instr []byte) (hookproto.Spec, bool) {
	var sp C.struct_nsjoin_spec
	var p *C.char
	if len(instr) > 0 {
		p = (*C.char)(unsafe.Pointer(&instr[0]))
	}
	if C.nsjoin_parse_spec(p, C.size_t(len(instr)), &sp) != 0 {
		return hookproto.Spec{}, false
	}
	var s hookproto.Spec
	for i := 0; i < int(sp.njoin); i++ {
		s.Joins = append(s.Joins, hookproto.Join{Flag: uint32(sp.join_flag[i]), FD: int(sp.join_fd[i])})
	}
	s.Unshare = uint32(sp.unshare_flags)
	s.MapRoot = sp.map_root != 0
	s.UID, s.GID = uint32(sp.map_uid), uint32(sp.map_gid)
	s.Hostname = C.GoString(&sp.hostname[0])
	s.MountProc = sp.mount_proc != 0
	s.Fork = sp.do_fork != 0
	return s, true
}
