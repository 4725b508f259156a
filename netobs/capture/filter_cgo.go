//go:build linux && cgo

package capture

/*
#cgo LDFLAGS: -lpcap
#include <pcap/pcap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// compile runs libpcap's compiler for a dead handle of the given link type,
// so the filter is compiled exactly as tcpdump would for that link type.
static int netobs_compile(int dlt, int snaplen, const char *expr, struct bpf_program *prog, char *errbuf, size_t errlen) {
	pcap_t *p = pcap_open_dead(dlt, snaplen);
	if (p == NULL) {
		snprintf(errbuf, errlen, "pcap_open_dead failed");
		return -1;
	}
	if (pcap_compile(p, prog, expr, 1, PCAP_NETMASK_UNKNOWN) < 0) {
		snprintf(errbuf, errlen, "%s", pcap_geterr(p));
		pcap_close(p);
		return -1;
	}
	pcap_close(p);
	return 0;
}
*/
import "C"

import (
	"fmt"
	"sync"
	"unsafe"
)

// libpcap before 1.8 kept the compiler's state in globals.
var compileMu sync.Mutex

func compileExpr(expr string, link LinkType, snaplen int) ([]insn, error) {
	cexpr := C.CString(expr)
	defer C.free(unsafe.Pointer(cexpr))
	var prog C.struct_bpf_program
	errbuf := (*C.char)(C.malloc(C.PCAP_ERRBUF_SIZE))
	defer C.free(unsafe.Pointer(errbuf))
	compileMu.Lock()
	rc := C.netobs_compile(C.int(link.dlt()), C.int(snaplen), cexpr, &prog, errbuf, C.PCAP_ERRBUF_SIZE)
	compileMu.Unlock()
	if rc != 0 {
		return nil, fmt.Errorf("%w %q: %s", ErrFilter, expr, C.GoString(errbuf))
	}
	defer C.pcap_freecode(&prog)
	n := int(prog.bf_len)
	src := unsafe.Slice(prog.bf_insns, n)
	out := make([]insn, n)
	for i := range src {
		out[i] = insn{Code: uint16(src[i].code), Jt: uint8(src[i].jt), Jf: uint8(src[i].jf), K: uint32(src[i].k)}
	}
	return out, nil
}

// FiltersSupported reports whether this build compiles filter expressions.
const FiltersSupported = true
