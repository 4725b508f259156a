//go:build linux && cgo

package capture

/*
#cgo LDFLAGS: -lpcap
#include <pcap/pcap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// IEEE 802 local experimental EtherType 1: the live handle below binds to
// it so that, in the moment it exists, it receives no traffic.
#define NETOBS_IDLE_PROTO 0x88b5

// netobs_live opens and activates a libpcap handle of link type dlt on
// netobs's own loopback ("lo" for Ethernet, "any" for Linux cooked), as
// small as libpcap allows and receiving nothing. Only an activated Linux
// handle has libpcap use the kernel's VLAN ancillary data (it sets
// BPF_SPECIAL_VLAN_HANDLING after asking SO_BPF_EXTENSIONS), which the
// sockets this package opens need: the kernel strips VLAN tags before
// packet-socket filters run. NULL if that is not possible (no CAP_NET_RAW
// here, no such device) or the link type differs.
static pcap_t *netobs_live(int dlt, int snaplen) {
	char err[PCAP_ERRBUF_SIZE];
	const char *dev;
	if (dlt == DLT_EN10MB)
		dev = "lo";
	else if (dlt == DLT_LINUX_SLL)
		dev = "any";
	else
		return NULL;
	pcap_t *p = pcap_create(dev, err);
	if (p == NULL)
		return NULL;
	pcap_set_snaplen(p, snaplen);
	pcap_set_buffer_size(p, 1);
	pcap_set_protocol_linux(p, NETOBS_IDLE_PROTO);
	if (pcap_activate(p) < 0 || pcap_datalink(p) != dlt) {
		pcap_close(p);
		return NULL;
	}
	return p;
}

// netobs_compile compiles expr as tcpdump would for a live capture of link
// type dlt: with a live handle where netobs_live gets one (if try_live),
// else with a dead handle (which for raw IP is the same thing). *live says
// which.
static int netobs_compile(int dlt, int snaplen, const char *expr, struct bpf_program *prog, char *errbuf, size_t errlen, int try_live, int *live) {
	pcap_t *p = try_live ? netobs_live(dlt, snaplen) : NULL;
	*live = p != NULL;
	if (p == NULL)
		p = pcap_open_dead(dlt, snaplen);
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
	"strings"
	"sync"
	"syscall"
	"unsafe"
)

// libpcap before 1.8 kept the compiler's state in globals.
var compileMu sync.Mutex

// compileExpr compiles expr as tcpdump does for a live capture on a socket
// of link type link. Only libpcap's "vlan" primitive compiles differently
// for a live Linux handle than for a dead one (it reads the kernel's VLAN
// metadata), so the short-lived live handle is opened only for an
// expression that mentions it: opening one costs tens of milliseconds
// (closing a packet socket waits for an RCU grace period). A Capture
// compiles once per link type.
func compileExpr(expr string, link LinkType, snaplen int) ([]insn, error) {
	return compileExprMode(expr, link, snaplen, needsLiveHandle(expr))
}

// needsLiveHandle reports whether expr may use the "vlan" primitive, the
// one whose code depends on the handle being live. Any mention counts
// (a host named vlan1 too): a needless live handle costs time, never
// correctness.
func needsLiveHandle(expr string) bool {
	return strings.Contains(strings.ToLower(expr), "vlan")
}

// compileExprMode is compileExpr, with tryLive false compiling for a dead
// handle (no VLAN ancillary data); the fuzz target uses it for speed.
func compileExprMode(expr string, link LinkType, snaplen int, tryLive bool) ([]insn, error) {
	cexpr := C.CString(expr)
	defer C.free(unsafe.Pointer(cexpr))
	var prog C.struct_bpf_program
	errbuf := (*C.char)(C.malloc(C.PCAP_ERRBUF_SIZE))
	defer C.free(unsafe.Pointer(errbuf))
	var live, try C.int
	if tryLive {
		try = 1
	}
	compileMu.Lock()
	if tryLive {
		// libpcap opens the live handle's packet socket and eventfd
		// without close-on-exec; holding ForkLock keeps a fork in
		// another goroutine from inheriting them until they are closed.
		syscall.ForkLock.RLock()
	}
	rc := C.netobs_compile(C.int(dlt(link)), C.int(snaplen), cexpr, &prog, errbuf, C.PCAP_ERRBUF_SIZE, try, &live)
	if tryLive {
		syscall.ForkLock.RUnlock()
	}
	compileMu.Unlock()
	if rc != 0 {
		return nil, &FilterError{Expr: expr, Msg: C.GoString(errbuf)}
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
