//go:build linux && cgo

package capture

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/netobs/netobs/internal/nstest"
)

const skfAdVlanTagPresent = 48 // SKF_AD_VLAN_TAG_PRESENT

// checkProgram fails unless prog is a classic BPF program the kernel could
// load: not empty, not too long, every jump landing inside, ending in a
// return.
func checkProgram(t *testing.T, expr string, prog []insn) {
	t.Helper()
	if len(prog) == 0 || len(prog) > 4096 {
		t.Fatalf("%q: program of %d instructions", expr, len(prog))
	}
	for i, p := range prog {
		if p.Code&bpfClassMask == 0x05 { // BPF_JMP
			far := i + 1 + int(max(p.Jt, p.Jf))
			if p.Code&0xf0 == 0x00 { // BPF_JA
				far = i + 1 + int(p.K)
			}
			if far >= len(prog) {
				t.Fatalf("%q: instruction %d jumps to %d of %d", expr, i, far, len(prog))
			}
		}
	}
	if prog[len(prog)-1].Code&bpfClassMask != bpfRET {
		t.Fatalf("%q: program does not end in a return", expr)
	}
}

// TestVLANFilterUsesAncillaryData: "vlan" compiles as for a live Linux
// handle (tcpdump -i eth0 -d vlan), reading the kernel's VLAN metadata,
// because the kernel strips tags before packet-socket filters run. On a
// cooked socket libpcap refuses it, as tcpdump -i any does.
func TestVLANFilterUsesAncillaryData(t *testing.T) {
	nstest.RequireRoot(t) // the live handle is a packet socket
	c := &compiler{ctx: context.Background(), expr: "vlan 100", snaplen: 1500}
	prog, err := c.compile(LinkEthernet)
	if err != nil {
		t.Fatal(err)
	}
	checkProgram(t, c.expr, prog)
	if p := prog[0]; p.Code != bpfLD|bpfABS|0x10 || p.K != skfAdOff+skfAdVlanTagPresent {
		t.Fatalf("vlan 100 starts with %+v, want ldb [vlanp]", p)
	}
	c = &compiler{ctx: context.Background(), expr: "vlan", snaplen: 1500}
	if _, err := c.compile(LinkLinuxSLL); !errors.Is(err, ErrFilter) {
		t.Fatalf("vlan on a cooked socket: %v, want ErrFilter", err)
	}
}

// TestDeadHandleSameAsLive: without "vlan", an expression compiles for a
// dead handle to exactly the program a live handle gives, which is why
// compileExpr opens a live one only for "vlan"; with it the programs
// differ.
func TestDeadHandleSameAsLive(t *testing.T) {
	nstest.RequireRoot(t) // the live handle is a packet socket
	for _, link := range []LinkType{LinkEthernet, LinkLinuxSLL} {
		for _, expr := range []string{"icmp", "icmp[icmptype] = icmp-echo", "tcp port 80 or udp", "ip6 and not arp",
			"inbound", "outbound and tcp", "ifindex 1", "ether host 02:00:00:00:00:01", "greater 100", "net 10.0.0.0/8 and portrange 1-1024",
			"tcp[tcpflags] & tcp-syn != 0", "ip proto 47", "mpls", "pppoes"} {
			if link == LinkLinuxSLL && (expr == "mpls" || expr == "pppoes") {
				continue
			}
			if needsLiveHandle(expr) {
				t.Fatalf("%q: compiled live, want dead", expr)
			}
			live, errLive := compileExprMode(expr, link, 1500, true)
			dead, errDead := compileExprMode(expr, link, 1500, false)
			if (errLive == nil) != (errDead == nil) || !slices.Equal(live, dead) {
				t.Fatalf("%q on %v: live %v (%v), dead %v (%v)", expr, link, live, errLive, dead, errDead)
			}
		}
	}
	live, _ := compileExprMode("vlan 100", LinkEthernet, 1500, true)
	dead, _ := compileExprMode("vlan 100", LinkEthernet, 1500, false)
	if slices.Equal(live, dead) || !needsLiveHandle("VLAN 100") {
		t.Fatal("vlan 100 compiles the same for a live and a dead handle; the test cannot tell them apart")
	}
}

// TestFixCookedKeepsAncillaryLoads: loads of the kernel's ancillary data
// are not moved by the cooked-header translation.
func TestFixCookedKeepsAncillaryLoads(t *testing.T) {
	prog := []insn{{Code: bpfLD | bpfABS | 0x10, K: skfAdOff + skfAdVlanTagPresent}, {Code: bpfLD | bpfABS | 0x08, K: 30}, {Code: bpfRET | bpfK, K: 100}}
	if err := fixCooked("x", prog, 100); err != nil {
		t.Fatal(err)
	}
	if prog[0].K != skfAdOff+skfAdVlanTagPresent || prog[1].K != 14 || prog[2].K != 84 {
		t.Fatalf("fixed program %+v", prog)
	}
}

// TestCompileCancelled: a cancelled context ends a compilation at once,
// with the context's cause.
func TestCompileCancelled(t *testing.T) {
	ctx, cancel := context.WithCancelCause(context.Background())
	why := errors.New("interrupted")
	cancel(why)
	_, err := compileContext(ctx, "port 1 or port 2 or port 3", LinkEthernet, 100)
	if !errors.Is(err, why) {
		t.Fatalf("compile with a cancelled context: %v, want %v", err, why)
	}
}

// FuzzCompileFilter: any expression, for any of the link types, either
// compiles to a well-formed program (cooked ones translated too) or fails
// with a FilterError; libpcap and the translation never crash. Bit 2 of l
// chooses a live handle (as capture uses, tens of milliseconds each) or a
// dead one (the same parser, code generator and optimizer, without the
// VLAN flag), so the fuzzer gets through many inputs.
func FuzzCompileFilter(f *testing.F) {
	for _, s := range []string{"", "icmp", "vlan 100", "tcp[tcpflags] & tcp-syn != 0", "inbound and icmp",
		"ether[0:4] = 1", "ip6 and udp portrange 1-2", "((", "port 99999", "mpls 3 and vlan", "host ::1 or net 10/8"} {
		for _, l := range []uint8{0, 1, 2, 4, 5, 6} {
			f.Add(s, l)
		}
	}
	links := []LinkType{LinkEthernet, LinkRaw, LinkLinuxSLL}
	f.Fuzz(func(t *testing.T, expr string, l uint8) {
		link := links[int(l&3)%len(links)]
		prog, err := compileExprMode(expr, link, 262144, l&4 != 0)
		if err == nil && link == LinkLinuxSLL {
			err = fixCooked(expr, prog, 262144)
		}
		if err != nil {
			var fe *FilterError
			if !errors.As(err, &fe) || !errors.Is(err, ErrFilter) {
				t.Fatalf("%q on %v: error %v is not a FilterError", expr, link, err)
			}
			return
		}
		checkProgram(t, expr, prog)
	})
}
