package test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/netobs/netobs/internal/nstest"
)

// evLine mirrors one JSON line of `netobs events --json` (an events.Event),
// with the "node" field `kubectl netobs events --json` adds; parseAttachEvent
// reads the same object from a line of `netobs attach --json --events`.
// Every test decodes event lines into it, so a renamed field fails them all.
type evLine struct {
	Time    time.Time  `json:"time"`
	NS      evNS       `json:"ns"`
	Kind    string     `json:"kind"`
	Action  string     `json:"action"`
	Key     string     `json:"key"`
	Text    string     `json:"text"`
	Index   int        `json:"ifindex"`
	Dev     string     `json:"dev"`
	Notes   []string   `json:"notes"`
	Changes []evChange `json:"changes"`
	Node    string     `json:"node"`
}

// evNS mirrors events.Namespace: where an event came from, with the
// label and owner netobs gives a container's namespace.
type evNS struct {
	Dev   uint64 `json:"dev"`
	Inode uint64 `json:"inode"`
	Name  string `json:"name"`
	PID   int    `json:"pid"`
	Ref   string `json:"ref"`
	Label string `json:"label"`
	jsonOwner
}

// evChange mirrors events.Change, one difference a resync found.
type evChange struct {
	Kind   string `json:"kind"`
	Action string `json:"action"`
	Key    string `json:"key"`
	Text   string `json:"text"`
}

// parseAttachEvent decodes a line of `netobs attach --json --events` that
// carries a netlink event ({"event": {...}}); a frame's line is an error.
func parseAttachEvent(line string) (evLine, error) {
	var l struct {
		Event *evLine `json:"event"`
	}
	if err := json.Unmarshal([]byte(line), &l); err != nil {
		return evLine{}, err
	}
	if l.Event == nil {
		return evLine{}, fmt.Errorf("no \"event\" in %s", line)
	}
	return *l.Event, nil
}

// eventsProc is a `netobs events` running in the background.
type eventsProc struct {
	cmd    *exec.Cmd
	lines  chan string
	mu     sync.Mutex
	stderr bytes.Buffer
	done   chan struct{} // stdout read to its end
	errEnd chan struct{} // stderr read to its end
	seen   []evLine      // every event next has read
}

// startEvents runs netobs events with args and returns once it says it is
// watching, so that changes made afterwards must be reported.
func startEvents(t *testing.T, args ...string) *eventsProc {
	t.Helper()
	p := &eventsProc{cmd: exec.Command(netobsBin, append([]string{"events"}, args...)...),
		lines: make(chan string, 1<<16), done: make(chan struct{}), errEnd: make(chan struct{})}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan bool, 1)
	go func() {
		defer close(p.errEnd)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			p.mu.Lock()
			p.stderr.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
			if strings.HasPrefix(sc.Text(), "events: watching") {
				ready <- true
			}
		}
		ready <- false
	}()
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		close(p.lines)
		io.Copy(io.Discard, stdout)
	}()
	t.Cleanup(func() { p.stop() })
	select {
	case ok := <-ready:
		if !ok {
			p.cmd.Wait()
			t.Fatalf("netobs events %s did not start: %s", strings.Join(args, " "), p.errText())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("netobs events %s: not watching yet: %s", strings.Join(args, " "), p.errText())
	}
	return p
}

// wait waits for netobs to exit, having read all it wrote (Wait closes
// the pipes, so it comes last).
func (p *eventsProc) wait() {
	<-p.done
	<-p.errEnd
	p.cmd.Wait()
}

func (p *eventsProc) errText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

// stop interrupts netobs like ^C and returns its exit status.
func (p *eventsProc) stop() int {
	if p.cmd.ProcessState == nil {
		p.cmd.Process.Signal(syscall.SIGINT)
		p.wait()
	}
	return p.cmd.ProcessState.ExitCode()
}

// next returns the next JSON event that matches, failing the test if the
// stream ends first. The bound only keeps a broken run from hanging.
func (p *eventsProc) next(t *testing.T, what string, match func(evLine) bool) evLine {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case line, ok := <-p.lines:
			if !ok {
				t.Fatalf("netobs events ended before %s: %s", what, p.errText())
			}
			var ev evLine
			if err := json.Unmarshal([]byte(line), &ev); err != nil {
				t.Fatalf("not JSON: %q: %v", line, err)
			}
			p.seen = append(p.seen, ev)
			if ev.Action == "error" {
				t.Errorf("netobs reported an error: %s", line)
			}
			if match(ev) {
				return ev
			}
		case <-deadline:
			t.Fatalf("no event for %s", what)
		}
	}
}

// nsInode is the inode number of a namespace file (the N of net:[N]).
func nsInode(t *testing.T, path string) uint64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// TestEventsEachKindLabelled watches two namespaces; a change of each kind
// made with ip in one of them arrives labelled with that one.
func TestEventsEachKindLabelled(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.RequireTools(t, "ip")
	a, b := nstest.NetNS(t), nstest.NetNS(t)
	p := startEvents(t, "--json", a, b)
	inode := map[string]uint64{a: nsInode(t, "/run/netns/"+a), b: nsInode(t, "/run/netns/"+b)}
	for i, ns := range []string{a, b, a, b} {
		br := nstest.UniqueName("br")
		oct := 10 + i
		other := b
		if ns == b {
			other = a
		}
		steps := []struct {
			args       []string
			kind, text string
		}{
			{[]string{"link", "add", br, "type", "bridge"}, "link", br + ":"},
			{[]string{"link", "set", br, "up"}, "link", "UP"},
			{[]string{"addr", "add", fmt.Sprintf("10.%d.0.1/24", oct), "dev", br}, "addr", fmt.Sprintf("inet 10.%d.0.1/24", oct)},
			{[]string{"route", "add", fmt.Sprintf("10.%d.9.0/24", oct), "via", fmt.Sprintf("10.%d.0.2", oct)}, "route", fmt.Sprintf("10.%d.9.0/24 via 10.%d.0.2", oct, oct)},
			{[]string{"neigh", "add", fmt.Sprintf("10.%d.0.3", oct), "lladdr", "02:00:00:00:00:03", "dev", br}, "neigh", fmt.Sprintf("10.%d.0.3 dev %s", oct, br)},
			{[]string{"rule", "add", "from", fmt.Sprintf("10.%d.0.0/24", oct), "lookup", "100", "pref", fmt.Sprint(1000 + i)}, "rule", fmt.Sprintf("%d: from 10.%d.0.0/24 lookup 100", 1000+i, oct)},
			{[]string{"netns", "set", other, fmt.Sprint(20 + i)}, "nsid", fmt.Sprintf("nsid %d", 20+i)},
			{[]string{"link", "del", br}, "link", br + ":"},
		}
		if i >= 2 { // the nsid is assigned already
			steps = append(steps[:6], steps[7])
		}
		for _, s := range steps {
			nstest.Run(t, "ip", append([]string{"-n", ns}, s.args...)...)
			ev := p.next(t, ns+": ip "+strings.Join(s.args, " "), func(ev evLine) bool {
				return ev.Kind == s.kind && strings.Contains(ev.Text, s.text)
			})
			if ev.NS.Name != ns || ev.NS.Inode != inode[ns] {
				t.Errorf("ip -n %s %s: labelled %+v, want name %s inode %d", ns, strings.Join(s.args, " "), ev.NS, ns, inode[ns])
			}
		}
	}
	// A link moved from a to b: deleted in a with a note, added in b.
	va, vb := nstest.UniqueName("va"), nstest.UniqueName("vb")
	nstest.Run(t, "ip", "-n", a, "link", "add", va, "type", "veth", "peer", "name", vb)
	nstest.Run(t, "ip", "-n", a, "link", "set", vb, "netns", b)
	ev := p.next(t, "move out of "+a, func(ev evLine) bool { return ev.Action == "del" && ev.Dev == vb })
	if ev.NS.Name != a || !strings.Contains(strings.Join(ev.Notes, ","), "moved to netnsid") {
		t.Errorf("link moved out of %s: %+v", a, ev)
	}
	ev = p.next(t, "move into "+b, func(ev evLine) bool { return ev.Action == "add" && ev.Dev == vb })
	if ev.NS.Name != b {
		t.Errorf("link moved into %s reported from %+v", b, ev.NS)
	}
	if code := p.stop(); code != 0 {
		t.Errorf("exit %d after SIGINT: %s", code, p.errText())
	}
}

// TestEventsTextLikeIPMonitor checks the text form: time, label, kind,
// and "Deleted" as ip monitor says it.
func TestEventsTextLikeIPMonitor(t *testing.T) {
	nstest.RequireRoot(t)
	ns := nstest.NetNS(t)
	p := startEvents(t, "--kinds", "addr", "--count", "2", ns)
	nstest.Run(t, "ip", "-n", ns, "addr", "add", "10.66.0.1/8", "dev", "lo")
	nstest.Run(t, "ip", "-n", ns, "addr", "del", "10.66.0.1/8", "dev", "lo")
	p.wait()
	var got []string
	for l := range p.lines {
		got = append(got, l)
	}
	label := fmt.Sprintf("net:[%d] %s", nsInode(t, "/run/netns/"+ns), ns)
	if len(got) != 2 || !strings.Contains(got[0], label+" [ADDR] 1: lo inet 10.66.0.1/8 scope global") ||
		!strings.Contains(got[1], label+" [ADDR] Deleted 1: lo inet 10.66.0.1/8") {
		t.Errorf("--count 2 printed:\n%s\nwant an add and a Deleted line labelled %q", strings.Join(got, "\n"), label)
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("exit %d after --count 2: %s", code, p.errText())
	}
}

// TestEventsAll: --all picks up a named namespace and a process's
// namespace created after the start, once each, reports both gone, and
// keeps every thread of netobs in its own namespace.
func TestEventsAll(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.RequireTools(t, "ip", "unshare")
	pre := nstest.NetNS(t) // exists before the start: watched, not "appeared"
	preInode := nsInode(t, "/run/netns/"+pre)
	p := startEvents(t, "--all", "--json", "--kinds", "link", "--rescan", "200ms")
	name := nstest.UniqueName("ns")
	nstest.Run(t, "ip", "netns", "add", name)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	ev := p.next(t, "appeared "+name, func(ev evLine) bool { return ev.Action == "appeared" && ev.NS.Name == name })
	inode := ev.NS.Inode
	// A process in the named namespace is the same namespace: no second
	// "appeared" may follow for it.
	sleeper := exec.Command("ip", "netns", "exec", name, "sleep", "30")
	sleeper.Start()
	t.Cleanup(func() { sleeper.Process.Kill(); sleeper.Wait() })
	nstest.Run(t, "ip", "-n", name, "link", "set", "lo", "up")
	p.next(t, "lo up in "+name, func(ev evLine) bool {
		if ev.Action == "appeared" && ev.NS.Inode == inode {
			t.Errorf("namespace %s reported twice: %+v", name, ev)
		}
		return ev.Kind == "link" && ev.NS.Inode == inode && strings.Contains(ev.Text, "lo: <LOOPBACK,UP")
	})
	pid := nstest.Sleeper(t)
	p.next(t, fmt.Sprintf("appeared pid %d", pid), func(ev evLine) bool { return ev.Action == "appeared" && ev.NS.PID == pid })
	nstest.Run(t, "nsenter", "-t", fmt.Sprint(pid), "-n", "ip", "link", "set", "lo", "up")
	p.next(t, fmt.Sprintf("lo up in pid %d", pid), func(ev evLine) bool {
		return ev.Kind == "link" && ev.NS.PID == pid && strings.Contains(ev.Text, "UP")
	})
	nstest.CheckThreadsOf(t, p.cmd.Process.Pid)
	sleeper.Process.Kill()
	sleeper.Wait()
	nstest.Run(t, "ip", "netns", "del", name)
	p.next(t, "gone "+name, func(ev evLine) bool { return ev.Action == "gone" && ev.NS.Inode == inode })
	syscall.Kill(pid, syscall.SIGKILL)
	p.next(t, fmt.Sprintf("gone pid %d", pid), func(ev evLine) bool { return ev.Action == "gone" && ev.NS.PID == pid })
	nstest.Run(t, "ip", "-n", pre, "link", "set", "lo", "down")
	p.next(t, "lo down in "+pre, func(ev evLine) bool { return ev.NS.Inode == preInode && ev.Kind == "link" })
	for _, ev := range p.seen {
		if ev.NS.Inode == preInode && ev.Action == "appeared" {
			t.Errorf("namespace %s existed before the start but was reported as appeared", pre)
		}
	}
	if code := p.stop(); code != 0 {
		t.Errorf("exit %d after SIGINT: %s", code, p.errText())
	}
}

// TestEventsOverflowResync: a burst of thousands of changes into a
// receive buffer of minimal size overflows it; netobs says so with a
// resync event, and the state built from everything it printed matches
// what ip shows, exactly.
func TestEventsOverflowResync(t *testing.T) {
	nstest.RequireRoot(t)
	ns := nstest.NetNS(t)
	p := startEvents(t, "--json", "--initial", "--kinds", "addr,route", "--rcvbuf", "1", ns)
	var batch strings.Builder
	for i := 0; i < 3000; i++ {
		fmt.Fprintf(&batch, "addr add 10.50.%d.%d/32 dev lo\n", i/250, i%250+1)
	}
	for i := 0; i < 3000; i += 3 {
		fmt.Fprintf(&batch, "addr del 10.50.%d.%d/32 dev lo\n", i/250, i%250+1)
	}
	batch.WriteString("addr add 10.51.0.1/32 dev lo\n") // the last change: a marker
	f := filepath.Join(t.TempDir(), "batch")
	os.WriteFile(f, []byte(batch.String()), 0o644)
	// Stopped, netobs cannot read: the burst is sure to overflow its
	// minimal buffer, however fast this machine is.
	p.cmd.Process.Signal(syscall.SIGSTOP)
	nstest.Run(t, "ip", "-n", ns, "-batch", f)
	p.cmd.Process.Signal(syscall.SIGCONT)

	model := map[string]bool{}
	resyncs := 0
	apply := func(action, key string) {
		if !strings.HasPrefix(key, "addr ") {
			return
		}
		if action == "del" {
			delete(model, key)
		} else {
			model[key] = true
		}
	}
	marker := "addr 1 inet 10.51.0.1/32"
	p.next(t, "the marker address, directly or in a resync", func(ev evLine) bool {
		if ev.Action == "resync" {
			resyncs++
			for _, c := range ev.Changes {
				apply(c.Action, c.Key)
			}
		} else {
			apply(ev.Action, ev.Key)
		}
		return model[marker]
	})
	if resyncs == 0 {
		t.Errorf("no resync event after a burst of 4,001 changes into a minimal buffer")
	}
	// What ip says, in the same key form.
	out := nstest.Run(t, "ip", "-j", "-n", ns, "addr", "show")
	var links []struct {
		Ifindex  int `json:"ifindex"`
		AddrInfo []struct {
			Family    string `json:"family"`
			Local     string `json:"local"`
			Prefixlen int    `json:"prefixlen"`
		} `json:"addr_info"`
	}
	if err := json.Unmarshal([]byte(out), &links); err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for _, l := range links {
		for _, a := range l.AddrInfo {
			want[fmt.Sprintf("addr %d %s %s/%d", l.Ifindex, a.Family, a.Local, a.Prefixlen)] = true
		}
	}
	var missing, extra []string
	for k := range want {
		if !model[k] {
			missing = append(missing, k)
		}
	}
	for k := range model {
		if !want[k] {
			extra = append(extra, k)
		}
	}
	if len(missing)+len(extra) > 0 || len(want) != 2000+1+2 {
		t.Errorf("state from events differs from ip (%d addresses): %d missing (e.g. %q), %d extra (e.g. %q)",
			len(want), len(missing), missing, len(extra), extra)
	}
	p.stop()
	if !strings.Contains(p.errText(), "resyncs after overflow") {
		t.Errorf("no final statistics on stderr: %s", p.errText())
	}
}

// TestEventsBadInput: each mistake gets one line on stderr and a non-zero
// status at start-up.
func TestEventsBadInput(t *testing.T) {
	nstest.RequireRoot(t)
	ns := nstest.NetNS(t)
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"events", "nosuchns" + nstest.Prefix()}, 1, "no such named network namespace"},
		{[]string{"events", "999999999"}, 1, "no such process"},
		{[]string{"events", "/etc/hostname"}, 1, "not a namespace file"},
		{[]string{"events", "/proc/self/ns/uts"}, 1, "is a uts namespace, not net"},
		{[]string{"events", "--kinds", "link,bogus", ns}, 2, `unknown event kind "bogus"`},
		{[]string{"events", "--kinds", "", ns}, 2, "unknown event kind"},
		{[]string{"events", "--all", ns}, 2, "--all watches every namespace"},
		{[]string{"events", "--count", "-1", ns}, 2, "--count"},
		{[]string{"events", "--rescan", "1ns", ns}, 2, `--rescan "1ns" out of range`},
		{[]string{"events", "--rescan", "0", ns}, 2, `--rescan "0s" out of range`},
		{[]string{"events", "--rescan", "-1s", ns}, 2, `--rescan "-1s" out of range`},
		{[]string{"events", "--rescan", "2h", ns}, 2, `--rescan "2h0m0s" out of range`},
		{[]string{"events", "--bogus"}, 2, "unknown flag"},
	} {
		r := netobs(t, tc.args...)
		if r.code != tc.code || !strings.Contains(r.stderr, tc.want) || strings.Count(r.stderr, "\n") != 1 {
			t.Errorf("netobs %s: exit %d, stderr %q; want exit %d and one line with %q", strings.Join(tc.args, " "), r.code, r.stderr, tc.code, tc.want)
		}
	}
}

// TestEventsWithoutPrivilege runs netobs as nobody: another namespace or
// --all fails with one line naming the privilege; its own namespace works.
func TestEventsWithoutPrivilege(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.RequireTools(t, "setpriv")
	ns := nstest.NetNS(t)
	pid := nstest.Sleeper(t)
	dir, err := os.MkdirTemp("", "netobs-nobody")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	bin := filepath.Join(dir, "netobs")
	data, err := os.ReadFile(netobsBin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	asNobody := func(args ...string) (string, int) {
		cmd := exec.Command("setpriv", append([]string{"--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", bin}, args...)...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return stderr.String(), code
	}
	for _, args := range [][]string{{"events", ns}, {"events", fmt.Sprint(pid)}, {"events", "--all"}} {
		stderr, code := asNobody(args...)
		if code != 1 || strings.Count(stderr, "\n") != 1 || !(strings.Contains(stderr, "permission denied") || strings.Contains(stderr, "needs CAP_SYS_ADMIN")) {
			t.Errorf("as nobody, netobs %s: exit %d, stderr %q; want exit 1 and one line naming the privilege", strings.Join(args, " "), code, stderr)
		}
	}
	// Its own namespace needs no privilege: nothing is entered. It runs
	// until interrupted.
	cmd := exec.Command("timeout", "-s", "INT", "2", "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", bin, "events", "self")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.Run()
	if !strings.Contains(stderr.String(), "events: watching 1 namespaces") || strings.Contains(stderr.String(), "netobs:") {
		t.Errorf("as nobody, netobs events self: %s", stderr.String())
	}
}

// TestEventsInitialMatchesIP: with --initial, the routes netobs reports
// are, line for line, what `ip route show table all` prints, and the
// rules what `ip rule` prints.
func TestEventsInitialMatchesIP(t *testing.T) {
	nstest.RequireRoot(t)
	ns := nstest.NetNS(t)
	br := nstest.UniqueName("br")
	for _, args := range [][]string{
		{"link", "add", br, "type", "bridge"},
		{"addr", "add", "10.61.0.1/24", "dev", br},
		{"-6", "addr", "add", "2001:db8:61::1/64", "dev", br, "nodad"},
		{"link", "set", br, "up"},
		{"route", "add", "10.62.0.0/16", "via", "10.61.0.9", "metric", "5"},
		{"route", "add", "blackhole", "10.63.0.0/16", "table", "7"},
		{"route", "add", "default", "via", "10.61.0.254"},
		{"rule", "add", "fwmark", "0x10/0xff", "lookup", "7", "pref", "200"},
		{"rule", "add", "from", "10.61.0.0/24", "to", "10.64.0.0/16", "lookup", "7", "pref", "300"},
	} {
		nstest.Run(t, "ip", append([]string{"-n", ns}, args...)...)
	}
	p := startEvents(t, "--initial", "--json", "--kinds", "route,rule", ns)
	got := map[string]bool{}
	marker := "10.65.0.0/16"
	nstest.Run(t, "ip", "-n", ns, "route", "add", "unreachable", marker)
	p.next(t, "initial state, then the marker", func(ev evLine) bool {
		if ev.Action == "initial" {
			got[ev.Kind+" "+ev.Text] = true
		}
		return strings.Contains(ev.Text, marker)
	})
	p.stop()
	var want []string
	for _, l := range strings.Split(nstest.Run(t, "ip", "-n", ns, "route", "show", "table", "all"), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.Contains(l, marker) {
			want = append(want, "route "+l)
		}
	}
	for _, l := range strings.Split(nstest.Run(t, "ip", "-6", "-n", ns, "route", "show", "table", "all"), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			want = append(want, "route "+l)
		}
	}
	for _, l := range strings.Split(nstest.Run(t, "ip", "-n", ns, "rule", "show"), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			want = append(want, "rule inet "+strings.Replace(l, ":\t", ": ", 1))
		}
	}
	for _, w := range want {
		if !got[w] {
			t.Errorf("ip shows %q; netobs --initial did not report it", w)
		}
	}
	if t.Failed() {
		for g := range got {
			t.Logf("netobs: %s", g)
		}
	}
}

// TestEventsAllLateNamespace: with --all, what is made in a namespace at
// once after its creation, before netobs has subscribed to it, is still
// reported (as its state after "appeared"). Several times, each as fast
// as ip can.
func TestEventsAllLateNamespace(t *testing.T) {
	nstest.RequireRoot(t)
	p := startEvents(t, "--all", "--json", "--kinds", "link")
	for i := 0; i < 5; i++ {
		name := nstest.UniqueName("ns")
		v0, v1 := nstest.UniqueName("lt"), nstest.UniqueName("lt")
		t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
		nstest.Run(t, "sh", "-c", fmt.Sprintf("ip netns add %s && ip -n %s link add %s type veth peer name %s", name, name, v0, v1))
		p.next(t, v0+" in "+name, func(ev evLine) bool {
			return ev.Kind == "link" && ev.NS.Name == name && ev.Dev == v0 && ev.Action != "del"
		})
	}
	if code := p.stop(); code != 0 {
		t.Errorf("exit %d after SIGINT: %s", code, p.errText())
	}
}

// TestEventsAllSIGTERMAfterAppeared: SIGTERM soon after a namespace
// appeared (with a veth made in it at once) ends events --all --json
// with its totals and status 0.
func TestEventsAllSIGTERMAfterAppeared(t *testing.T) {
	nstest.RequireRoot(t)
	p := startEvents(t, "--all", "--json")
	name := nstest.UniqueName("ns")
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	nstest.Run(t, "sh", "-c", fmt.Sprintf("ip netns add %s && ip -n %s link add %s type veth peer name %s", name, name, nstest.UniqueName("v"), nstest.UniqueName("v")))
	p.next(t, "appeared "+name, func(ev evLine) bool { return ev.Action == "appeared" && ev.NS.Name == name })
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
		p.cmd.Process.Signal(syscall.SIGQUIT) // a stack dump for the log
		p.wait()
		t.Fatalf("still running after SIGTERM: %s", p.errText())
	}
	p.wait()
	if code := p.cmd.ProcessState.ExitCode(); code != 0 || !strings.Contains(p.errText(), "events printed") {
		t.Errorf("exit %d after SIGTERM, stderr: %s", code, p.errText())
	}
}

// TestEventsCountPrinted: with --count 1 the totals say one event, even
// when more were waiting to be printed.
func TestEventsCountPrinted(t *testing.T) {
	nstest.RequireRoot(t)
	ns := nstest.NetNS(t)
	p := startEvents(t, "--kinds", "addr", "--count", "1", ns)
	f := filepath.Join(t.TempDir(), "batch")
	os.WriteFile(f, []byte("addr add 10.67.0.1/32 dev lo\naddr add 10.67.0.2/32 dev lo\naddr add 10.67.0.3/32 dev lo\n"), 0o644)
	nstest.Run(t, "ip", "-n", ns, "-batch", f)
	p.wait()
	n := 0
	for range p.lines {
		n++
	}
	if n != 1 || !strings.Contains(p.errText(), "events: 1 events printed") {
		t.Errorf("--count 1 printed %d lines; stderr %q, want one and a total of 1", n, p.errText())
	}
}

// TestEventsStopWithStdoutUnread: SIGTERM ends netobs events even when
// nobody reads its standard output any more (the pipe is full and a write
// blocks): the totals are printed and it exits 1, saying so.
func TestEventsStopWithStdoutUnread(t *testing.T) {
	nstest.RequireRoot(t)
	ns := nstest.NetNS(t)
	cmd := exec.Command(netobsBin, "events", "--json", "--kinds", "addr", ns)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	// One page: a few events fill it.
	if _, err := unix.FcntlInt(w.Fd(), unix.F_SETPIPE_SZ, 4096); err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = w
	p := startCmd(t, cmd)
	w.Close()
	p.waitStderr(t, "events: watching")
	stderr, exited := p.stderr, p.done
	var batch strings.Builder
	for i := 0; i < 1000; i++ {
		fmt.Fprintf(&batch, "addr add 10.68.%d.%d/32 dev lo\n", i/250, i%250+1)
	}
	f := filepath.Join(t.TempDir(), "batch")
	os.WriteFile(f, []byte(batch.String()), 0o644)
	nstest.Run(t, "ip", "-n", ns, "-batch", f)
	// Wait until a thread of netobs is blocked writing to the pipe, which
	// nobody will read.
	for !writingPipe(cmd.Process.Pid) {
		select {
		case <-exited:
			t.Fatalf("netobs exited: %s", stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(60 * time.Second):
		t.Fatalf("netobs events still running 60s after SIGTERM with its output unread: %s", stderr.String())
	}
	if code := p.code; code != 1 || !strings.Contains(stderr.String(), "events printed") || !strings.Contains(stderr.String(), "standard output not read") {
		t.Errorf("exit %d, stderr %q; want 1, the totals and why", code, stderr.String())
	}
}

// writingPipe reports whether a thread of process pid sleeps in a pipe
// write (its wchan is pipe_write, or anon_pipe_write on newer kernels).
func writingPipe(pid int) bool {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/wchan", pid))
	for _, f := range tasks {
		if b, err := os.ReadFile(f); err == nil && strings.HasSuffix(string(b), "pipe_write") {
			return true
		}
	}
	return false
}

// TestEventsRaisesFDLimit: netobs holds an fd per watched namespace, so
// --all over 10,000 namespaces needs more than the usual soft limit of
// 1,024; started with a soft limit of 64, `events` runs with its soft
// RLIMIT_NOFILE raised to the hard one (Go's os package does this at start
// since Go 1.19; this test keeps it so).
func TestEventsRaisesFDLimit(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.RequireTools(t, "prlimit")
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Max <= 64 {
		t.Fatalf("hard RLIMIT_NOFILE is %d: nothing to raise", lim.Max)
	}
	p := startProc(t, "events: watching", "prlimit", fmt.Sprintf("--nofile=64:%d", lim.Max), "--", netobsBin, "events", "--all")
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", p.cmd.Process.Pid)) // prlimit execs netobs: same PID
	if err != nil {
		t.Fatal(err)
	}
	var soft, hard string
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 5 && f[0] == "Max" && f[1] == "open" && f[2] == "files" {
			soft, hard = f[3], f[4]
		}
	}
	if soft == "" || soft != hard || hard != fmt.Sprint(lim.Max) {
		t.Errorf("netobs events runs with open files soft %q hard %q, want both %d:\n%s", soft, hard, lim.Max, b)
	}
	p.stop(t)
}

// TestEventsOutOfFDs: when the open-files limit is too low for the
// namespaces to watch, events exits 1 with one line that names the limit
// to raise.
func TestEventsOutOfFDs(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.RequireTools(t, "prlimit", "ip")
	for range 10 {
		nstest.NetNS(t)
	}
	cmd := exec.Command("prlimit", "--nofile=16:16", "--", netobsBin, "events", "--all")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	if code := cmd.ProcessState.ExitCode(); code != 1 {
		t.Fatalf("exit %d (%v), want 1: %s", code, err, stderr.String())
	}
	msg := strings.TrimSpace(stderr.String())
	if strings.Count(msg, "\n") != 0 || !strings.Contains(msg, "ulimit -Hn") || !strings.Contains(msg, "too many open files") {
		t.Errorf("stderr %q: want one line naming the open-files limit to raise", msg)
	}
}

// TestEventsOneFDPerNamespace: --all holds one file descriptor per watched
// namespace, its netlink socket, and no namespace file: 10,000 namespaces
// must fit under a hard open-files limit of 20,000. With 200 namespaces of
// its own (and whatever else the machine has), netobs's fds are its
// sockets plus a constant few; holding each namespace too would add one
// nsfs fd per namespace.
func TestEventsOneFDPerNamespace(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.RequireTools(t, "ip")
	const n = 200
	base := nstest.UniqueName("fd")
	var add, del strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&add, "netns add %s_%d\n", base, i)
		fmt.Fprintf(&del, "netns del %s_%d\n", base, i)
	}
	dir := t.TempDir()
	addFile, delFile := filepath.Join(dir, "add"), filepath.Join(dir, "del")
	os.WriteFile(addFile, []byte(add.String()), 0o644)
	os.WriteFile(delFile, []byte(del.String()), 0o644)
	t.Cleanup(func() { exec.Command("ip", "-force", "-batch", delFile).Run() })
	if out, err := exec.Command("ip", "-force", "-batch", addFile).CombinedOutput(); err != nil {
		t.Fatalf("ip -batch netns add: %v: %s", err, out)
	}
	p := startEvents(t, "--all", "--kinds", "link")
	var watched int
	for _, l := range strings.Split(p.errText(), "\n") {
		if _, err := fmt.Sscanf(l, "events: watching %d namespaces", &watched); err == nil {
			break
		}
	}
	if watched < n {
		t.Fatalf("watching %d namespaces, want at least the %d made here: %s", watched, n, p.errText())
	}
	fdDir := fmt.Sprintf("/proc/%d/fd", p.cmd.Process.Pid)
	ents, err := os.ReadDir(fdDir)
	if err != nil {
		t.Fatal(err)
	}
	// A namespace file reads as /run/netns/NAME or net:[INODE]; what it
	// is shows in its device, nsfs's.
	var self syscall.Stat_t
	if err := syscall.Stat("/proc/self/ns/net", &self); err != nil {
		t.Fatal(err)
	}
	var sockets, nsfs int
	for _, e := range ents {
		path := filepath.Join(fdDir, e.Name())
		target, err := os.Readlink(path)
		var st syscall.Stat_t
		switch {
		case err != nil: // closed meanwhile
		case strings.HasPrefix(target, "socket:"):
			sockets++
		case syscall.Stat(path, &st) == nil && st.Dev == self.Dev:
			nsfs++
		}
	}
	// A constant few namespace files: nsjoin's way home (net, uts, ipc),
	// and one found meanwhile, open for a moment while its socket is made.
	// A constant few others: epoll, eventfd, inotify, standard streams,
	// the runtime's.
	const fewNS, fewOthers = 8, 32
	if sockets < n || nsfs > fewNS || len(ents)-sockets > fewOthers {
		t.Errorf("watching %d namespaces, netobs holds %d fds: %d sockets, %d namespace files, %d others; want a socket per namespace (at least %d), at most %d namespace files, at most %d fds besides sockets",
			watched, len(ents), sockets, nsfs, len(ents)-sockets-nsfs, n, fewNS, fewOthers)
	}
	t.Logf("watching %d namespaces with %d fds (%d sockets, %d namespace files)", watched, len(ents), sockets, nsfs)
	if code := p.stop(); code != 0 {
		t.Errorf("exit %d after SIGINT: %s", code, p.errText())
	}
}
