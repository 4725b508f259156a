package test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/netobs/netobs/internal/nstest"
)

// oneCleanLine fails unless s is exactly one line starting with "netobs: "
// and free of raw control characters (ESC above all).
func oneCleanLine(t *testing.T, what, s string) {
	t.Helper()
	body, ok := strings.CutSuffix(s, "\n")
	if !ok || !strings.HasPrefix(body, "netobs: ") || strings.HasPrefix(body, "netobs: netobs") {
		t.Errorf("%s: stderr %q: want one line with one \"netobs: \" prefix", what, s)
	}
	if i := strings.IndexFunc(body, unicode.IsControl); i >= 0 {
		t.Errorf("%s: stderr %q has a raw control character at byte %d", what, s, i)
	}
}

// TestKernelEINVALExits1: EINVAL from the kernel ("invalid argument") is a
// runtime failure, exit 1; only usage mistakes exit 2.
func TestKernelEINVALExits1(t *testing.T) {
	named := nstest.NetNS(t)
	cases := []struct {
		args []string
		code int
		want string
	}{
		// IPv6 is off on a device whose MTU is below 1280: the kernel
		// refuses the address with EINVAL.
		{[]string{"attach", named, "--tap", "--mtu", "68", "--addr", "fd00::1/64", "-c", "1"}, 1, "invalid argument"},
		// A link-local address without a zone cannot be bound (EINVAL),
		// here inside the namespace.
		{[]string{"forward", named, "--reverse", "[fe80::1]:0", "127.0.0.1:9"}, 1, "invalid argument"},
		{[]string{"attach", named, "--tap", "--mtu", "0"}, 2, "--mtu 0"},
		{[]string{"forward", named, "0"}, 2, "needs NSREF, LISTEN and TARGET"},
	}
	for _, c := range cases {
		r := netobs(t, c.args...)
		if r.code != c.code || !strings.Contains(r.stderr, c.want) {
			t.Errorf("netobs %s: exit %d, stderr %q; want exit %d and %q", strings.Join(c.args, " "), r.code, r.stderr, c.code, c.want)
		}
	}
	// ip agrees the kernel refuses that address on that device.
	dev := nstest.UniqueName("tp")
	nstest.Run(t, "ip", "-n", named, "tuntap", "add", "mode", "tap", "name", dev)
	nstest.Run(t, "ip", "-n", named, "link", "set", dev, "mtu", "68")
	if out, err := exec.Command("ip", "-n", named, "addr", "add", "fd00::1/64", "dev", dev).CombinedOutput(); err == nil || !strings.Contains(strings.ToLower(string(out)), "invalid argument") {
		t.Errorf("ip addr add fd00::1/64 on an MTU 68 device: %v %s; want Invalid argument", err, out)
	}
}

// TestErrorsEscapeInput: whatever a user passes (NSREF, interface name,
// file name, filter text, address), the error is one line with the input
// escaped, never raw escape sequences or newlines.
func TestErrorsEscapeInput(t *testing.T) {
	named := nstest.NetNS(t)
	const evil = "\x1b[31m\n"
	const shown = `\x1b[31m\n`
	dir := t.TempDir()
	evilFile := filepath.Join(dir, evil, "x")
	cases := [][]string{
		{"ns", "id", evil},
		{"ns", "same", "self", evil},
		{"ns", "exec", "--net", evil, "--", "true"},
		{"ns", "del", evil},
		{"sockets", evil},
		{"events", evil},
		{"capture", evil, "-c", "1"},
		{"attach", evil, "--tap"},
		{"forward", evil, "0", "1"},
		{"ns", "id", "/proc/" + evil},
		{"capture", named, "-i", evil, "-c", "1"},
		{"capture", named, "-c", "1", "-w", evilFile},
		{"capture", named, "-c", "1", "--", "host", evil},
		{"attach", named, "--tap", "--name", evil},
		{"attach", named, "--tap", "--mirror", evil},
		{"attach", named, "--tap", "--inject", evilFile, "--inject-only"},
		{"forward", named, evil, "1"},
		{"ns", "ls", "--type", evil},
		{"events", "--kinds", evil},
		{"ns", "ls", "--" + evil},
	}
	for _, args := range cases {
		what := "netobs " + strings.Join(args, " ")
		r := netobs(t, args...)
		if r.code == 0 {
			t.Errorf("%s: exit 0", what)
		}
		oneCleanLine(t, what, r.stderr)
		if !strings.Contains(r.stderr, shown[:len(shown)-2]) {
			t.Errorf("%s: stderr %q does not show the input escaped (%s)", what, r.stderr, shown)
		}
	}
}

// TestTextOutputEscapesNames: names from inside a namespace (a process
// name, an interface name, an ip-netns name) holding escape sequences are
// printed escaped by sockets, ns ls and ns id.
func TestTextOutputEscapesNames(t *testing.T) {
	nstest.RequireTools(t, "socat")
	named := nstest.NetNS(t)
	// An ip netns name and an interface name with an escape sequence.
	evilNS := nstest.UniqueName("ns") + "\x1b[1m"
	nstest.Run(t, "ip", "netns", "add", evilNS)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", evilNS).Run() })
	dev := "e\x1b[7m"
	nstest.Run(t, "ip", "-n", named, "link", "add", dev, "type", "veth", "peer", "name", nstest.UniqueName("vp"))
	nstest.Run(t, "ip", "-n", named, "link", "set", dev, "up")
	// A process whose name is an escape sequence, holding a socket bound
	// to that interface.
	socat, _ := exec.LookPath("socat")
	evilProg := filepath.Join(t.TempDir(), "so\x1b[31mc\n")
	if err := os.Symlink(socat, evilProg); err != nil {
		t.Fatal(err)
	}
	pid := startIn(t, named, evilProg, "UDP-LISTEN:5353,so-bindtodevice="+dev, "/dev/null")

	var socks string
	for i := 0; i < 500 && !strings.Contains(socks, ":5353"); i++ {
		socks = mustNetobs(t, "sockets", named)
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.Contains(socks, `so\x1b[31mc`) || !strings.Contains(socks, `%e\x1b[7m:5353`) {
		t.Errorf("sockets %s: want the process and device names escaped:\n%s", named, socks)
	}
	ls := mustNetobs(t, "ns", "ls", "--type", "net")
	if !strings.Contains(ls, `so\x1b[31mc`) || !strings.Contains(ls, `\x1b[1m`) {
		t.Errorf("ns ls: want the command and the ip netns name escaped:\n%s", ls)
	}
	id := mustNetobs(t, "ns", "id", evilNS, "/proc/"+strconv.Itoa(pid)+"/ns/net")
	if !strings.Contains(id, `\x1b[1m`) {
		t.Errorf("ns id: want the ip netns name escaped:\n%s", id)
	}
	for what, out := range map[string]string{"sockets": socks, "ns ls": ls, "ns id": id} {
		if strings.ContainsRune(out, 0x1b) {
			t.Errorf("%s printed a raw ESC:\n%q", what, out)
		}
	}
}

// TestCompletion: NSREF arguments complete to ip netns names (and self)
// wherever a command takes one; ns del offers names only; a mistyped
// completion shell is a usage error.
func TestCompletion(t *testing.T) {
	named := nstest.NetNS(t)
	complete := func(args ...string) []string {
		out := mustNetobs(t, append([]string{"__complete"}, args...)...)
		var words []string
		for _, l := range strings.Split(out, "\n") {
			if l != "" && !strings.HasPrefix(l, ":") {
				words = append(words, l)
			}
		}
		return words
	}
	for _, args := range [][]string{
		{"attach", ""}, {"capture", ""}, {"capture", named, ""}, {"events", ""}, {"events", named, ""},
		{"forward", ""}, {"sockets", ""}, {"ns", "id", ""}, {"ns", "same", ""}, {"ns", "exec", "--net", ""},
	} {
		if got := complete(args...); !contains(got, named) || !contains(got, "self") {
			t.Errorf("completing netobs %s: %v; want %s and self", strings.Join(args, " "), got, named)
		}
	}
	if got := complete("ns", "del", ""); !contains(got, named) || contains(got, "self") {
		t.Errorf("completing ns del: %v; want %s and not self", got, named)
	}
	for _, args := range [][]string{{"forward", named, ""}, {"sockets", named, ""}, {"attach", named, ""}} {
		if got := complete(args...); contains(got, named) {
			t.Errorf("completing netobs %s: %v; want no NSREF after the first argument", strings.Join(args, " "), got)
		}
	}
	r := netobs(t, "completion", "frob")
	if r.code != 2 || r.stdout != "" {
		t.Errorf("completion frob: exit %d, stdout %q; want exit 2 and no help", r.code, r.stdout)
	}
	oneCleanLine(t, "completion frob", r.stderr)
}

// TestVersionMatchesBuildInfo: --version names what `go version -m` reads
// from the binary: Go version, module version and VCS revision if stamped.
func TestVersionMatchesBuildInfo(t *testing.T) {
	out := mustNetobs(t, "--version")
	info, err := exec.Command("go", "version", "-m", netobsBin).Output()
	if err != nil {
		t.Fatal(err)
	}
	goVersion := strings.Fields(strings.SplitN(string(info), "\n", 2)[0])[1]
	want := []string{"netobs ", goVersion}
	for _, l := range strings.Split(string(info), "\n") {
		f := strings.Fields(l)
		switch {
		case len(f) >= 3 && f[0] == "mod" && f[1] == "github.com/netobs/netobs":
			want = append(want, f[2])
		case len(f) == 2 && f[0] == "build" && strings.HasPrefix(f[1], "vcs.revision="):
			want = append(want, strings.TrimPrefix(f[1], "vcs.revision="))
		}
	}
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("--version printed %q; want it to contain %q (go version -m says:\n%s)", out, w, info)
		}
	}
	if strings.Count(out, "\n") != 1 {
		t.Errorf("--version: %q is not one line", out)
	}
}

// TestEmptyNSRefIsUsage: an empty NSREF (a shell variable that was not
// set) is a mistake in how netobs was called, wherever an NSREF goes:
// exit 2 and one line, also under --host-root, where it must not be read
// as a PID.
func TestEmptyNSRefIsUsage(t *testing.T) {
	nstest.RequireRoot(t)
	for _, args := range [][]string{
		{"ns", "id", ""},
		{"--host-root", "/", "ns", "id", ""},
		{"--host-root", t.TempDir(), "ns", "id", ""},
		{"sockets", ""},
		{"events", "self", ""},
		{"ns", "same", "self", ""},
	} {
		r := netobs(t, args...)
		if r.code != 2 || r.stdout != "" || !strings.Contains(r.stderr, "empty NSREF") {
			t.Errorf("netobs %q: exit %d, stdout %q, stderr %q; want exit 2 and a line saying the NSREF is empty", args, r.code, r.stdout, r.stderr)
		}
		oneCleanLine(t, strings.Join(args, " "), r.stderr)
	}
}
