package test

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/netobs/netobs/internal/nstest"
)

// lsnsRow is one namespace as `lsns -J` reports it.
type lsnsRow struct {
	NS     json.Number `json:"ns"`
	Type   string      `json:"type"`
	NProcs json.Number `json:"nprocs"`
	PID    json.Number `json:"pid"`
	ONS    json.Number `json:"ons"`
}

func TestNSLsAgreesWithLsns(t *testing.T) {
	nstest.RequireTools(t, "lsns")
	pid := nstest.Sleeper(t, "-n", "-u", "-i")
	named := nstest.NetNS(t)

	var lsns struct {
		Namespaces []lsnsRow `json:"namespaces"`
	}
	// lsns walks every process of the machine and gives up, with exit
	// status 1 and no message, when one exits under it in some ways
	// (util-linux 2.38 stops at any error but EACCES and ENOENT): try it
	// again a few times before taking its failure as the test's.
	var out string
	var err error
	for try := 0; try < 3; try++ {
		if out, err = nstest.Output("lsns", "-J", "-o", "NS,TYPE,NPROCS,PID,ONS"); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("lsns: %v", err)
	}
	if err := json.Unmarshal([]byte(out), &lsns); err != nil {
		t.Fatal(err)
	}
	ours := map[string]map[string]any{}
	sc := bufio.NewScanner(strings.NewReader(mustNetobs(t, "ns", "ls", "--json")))
	for sc.Scan() {
		var row map[string]any
		if err := json.Unmarshal(sc.Bytes(), &row); err != nil {
			t.Fatal(err)
		}
		ours[row["type"].(string)+":"+strconv.FormatFloat(row["ns"].(float64), 'f', 0, 64)] = row
	}
	// The sleeper's namespaces are stable; compare those row by row.
	checked := 0
	for _, r := range lsns.Namespaces {
		if r.PID.String() != strconv.Itoa(pid) {
			continue
		}
		row, ok := ours[r.Type+":"+r.NS.String()]
		if !ok {
			t.Errorf("lsns lists %s %s, netobs does not", r.Type, r.NS)
			continue
		}
		if n, _ := r.NProcs.Int64(); int64(row["nprocs"].(float64)) != n || int(row["pid"].(float64)) != pid {
			t.Errorf("%s %s: lsns nprocs %s pid %s, netobs %v %v", r.Type, r.NS, r.NProcs, r.PID, row["nprocs"], row["pid"])
		}
		if ons, _ := r.ONS.Int64(); row["userns"] == nil || int64(row["userns"].(float64)) != ons {
			t.Errorf("%s %s: lsns owner namespace %s, netobs %v", r.Type, r.NS, r.ONS, row["userns"])
		}
		checked++
	}
	if checked != 3 {
		t.Errorf("lsns shows %d namespaces of the sleeper, want net, uts, ipc", checked)
	}
	// The named namespace has no process; netobs lists it by its name.
	id := strings.Fields(mustNetobs(t, "ns", "id", named))[1]
	ino := strings.TrimSuffix(strings.TrimPrefix(id, "net:["), "]")
	if row, ok := ours["net:"+ino]; !ok || !strings.Contains(strings.Join(anyStrings(row["netns"]), ","), named) {
		t.Errorf("netobs ns ls does not list %s (%s) by name: %v", named, id, row)
	}
}

func anyStrings(v any) []string {
	var out []string
	list, _ := v.([]any)
	for _, x := range list {
		out = append(out, x.(string))
	}
	return out
}

func TestNSIDAgreesWithReadlinkAndIPIdentify(t *testing.T) {
	named := nstest.NetNS(t)
	sleeper := exec.Command("ip", "netns", "exec", named, "sleep", "3600")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sleeper.Process.Kill(); sleeper.Wait() })
	pid := strconv.Itoa(sleeper.Process.Pid)
	// ip netns exec execs sleep in place: wait until it is in the namespace.
	for i := 0; i < 2000 && strings.TrimSpace(must(nstest.Output("ip", "netns", "identify", pid))) != named; i++ {
		nstest.Sleep()
	}
	if got := strings.TrimSpace(nstest.Run(t, "ip", "netns", "identify", pid)); got != named {
		t.Fatalf("ip netns identify %s = %q, want %q", pid, got, named)
	}
	link, _ := os.Readlink("/proc/" + pid + "/ns/net")
	out := mustNetobs(t, "ns", "id", pid, named, "/proc/"+pid+"/ns/net")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 {
		t.Fatalf("ns id printed %q", out)
	}
	for _, l := range lines {
		f := strings.Fields(l)
		if f[1] != link || !strings.Contains(l, "netns="+named) {
			t.Errorf("ns id line %q, want %s and netns=%s", l, link, named)
		}
	}
	for _, typ := range []string{"uts", "ipc", "mnt", "pid", "cgroup", "user"} {
		want, _ := os.Readlink("/proc/" + pid + "/ns/" + typ)
		got := strings.Fields(mustNetobs(t, "ns", "id", "--type", typ, pid))[1]
		if got != want {
			t.Errorf("ns id --type %s = %s, readlink %s", typ, got, want)
		}
	}
	if r := netobs(t, "ns", "same", pid, named); r.code != 0 {
		t.Errorf("ns same PID NAME: exit %d %s", r.code, r.stderr)
	}
	if r := netobs(t, "ns", "same", pid, "self"); r.code != 1 {
		t.Errorf("ns same PID self: exit %d, want 1 (different)", r.code)
	}
	if r := netobs(t, "ns", "same", "--type", "uts", pid, "self"); r.code != 0 {
		t.Errorf("ns same --type uts: exit %d, want 0 (ip netns exec keeps the UTS namespace)", r.code)
	}
}

func must(s string, _ error) string { return s }

func TestNSExecAgreesWithNsenter(t *testing.T) {
	nstest.RequireTools(t, "nsenter")
	pid := strconv.Itoa(nstest.Sleeper(t, "--user", "--map-root-user", "--mount", "--pid", "--fork", "--uts", "--ipc", "--net", "--cgroup"))
	script := "for t in user cgroup ipc uts net pid_for_children mnt; do readlink /proc/self/ns/$t; done; id -u"
	ours := mustNetobs(t, "ns", "exec", "-t", pid, "--", "sh", "-c", script)
	theirs := nstest.Run(t, "nsenter", "-t", pid, "-a", "sh", "-c", script)
	if ours != theirs {
		t.Fatalf("ns exec -t %s saw\n%s\nnsenter -a saw\n%s", pid, ours, theirs)
	}
	// Per-type references and exit status passthrough.
	r := netobs(t, "ns", "exec", "--uts", pid, "--net", "/proc/"+pid+"/ns/net", "--", "sh", "-c", "readlink /proc/self/ns/net; exit 42")
	want, _ := os.Readlink("/proc/" + pid + "/ns/net")
	if r.code != 42 || strings.TrimSpace(r.stdout) != want {
		t.Fatalf("ns exec --net: exit %d output %q, want 42 and %s", r.code, r.stdout, want)
	}
}

func TestNSUnshareHostname(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.RequireTools(t, "hostname")
	name := "blog" + nstest.Prefix()
	out := mustNetobs(t, "ns", "unshare", "--uts", "--hostname", name, "--", "hostname")
	if strings.TrimSpace(out) != name {
		t.Fatalf("hostname in the new UTS namespace = %q, want %q", out, name)
	}
	if h := strings.TrimSpace(nstest.Run(t, "hostname")); h == name {
		t.Fatal("the host's hostname changed")
	}
	out = mustNetobs(t, "ns", "unshare", "--pid", "--fork", "--mount-proc", "--", "sh", "-c", "echo $$")
	if strings.TrimSpace(out) != "1" {
		t.Fatalf("shell PID in a new PID namespace = %q, want 1", out)
	}
}

func TestNSAddDelInteropWithIPNetns(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.RequireTools(t, "ip")
	ours := nstest.UniqueName("ns")
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ours).Run() })
	mustNetobs(t, "ns", "add", ours)
	if !contains(ipNetnsList(t), ours) {
		t.Fatalf("ip netns list lacks %s after netobs ns add", ours)
	}
	inside := nstest.Run(t, "ip", "netns", "exec", ours, "ip", "-o", "link")
	if !strings.Contains(inside, "lo:") || strings.Count(inside, "\n") != 1 {
		t.Fatalf("ip netns exec in a new namespace sees links %q, want only lo", inside)
	}
	idOurs := strings.Fields(mustNetobs(t, "ns", "id", ours))[1]
	idIP := strings.TrimSpace(nstest.Run(t, "ip", "netns", "exec", ours, "readlink", "/proc/self/ns/net"))
	if idOurs != idIP {
		t.Fatalf("netobs says %s, ip netns exec is in %s", idOurs, idIP)
	}
	theirs := nstest.UniqueName("ns")
	nstest.Run(t, "ip", "netns", "add", theirs)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", theirs).Run() })
	mustNetobs(t, "ns", "id", theirs)
	mustNetobs(t, "ns", "del", theirs, ours)
	if l := ipNetnsList(t); contains(l, ours) || contains(l, theirs) {
		t.Fatalf("ip netns list still has them after netobs ns del: %v", l)
	}
}

// ourNetns lists the `ip netns` names this test run made (other suites may
// be running beside it).
func ourNetns(t *testing.T) []string {
	var ours []string
	for _, n := range ipNetnsList(t) {
		if strings.HasPrefix(n, nstest.Prefix()) {
			ours = append(ours, n)
		}
	}
	return ours
}

func ipNetnsList(t *testing.T) []string {
	var names []string
	for _, l := range strings.Split(nstest.Run(t, "ip", "netns", "list"), "\n") {
		if f := strings.Fields(l); len(f) > 0 {
			names = append(names, f[0])
		}
	}
	sort.Strings(names)
	return names
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestNSBadInput: every user mistake gets one line on stderr naming the
// thing and the fix, the documented exit status, and leaves nothing behind.
func TestNSBadInput(t *testing.T) {
	nstest.RequireRoot(t)
	named := nstest.NetNS(t)
	dir := t.TempDir()
	regular := filepath.Join(dir, "plain")
	os.WriteFile(regular, []byte("x"), 0o644)
	exited := exec.Command("true")
	exited.Run()
	gone := strconv.Itoa(exited.Process.Pid)
	unknown := "nosuch" + nstest.Prefix()
	// An `ip netns` name of digits, which no PID can have (above pid_max).
	digitName := "99" + strconv.Itoa(8000000000+os.Getpid())
	nstest.Run(t, "ip", "netns", "add", digitName)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", digitName).Run() })

	cases := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"regular file", []string{"ns", "id", regular}, 1, "is not a namespace file"},
		{"regular file for exec", []string{"ns", "exec", "--net", regular, "--", "true"}, 1, "is not a namespace file"},
		{"wrong type", []string{"ns", "exec", "--net", "/proc/self/ns/uts", "--", "true"}, 1, "is a uts namespace, not net"},
		{"exited PID", []string{"ns", "id", gone}, 1, "PID " + gone},
		{"unknown name", []string{"ns", "exec", "--net", unknown, "--", "true"}, 1, "ip netns list"},
		{"no command", []string{"ns", "exec", "--net", named, "--"}, 2, "no command given after --"},
		{"no namespace", []string{"ns", "exec", "--", "true"}, 2, "name a namespace to enter"},
		{"hostname without uts", []string{"ns", "unshare", "--hostname", "x", "--", "true"}, 2, "--hostname needs --uts"},
		{"invalid name", []string{"ns", "add", "a/b"}, 2, "cannot contain '/'"},
		{"existing name", []string{"ns", "add", named}, 1, "exists"},
		{"del unknown", []string{"ns", "del", unknown}, 1, "ip netns list"},
		{"unknown flag", []string{"ns", "ls", "--bogus"}, 2, "unknown flag: --bogus"},
		{"unknown subcommand", []string{"ns", "bogus"}, 2, `unknown command "bogus"`},
		{"bad type", []string{"ns", "ls", "--type", "bogus"}, 2, "unknown namespace type"},
		{"same with missing", []string{"ns", "same", "self", unknown}, 2, "ip netns list"},
		{"missing program", []string{"ns", "exec", "--net", named, "--", "/nonexistent/prog"}, 127, "exec /nonexistent/prog: no such file or directory"},
		{"missing program in a new PID namespace", []string{"ns", "unshare", "--pid", "--", "nosuchprog" + nstest.Prefix()}, 127, "exec nosuchprog"},
		{"not executable", []string{"ns", "exec", "--net", named, "--", regular}, 126, "exec " + regular + ": permission denied"},
		{"negative target", []string{"ns", "exec", "-t", "-1", "--", "true"}, 2, "-t -1 is not a PID"},
		{"zero target", []string{"ns", "exec", "-t", "0", "--", "true"}, 2, "-t 0 is not a PID"},
		{"add digits", []string{"ns", "add", "12345"}, 2, "would be read as a PID"},
		{"add self", []string{"ns", "add", "self"}, 2, `"self" means netobs's own namespace`},
		{"add newline", []string{"ns", "add", "a\nb"}, 2, "no spaces or control characters"},
		{"add escape", []string{"ns", "add", "a\x1b[31m"}, 2, "no spaces or control characters"},
		{"add slash", []string{"ns", "add", "../x"}, 2, "cannot contain '/'"},
		{"digit name read as PID", []string{"ns", "id", digitName}, 1, "no such process " + digitName + "; for the named namespace use /run/netns/" + digitName},
	}
	before := ourNetns(t)
	rundir, _ := os.ReadDir("/run/netns")
	for _, c := range cases {
		r := netobs(t, c.args...)
		lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
		if r.code != c.code || len(lines) != 1 || !strings.Contains(r.stderr, c.want) || !strings.HasPrefix(r.stderr, "netobs: ") {
			t.Errorf("%s: netobs %s: exit %d stderr %q; want exit %d and one line containing %q",
				c.name, strings.Join(c.args, " "), r.code, r.stderr, c.code, c.want)
		}
		if strings.Contains(r.stderr, "goroutine ") || strings.Contains(r.stderr, "panic") {
			t.Errorf("%s: stack dump on stderr", c.name)
		}
	}
	if after := ourNetns(t); strings.Join(after, " ") != strings.Join(before, " ") {
		t.Errorf("namespaces changed: before %v after %v", before, after)
	}
	// Nothing the bad inputs name appeared under /run/netns (other
	// entries may come and go: other tests and runs share the directory).
	had := map[string]bool{}
	for _, e := range rundir {
		had[e.Name()] = true
	}
	for _, name := range []string{"a", "b", unknown} {
		if _, err := os.Lstat("/run/netns/" + name); err == nil && !had[name] {
			t.Errorf("/run/netns/%s appeared after the bad inputs", name)
		}
	}
	if id := mustNetobs(t, "ns", "id", "/run/netns/"+digitName); !strings.HasPrefix(id, "/run/netns/"+digitName+" net:[") {
		t.Errorf("the path the hint names does not open: %q", id)
	}
}

// TestNSExecThread: -t TID and a TID as NSREF enter that thread's
// namespaces (as nsenter -t TID does), not its process's or none.
func TestNSExecThread(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.RequireTools(t, "go")
	probe := filepath.Join(t.TempDir(), "probe")
	if out, err := exec.Command("go", "build", "-o", probe, "github.com/netobs/netobs/nsjoin/testdata/nohook").CombinedOutput(); err != nil {
		t.Fatalf("build probe: %v\n%s", err, out)
	}
	cmd := exec.Command(probe, "-thread-in-new-uts")
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { stdin.Close(); cmd.Wait() }()
	line, _ := bufio.NewReader(stdout).ReadString('\n')
	tid := strings.TrimSpace(line)
	want, err := os.Readlink("/proc/" + tid + "/ns/uts")
	if err != nil {
		t.Fatalf("probe printed %q: %v", line, err)
	}
	for _, args := range [][]string{{"-t", tid}, {"--uts", tid}} {
		out := mustNetobs(t, append(append([]string{"ns", "exec"}, args...), "--", "readlink", "/proc/self/ns/uts")...)
		if strings.TrimSpace(out) != want {
			t.Errorf("ns exec %s: the command is in %q, thread %s in %s", strings.Join(args, " "), out, tid, want)
		}
	}
	if out := mustNetobs(t, "ns", "id", "--type", "uts", tid); !strings.Contains(out, want) {
		t.Errorf("ns id --type uts %s = %q, want %s", tid, out, want)
	}
}

// TestNSWithoutCapability runs netobs as an unprivileged user: each
// refusal names the capability, and nothing is left behind.
func TestNSWithoutCapability(t *testing.T) {
	nstest.RequireRoot(t)
	named := nstest.NetNS(t)
	newName := nstest.UniqueName("ns")
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"ns", "add", newName}, "CAP_SYS_ADMIN"},
		{[]string{"ns", "del", named}, "CAP_SYS_ADMIN"},
		{[]string{"ns", "exec", "--net", named, "--", "true"}, "CAP_SYS_ADMIN"},
		{[]string{"ns", "unshare", "--net", "--", "true"}, "CAP_SYS_ADMIN"},
		{[]string{"ns", "id", "2"}, "CAP_SYS_PTRACE"},
	}
	for _, c := range cases {
		cmd := exec.Command(netobsBin, c.args...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		err := cmd.Run()
		lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
		if err == nil || len(lines) != 1 || !strings.Contains(stderr.String(), c.want) {
			t.Errorf("as nobody: netobs %s: %v, stderr %q; want a failure naming %s", strings.Join(c.args, " "), err, stderr.String(), c.want)
		}
	}
	if _, err := os.Stat("/run/netns/" + newName); err == nil {
		t.Errorf("/run/netns/%s left behind by a refused ns add", newName)
		exec.Command("ip", "netns", "del", newName).Run()
	}
	if !contains(ipNetnsList(t), named) {
		t.Errorf("a refused ns del removed %s", named)
	}
}

// TestNSDelCompletion: ns del offers the `ip netns` names, never "self",
// which is no name; ns exec still offers it.
func TestNSDelCompletion(t *testing.T) {
	named := nstest.NetNS(t)
	del := mustNetobs(t, "__complete", "ns", "del", "")
	exec := mustNetobs(t, "__complete", "ns", "exec", "--net", "")
	if !contains(strings.Split(del, "\n"), named) || contains(strings.Split(del, "\n"), "self") {
		t.Errorf("ns del completes to %q: want %s and not self", del, named)
	}
	if !contains(strings.Split(exec, "\n"), "self") {
		t.Errorf("ns exec --net completes to %q: want self among them", exec)
	}
}
