package test

import (
	"bufio"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netobs/netobs/internal/nstest"
	"github.com/netobs/netobs/internal/nstest/nsopen"
	"github.com/netobs/netobs/netobs/nsnet"
)

// asUser is setpriv's argument list that runs a command as nobody with
// only the capabilities in caps (like "+net_raw,+net_admin"; "" for none)
// and never CAP_SYS_ADMIN.
func asUser(caps string) []string {
	set := "-all"
	if caps != "" {
		set += "," + caps
	}
	return []string{"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
		"--inh-caps=" + set, "--ambient-caps=" + set, "--bounding-set=-sys_admin", "--"}
}

// startAs starts cmd with its stderr collected, killed at the end of the
// test if still running.
func startAs(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	return launch(t, "", name, args...)
}

// TestForwardWithoutSysAdmin: forward into another namespace without
// CAP_SYS_ADMIN fails at start with exit 1 and one line naming it, instead
// of serving and resetting every connection.
func TestForwardWithoutSysAdmin(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.RequireTools(t, "setpriv")
	other := nstest.NetNS(t)
	p := startAs(t, "setpriv", append(asUser("")[1:], netobsBin, "forward", other, "0", "80")...)
	for {
		if strings.Contains(p.stderr.String(), "forward: tcp") {
			p.cmd.Process.Signal(syscall.SIGINT)
			<-p.done
			t.Fatalf("forward without CAP_SYS_ADMIN started serving: %s", p.stderr)
		}
		select {
		case <-p.done:
			lines := strings.Split(strings.TrimSpace(p.stderr.String()), "\n")
			if p.code != 1 || len(lines) != 1 || !strings.Contains(lines[0], "CAP_SYS_ADMIN") {
				t.Fatalf("forward without CAP_SYS_ADMIN: exit %d, stderr %q; want exit 1 and one line naming CAP_SYS_ADMIN", p.code, p.stderr)
			}
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// TestSelfNeedsNoSysAdmin: sockets, capture and forward on their own
// namespace enter nothing, so a user with CAP_NET_RAW and CAP_NET_ADMIN
// but not CAP_SYS_ADMIN can use them with "self". They run in a namespace
// the test made (ip netns exec), where "self" is that namespace.
func TestSelfNeedsNoSysAdmin(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.RequireTools(t, "setpriv", "ip", "ping")
	name, ns := nsopen.New(t)
	inNS := func(args ...string) []string {
		return append(append([]string{"netns", "exec", name}, asUser("+net_raw,+net_admin")...), append([]string{netobsBin}, args...)...)
	}

	// An echo service inside the namespace, for forward to reach.
	svc, err := nsnet.Listen(ns, "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	go func() {
		for {
			c, err := svc.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()

	// forward self: listens and dials in its own namespace.
	fw := launch(t, "forward: tcp", "ip", inNS("forward", "self", "0", svc.Addr().String())...)
	fw.waitReady(t)
	var addr string
	fmt.Sscanf(fw.stderr.String(), "forward: tcp %s", &addr)
	c, err := nsnet.Dial(ns, "tcp", addr)
	if err != nil {
		t.Fatalf("dial forward at %q: %v (stderr %s)", addr, err, fw.stderr)
	}
	c.SetDeadline(time.Now().Add(20 * time.Second))
	fmt.Fprintln(c, "through forward self")
	line, err := bufio.NewReader(c).ReadString('\n')
	c.Close()
	if line != "through forward self\n" {
		t.Errorf("forward self without CAP_SYS_ADMIN: read %q, %v; stderr %s", line, err, fw.stderr)
	}

	// sockets self lists forward's listener.
	cmd := exec.Command("ip", inNS("sockets", "self")...)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), addr) {
		t.Errorf("sockets self without CAP_SYS_ADMIN: %v, output %q; want a line with %s", err, out, addr)
	}
	if code := fw.stop(t); code != 0 {
		t.Errorf("forward self exited %d: %s", code, fw.stderr)
	}

	// capture self sees a ping on its loopback.
	cp := launch(t, "capturing on", "ip", inNS("capture", "self", "-i", "lo", "-c", "2", "--", "icmp")...)
	cp.waitReady(t)
	nstest.Run(t, "ip", "netns", "exec", name, "ping", "-c", "1", "-W", "5", "127.0.0.1")
	select {
	case <-cp.done:
	case <-time.After(2 * time.Minute):
		t.Fatalf("capture self did not stop after 2 packets: %s", cp.stderr)
	}
	if cp.code != 0 || !strings.Contains(cp.stderr.String(), "2 packets captured") {
		t.Errorf("capture self without CAP_SYS_ADMIN: exit %d, stderr %s", cp.code, cp.stderr)
	}
}

// TestAttachTUNWithoutBPF: without CAP_BPF and CAP_SYS_ADMIN netobs may
// not load the eBPF filter that lets a tun discard what the ring has
// seen; attach says so and reads the device's queue instead of failing.
// It runs in a namespace the test made, as "self" (no setns needed).
func TestAttachTUNWithoutBPF(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.RequireTools(t, "setpriv", "ip", "ping")
	ns := nstest.NetNS(t)
	dev := nstest.UniqueName("tun")
	p := startProc(t, "netobs: attached", "ip", "netns", "exec", ns, "setpriv", "--bounding-set=-sys_admin,-bpf", "--",
		netobsBin, "attach", "self", "--tun", "--name", dev, "--addr", "10.73.0.1/24", "-c", "2")
	inNS(ns, "ping", "-c", "3", "-i", "0.2", "-W", "1", "10.73.0.9").Run()
	select {
	case <-p.done:
	case <-time.After(2 * time.Minute):
		t.Fatalf("attach -c 2 did not stop: %s", p.stderr)
	}
	errs := p.stderr.String()
	if p.code != 0 || !strings.Contains(errs, "2 frames read") {
		t.Fatalf("attach --tun without CAP_BPF: exit %d, stderr %q; want exit 0 and 2 frames read", p.code, errs)
	}
	if !strings.Contains(errs, "reading the device's queue instead of a ring") || !strings.Contains(errs, "CAP_BPF") || strings.Contains(errs, "AF_PACKET ring") {
		t.Errorf("stderr does not say the queue is read for want of CAP_BPF: %q", errs)
	}
	if s := tunDevices(t, ns); s != "" {
		t.Errorf("device left: %s", s)
	}
}
