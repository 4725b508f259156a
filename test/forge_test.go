package test

import (
	"encoding/binary"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/netobs/netobs/internal/nstest"
	"github.com/netobs/netobs/nsjoin"
)

// A root process inside a watched namespace can send netlink messages to
// the sockets netobs made there: by unicast to their port ids (listed in
// the namespace's /proc/net/netlink) or by multicast to the groups they
// joined. These tests do so from a socket created in the namespace.

// forgeMsg encodes one netlink message with route attributes.
func forgeMsg(typ uint16, fixed []byte, attrs ...[]byte) []byte {
	b := make([]byte, unix.NLMSG_HDRLEN, 64)
	b = append(b, fixed...)
	for _, a := range attrs {
		b = append(b, a...)
	}
	binary.NativeEndian.PutUint32(b[0:], uint32(len(b)))
	binary.NativeEndian.PutUint16(b[4:], typ)
	return b
}

func forgeAttr(typ uint16, val []byte) []byte {
	b := binary.NativeEndian.AppendUint16(nil, uint16(4+len(val)))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, val...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// forgedAddr is an RTM_NEWADDR for 10.99.0.1/24 on lo that the kernel
// never sent.
func forgedAddr() []byte {
	ifa := []byte{unix.AF_INET, 24, 0, 0, 1, 0, 0, 0}
	ip := []byte{10, 99, 0, 1}
	return forgeMsg(unix.RTM_NEWADDR, ifa, forgeAttr(unix.IFA_LOCAL, ip), forgeAttr(unix.IFA_ADDRESS, ip))
}

// malformedRule is the RTM_NEWRULE that crashed `netobs events` in the
// netlink library's ParseRouteAttr: its last attribute has length 5 and
// ends the message.
func malformedRule() []byte {
	frh := make([]byte, 12)
	frh[0], frh[7] = unix.AF_INET, unix.FR_ACT_TO_TBL
	b := forgeMsg(unix.RTM_NEWRULE, frh)
	b = append(b, 5, 0, unix.FRA_PRIORITY, 0, 7)
	binary.NativeEndian.PutUint32(b[0:], uint32(len(b)))
	return b
}

// forger is a NETLINK_ROUTE socket created inside a namespace and used
// from the host: what it sends comes from that namespace.
type forger struct{ fd int }

func newForger(t *testing.T, name string) *forger {
	t.Helper()
	ns, err := nsjoin.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	fd := -1
	if err := ns.Do(func() error {
		var err error
		fd, err = unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		t.Fatal(err)
	}
	return &forger{fd}
}

// send sends every message to every port (unicast; a refusal is what a
// socket connected to the kernel answers) and to the groups (multicast).
func (f *forger) send(t *testing.T, ports []uint32, groups []uint32, msgs ...[]byte) {
	t.Helper()
	for _, m := range msgs {
		for _, p := range ports {
			err := unix.Sendto(f.fd, m, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Pid: p})
			if err != nil && err != unix.ECONNREFUSED {
				t.Fatalf("sendto port %d: %v", p, err)
			}
		}
		for _, g := range groups {
			if err := unix.Sendto(f.fd, m, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: 1 << (g - 1)}); err != nil {
				t.Fatalf("sendto group %d: %v", g, err)
			}
		}
	}
}

// netlinkPorts returns the port ids of process pid's NETLINK_ROUTE sockets
// in namespace ns, from the namespace's /proc/net/netlink.
func netlinkPorts(t *testing.T, pid int, ns string) []uint32 {
	t.Helper()
	inodes := map[string]bool{}
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if l, err := os.Readlink(dir + "/" + e.Name()); err == nil && strings.HasPrefix(l, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	lines := strings.Split(strings.TrimSpace(nsOutput(t, ns, "cat", "/proc/net/netlink")), "\n")
	col := map[string]int{}
	for i, h := range strings.Fields(lines[0]) {
		col[h] = i
	}
	var ports []uint32
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) <= col["Inode"] || f[col["Eth"]] != "0" || !inodes[f[col["Inode"]]] {
			continue
		}
		p, err := strconv.ParseUint(f[col["Pid"]], 10, 32)
		if err != nil {
			t.Fatalf("/proc/net/netlink: %q: %v", l, err)
		}
		ports = append(ports, uint32(p))
	}
	if len(ports) == 0 {
		t.Fatalf("no netlink socket of process %d in %s:\n%s", pid, ns, strings.Join(lines, "\n"))
	}
	return ports
}

// TestEventsForgedNetlink: forged messages sent to netobs events's sockets
// in a watched namespace (a fake address, and the rule that crashed the
// parser) are neither printed nor fatal, and real changes are reported
// afterwards. Both for a namespace named and for --all.
func TestEventsForgedNetlink(t *testing.T) {
	nstest.RequireRoot(t)
	for _, all := range []bool{false, true} {
		t.Run(fmt.Sprintf("all=%v", all), func(t *testing.T) {
			ns := nstest.NetNS(t)
			args := []string{"--json", "--kinds", "addr,rule", ns}
			if all {
				args = []string{"--json", "--kinds", "addr,rule", "--all"}
			}
			p := startEvents(t, args...)
			ports := netlinkPorts(t, p.cmd.Process.Pid, ns)
			f := newForger(t, ns)
			for round := 0; round < 3; round++ {
				f.send(t, ports, []uint32{unix.RTNLGRP_IPV4_IFADDR, unix.RTNLGRP_IPV4_RULE}, forgedAddr(), malformedRule())
				// A real change, queued after the forged ones: once it is
				// printed, they have been read.
				real := fmt.Sprintf("10.98.%d.1/32", round)
				nstest.Run(t, "ip", "-n", ns, "addr", "add", real, "dev", "lo")
				p.next(t, "the real address "+real, func(ev evLine) bool {
					if strings.Contains(ev.Text, "10.99.0.1") || (ev.Kind == "rule" && ev.Action != "initial") {
						t.Errorf("forged message printed as an event: %+v", ev)
					}
					return ev.Kind == "addr" && strings.Contains(ev.Text, real)
				})
			}
			if code := p.stop(); code != 0 {
				t.Errorf("exit %d after SIGINT: %s", code, p.errText())
			}
			m := regexp.MustCompile(`(\d+) forged netlink messages dropped`).FindStringSubmatch(p.errText())
			if m == nil || m[1] == "0" {
				t.Errorf("totals do not count the forged multicasts: %s", p.errText())
			}
		})
	}
}

// TestAttachForgedNetlink: forged messages sent to every netlink socket
// of netobs attach in the namespace do not stop it with a false "device
// gone" (without --events: only the device's own sockets are there), nor
// crash its event watcher (with --events), whose events keep coming.
func TestAttachForgedNetlink(t *testing.T) {
	nstest.RequireRoot(t)
	for _, withEvents := range []bool{false, true} {
		t.Run(fmt.Sprintf("events=%v", withEvents), func(t *testing.T) {
			ns := nstest.NetNS(t)
			dev := nstest.UniqueName("tap")
			args := []string{"attach", ns, "--tap", "--name", dev, "--json"}
			if withEvents {
				args = append(args, "--events", "--event-kinds", "addr")
			}
			b := startNetobs(t, args...)
			b.waitStderr(t, "netobs: attached")
			ports := netlinkPorts(t, b.cmd.Process.Pid, ns)
			f := newForger(t, ns)
			f.send(t, ports, []uint32{unix.RTNLGRP_IPV4_IFADDR, unix.RTNLGRP_IPV4_RULE}, forgedAddr(), malformedRule())
			// attach reads the device's counters every 100ms: give it 20 rounds.
			select {
			case <-b.done:
				t.Fatalf("netobs attach exited %d after forged netlink messages: %s", b.code, b.stderr.String())
			case <-time.After(2 * time.Second):
			}
			if withEvents {
				nstest.Run(t, "ip", "-n", ns, "addr", "add", "10.97.0.1/32", "dev", "lo")
				for i := 0; !strings.Contains(b.stdout.String(), "10.97.0.1/32"); i++ {
					select {
					case <-b.done:
						t.Fatalf("netobs attach exited %d: %s", b.code, b.stderr.String())
					case <-time.After(10 * time.Millisecond):
					}
					if i > 3000 {
						t.Fatalf("no event for the real address:\n%s", b.stdout.String())
					}
				}
			}
			if strings.Contains(b.stdout.String(), "10.99.0.1") {
				t.Errorf("forged address printed as an event:\n%s", b.stdout.String())
			}
			if code := b.stop(t, syscall.SIGINT); code != 0 || !strings.Contains(b.stderr.String(), "interrupted") {
				t.Fatalf("exit %d after SIGINT: %s", code, b.stderr.String())
			}
		})
	}
}

// TestAttachMirrorForgedNetlink: datagrams sent to the mirror's tc socket by
// a process in the target must not make the mirror's removal fail, which
// would leave its filters capturing after netobs is gone.
func TestAttachMirrorForgedNetlink(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.RequireTools(t, "tc")
	ns := nstest.NetNS(t)
	a, b := nstest.UniqueName("va"), nstest.UniqueName("vb")
	nstest.Run(t, "ip", "-n", ns, "link", "add", a, "type", "veth", "peer", "name", b)
	nstest.Run(t, "ip", "-n", ns, "link", "set", a, "up")
	nstest.Run(t, "ip", "-n", ns, "link", "set", b, "up")
	run := startNetobs(t, "attach", ns, "--tap", "--name", nstest.UniqueName("tap"), "--mirror", a, "--json")
	run.waitStderr(t, "netobs: attached")
	ports := netlinkPorts(t, run.cmd.Process.Pid, ns)
	f := newForger(t, ns)
	for i := 0; i < 4; i++ {
		f.send(t, ports, nil, forgedAddr(), malformedRule())
	}
	if code := run.stop(t, syscall.SIGINT); code != 0 {
		t.Fatalf("exit %d after SIGINT: %s", code, run.stderr.String())
	}
	for _, parent := range []string{"ingress", "egress"} {
		if out := nstest.Run(t, "tc", "-n", ns, "filter", "show", "dev", a, parent); strings.TrimSpace(out) != "" {
			t.Errorf("tc filters left on %s %s after netobs stopped:\n%s", a, parent, out)
		}
	}
	if out := nstest.Run(t, "tc", "-n", ns, "qdisc", "show", "dev", a); strings.Contains(out, "clsact") {
		t.Errorf("clsact qdisc left on %s after netobs stopped:\n%s", a, out)
	}
}
