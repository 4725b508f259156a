package test

import (
	"encoding/json"
	"io"
	"net/http"
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

// fakeHostRoot makes a directory that stands for a host's / as netobs in
// a container sees it: proc holds one process (a sleeper alone in a
// network namespace) and run/netns one name, bind-mounted from a named
// namespace of the real host under another name. It returns the root, the
// name under it, the real host's name of that namespace, and the inodes
// of the two namespaces, sorted.
func fakeHostRoot(t *testing.T) (root, name, hostName string, inodes []string) {
	t.Helper()
	nstest.RequireTools(t, "mount", "umount")
	pid := nstest.Sleeper(t)
	named := nstest.NetNS(t)
	root = t.TempDir()
	name = nstest.UniqueName("hr")
	if err := os.MkdirAll(filepath.Join(root, "proc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/proc/"+strconv.Itoa(pid), filepath.Join(root, "proc", strconv.Itoa(pid))); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "run", "netns")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), nil, 0o444); err != nil {
		t.Fatal(err)
	}
	nstest.Run(t, "mount", "--bind", "/run/netns/"+named, filepath.Join(dir, name))
	t.Cleanup(func() { exec.Command("umount", filepath.Join(dir, name)).Run() })
	inodes = []string{inodeOf(t, "/proc/"+strconv.Itoa(pid)+"/ns/net"), inodeOf(t, "/run/netns/"+named)}
	sort.Strings(inodes)
	return root, name, named, inodes
}

// inodeOf is nsInode in decimal.
func inodeOf(t *testing.T, path string) string {
	t.Helper()
	return strconv.FormatUint(nsInode(t, path), 10)
}

// topoInodes are the namespaces of topo's JSON graph, sorted.
func topoInodes(t *testing.T, data []byte) []string {
	t.Helper()
	var g struct {
		Nodes []struct {
			Type  string
			Inode uint64
		}
	}
	if err := json.Unmarshal(data, &g); err != nil {
		t.Fatalf("topology %q: %v", data, err)
	}
	var out []string
	for _, n := range g.Nodes {
		if n.Type == "namespace" {
			out = append(out, strconv.FormatUint(n.Inode, 10))
		}
	}
	sort.Strings(out)
	return out
}

// --host-root and NETOBS_HOST_ROOT reach every command that finds
// namespaces by itself: ns ls, topo, events --all, serve and shell
// completion see the fake host's two namespaces and nothing of the
// system netobs runs on; the flag wins over the variable.
func TestHostRootEverywhere(t *testing.T) {
	nstest.RequireTools(t, "ip", "nsenter")
	root, name, hostName, want := fakeHostRoot(t)
	self := inodeOf(t, "/proc/self/ns/net")
	envRun := func(env string, args ...string) result {
		var stdout, stderr strings.Builder
		cmd := exec.Command(netobsBin, args...)
		cmd.Env = append(os.Environ(), "NETOBS_HOST_ROOT="+env)
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		cmd.Run()
		return result{stdout.String(), stderr.String(), cmd.ProcessState.ExitCode()}
	}
	lsInodes := func(out string) []string {
		var got []string
		for _, row := range jsonLines[nsLsRow](t, "ns ls --json", out) {
			got = append(got, strconv.FormatUint(row.NS, 10))
		}
		sort.Strings(got)
		return got
	}
	res := envRun(root, "ns", "ls", "--type", "net", "--json")
	if got := lsInodes(res.stdout); res.code != 0 || strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("NETOBS_HOST_ROOT=%s ns ls: %v (%+v), want %v", root, got, res, want)
	}
	res = envRun(root, "--host-root", "/", "ns", "ls", "--type", "net", "--json")
	if got := lsInodes(res.stdout); res.code != 0 || !strings.Contains(" "+strings.Join(got, " ")+" ", " "+self+" ") {
		t.Fatalf("--host-root / over NETOBS_HOST_ROOT: ns ls %v (%+v), want netobs's own %s in it", got, res, self)
	}

	if got := topoInodes(t, []byte(mustNetobs(t, "--host-root", root, "topo", "--format", "json"))); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("topo --host-root: namespaces %v, want %v", got, want)
	}
	res = envRun(root, "topo", "--format", "json")
	if got := topoInodes(t, []byte(res.stdout)); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("NETOBS_HOST_ROOT topo: namespaces %v, want %v", got, want)
	}

	// events --all watches the two, and sees a change in the one named
	// under the root, labelled with that name.
	ev := startNetobs(t, "--host-root", root, "events", "--all", "--kinds", "addr", "-c", "1", "--json")
	ev.waitStderr(t, "watching 2 namespaces")
	nstest.Run(t, "ip", "-n", hostName, "addr", "add", "10.78.0.1/32", "dev", "lo")
	if code := ev.wait(t); code != 0 {
		t.Fatalf("events --all --host-root: exit %d: %s", code, ev.stderr.String())
	}
	var e evLine
	if err := json.Unmarshal(ev.stdout.Bytes(), &e); err != nil || e.NS.Name != name || !strings.Contains(e.Text, "10.78.0.1/32") {
		t.Fatalf("events --all --host-root: %q (%v), want the address in %s", ev.stdout.String(), err, name)
	}

	// serve draws and opens the root's namespaces only.
	srv := startNetobs(t, "--host-root", root, "serve", "--listen", "127.0.0.1:0")
	url := srv.waitStderr(t, `serving (http://\S+/)`)[1]
	get := func(path string) (int, []byte) {
		resp, err := http.Get(url + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	if code, body := get("api/topology"); code != 200 || strings.Join(topoInodes(t, body), " ") != strings.Join(want, " ") {
		t.Fatalf("serve --host-root: /api/topology %d %s, want the namespaces %v", code, body, want)
	}
	if code, _ := get("api/sockets?ns=net:[" + self + "]"); code != http.StatusNotFound {
		t.Fatalf("serve --host-root: sockets of netobs's own namespace: %d, want 404 (not under the root)", code)
	}
	if code, _ := get("api/sockets?ns=net:[" + want[0] + "]"); code != 200 {
		t.Fatalf("serve --host-root: sockets of %s: %d, want 200", want[0], code)
	}
	if code := srv.stop(t, syscall.SIGINT); code != 0 {
		t.Fatalf("serve exited %d: %s", code, srv.stderr.String())
	}

	// Completion offers the root's names, not netobs's own.
	host := nstest.NetNS(t)
	for _, out := range []string{mustNetobs(t, "__complete", "--host-root", root, "ns", "id", ""), envRun(root, "__complete", "ns", "id", "").stdout} {
		if !strings.Contains("\n"+out, "\n"+name+"\n") || strings.Contains(out, host) {
			t.Fatalf("completion under the host root: %q, want %s and not %s", out, name, host)
		}
	}
}
