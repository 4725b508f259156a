package test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netobs/netobs/internal/nstest"
)

// The tests of `attach --mirror` check that the mirror observes without
// changing the target's tc classification, and that its rules go away
// whatever way netobs ends.

// waitMirror waits until netobs's mirror filters are on both clsact
// parents of dev.
func waitMirror(t *testing.T, b *bgNetobs, ns, dev string) {
	t.Helper()
	b.waitStderr(t, "netobs: attached")
	for _, parent := range []string{"ingress", "egress"} {
		if out := nsOutput(t, ns, "tc", "filter", "show", "dev", dev, parent); !strings.Contains(out, "mirred") {
			t.Fatalf("no mirror filter on %s %s:\n%s", dev, parent, out)
		}
	}
}

// tcFilters returns `tc filter show` of both clsact parents of dev.
func tcFilters(t *testing.T, ns, dev string) string {
	t.Helper()
	return nsOutput(t, ns, "tc", "filter", "show", "dev", dev, "ingress") + nsOutput(t, ns, "tc", "filter", "show", "dev", dev, "egress")
}

func hasClsact(t *testing.T, ns, dev string) bool {
	t.Helper()
	return strings.Contains(nsOutput(t, ns, "tc", "qdisc", "show", "dev", dev), "clsact")
}

// icmpDivert sets up the user's tc rule of the tests: ICMP arriving on
// dev in ns is redirected, at pref 50000, to a second veth whose peer is
// in a namespace of its own. It returns that namespace and the peer, for
// tcpdump to count what the rule diverted.
func icmpDivert(t *testing.T, ns, dev string) (countNS, countDev string) {
	t.Helper()
	countNS = nstest.NetNS(t)
	vc, vd := nstest.Veth(t, ns, "10.78.9.1/24", countNS, "10.78.9.2/24")
	nstest.Run(t, "tc", "-n", ns, "qdisc", "add", "dev", dev, "clsact")
	nstest.Run(t, "tc", "-n", ns, "filter", "add", "dev", dev, "ingress", "pref", "50000", "protocol", "ip",
		"u32", "match", "ip", "protocol", "1", "0xff", "action", "mirred", "egress", "redirect", "dev", vc)
	return countNS, vd
}

// countEchoRequests runs tcpdump in ns on dev until it has seen n ICMP
// echo requests or timeout passes, and returns how many it saw.
func countEchoRequests(t *testing.T, ns, dev string, n int, traffic func()) int {
	t.Helper()
	td := startCmd(t, inNS(ns, "tcpdump", "-i", dev, "-nn", "-l", "--immediate-mode", "icmp[icmptype] == 8"))
	defer func() { td.cmd.Process.Kill(); <-td.done }()
	td.waitStderr(t, "listening on")
	traffic()
	count := func() int { return strings.Count(td.stdout.String(), "ICMP echo request") }
	for deadline := time.Now().Add(5 * time.Second); count() < n && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	return count()
}

// TestAttachMirrorKeepsUserFilters: a user filter after netobs's mirror
// (ICMP redirected away at pref 50000) keeps working while netobs mirrors
// the interface, and the mirror still sees the traffic.
func TestAttachMirrorKeepsUserFilters(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.RequireTools(t, "ip", "ping", "tc", "tshark", "tcpdump")
	a, bns := nstest.NetNS(t), nstest.NetNS(t)
	va, _ := nstest.Veth(t, a, "10.78.0.1/24", bns, "10.78.0.2/24")
	countNS, vd := icmpDivert(t, a, va)
	userRules := tcFilters(t, a, va)

	file := filepath.Join(t.TempDir(), "m.pcap")
	b := startNetobs(t, "attach", a, "--tap", "--mirror", va, "-w", file)
	waitMirror(t, b, a, va)
	got := countEchoRequests(t, countNS, vd, 3, func() {
		inNS(bns, "ping", "-c", "3", "-i", "0.2", "-W", "1", "10.78.0.1").Run()
	})
	if got != 3 {
		t.Errorf("the user's filter diverted %d of 3 echo requests while netobs mirrored %s:\n%s", got, va, tcFilters(t, a, va))
	}
	if code := b.stop(t, syscall.SIGINT); code != 0 {
		t.Fatalf("exit %d: %s", code, b.stderr.String())
	}
	if n := tshark(t, file, "icmp.type == 8 && ip.src == 10.78.0.2"); n != 3 {
		t.Errorf("the mirror saw %d of 3 echo requests", n)
	}
	if after := tcFilters(t, a, va); after != userRules {
		t.Errorf("tc filters after netobs differ from the user's:\nbefore:\n%s\nafter:\n%s", userRules, after)
	}
	if !hasClsact(t, a, va) {
		t.Errorf("netobs removed the user's clsact qdisc from %s", va)
	}
}

// TestAttachMirrorTwice: two mirrors of one interface; the first to exit
// leaves the second's filters (and the clsact qdisc they need), the last
// removes the qdisc.
func TestAttachMirrorTwice(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.RequireTools(t, "ip", "ping", "tc", "tshark")
	a, bns := nstest.NetNS(t), nstest.NetNS(t)
	va, _ := nstest.Veth(t, a, "10.78.1.1/24", bns, "10.78.1.2/24")
	dir := t.TempDir()
	f1, f2 := filepath.Join(dir, "1.pcap"), filepath.Join(dir, "2.pcap")
	b1 := startNetobs(t, "attach", a, "--tap", "--mirror", va, "-w", f1)
	waitMirror(t, b1, a, va)
	b2 := startNetobs(t, "attach", a, "--tap", "--mirror", va, "-w", f2)
	b2.waitStderr(t, "netobs: attached")
	if code := b1.stop(t, syscall.SIGINT); code != 0 {
		t.Fatalf("first mirror: exit %d: %s", code, b1.stderr.String())
	}
	if !hasClsact(t, a, va) {
		t.Fatalf("the first mirror to exit removed the clsact qdisc the second uses")
	}
	nsOutput(t, bns, "ping", "-c", "3", "-i", "0.2", "10.78.1.1")
	if code := b2.stop(t, syscall.SIGINT); code != 0 {
		t.Fatalf("second mirror: exit %d: %s", code, b2.stderr.String())
	}
	if n := tshark(t, f2, "icmp.type == 8 && ip.src == 10.78.1.2"); n != 3 {
		t.Errorf("the second mirror saw %d of 3 echo requests after the first exited", n)
	}
	if out := tcFilters(t, a, va); strings.TrimSpace(out) != "" {
		t.Errorf("filters left after both mirrors exited:\n%s", out)
	}
	if hasClsact(t, a, va) {
		t.Errorf("clsact qdisc left after both mirrors exited")
	}
}

// TestAttachMirrorAfterSIGKILL: the filters of a netobs killed with
// SIGKILL are removed by the next mirror of the interface, which sees the
// traffic; `attach --cleanup` removes them on demand and leaves the
// user's filters.
func TestAttachMirrorAfterSIGKILL(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.RequireTools(t, "ip", "ping", "tc", "tshark")
	a, bns := nstest.NetNS(t), nstest.NetNS(t)
	va, _ := nstest.Veth(t, a, "10.78.2.1/24", bns, "10.78.2.2/24")

	kill := func() {
		t.Helper()
		b := startNetobs(t, "attach", a, "--tap", "--mirror", va)
		waitMirror(t, b, a, va)
		b.cmd.Process.Kill()
		b.wait(t)
		if out := tcFilters(t, a, va); !strings.Contains(out, "mirred") {
			t.Fatalf("no stale filter after SIGKILL (the test needs one):\n%s", out)
		}
	}
	kill()
	file := filepath.Join(t.TempDir(), "m.pcap")
	b := startNetobs(t, "attach", a, "--tap", "--mirror", va, "-w", file)
	waitMirror(t, b, a, va)
	if n := strings.Count(tcFilters(t, a, va), "mirred"); n != 2 {
		t.Errorf("%d mirred filters with a second mirror running, want its 2 (stale ones removed):\n%s", n, tcFilters(t, a, va))
	}
	nsOutput(t, bns, "ping", "-c", "3", "-i", "0.2", "10.78.2.1")
	if code := b.stop(t, syscall.SIGINT); code != 0 {
		t.Fatalf("exit %d: %s", code, b.stderr.String())
	}
	if n := tshark(t, file, "icmp.type == 8 && ip.src == 10.78.2.2"); n != 3 {
		t.Errorf("the mirror after a SIGKILL saw %d of 3 echo requests", n)
	}
	if out := tcFilters(t, a, va); strings.TrimSpace(out) != "" {
		t.Errorf("filters left:\n%s", out)
	}
	if hasClsact(t, a, va) {
		t.Errorf("the clsact qdisc the killed netobs made is left")
	}

	// --cleanup, with the qdisc netobs made: filters and qdisc go.
	kill()
	r := netobs(t, "attach", "--cleanup", a)
	if r.code != 0 || strings.Count(r.stdout, "removed ") != 3 {
		t.Errorf("attach --cleanup: exit %d, want 3 lines \"removed ...\" (2 filters, the qdisc):\n%s%s", r.code, r.stdout, r.stderr)
	}
	if out := tcFilters(t, a, va); strings.TrimSpace(out) != "" || hasClsact(t, a, va) {
		t.Errorf("left after --cleanup:\n%s", out)
	}

	// --cleanup, with the user's qdisc and filter: only netobs's go.
	nstest.Run(t, "tc", "-n", a, "qdisc", "add", "dev", va, "clsact")
	nstest.Run(t, "tc", "-n", a, "filter", "add", "dev", va, "egress", "pref", "100", "protocol", "ip",
		"u32", "match", "ip", "protocol", "17", "0xff", "action", "mirred", "egress", "mirror", "dev", "lo")
	user := tcFilters(t, a, va)
	kill()
	r = netobs(t, "attach", "--cleanup", a)
	if r.code != 0 || strings.Count(r.stdout, "removed ") != 2 {
		t.Errorf("attach --cleanup: exit %d, want 2 lines \"removed ...\" (the filters):\n%s%s", r.code, r.stdout, r.stderr)
	}
	if out := tcFilters(t, a, va); out != user || !hasClsact(t, a, va) {
		t.Errorf("--cleanup changed the user's rules:\nbefore:\n%s\nafter:\n%s", user, out)
	}
	r = netobs(t, "attach", "--cleanup", a)
	if r.code != 0 || r.stdout != "" || !strings.Contains(r.stderr, "no stale") {
		t.Errorf("second --cleanup: exit %d: %s%s", r.code, r.stdout, r.stderr)
	}
}

// TestAttachMirroredInterfaceGone: when the mirrored interface is deleted,
// attach says so and exits 3, as when the device or namespace goes.
func TestAttachMirroredInterfaceGone(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.RequireTools(t, "ip", "tc")
	a, bns := nstest.NetNS(t), nstest.NetNS(t)
	va, _ := nstest.Veth(t, a, "10.78.3.1/24", bns, "10.78.3.2/24")
	b := startNetobs(t, "attach", a, "--tap", "--mirror", va)
	waitMirror(t, b, a, va)
	nstest.Run(t, "ip", "-n", a, "link", "del", va)
	if code := b.wait(t); code != 3 {
		t.Fatalf("exit %d after %s was deleted, want 3: %s", code, va, b.stderr.String())
	}
	if !strings.Contains(b.stderr.String(), va) || !strings.Contains(b.stderr.String(), "mirrored interface gone") {
		t.Errorf("stderr does not say %s is gone: %s", va, b.stderr.String())
	}
	if s := tunDevices(t, a); s != "" {
		t.Errorf("device left: %s", s)
	}
}

// TestStopSignals: SIGHUP and SIGQUIT stop every long-running command as
// SIGINT does: final counts printed, exit 0, nothing left in the target.
func TestStopSignals(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.RequireTools(t, "ip", "tc")
	a, bns := nstest.NetNS(t), nstest.NetNS(t)
	va, _ := nstest.Veth(t, a, "10.78.4.1/24", bns, "10.78.4.2/24")
	links := nsOutput(t, a, "ip", "-o", "link", "show")
	dir := t.TempDir()
	cmds := []struct {
		name   string
		args   []string
		ready  string
		counts string
	}{
		{"attach", []string{"attach", a, "--tap", "--mirror", va, "-w", filepath.Join(dir, "a.pcap")}, "netobs: attached", "frames read"},
		{"capture", []string{"capture", a, "-i", va, "-w", filepath.Join(dir, "c.pcap")}, "capturing on", "captured"},
		{"forward", []string{"forward", a, "0", "9"}, "forward: tcp", "connections"},
		{"events", []string{"events", a}, "events: watching", "events:"},
	}
	for _, c := range cmds {
		for _, sig := range []syscall.Signal{syscall.SIGHUP, syscall.SIGQUIT} {
			t.Run(c.name+"/"+sig.String(), func(t *testing.T) {
				b := startNetobs(t, c.args...)
				b.waitStderr(t, c.ready)
				code := b.stop(t, sig)
				errText := b.stderr.String()
				if code != 0 {
					t.Errorf("exit %d after %v, want 0: %s", code, sig, errText)
				}
				if i := strings.Index(errText, c.ready); !strings.Contains(errText[i+len(c.ready):], c.counts) {
					t.Errorf("no final counts (%q) after %v: %s", c.counts, sig, errText)
				}
				if strings.Contains(errText, "goroutine ") {
					t.Errorf("goroutine dump after %v", sig)
				}
				if out := tcFilters(t, a, va); strings.TrimSpace(out) != "" || hasClsact(t, a, va) {
					t.Errorf("tc rules left after %v:\n%s", sig, out)
				}
				if now := nsOutput(t, a, "ip", "-o", "link", "show"); linkNames(now) != linkNames(links) {
					t.Errorf("interfaces changed after %v:\nbefore:\n%s\nafter:\n%s", sig, links, now)
				}
			})
		}
	}
	for _, f := range []string{"a.pcap", "c.pcap"} {
		if st, err := os.Stat(filepath.Join(dir, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}
}

// linkNames returns the interface names of `ip -o link show` output.
func linkNames(s string) string {
	var names []string
	for _, line := range strings.Split(strings.TrimSpace(s), "\n") {
		if f := strings.Fields(line); len(f) > 1 {
			names = append(names, strings.TrimSuffix(f[1], ":"))
		}
	}
	return strings.Join(names, " ")
}

// TestRepeatedStopSignal: a stop signal repeated while netobs is already
// stopping (Ctrl-C pressed twice, a supervisor repeating SIGTERM) never
// kills it with the default action: it still ends with its own status
// and its counts.
func TestRepeatedStopSignal(t *testing.T) {
	nstest.RequireRoot(t)
	ns := nstest.NetNS(t)
	dir := t.TempDir()
	for i := 0; i < 20; i++ {
		b := startNetobs(t, "capture", ns, "-i", "lo", "-w", filepath.Join(dir, fmt.Sprintf("c%d.pcap", i)))
		b.waitStderr(t, "capturing on")
		for done := false; !done; {
			b.cmd.Process.Signal(syscall.SIGINT)
			select {
			case <-b.done:
				done = true
			case <-time.After(50 * time.Microsecond):
			}
		}
		if b.code != 0 || !strings.Contains(b.stderr.String(), "packets captured") {
			t.Fatalf("run %d: exit %d after repeated SIGINT, want 0 with counts: %s", i, b.code, b.stderr.String())
		}
	}
}
