package test

import (
	"fmt"
	"net"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/netobs/netobs/internal/nstest/nsopen"

	"github.com/netobs/netobs/internal/nstest"
	"github.com/netobs/netobs/netobs/nsnet"
)

// sockJSON mirrors one line of `netobs sockets --json` (a sockdiag.Socket
// and its container's owner fields), with the "node" field `kubectl netobs
// sockets --json` adds.
type sockJSON struct {
	Netid     string `json:"netid"`
	State     string `json:"state"`
	RecvQ     uint32 `json:"recv_q"`
	SendQ     uint32 `json:"send_q"`
	Local     string `json:"local"`
	Peer      string `json:"peer"`
	LocalPort uint16 `json:"local_port"`
	Inode     uint64 `json:"inode"`
	Processes []struct {
		PID  int    `json:"pid"`
		Comm string `json:"comm"`
	} `json:"processes"`
	jsonOwner
	Node string `json:"node"`
}

// socketsJSON runs `netobs sockets --json args...` and decodes its lines.
func socketsJSON(t *testing.T, args ...string) []sockJSON {
	t.Helper()
	return jsonLines[sockJSON](t, "sockets --json", mustNetobs(t, append([]string{"sockets", "--json"}, args...)...))
}

func keys(socks []sockJSON) []string {
	var k []string
	for _, s := range socks {
		k = append(k, fmt.Sprintf("%s %s %d %d %s %s", s.Netid, s.State, s.RecvQ, s.SendQ, s.Local, s.Peer))
	}
	sort.Strings(k)
	return k
}

// ssKeys runs ss inside the namespace and keys its lines the same way.
func ssKeys(t *testing.T, name string, flags string) []string {
	t.Helper()
	out := nstest.Run(t, "ip", "netns", "exec", name, "ss", "-H"+flags)
	var k []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		// With one protocol selected, ss leaves out the Netid column.
		if strings.Contains(flags, "t") != strings.Contains(flags, "u") {
			f = append([]string{map[bool]string{true: "tcp", false: "udp"}[strings.Contains(flags, "t")]}, f...)
		}
		if len(f) < 6 {
			continue
		}
		k = append(k, strings.Join(f[:6], " "))
	}
	sort.Strings(k)
	return k
}

// startIn starts a command inside the named namespace (ip netns exec execs
// it in place, so the PID is the command's) and stops it at the end.
func startIn(t *testing.T, name string, args ...string) int {
	t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", name}, args...)...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd.Process.Pid
}

// TestSocketsMatchSS: the listing of a namespace with listeners, connected
// pairs, UDP sockets (bound, connected, bound to a device) over IPv4 and
// IPv6 is what ss -tuna prints inside it, and owners are found.
func TestSocketsMatchSS(t *testing.T) {
	nstest.RequireTools(t, "ss", "socat")
	name, ns := nsopen.New(t)
	var closers []interface{ Close() error }
	defer func() {
		for _, c := range closers {
			c.Close()
		}
	}()
	listen := func(network, addr string) net.Listener {
		ln, err := nsnet.Listen(ns, network, addr)
		if err != nil {
			t.Fatal(err)
		}
		closers = append(closers, ln)
		return ln
	}
	ln4 := listen("tcp4", "127.0.0.1:0")
	listen("tcp", ":0")
	ln6 := listen("tcp6", "[::1]:0")
	for _, ln := range []net.Listener{ln4, ln6} {
		c, err := nsnet.Dial(ns, "tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		s, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		closers = append(closers, c, s)
	}
	pc, err := nsnet.ListenPacket(ns, "udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closers = append(closers, pc)
	uc, err := nsnet.Dial(ns, "udp6", "[::1]:9")
	if err != nil {
		t.Fatal(err)
	}
	closers = append(closers, uc)
	socatPID := startIn(t, name, "socat", "-u", "UDP-RECV:5353,so-bindtodevice=lo", "STDOUT")
	socatTCP := startIn(t, name, "socat", "TCP6-LISTEN:8443,ipv6only=1,reuseaddr", "STDOUT")
	for i := 0; i < 500 && len(ssKeys(t, name, "tuna")) < 11; i++ {
		time.Sleep(10 * time.Millisecond) // socat binding
	}

	got, want := keys(socketsJSON(t, name)), ssKeys(t, name, "tuna")
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("netobs sockets:\n%s\nss -tuna inside:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if len(got) != 11 {
		t.Errorf("%d sockets, want 11:\n%s", len(got), strings.Join(got, "\n"))
	}
	for _, flags := range []string{"tln", "uln", "tan", "uan", "tuln"} {
		args := []string{name}
		for _, f := range flags {
			switch f {
			case 't', 'u', 'l':
				args = append(args, "-"+string(f))
			}
		}
		got, want := keys(socketsJSON(t, args...)), ssKeys(t, name, flags)
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("netobs sockets %v:\n%s\nss -%s:\n%s", args[1:], strings.Join(got, "\n"), flags, strings.Join(want, "\n"))
		}
	}

	// Owners: the socat processes by PID; ours by the test's PID.
	owners := map[string][]int{}
	for _, s := range socketsJSON(t, name) {
		for _, p := range s.Processes {
			owners[s.Local+" "+s.State] = append(owners[s.Local+" "+s.State], p.PID)
		}
	}
	for local, pid := range map[string]int{"0.0.0.0%lo:5353 UNCONN": socatPID, "[::]:8443 LISTEN": socatTCP, ln4.Addr().String() + " LISTEN": osPID()} {
		if len(owners[local]) != 1 || owners[local][0] != pid {
			t.Errorf("owners of %s: %v, want [%d]", local, owners[local], pid)
		}
	}

	// Text: a header and one line per socket.
	text := mustNetobs(t, "sockets", name, "-tl")
	lines := strings.Split(strings.TrimSpace(text), "\n")
	if !strings.HasPrefix(lines[0], "Netid") || len(lines) != 5 || !strings.Contains(text, "socat(pid="+strconv.Itoa(socatTCP)) {
		t.Errorf("text output:\n%s", text)
	}
}

func TestSocketsBadInput(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"sockets"}, 2, "needs NSREF"},
		{[]string{"sockets", nstest.UniqueName("no")}, 1, "no such named network namespace"},
		{[]string{"sockets", "/proc/self/ns/uts"}, 1, "is a uts namespace, not net"},
		{[]string{"sockets", "self", "-x"}, 2, "unknown shorthand"},
	} {
		r := netobs(t, tc.args...)
		if r.code != tc.code || !strings.Contains(r.stderr, tc.want) || strings.Count(r.stderr, "\n") != 1 {
			t.Errorf("%v: exit %d, stderr %q; want %d with %q", tc.args, r.code, r.stderr, tc.code, tc.want)
		}
	}
}
