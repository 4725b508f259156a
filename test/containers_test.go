package test

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netobs/netobs/internal/ctrtest"
	"github.com/netobs/netobs/internal/nstest"
)

// netnsOf is the network namespace of a container's process, as the
// kernel names it: the cross-check for what netobs resolves.
func netnsOf(t *testing.T, r *ctrtest.Runtime, name string) string {
	t.Helper()
	return readlink(t, "/proc/"+r.Inspect(t, name, "{{.State.Pid}}")+"/ns/net")
}

// A capture names the container: eth0@docker:NAME, its ID in the pcapng
// interface description, and holds exactly the pings the container sent
// to its gateway, as tshark reads them.
func TestContainerCaptureByName(t *testing.T) {
	r := ctrtest.Docker(t)
	name := r.Run(t, nil)
	id := r.Inspect(t, name, "{{.Id}}")
	gw := r.Inspect(t, name, "{{.NetworkSettings.Gateway}}")
	file := filepath.Join(t.TempDir(), "ctr.pcapng")
	p := startCapture(t, "capture", "docker:"+name, "-i", "eth0", "-w", file, "icmp")
	r.Cmd(t, "exec", name, "ping", "-c", "3", "-W", "5", gw)
	if code := p.stop(t); code != 0 {
		t.Fatalf("netobs exited %d: %s", code, p.stderr)
	}
	wantThreePings(t, file, fmt.Sprintf("eth0@docker:%s described with ID %s", name, id[:12]), func(ifc, desc string) bool {
		return ifc == "eth0@docker:"+name && strings.Contains(desc, id[:12]) && strings.Contains(desc, `docker container "`+name+`"`)
	})
}

// podman too, and --json carries runtime, container ID and name.
func TestContainerCaptureJSONPodman(t *testing.T) {
	r := ctrtest.Podman(t)
	// podman drops CAP_NET_RAW, which busybox ping needs.
	name := r.Run(t, []string{"--cap-add", "NET_RAW"})
	id := r.Inspect(t, name, "{{.Id}}")
	gw := r.Inspect(t, name, "{{.NetworkSettings.Gateway}}")
	p := startNetobs(t, "capture", "podman:"+name, "--json", "-c", "2", "icmp")
	p.waitStderr(t, "capturing on")
	r.Cmd(t, "exec", name, "ping", "-c", "2", "-W", "5", gw)
	if code := p.wait(t); code != 0 {
		t.Fatalf("netobs exited %d: %s", code, p.stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(p.stdout.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines, want 2: %s", len(lines), p.stdout.String())
	}
	for _, l := range lines {
		var s frameLine
		if err := json.Unmarshal([]byte(l), &s); err != nil {
			t.Fatal(err)
		}
		if s.Runtime != "podman" || s.Container != name || s.ContainerID != id || s.Interface != "any@podman:"+name || s.Proto != "icmp" {
			t.Fatalf("line %s: want runtime podman, container %s, ID %s", l, name, id)
		}
	}
}

// Container references work where NSREFs do: ns id agrees with the
// kernel, sockets sees the container's listener, forward reaches it.
func TestContainerNSRefEverywhere(t *testing.T) {
	r := ctrtest.Docker(t)
	name := r.Run(t, nil, "/bin/sh", "-c", "echo hello-from-container | nc -l -p 7777")
	ref := "docker:" + name
	want := netnsOf(t, r, name)
	if out := mustNetobs(t, "ns", "id", ref); !strings.HasPrefix(out, ref+" "+want) {
		t.Fatalf("ns id %s: %q, want %s", ref, out, want)
	}
	// nc may take a moment to listen.
	for i := 0; !strings.Contains(mustNetobs(t, "sockets", ref, "-tl"), ":7777"); i++ {
		if i == 500 {
			t.Fatalf("sockets %s -tl never showed the listener on 7777", ref)
		}
		time.Sleep(10 * time.Millisecond)
	}
	_, addr := startForward(t, ref, "0", "7777")
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Minute))
	got, _ := io.ReadAll(c)
	if string(got) != "hello-from-container\n" {
		t.Fatalf("forward to %s:7777 read %q", ref, got)
	}
	if out := mustNetobs(t, "ns", "exec", "--net", ref, "readlink", "/proc/self/ns/net"); strings.TrimSpace(out) != want {
		t.Fatalf("ns exec --net %s: in %q, want %s", ref, out, want)
	}
	// Shell completion offers the running container, wherever an NSREF
	// goes.
	for _, args := range [][]string{{"ns", "id", ""}, {"ns", "same", "self", ""}, {"ns", "exec", "--net", ""},
		{"capture", ""}, {"capture", "self", ""}, {"events", ""}, {"forward", ""}, {"sockets", ""},
		{"attach", ""}, {"topo", ""}, {"topo", "self", ""}} {
		out := mustNetobs(t, append([]string{"__complete"}, args...)...)
		if !strings.Contains("\n"+out, "\n"+ref+"\n") {
			t.Fatalf("completion of %q does not offer %s: %q", args, ref, out)
		}
	}
	// Not where the arguments are no longer NSREFs.
	for _, args := range [][]string{{"sockets", ref, ""}, {"forward", ref, ""}, {"attach", ref, ""}} {
		if out := mustNetobs(t, append([]string{"__complete"}, args...)...); strings.Contains(out, ref) {
			t.Fatalf("completion of %q offers %s after the NSREF: %q", args, ref, out)
		}
	}
}

// ps lists containers with the namespace the kernel reports, their
// address and state; one of --network container:X shares X's namespace,
// and resolving it says so; a host-network one warns.
func TestContainerPSAndSharing(t *testing.T) {
	r := ctrtest.Docker(t)
	main := r.Run(t, nil)
	shared := r.Run(t, []string{"--network", "container:" + main})
	host := r.Run(t, []string{"--network", "host"})
	stopped := r.Create(t, nil)
	want := netnsOf(t, r, main)
	hostNS := readlink(t, "/proc/self/ns/net")

	rows := map[string][]string{}
	for _, line := range strings.Split(mustNetobs(t, "ps", "--runtime", "docker"), "\n") {
		if f := strings.Fields(line); len(f) >= 7 {
			rows[f[2]] = f
		}
	}
	addr := r.Inspect(t, main, "{{.NetworkSettings.IPAddress}}/{{.NetworkSettings.IPPrefixLen}}")
	if f := rows[main]; f == nil || f[0] != "docker" || f[3] != "-" || f[4] != "running" || f[5] != want || f[6] != addr {
		t.Fatalf("ps row for %s: %q, want docker - running %s %s", main, f, want, addr)
	}
	if f := rows[shared]; f == nil || f[5] != want {
		t.Fatalf("ps row for %s: %q, want the namespace %s", shared, f, want)
	}
	if f := rows[host]; f == nil || f[5] != hostNS || f[6] != "host" {
		t.Fatalf("ps row for %s: %q, want %s host", host, f, hostNS)
	}
	if f := rows[stopped]; f == nil || f[4] != "created" || f[5] != "-" {
		t.Fatalf("ps row for %s: %q, want created -", stopped, f)
	}
	var found bool
	for _, c := range jsonLines[psRow](t, "ps --json", mustNetobs(t, "ps", "--json")) {
		if c.Container == main {
			found = true
			if c.NetnsID != want || c.Netns != r.Inspect(t, main, "{{.NetworkSettings.SandboxKey}}") || c.ID != r.Inspect(t, main, "{{.Id}}") {
				t.Fatalf("ps --json %+v", c)
			}
		}
	}
	if !found {
		t.Fatalf("ps --json does not list %s", main)
	}

	// ns ls shows which containers each network namespace holds: both
	// sharers in one row, the host-network one in the host's.
	inode := func(ns string) string { return strings.TrimSuffix(strings.TrimPrefix(ns, "net:["), "]") }
	lsRows := map[string]string{}
	for _, line := range strings.Split(mustNetobs(t, "ns", "ls", "--type", "net"), "\n") {
		if f := strings.Fields(line); len(f) >= 9 {
			lsRows[f[0]] = f[7]
		}
	}
	for ns, want := range map[string][]string{inode(want): {"docker:" + main, "docker:" + shared}, inode(hostNS): {"docker:" + host}} {
		for _, w := range want {
			if !strings.Contains(","+lsRows[ns]+",", ","+w+",") {
				t.Fatalf("ns ls: CONTAINERS of %s is %q, want %s in it", ns, lsRows[ns], w)
			}
		}
	}
	var inLs int
	for _, row := range jsonLines[nsLsRow](t, "ns ls --json", mustNetobs(t, "ns", "ls", "--json")) {
		for _, c := range row.Containers {
			if c.Container == main || c.Container == shared {
				inLs++
				if row.Type != "net" || strconv.FormatUint(row.NS, 10) != inode(want) || c.Runtime != "docker" {
					t.Fatalf("ns ls --json: %+v", row)
				}
			}
		}
	}
	if inLs != 2 {
		t.Fatalf("ns ls --json lists %s and %s %d times, want once each", main, shared, inLs)
	}

	res := netobs(t, "ns", "id", "docker:"+shared)
	if res.code != 0 || !strings.Contains(res.stdout, want) || !strings.Contains(res.stderr, "shares the network namespace of container "+r.Inspect(t, main, "{{.Id}}")[:12]) {
		t.Fatalf("ns id docker:%s: %+v, want %s and a note that it shares %s's", shared, res, want, main)
	}
	res = netobs(t, "ns", "id", "docker:"+host)
	if res.code != 0 || !strings.Contains(res.stdout, hostNS) || !strings.Contains(res.stderr, "warning: docker:"+host+" uses the host's network namespace") {
		t.Fatalf("ns id docker:%s: %+v, want %s and a warning", host, res, hostNS)
	}
}

// Bad references: one line on stderr naming the thing, exit 1 (2 for a
// malformed reference), nothing on stdout.
func TestContainerBadInput(t *testing.T) {
	d, p := ctrtest.Docker(t), ctrtest.Podman(t)
	stopped := d.Create(t, nil)
	dup := nstest.UniqueName("dup")
	t.Cleanup(func() { exec.Command("docker", "rm", "-f", dup).Run(); exec.Command("podman", "rm", "-f", dup).Run() })
	d.Cmd(t, "create", "--name", dup, d.Inspect(t, stopped, "{{.Config.Image}}"), "/bin/true")
	p.Cmd(t, "create", "--name", dup, p.Inspect(t, p.Create(t, nil), "{{.ImageName}}"), "/bin/true")
	dupIDs := []string{d.Inspect(t, dup, "{{.Id}}")[:12], p.Inspect(t, dup, "{{.Id}}")[:12]}

	dir := t.TempDir()
	dead := filepath.Join(dir, "dead.sock")
	l, err := net.Listen("unix", dead)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	missing := filepath.Join(dir, "missing.sock")

	for _, tc := range []struct {
		args []string
		env  string
		code int
		want []string
	}{
		{[]string{"capture", "docker:" + stopped}, "", 1, []string{"docker:" + stopped, "not running", "created"}},
		{[]string{"sockets", "docker:" + nstest.UniqueName("none")}, "", 1, []string{"no such container", "docker:" + nstest.Prefix()}},
		{[]string{"ns", "id", "container:" + dup}, "", 1, append([]string{"matches 2 containers"}, dupIDs...)},
		{[]string{"ns", "id", "docker:"}, "", 2, []string{"malformed container reference", `"docker:"`}},
		{[]string{"events", "docker:a/b"}, "", 2, []string{"malformed container reference"}},
		{[]string{"ns", "id", "--runtime-endpoint", dead, "docker:web"}, "", 1, []string{"no docker daemon answered", dead, "connection refused"}},
		{[]string{"forward", "docker:web", "0", "80"}, missing, 1, []string{"no docker daemon answered", missing, "no such socket"}},
		{[]string{"ps"}, dead, 1, []string{"ps: ", dead, "connection refused"}},
	} {
		cmd := exec.Command(netobsBin, tc.args...)
		cmd.Env = append(os.Environ(), "NETOBS_RUNTIME_ENDPOINT="+tc.env)
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		cmd.Run()
		code := cmd.ProcessState.ExitCode()
		msg := stderr.String()
		if code != tc.code || stdout.Len() != 0 || strings.Count(msg, "\n") != 1 || !strings.HasPrefix(msg, "netobs: ") {
			t.Errorf("netobs %s: exit %d, stdout %q, stderr %q; want exit %d and one line", strings.Join(tc.args, " "), code, stdout.String(), msg, tc.code)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(msg, w) {
				t.Errorf("netobs %s: %q lacks %q", strings.Join(tc.args, " "), msg, w)
			}
		}
	}

	// A user who may not use the socket is told so, with the socket.
	nstest.RequireTools(t, "setpriv")
	cmd := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", netobsBin, "ns", "id", "docker:"+stopped)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	cmd.Run()
	if msg := stderr.String(); cmd.ProcessState.ExitCode() != 1 || strings.Count(msg, "\n") != 1 || !strings.Contains(msg, d.Socket+": permission denied") {
		t.Errorf("as nobody, ns id docker:%s: exit %d, %q; want exit 1 and one line saying %s: permission denied", stopped, cmd.ProcessState.ExitCode(), msg, d.Socket)
	}
}

// events and sockets label a container's namespace as capture does: the
// text names it docker:NAME, the JSON carries runtime, container_id and
// container. events sees an address added inside the container; sockets
// lists the container's listener, as ss run in its namespace does.
func TestContainerEventsAndSocketsLabelled(t *testing.T) {
	nstest.RequireTools(t, "nsenter", "ss")
	r := ctrtest.Docker(t)
	// NET_ADMIN, for ip addr add in the container.
	name := r.Run(t, []string{"--cap-add", "NET_ADMIN"}, "/bin/sh", "-c", "exec nc -l -p 7788")
	ref := "docker:" + name
	id := r.Inspect(t, name, "{{.Id}}")
	pid := r.Inspect(t, name, "{{.State.Pid}}")
	netns := netnsOf(t, r, name)
	// The owner fields asserted: runtime, container and container_id.
	wantOwner := jsonOwner{Runtime: "docker", Container: name, ContainerID: id}
	ownerOf := func(o jsonOwner) jsonOwner {
		return jsonOwner{Runtime: o.Runtime, Container: o.Container, ContainerID: o.ContainerID}
	}

	text := startNetobs(t, "events", "--kinds", "addr", "-c", "1", ref)
	js := startNetobs(t, "events", "--kinds", "addr", "-c", "1", "--json", ref)
	text.waitStderr(t, "watching 1 namespaces")
	js.waitStderr(t, "watching 1 namespaces")
	r.Cmd(t, "exec", name, "ip", "addr", "add", "10.77.0.1/32", "dev", "lo")
	for _, p := range []*bgNetobs{text, js} {
		if code := p.wait(t); code != 0 {
			t.Fatalf("events exited %d: %s", code, p.stderr.String())
		}
	}
	if out := text.stdout.String(); !strings.Contains(out, " "+netns+" "+ref+" ") || !strings.Contains(out, "10.77.0.1/32") {
		t.Fatalf("events text %q: want the address 10.77.0.1/32 labelled %s %s", out, netns, ref)
	}
	var ev evLine
	if err := json.Unmarshal(js.stdout.Bytes(), &ev); err != nil {
		t.Fatalf("events --json %q: %v", js.stdout.String(), err)
	}
	if "net:["+strconv.FormatUint(ev.NS.Inode, 10)+"]" != netns || ev.NS.Label != ref || ownerOf(ev.NS.jsonOwner) != wantOwner ||
		ev.Action != "add" || !strings.Contains(ev.Text, "10.77.0.1/32") {
		t.Fatalf("events --json %s: want the add of 10.77.0.1/32 in %s labelled %s, owner %+v", js.stdout.String(), netns, ref, wantOwner)
	}

	// attach --events labels the events it interleaves the same way.
	at := startNetobs(t, "attach", ref, "--tap", "--name", nstest.UniqueName("tap"), "--json", "--events", "--event-kinds", "addr")
	at.waitStderr(t, "netobs: attached")
	r.Cmd(t, "exec", name, "ip", "addr", "add", "10.77.0.2/32", "dev", "lo")
	line := at.waitStdout(t, "the event of 10.77.0.2/32", func(l string) bool { return strings.Contains(l, "10.77.0.2/32") })
	if aev, err := parseAttachEvent(line); err != nil || aev.NS.Label != ref || ownerOf(aev.NS.jsonOwner) != wantOwner {
		t.Fatalf("attach --events line %s (%v): want it labelled %s, owner %+v", line, err, ref, wantOwner)
	}
	if code := at.stop(t, syscall.SIGINT); code != 0 {
		t.Fatalf("attach exited %d: %s", code, at.stderr.String())
	}

	// The listener, as ss in the container's namespace sees it.
	for i := 0; !strings.Contains(nstest.Run(t, "nsenter", "-t", pid, "-n", "ss", "-ltnH"), ":7788 "); i++ {
		if i == 500 {
			t.Fatalf("ss in %s never showed nc listening on 7788", netns)
		}
		time.Sleep(10 * time.Millisecond)
	}
	out := mustNetobs(t, "sockets", ref, "-tl")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < 3 || lines[0] != netns+" "+ref || !strings.HasPrefix(lines[1], "Netid") || !strings.Contains(out, ":7788 ") {
		t.Fatalf("sockets %s -tl:\n%s\nwant a first line %q, the header and the listener on 7788", ref, out, netns+" "+ref)
	}
	var found int
	for _, s := range socketsJSON(t, ref, "-tl") {
		if ownerOf(s.jsonOwner) != wantOwner {
			t.Fatalf("sockets --json line %+v: want owner %+v", s, wantOwner)
		}
		if s.LocalPort == 7788 && s.State == "LISTEN" {
			found++
		}
	}
	if found != 1 {
		t.Fatalf("sockets --json: %d listeners on 7788, want 1 (ss saw it)", found)
	}
}

// podman with no API service answering (none started, and the socket's
// directory hidden from netobs): netobs reads podman's own state through
// its command line. ns id agrees with the kernel's name of the namespace
// nsenter enters, ps says the podman command answered, a capture holds
// the container's pings, and a stopped container or an unknown name fail
// with one line.
func TestPodmanWithoutAPIService(t *testing.T) {
	nstest.RequireTools(t, "nsenter")
	r := ctrtest.PodmanCLI(t)
	podman, err := exec.LookPath("podman")
	if err != nil {
		t.Fatal(err)
	}
	// podman drops CAP_NET_RAW, which busybox ping needs.
	name := r.Run(t, []string{"--cap-add", "NET_RAW"})
	stopped := r.Create(t, nil)
	id := r.Inspect(t, name, "{{.Id}}")
	pid := r.Inspect(t, name, "{{.State.Pid}}")
	gw := r.Inspect(t, name, "{{.NetworkSettings.Gateway}}")
	want := strings.TrimSpace(nstest.Run(t, "nsenter", "-t", pid, "-n", "readlink", "/proc/self/ns/net"))
	hidden := func(args ...string) *exec.Cmd {
		cmd := exec.Command(netobsBin, args...)
		r.WithoutAPI(t, cmd)
		return cmd
	}
	run := func(args ...string) result {
		var stdout, stderr strings.Builder
		cmd := hidden(args...)
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		cmd.Run()
		return result{stdout.String(), stderr.String(), cmd.ProcessState.ExitCode()}
	}

	// Nothing answers on the socket: ps reports the command as the
	// endpoint, and an explicit socket endpoint does not fall back.
	var found bool
	for _, c := range jsonLines[psRow](t, "ps --json", run("ps", "--runtime", "podman", "--json").stdout) {
		if c.Container == name {
			found = true
			if c.Endpoint != podman || c.NetnsID != want || c.State != "running" {
				t.Fatalf("ps --json: %+v; want endpoint %s, netns %s, running", c, podman, want)
			}
		}
	}
	if !found {
		t.Fatalf("ps --runtime podman without the API does not list %s", name)
	}
	if res := run("--runtime-endpoint", r.Socket, "ns", "id", "podman:"+name); res.code != 1 || !strings.Contains(res.stderr, r.Socket+": no such socket") {
		t.Fatalf("with the socket hidden, --runtime-endpoint %s: %+v; want exit 1 and no such socket", r.Socket, res)
	}

	for _, ref := range []string{"podman:" + name, "podman:" + id[:10], "container:" + id[:12]} {
		if res := run("ns", "id", ref); res.code != 0 || !strings.HasPrefix(res.stdout, ref+" "+want) {
			t.Fatalf("ns id %s without the API: %+v, want %s", ref, res, want)
		}
	}

	p := startCmd(t, hidden("capture", "podman:"+name, "--json", "-c", "2", "icmp[icmptype] = icmp-echo"))
	p.waitStderr(t, "capturing on")
	r.Cmd(t, "exec", name, "ping", "-c", "2", "-W", "5", gw)
	if code := p.wait(t); code != 0 {
		t.Fatalf("capture exited %d: %s", code, p.stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(p.stdout.String()), "\n")
	for _, l := range lines {
		var s frameLine
		if err := json.Unmarshal([]byte(l), &s); err != nil || s.Runtime != "podman" || s.Container != name || s.ContainerID != id {
			t.Fatalf("capture line %s (%v): want podman container %s", l, err, name)
		}
	}
	if len(lines) != 2 {
		t.Fatalf("%d packets captured, want the 2 echo requests: %s", len(lines), p.stdout.String())
	}

	for ref, w := range map[string]string{"podman:" + stopped: "not running", "podman:" + nstest.UniqueName("none"): "no such container"} {
		res := run("ns", "id", ref)
		if res.code != 1 || res.stdout != "" || strings.Count(res.stderr, "\n") != 1 || !strings.Contains(res.stderr, w) {
			t.Errorf("ns id %s without the API: %+v; want exit 1 and one line saying %s", ref, res, w)
		}
	}
}

// A Docker container restarted mid-capture gets a new network namespace:
// the capture keeps what it saw before, ends that part with one line that
// says the container was restarted and to capture it again (exit 1: every
// part ended), and the reference then resolves to the new namespace.
func TestContainerRestartMidCapture(t *testing.T) {
	r := ctrtest.Docker(t)
	name := r.Run(t, nil)
	ref := "docker:" + name
	gw := r.Inspect(t, name, "{{.NetworkSettings.Gateway}}")
	file := filepath.Join(t.TempDir(), "restart.pcapng")
	p := startNetobs(t, "capture", ref, "-i", "eth0", "-w", file, "--", "icmp[icmptype] = icmp-echo")
	p.waitStderr(t, "capturing on")
	r.Cmd(t, "exec", name, "ping", "-c", "2", "-W", "5", gw)
	r.Cmd(t, "restart", "-t", "0", name)
	p.waitStderr(t, `docker container `+name+` was stopped or restarted; .* capture `+ref+` again`)
	if code := p.wait(t); code != 1 {
		t.Fatalf("capture across a restart: exit %d, want 1 (its only part ended): %s", code, p.stderr.String())
	}
	if n := strings.Count(p.stderr.String(), "was stopped or restarted"); n != 1 {
		t.Fatalf("the restart reported %d times: %s", n, p.stderr.String())
	}
	out := nstest.Run(t, "tshark", "-r", file, "-T", "fields", "-e", "icmp.type")
	if strings.Fields(out) == nil || len(strings.Fields(out)) != 2 {
		t.Fatalf("tshark read %q from the capture, want the 2 echo requests from before the restart", out)
	}
	// The new namespace may have the old one's inode number (the kernel
	// reuses them once the old is freed): what netobs reported above is
	// the check that it was a new one.
	after := netnsOf(t, r, name)
	if got := mustNetobs(t, "ns", "id", ref); !strings.HasPrefix(got, ref+" "+after) {
		t.Fatalf("ns id %s after the restart: %q, want %s", ref, got, after)
	}
}
