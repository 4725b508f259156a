package test

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netobs/netobs/internal/ctrtest"
	"github.com/netobs/netobs/internal/nstest"
)

// A capture against pod:NS/NAME, found through containerd's CRI as a
// kubelet made the pod, holds exactly the pings the pod's container sent
// to its gateway, on an interface named after the pod and described with
// its runtime, sandbox ID and pod, as tshark reads them.
func TestCRICapturePod(t *testing.T) {
	c := ctrtest.Containerd(t)
	ns, name := nstest.UniqueName("ns"), nstest.UniqueName("web")
	pod := c.RunPod(t, ns, name, nil, false)
	ctr := c.RunContainer(t, pod, "main")
	file := filepath.Join(t.TempDir(), "pod.pcapng")
	p := startCapture(t, "capture", "--runtime-endpoint", c.Socket, "pod:"+ns+"/"+name, "-i", "eth0", "-w", file, "icmp")
	c.Exec(t, ctr, "ping", "-c", "3", "-W", "5", c.Gateway)
	if code := p.stop(t); code != 0 {
		t.Fatalf("netobs exited %d: %s", code, p.stderr)
	}
	wantThreePings(t, file, fmt.Sprintf("eth0@pod:%s/%s described with sandbox %s and the pod", ns, name, pod.ID[:12]), func(ifc, desc string) bool {
		return ifc == "eth0@pod:"+ns+"/"+name && strings.Contains(desc, "cri container") && strings.Contains(desc, pod.ID[:12]) && strings.Contains(desc, "pod "+ns+"/"+name)
	})
}

// The CLI resolves pods and CRI containers everywhere an NSREF goes: ns
// id agrees with the kernel's name of the container process's namespace,
// a container says it shares its pod's, a hostNetwork pod warns, ps lists
// pod and container, a pod glob and -l expand to every match with the
// pod in --json, and no runtime gives one line naming the socket.
func TestCRICLI(t *testing.T) {
	c := ctrtest.Containerd(t)
	ep := []string{"--runtime-endpoint", c.Socket}
	ns, base := nstest.UniqueName("ns"), nstest.UniqueName("web")
	app := nstest.UniqueName("app")
	web0 := c.RunPod(t, ns, base+"-0", map[string]string{"app": app}, false)
	web1 := c.RunPod(t, ns, base+"-1", map[string]string{"app": app}, false)
	ctr0 := c.RunContainer(t, web0, "main")
	ctr1 := c.RunContainer(t, web1, "main")
	host := c.RunPod(t, ns, nstest.UniqueName("host"), nil, true)
	want0 := readlink(t, "/proc/"+strconv.Itoa(c.PID(t, ctr0))+"/ns/net")
	want1 := readlink(t, "/proc/"+strconv.Itoa(c.PID(t, ctr1))+"/ns/net")
	hostNS := readlink(t, "/proc/self/ns/net")

	res := netobs(t, append(ep, "ns", "id", "pod:"+ns+"/"+base+"-0")...)
	if res.code != 0 || !strings.Contains(res.stdout, want0) {
		t.Fatalf("ns id pod:%s/%s-0: %+v, want %s", ns, base, res, want0)
	}
	res = netobs(t, append(ep, "ns", "id", "cri:"+ctr1[:12])...)
	if res.code != 0 || !strings.Contains(res.stdout, want1) || !strings.Contains(res.stderr, "of pod "+ns+"/"+base+"-1 and shares the pod's network namespace") {
		t.Fatalf("ns id cri:%s: %+v, want %s and a note that it shares the pod's", ctr1[:12], res, want1)
	}
	res = netobs(t, append(ep, "ns", "id", "pod:"+ns+"/"+host.Name)...)
	if res.code != 0 || !strings.Contains(res.stdout, hostNS) || !strings.Contains(res.stderr, "warning:") || !strings.Contains(res.stderr, "hostNetwork") {
		t.Fatalf("ns id of a hostNetwork pod: %+v, want %s and a warning", res, hostNS)
	}

	rows := map[string][]string{}
	for _, line := range strings.Split(mustNetobs(t, append(ep, "ps", "--runtime", "cri")...), "\n") {
		if f := strings.Fields(line); len(f) >= 6 {
			rows[f[1]] = f
		}
	}
	if f := rows[web0.ID[:12]]; f == nil || f[0] != "cri" || f[2] != "(pod)" || f[3] != ns+"/"+base+"-0" || f[4] != "ready" || f[5] != want0 {
		t.Fatalf("ps row for the sandbox %s: %q, want cri (pod) %s/%s-0 ready %s", web0.ID[:12], f, ns, base, want0)
	}
	if f := rows[ctr0[:12]]; f == nil || f[2] != "main" || f[3] != ns+"/"+base+"-0" || f[4] != "running" || f[5] != want0 {
		t.Fatalf("ps row for the container %s: %q, want main %s/%s-0 running %s", ctr0[:12], f, ns, base, want0)
	}

	// ns ls names the pod and its container in the row of their namespace.
	inode := strings.TrimSuffix(strings.TrimPrefix(want0, "net:["), "]")
	var lsRow string
	for _, line := range strings.Split(mustNetobs(t, append(ep, "ns", "ls", "--type", "net")...), "\n") {
		if f := strings.Fields(line); len(f) >= 9 && f[0] == inode {
			lsRow = f[7]
		}
	}
	for _, w := range []string{"pod:" + ns + "/" + base + "-0", "cri:main"} {
		if !strings.Contains(","+lsRow+",", ","+w+",") {
			t.Fatalf("ns ls: CONTAINERS of %s is %q, want %s in it", inode, lsRow, w)
		}
	}

	for _, sel := range [][]string{{"pod:" + ns + "/" + base + "-*"}, {"-l", "app=" + app}} {
		args := append(append(append([]string{}, ep...), "capture"), sel...)
		p := startNetobs(t, append(args, "--json", "-c", "4", "--", "icmp[icmptype] = icmp-echo")...)
		p.waitStderr(t, "capturing on")
		c.Exec(t, ctr0, "ping", "-c", "2", "-W", "5", c.Gateway)
		c.Exec(t, ctr1, "ping", "-c", "2", "-W", "5", c.Gateway)
		if code := p.wait(t); code != 0 {
			t.Fatalf("capture %s: exit %d: %s", sel, code, p.stderr.String())
		}
		pods := map[string]int{}
		for _, l := range strings.Split(strings.TrimSpace(p.stdout.String()), "\n") {
			var s frameLine
			if err := json.Unmarshal([]byte(l), &s); err != nil {
				t.Fatalf("capture %s: line %q: %v", sel, l, err)
			}
			if s.Runtime != "cri" || s.PodNamespace != ns {
				t.Fatalf("capture %s: line %s, want runtime cri and pod_namespace %s", sel, l, ns)
			}
			pods[s.Pod]++
		}
		if pods[base+"-0"] != 2 || pods[base+"-1"] != 2 || len(pods) != 2 {
			t.Fatalf("capture %s: packets per pod %v, want 2 requests in each of %s-0 and %s-1", sel, pods, base, base)
		}
	}

	missing := filepath.Join(t.TempDir(), "containerd.sock")
	for _, args := range [][]string{{"ns", "id", "pod:default/web"}, {"capture", "cri:0123"}} {
		res := netobs(t, append([]string{"--runtime-endpoint", missing}, args...)...)
		if res.code != 1 || res.stdout != "" || strings.Count(res.stderr, "\n") != 1 || !strings.Contains(res.stderr, missing) || !strings.Contains(res.stderr, "no such socket") {
			t.Fatalf("netobs %s with no runtime: %+v, want exit 1 and one line naming %s", args, res, missing)
		}
	}
	res = netobs(t, append(ep, "ns", "id", "pod:a/b/c")...)
	if res.code != 2 || strings.Count(res.stderr, "\n") != 1 {
		t.Fatalf("pod:a/b/c: %+v, want a usage error", res)
	}
	if _, err := os.Stat(missing); err == nil {
		t.Fatalf("%s appeared", missing)
	}
}

// --host-root: netobs in a container that sees the host's /proc and /run
// under a directory finds the CRI socket, the pod's pinned netns and PIDs
// there. The "host" here is a directory whose run/containerd/containerd.sock
// is the test's containerd, run/netns the host's /run/netns and proc the
// host's /proc; without --host-root the same reference finds no runtime.
func TestHostRoot(t *testing.T) {
	c := ctrtest.Containerd(t)
	ns, name := nstest.UniqueName("ns"), nstest.UniqueName("web")
	pod := c.RunPod(t, ns, name, nil, false)
	ctr := c.RunContainer(t, pod, "main")
	pid := strconv.Itoa(c.PID(t, ctr))
	want := readlink(t, "/proc/"+pid+"/ns/net")

	root := t.TempDir()
	for link, target := range map[string]string{"proc": "/proc", "run/netns": "/run/netns", "run/containerd/containerd.sock": c.Socket} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, link)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, filepath.Join(root, link)); err != nil {
			t.Fatal(err)
		}
	}
	for _, ref := range []string{"pod:" + ns + "/" + name, pid} {
		res := netobs(t, "--host-root", root, "ns", "id", ref)
		if res.code != 0 || !strings.Contains(res.stdout, want) {
			t.Fatalf("--host-root %s ns id %s: %+v, want %s", root, ref, res, want)
		}
	}
	var found bool
	for _, row := range jsonLines[psRow](t, "ps --json", mustNetobs(t, "--host-root", root, "ps", "--runtime", "cri", "--json")) {
		if row.ID == pod.ID {
			found = true
			if !strings.HasPrefix(row.Netns, root+"/run/netns/") || row.NetnsID != want {
				t.Fatalf("ps --json under --host-root: %+v; want the netns under %s/run/netns, %s", row, root, want)
			}
		}
	}
	if !found {
		t.Fatalf("ps --host-root %s does not list the sandbox %s", root, pod.ID)
	}
	// ns ls reads the host's /proc under the root: a root whose proc holds
	// only the container's process lists only its namespaces.
	one := t.TempDir()
	if err := os.MkdirAll(filepath.Join(one, "proc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/proc/"+pid, filepath.Join(one, "proc", pid)); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(mustNetobs(t, "--host-root", one, "--runtime-endpoint", c.Socket, "ns", "ls", "--type", "net")), "\n")
	inode := strings.TrimSuffix(strings.TrimPrefix(want, "net:["), "]")
	if f := strings.Fields(lines[len(lines)-1]); len(lines) != 2 || len(f) < 9 || f[0] != inode || f[2] != "1" || f[3] != pid || !strings.Contains(f[7], "cri:main") {
		t.Fatalf("ns ls --host-root with only process %s: %q; want one row, %s held by it, naming the container", pid, lines, inode)
	}

	res := netobs(t, "--host-root", filepath.Join(root, "none"), "ns", "id", "pod:"+ns+"/"+name)
	if res.code != 1 || strings.Count(res.stderr, "\n") != 1 || !strings.Contains(res.stderr, filepath.Join(root, "none", "run/containerd/containerd.sock")) {
		t.Fatalf("a host root without the sockets: %+v, want one line naming the socket tried under it", res)
	}
}

// A pod is an NSREF everywhere: sockets shows its container's listener,
// forward reaches it from the host, ns exec --net runs in it, and shell
// completion offers the pod.
func TestCRIPodNSRefEverywhere(t *testing.T) {
	c := ctrtest.Containerd(t)
	ns, name := nstest.UniqueName("ns"), nstest.UniqueName("web")
	pod := c.RunPod(t, ns, name, nil, false)
	ctr := c.RunContainer(t, pod, "main", "/bin/sh", "-c", "echo hello-from-pod | nc -l -p 7777")
	want := readlink(t, "/proc/"+strconv.Itoa(c.PID(t, ctr))+"/ns/net")
	ref := "pod:" + ns + "/" + name
	ep := []string{"--runtime-endpoint", c.Socket}
	for i := 0; !strings.Contains(mustNetobs(t, append(ep, "sockets", ref, "-tl")...), ":7777"); i++ {
		if i == 500 {
			t.Fatalf("sockets %s -tl never showed the listener on 7777", ref)
		}
		time.Sleep(10 * time.Millisecond)
	}
	_, addr := startForward(t, append(ep, ref, "0", "7777")...)
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(time.Minute))
	if got, _ := io.ReadAll(conn); string(got) != "hello-from-pod\n" {
		t.Fatalf("forward to %s:7777 read %q", ref, got)
	}
	if out := mustNetobs(t, append(ep, "ns", "exec", "--net", ref, "readlink", "/proc/self/ns/net")...); strings.TrimSpace(out) != want {
		t.Fatalf("ns exec --net %s: in %q, want %s", ref, out, want)
	}
	out := mustNetobs(t, append([]string{"__complete"}, append(ep, "ns", "id", "")...)...)
	if !strings.Contains("\n"+out, "\n"+ref+"\n") || !strings.Contains("\n"+out, "\ncri:"+ctr[:12]+"\n") {
		t.Fatalf("completion does not offer %s and cri:%s: %q", ref, ctr[:12], out)
	}
}

// The pod's namespace outlives its containers: a capture against the pod
// goes on while the container is replaced (as the kubelet restarts one)
// and sees the new container's traffic too.
func TestCRIContainerRestartMidCapture(t *testing.T) {
	c := ctrtest.Containerd(t)
	ns, name := nstest.UniqueName("ns"), nstest.UniqueName("web")
	pod := c.RunPod(t, ns, name, nil, false)
	first := c.RunContainer(t, pod, "main")
	p := startNetobs(t, "--runtime-endpoint", c.Socket, "capture", "pod:"+ns+"/"+name, "-i", "eth0", "-c", "4", "--", "icmp[icmptype] = icmp-echo")
	p.waitStderr(t, "capturing on")
	c.Exec(t, first, "ping", "-c", "2", "-W", "5", c.Gateway)
	c.RemoveContainer(t, first)
	second := c.RunContainer(t, pod, "main")
	c.Exec(t, second, "ping", "-c", "2", "-W", "5", c.Gateway)
	if code := p.wait(t); code != 0 {
		t.Fatalf("capture across a container restart: exit %d: %s", code, p.stderr.String())
	}
	if n := strings.Count(p.stdout.String(), "ICMP echo request"); n != 4 {
		t.Fatalf("%d echo requests captured, want 2 from each container: %s", n, p.stdout.String())
	}
}

// NETOBS_RUNTIME_ENDPOINT names the CRI socket as --runtime-endpoint does,
// and the flag wins over it. A user who may not use the socket is told
// so in one line naming it, exit 1.
func TestCRIEndpointEnvAndPermission(t *testing.T) {
	nstest.RequireTools(t, "setpriv")
	c := ctrtest.Containerd(t)
	ns, name := nstest.UniqueName("ns"), nstest.UniqueName("web")
	pod := c.RunPod(t, ns, name, nil, false)
	ctr := c.RunContainer(t, pod, "main")
	want := readlink(t, "/proc/"+strconv.Itoa(c.PID(t, ctr))+"/ns/net")
	ref := "pod:" + ns + "/" + name
	missing := filepath.Join(t.TempDir(), "missing.sock")
	for _, tc := range []struct {
		env  string
		args []string
	}{
		{c.Socket, []string{"ns", "id", ref}},
		{missing, []string{"--runtime-endpoint", c.Socket, "ns", "id", ref}},
		{"unix://" + c.Socket, []string{"ns", "id", ref}},
	} {
		cmd := exec.Command(netobsBin, tc.args...)
		cmd.Env = append(os.Environ(), "NETOBS_RUNTIME_ENDPOINT="+tc.env)
		out, err := cmd.Output()
		if err != nil || !strings.Contains(string(out), want) {
			t.Fatalf("NETOBS_RUNTIME_ENDPOINT=%s netobs %s: %q %v, want %s", tc.env, strings.Join(tc.args, " "), out, err, want)
		}
	}
	cmd := exec.Command(netobsBin, "ns", "id", ref)
	cmd.Env = append(os.Environ(), "NETOBS_RUNTIME_ENDPOINT="+missing)
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), missing+": no such socket") {
		t.Fatalf("NETOBS_RUNTIME_ENDPOINT=%s: %q %v, want an error naming it", missing, out, err)
	}

	// As nobody, whether the socket is given by the flag or the variable.
	for _, args := range [][]string{{"--runtime-endpoint", c.Socket, "ns", "id", ref}, {"ns", "id", ref}, {"sockets", "pod:" + name}} {
		cmd := exec.Command("setpriv", append([]string{"--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", netobsBin}, args...)...)
		cmd.Env = append(os.Environ(), "NETOBS_RUNTIME_ENDPOINT="+c.Socket)
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		cmd.Run()
		msg := stderr.String()
		if cmd.ProcessState.ExitCode() != 1 || stdout.Len() != 0 || strings.Count(msg, "\n") != 1 || !strings.Contains(msg, c.Socket+": permission denied") {
			t.Errorf("as nobody, netobs %s: exit %d, %q; want exit 1 and one line saying %s: permission denied", strings.Join(args, " "), cmd.ProcessState.ExitCode(), msg, c.Socket)
		}
	}
}

// events and attach take a pod: events sees an address added in the pod's
// namespace, and attach's TAP device in it gets the pod container's
// traffic (its ARP for an address on the device's subnet); both label
// their output with the pod.
func TestCRIPodAttachAndEvents(t *testing.T) {
	nstest.RequireTools(t, "nsenter", "ip")
	c := ctrtest.Containerd(t)
	ns, name := nstest.UniqueName("ns"), nstest.UniqueName("web")
	pod := c.RunPod(t, ns, name, nil, false)
	ctr := c.RunContainer(t, pod, "main")
	pid := strconv.Itoa(c.PID(t, ctr))
	want := readlink(t, "/proc/"+pid+"/ns/net")
	ref := "pod:" + ns + "/" + name
	// The owner fields asserted: runtime, pod, container_id and pod_namespace.
	wantOwner := jsonOwner{Runtime: "cri", Pod: name, ContainerID: pod.ID, PodNamespace: ns}
	ownerOf := func(o jsonOwner) jsonOwner {
		return jsonOwner{Runtime: o.Runtime, Pod: o.Pod, ContainerID: o.ContainerID, PodNamespace: o.PodNamespace}
	}

	ev := startNetobs(t, "--runtime-endpoint", c.Socket, "events", ref, "--kinds", "addr", "-c", "1", "--json")
	ev.waitStderr(t, "watching 1 namespaces")
	nstest.Run(t, "nsenter", "-t", pid, "-n", "ip", "addr", "add", "10.79.0.1/32", "dev", "lo")
	if code := ev.wait(t); code != 0 {
		t.Fatalf("events %s: exit %d: %s", ref, code, ev.stderr.String())
	}
	var e evLine
	if err := json.Unmarshal(ev.stdout.Bytes(), &e); err != nil || "net:["+strconv.FormatUint(e.NS.Inode, 10)+"]" != want ||
		e.NS.Label != ref || ownerOf(e.NS.jsonOwner) != wantOwner || e.Action != "add" || !strings.Contains(e.Text, "10.79.0.1/32") {
		t.Fatalf("events %s: %s (%v); want the add of 10.79.0.1/32 in %s labelled %s, %+v", ref, ev.stdout.String(), err, want, ref, wantOwner)
	}

	dev := nstest.UniqueName("tap")
	at := startNetobs(t, "--runtime-endpoint", c.Socket, "attach", ref, "--tap", "--name", dev, "--addr", "10.79.1.1/24", "--json",
		"--events", "--event-kinds", "addr")
	at.waitStderr(t, "netobs: attached")
	// No one has 10.79.1.2: the container's ARP requests for it go out
	// of the device netobs reads.
	c.Exec(t, ctr, "sh", "-c", "ping -c 2 -W 1 10.79.1.2 || true")
	nstest.Run(t, "nsenter", "-t", pid, "-n", "ip", "addr", "add", "10.79.0.2/32", "dev", "lo")
	event := at.waitStdout(t, "the event of 10.79.0.2/32", func(l string) bool { return strings.Contains(l, "10.79.0.2/32") })
	frame := at.waitStdout(t, "the container's ARP for 10.79.1.2", func(l string) bool {
		return !strings.Contains(l, "10.79.0.2/32") && (strings.Contains(l, `"10.79.1.2"`) || strings.Contains(l, "10.79.1.2 "))
	})
	if code := at.stop(t, syscall.SIGINT); code != 0 {
		t.Fatalf("attach exited %d: %s", code, at.stderr.String())
	}
	var fr frameLine
	if err := json.Unmarshal([]byte(frame), &fr); err != nil || fr.Interface != dev || ownerOf(fr.jsonOwner) != wantOwner {
		t.Fatalf("attach frame %s (%v): want it from %s labelled %+v", frame, err, dev, wantOwner)
	}
	if ae, err := parseAttachEvent(event); err != nil || ae.NS.Label != ref || ownerOf(ae.NS.jsonOwner) != wantOwner {
		t.Fatalf("attach --events line %s (%v): want it labelled %s, %+v", event, err, ref, wantOwner)
	}
}

// Pod globs and label selectors expand outside capture too: events,
// sockets and topo take every running match; a command that takes one
// namespace refuses a glob that matches two, listing them (usage, exit 2).
func TestCRIPodGlobsEverywhere(t *testing.T) {
	nstest.RequireTools(t, "nsenter", "ip")
	c := ctrtest.Containerd(t)
	ep := []string{"--runtime-endpoint", c.Socket}
	ns, base, app := nstest.UniqueName("ns"), nstest.UniqueName("web"), nstest.UniqueName("app")
	var pids, inodes, pods []string
	for i, port := range []string{"7701", "7702"} {
		pod := c.RunPod(t, ns, base+"-"+strconv.Itoa(i), map[string]string{"app": app}, false)
		ctr := c.RunContainer(t, pod, "main", "/bin/sh", "-c", "exec nc -l -p "+port)
		pid := strconv.Itoa(c.PID(t, ctr))
		pids = append(pids, pid)
		inodes = append(inodes, inodeOf(t, "/proc/"+pid+"/ns/net"))
		pods = append(pods, "pod:"+ns+"/"+base+"-"+strconv.Itoa(i))
	}
	glob := "pod:" + ns + "/" + base + "-*"
	sort.Strings(inodes)
	sel := [][]string{{glob}, {"-l", "app=" + app}}

	for i, s := range sel {
		ev := startNetobs(t, append(append(append([]string{}, ep...), "events", "--kinds", "addr", "-c", "2", "--json"), s...)...)
		ev.waitStderr(t, "watching 2 namespaces")
		for j, pid := range pids {
			nstest.Run(t, "nsenter", "-t", pid, "-n", "ip", "addr", "add", "10.80."+strconv.Itoa(i)+"."+strconv.Itoa(j+1)+"/32", "dev", "lo")
		}
		if code := ev.wait(t); code != 0 {
			t.Fatalf("events %s: exit %d: %s", s, code, ev.stderr.String())
		}
		got := map[string]bool{}
		for _, e := range jsonLines[evLine](t, "events "+strings.Join(s, " "), ev.stdout.String()) {
			got[e.NS.Label] = true
		}
		if !got[pods[0]] || !got[pods[1]] || len(got) != 2 {
			t.Fatalf("events %s: events labelled %v, want one from each of %v", s, got, pods)
		}

		if got := topoInodes(t, []byte(mustNetobs(t, append(append(append([]string{}, ep...), "topo", "--format", "json"), s...)...))); strings.Join(got, " ") != strings.Join(inodes, " ") {
			t.Fatalf("topo %s: namespaces %v, want %v", s, got, inodes)
		}
	}

	// nc may take a moment to listen.
	for _, s := range [][]string{{glob}, {"--selector", "app=" + app}} {
		args := append(append(append([]string{}, ep...), "sockets", "-tl"), s...)
		var out string
		for i := 0; !strings.Contains(out, ":7701 ") || !strings.Contains(out, ":7702 "); i++ {
			if i == 500 {
				t.Fatalf("sockets %s never showed both listeners: %s", s, out)
			}
			time.Sleep(10 * time.Millisecond)
			out = mustNetobs(t, args...)
		}
		// Each listener under its pod's first line.
		var cur string
		under := map[string]string{}
		for _, l := range strings.Split(out, "\n") {
			if f := strings.Fields(l); len(f) == 2 && strings.HasPrefix(f[1], "pod:") {
				cur = f[1]
			}
			for _, port := range []string{"7701", "7702"} {
				if strings.Contains(l, ":"+port+" ") {
					under[port] = cur
				}
			}
		}
		if under["7701"] != pods[0] || under["7702"] != pods[1] {
			t.Fatalf("sockets %s:\n%s\nwant 7701 under %s and 7702 under %s", s, out, pods[0], pods[1])
		}
	}
	var byPod = map[string]string{}
	for _, s := range jsonLines[sockJSON](t, "sockets --json", mustNetobs(t, append(ep, "sockets", "-tl", "--json", glob)...)) {
		byPod[strconv.Itoa(int(s.LocalPort))] = s.Pod
	}
	if byPod["7701"] != base+"-0" || byPod["7702"] != base+"-1" {
		t.Fatalf("sockets --json %s: pods by port %v", glob, byPod)
	}

	// One namespace wanted, two matched.
	for _, args := range [][]string{{"ns", "id", glob}, {"ns", "exec", "--net", glob, "true"}, {"attach", glob, "--tap"}, {"forward", glob, "0", "80"}} {
		res := netobs(t, append(ep, args...)...)
		if res.code != 2 || res.stdout != "" || strings.Count(res.stderr, "\n") != 1 || !strings.Contains(res.stderr, pods[0]) || !strings.Contains(res.stderr, pods[1]) {
			t.Errorf("netobs %s: %+v; want exit 2 and one line listing %v", strings.Join(args, " "), res, pods)
		}
	}
	// A glob that matches one is that one.
	if out := mustNetobs(t, append(ep, "ns", "id", "pod:"+ns+"/"+base+"-0*")...); !strings.Contains(out, inodeOf(t, "/proc/"+pids[0]+"/ns/net")) {
		t.Fatalf("ns id of a glob matching one pod: %q", out)
	}
}
