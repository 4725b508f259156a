package test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/netobs/netobs/internal/ctrtest"
	"github.com/netobs/netobs/internal/kubeplugin"
	"github.com/netobs/netobs/internal/nstest"
	"github.com/netobs/netobs/netobs/kube"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// agentDialer stands for the API server's port-forward: it reaches an
// agent pod's port by dialing that node's agent socket directly. The real
// API server is there (startKubeAPI), but it hands a port-forward to the
// kubelet of the pod's node, and no kubelet runs here;
// TestKubePluginRBACDenied takes the real port-forward as far as RBAC.
type agentDialer map[string]string // agent pod name → its agent's unix socket

func (d agentDialer) DialPod(ctx context.Context, ns, name string, port int) (net.Conn, error) {
	sock, ok := d[name]
	if ns != kube.AgentNamespace || port != kube.AgentPort || !ok {
		return nil, fmt.Errorf("no agent pod %s/%s port %d here", ns, name, port)
	}
	var nd net.Dialer
	return nd.DialContext(ctx, "unix", sock)
}

// kubeCluster is a Kubernetes cluster of three nodes as the plugin sees
// it: a real API server (startKubeAPI: kube-apiserver and etcd) with the
// nodes, an agent pod on each and a deployment "web" of three pods, one
// per node, whose names are those of real CRI pods (one containerd shared
// by the nodes); each node is a network namespace with a real netobs
// agent in it (startNode). No kubelet runs: the test plays it (the pods'
// status), and the port-forward to an agent pod, which the API server
// would hand to that node's kubelet, is replaced by dialing the agent's
// socket (agentDialer).
type kubeCluster struct {
	cri        *ctrtest.CRI
	api        *kubeAPI
	nodes      []*node
	ns, app    string
	pods       []*ctrtest.Pod
	ctrs       []string
	dialer     agentDialer
	kubeconfig string // user "user", bound by deploy/kubernetes/rbac-user.yaml, in namespace ns
	sleeper    int    // process 1 of node-a's host root
}

// fakeNodeRoot is the host root an agent in a pod sees under /host with
// deploy/kubernetes's mounts: proc/1 (here a sleeper alone in a network
// namespace, standing for the node's init) and run, where the runtime's
// socket is found without flags (run/containerd/containerd.sock) and the
// pods' pinned namespaces are (run/netns).
func fakeNodeRoot(t *testing.T, criSocket string) (root string, pid1 int) {
	t.Helper()
	pid1 = nstest.Sleeper(t)
	root = t.TempDir()
	for _, l := range [][2]string{
		{"proc/1", "/proc/" + strconv.Itoa(pid1)},
		{"run/containerd/containerd.sock", criSocket},
		{"run/netns", "/run/netns"},
	} {
		p := filepath.Join(root, l[0])
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(l[1], p); err != nil {
			t.Fatal(err)
		}
	}
	return root, pid1
}

func startKubeCluster(t *testing.T) *kubeCluster {
	t.Helper()
	api := startKubeAPI(t)
	c := ctrtest.Containerd(t)
	nstest.RequireTools(t, "ip", "tshark", "nsenter")
	k := &kubeCluster{cri: c, api: api, ns: nstest.UniqueName("ns"), app: nstest.UniqueName("app"), dialer: agentDialer{}}
	dir := t.TempDir()
	// node-a's agent runs as deployed: --host-root, no runtime flag; the
	// others are told the runtime's socket.
	root, pid1 := fakeNodeRoot(t, c.Socket)
	k.sleeper = pid1
	k.nodes = []*node{
		startNode(t, "node-a", dir, 11, "--host-root", root),
		startNode(t, "node-b", dir, 12, "--runtime-endpoint", c.Socket),
		startNode(t, "node-c", dir, 13, "--runtime-endpoint", c.Socket),
	}
	// The plugin runs as a user with exactly the rights the README tells
	// to grant.
	api.apply(t, filepath.Join("..", "deploy", "kubernetes", "namespace.yaml"))
	api.apply(t, filepath.Join("..", "deploy", "kubernetes", "rbac-user.yaml"))
	api.createNamespace(t, k.ns)
	api.waitAllowed(t, "user", "list", "", "pods", "", k.ns)
	api.waitAllowed(t, "user", "list", "", "pods", "", kube.AgentNamespace)
	k.kubeconfig = api.kubeconfigIn(t, "user", k.ns)
	rs := api.createDeployment(t, k.ns, "web", k.app)
	for i, n := range k.nodes {
		api.createNode(t, n.name)
		agentName := "netobs-agent-" + n.name
		api.kubeletRun(t, kubePod(kube.AgentNamespace, agentName, n.name, map[string]string{"app.kubernetes.io/name": "netobs-agent"}, nil), "")
		k.dialer[agentName] = n.sock
		name := fmt.Sprintf("web-7d4b9-%d", i)
		p := c.RunPod(t, k.ns, name, map[string]string{"app": k.app}, false)
		k.pods = append(k.pods, p)
		k.ctrs = append(k.ctrs, c.RunContainer(t, p, "main", "/bin/nc", "-ll", "-p", "8080", "-e", "/bin/cat"))
		api.kubeletRun(t, kubePod(k.ns, name, n.name, map[string]string{"app": k.app}, []metav1.OwnerReference{controller("ReplicaSet", rs.Name, rs.UID)}), k.podIP(t, i))
	}
	return k
}

// podIP is the IPv4 address of pod i's eth0 (its CNI address), as a
// kubelet reports it in the pod's status.
func (k *kubeCluster) podIP(t *testing.T, i int) string {
	t.Helper()
	out := nstest.Run(t, "nsenter", "-t", strconv.Itoa(k.cri.PID(t, k.ctrs[i])), "-n", "ip", "-4", "-o", "addr", "show", "dev", "eth0")
	m := regexp.MustCompile(`inet (\S+)/`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no IPv4 address on pod %d's eth0: %q", i, out)
	}
	return m[1]
}

func controller(kind, name string, uid types.UID) metav1.OwnerReference {
	yes := true
	return metav1.OwnerReference{APIVersion: "apps/v1", Kind: kind, Name: name, UID: uid, Controller: &yes}
}

func kubePod(ns, name, node string, labels map[string]string, owners []metav1.OwnerReference) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels, OwnerReferences: owners},
		Spec:       corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "main", Image: "netobs-test"}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{
			{Type: corev1.PodReady, Status: corev1.ConditionTrue}}},
	}
}

// kubePlugin is `kubectl netobs ARGS` running in this process against the
// cluster, in the background.
type kubePlugin struct {
	stderr *lockedBuffer
	cancel context.CancelFunc
	done   chan int
}

func (k *kubeCluster) start(t *testing.T, stdout io.Writer, args ...string) *kubePlugin {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	p := &kubePlugin{stderr: &lockedBuffer{}, cancel: cancel, done: make(chan int, 1)}
	env := &kubeplugin.Env{
		// The plugin's own client, made from the kubeconfig; only its
		// port-forward (which needs a kubelet) is replaced.
		Connect: func(cfg clientcmd.ClientConfig, spdyOnly bool) (kubernetes.Interface, kube.PodDialer, error) {
			cs, _, err := kubeplugin.DefaultEnv().Connect(cfg, spdyOnly)
			return cs, k.dialer, err
		},
		Agents: kubeplugin.AgentClient{},
	}
	go func() {
		p.done <- kubeplugin.Run(ctx, append([]string{"--kubeconfig", k.kubeconfig}, args...), stdout, p.stderr, env)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			t.Errorf("kubectl netobs %s did not end within 10s of its cancellation", args[0])
		}
	})
	return p
}

// wait waits up to a minute for the plugin to end, returning its status.
func (p *kubePlugin) wait(t *testing.T) int {
	t.Helper()
	select {
	case code := <-p.done:
		p.done <- code // for the cleanup
		return code
	case <-time.After(time.Minute):
		t.Fatalf("kubectl netobs still running after a minute; stderr:\n%s", p.stderr)
		return -1
	}
}

// stop is ^C: it cancels the plugin's context and waits for its status.
func (p *kubePlugin) stop(t *testing.T) int {
	p.cancel()
	return p.wait(t)
}

func (k *kubeCluster) run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out lockedBuffer
	p := k.start(t, &out, args...)
	code = p.wait(t)
	return code, out.String(), p.stderr.String()
}

// ping makes pod i send n pings to the bridge.
func (k *kubeCluster) ping(t *testing.T, i, n int) {
	t.Helper()
	k.cri.Exec(t, k.ctrs[i], "ping", "-c", strconv.Itoa(n), "-i", "0.05", "-W", "5", k.cri.Gateway)
}

func (k *kubeCluster) ifName(i int) string {
	return "eth0@pod:" + k.ns + "/" + k.pods[i].Name + "@" + k.nodes[i].name
}

// nodeCountsRe is a final per-node line; received by filter is the
// agent's own count, sent with its final counts.
var nodeCountsRe = regexp.MustCompile(`(?m)^node (\S+): (\d+) captured, (\d+) received by filter, (\d+) dropped by kernel, (\d+) dropped by agent; (.*)$`)

// nodeCounts reads the plugin's final per-node lines: node → captured,
// and node → how it ended.
//
// A node that ran to the end must have sent its final counts, and with
// nothing dropped the agent received what the client captured: a node
// whose final counts were lost on the way fails the test.
func nodeCounts(t *testing.T, stderr string) (map[string]int, map[string]string) {
	t.Helper()
	captured, state := map[string]int{}, map[string]string{}
	for _, m := range nodeCountsRe.FindAllStringSubmatch(stderr, -1) {
		captured[m[1]], _ = strconv.Atoi(m[2])
		state[m[1]] = m[6]
		if m[6] == "to the end" && m[3] != m[2] {
			t.Errorf("node %s: %s captured but %s received by filter on the agent (its final counts lost?):\n%s", m[1], m[2], m[3], stderr)
		}
	}
	return captured, state
}

// TestKubePluginAcrossNodes: `kubectl netobs` against a real API server
// (as a user with deploy/kubernetes/rbac-user.yaml's rights) and three real agents standing for three nodes, each with a real CRI
// pod of deployment web: the pod → node → agent pod → port-forward glue
// (the port-forward replaced by a direct dial) and the agent client
// together. capture deploy/web -w - into a pipe gives one pcapng that
// tshark reads with one interface per node and pod, eth0@pod:NS/NAME@NODE,
// described with node and pod, packets in time order, and the per-node
// counts on stderr equal to tshark's per interface; node-a's agent runs
// with --host-root as deployed (its runtime found under the root, its
// node namespace the root's process 1). Then events, sockets and ps
// through the agents, labelled per node, and an agent killed in the middle
// of a capture by selector: the file stays valid, that node is named, the
// others are captured to the end, exit 1.
func TestKubePluginAcrossNodes(t *testing.T) {
	k := startKubeCluster(t)
	dir := t.TempDir()

	// capture deploy/web -w - | file
	file := filepath.Join(dir, "web.pcapng")
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	copied := make(chan error, 1)
	go func() { _, err := io.Copy(out, pr); pr.Close(); copied <- err }()
	p := k.start(t, pw, "capture", "deploy/web", "-i", "eth0", "-w", "-", "icmp")
	waitFor(t, "capture start", func() bool { return strings.Contains(p.stderr.String(), "capturing on") })
	pings := []int{3, 5, 7}
	for i, n := range pings {
		k.ping(t, i, n)
	}
	time.Sleep(500 * time.Millisecond) // the merge runs behind the traffic
	if code := p.stop(t); code != 0 {
		t.Fatalf("capture deploy/web: exit %d: %s", code, p.stderr)
	}
	pw.Close()
	if err := <-copied; err != nil {
		t.Fatal(err)
	}
	out.Close()
	perIfc := mergedPerInterface(t, file)
	t.Logf("capture deploy/web, stderr:\n%s", p.stderr)
	captured, state := nodeCounts(t, p.stderr.String())
	for i, n := range k.nodes {
		if got := perIfc[k.ifName(i)]; got != 2*pings[i] {
			t.Errorf("tshark counts %d packets on %s, want %d (echo requests and replies); all: %v", got, k.ifName(i), 2*pings[i], perIfc)
		}
		if captured[n.name] != perIfc[k.ifName(i)] || state[n.name] != "to the end" {
			t.Errorf("%s: stderr says %d captured (%s), tshark counts %d; stderr:\n%s", n.name, captured[n.name], state[n.name], perIfc[k.ifName(i)], p.stderr)
		}
	}
	if len(perIfc) != len(k.nodes) {
		t.Errorf("packets on %v, want only the three pods' eth0", perIfc)
	}
	descs := nstest.Run(t, "tshark", "-r", file, "-T", "fields", "-e", "frame.interface_name", "-e", "frame.interface_description")
	for _, l := range strings.Split(strings.TrimSpace(descs), "\n") {
		f := strings.SplitN(l, "\t", 2)
		idx := 0
		for idx < len(k.pods) && f[0] != k.ifName(idx) {
			idx++
		}
		if len(f) != 2 || idx >= len(k.pods) || !strings.HasPrefix(f[1], "node "+k.nodes[idx].name+", ") ||
			!strings.Contains(f[1], "pod "+k.ns+"/"+k.pods[idx].Name) || !strings.Contains(f[1], k.pods[idx].ID[:12]) {
			t.Fatalf("tshark line %q: want the interface described with node, pod and sandbox", l)
		}
	}

	// Without -w: a line per packet, the interface naming node and pod.
	var txtOut lockedBuffer
	txt := k.start(t, &txtOut, "capture", "pod/"+k.pods[1].Name, "-i", "eth0", "-c", "2", "icmp")
	waitFor(t, "text capture start", func() bool { return strings.Contains(txt.stderr.String(), "capturing on") })
	k.ping(t, 1, 1)
	if code := txt.wait(t); code != 0 || strings.Count(txtOut.String(), k.ifName(1)) != 2 {
		t.Fatalf("capture -c 2 without -w: exit %d, stdout %q, stderr %s", code, txtOut.String(), txt.stderr)
	}

	// events: a change in web-1's namespace, labelled with its pod and
	// node; in JSON with a "node" field.
	var evOut lockedBuffer
	ev := k.start(t, &evOut, "events", "deploy/web", "--kinds", "addr", "-c", "1", "--json")
	waitFor(t, "events watching", func() bool { return strings.Count(ev.stderr.String(), "watching 1 namespaces") == 3 })
	nstest.Run(t, "nsenter", "-t", strconv.Itoa(k.cri.PID(t, k.ctrs[1])), "-n", "ip", "addr", "add", "10.99.0.1/32", "dev", "lo")
	if code := ev.wait(t); code != 0 {
		t.Fatalf("events: exit %d: %s", code, ev.stderr)
	}
	var e evLine
	if err := json.Unmarshal(bytes.TrimSpace([]byte(evOut.String())), &e); err != nil || e.Node != "node-b" || e.NS.Label != "pod:"+k.ns+"/"+k.pods[1].Name || !strings.Contains(e.Text, "10.99.0.1") {
		t.Fatalf("events --json: %q (%v), want the address on node-b in pod %s", evOut.String(), err, k.pods[1].Name)
	}
	evOut = lockedBuffer{}
	ev = k.start(t, &evOut, "events", "pod/"+k.pods[2].Name, "--kinds", "addr", "-c", "1")
	waitFor(t, "events watching", func() bool { return strings.Contains(ev.stderr.String(), "watching 1 namespaces") })
	nstest.Run(t, "nsenter", "-t", strconv.Itoa(k.cri.PID(t, k.ctrs[2])), "-n", "ip", "addr", "add", "10.99.0.2/32", "dev", "lo")
	if code := ev.wait(t); code != 0 || !strings.Contains(evOut.String(), " pod:"+k.ns+"/"+k.pods[2].Name+"@node-c [ADDR]") || !strings.Contains(evOut.String(), "10.99.0.2") {
		t.Fatalf("events: exit %d, stdout %q, stderr %s", code, evOut.String(), ev.stderr)
	}

	// sockets: each pod's listener, under a header naming node and pod.
	code, stdout, stderr := k.run(t, "sockets", "-l", "app="+k.app, "-t", "--listening")
	if code != 0 {
		t.Fatalf("sockets: exit %d: %s", code, stderr)
	}
	sections := map[string]string{}
	var cur string
	for _, l := range strings.Split(stdout, "\n") {
		if f := strings.Fields(l); len(f) == 3 && strings.HasPrefix(f[1], "net:[") {
			cur = f[0] + " " + f[2]
			continue
		}
		sections[cur] += l + "\n"
	}
	for i, n := range k.nodes {
		if s := sections[n.name+" pod:"+k.ns+"/"+k.pods[i].Name]; !strings.Contains(s, ":8080") || !strings.Contains(s, "LISTEN") {
			t.Errorf("sockets: %s's section for %s is %q; all:\n%s", n.name, k.pods[i].Name, s, stdout)
		}
	}
	code, stdout, stderr = k.run(t, "sockets", "deploy/web", "-t", "--listening", "--json")
	nodesSeen := map[string]bool{}
	for _, s := range jsonLines[sockJSON](t, "sockets --json", stdout) {
		if strings.HasSuffix(s.Local, ":8080") && s.Pod == k.pods[nodeIndex(k, s.Node)].Name {
			nodesSeen[s.Node] = true
		}
	}
	if code != 0 || len(nodesSeen) != 3 {
		t.Errorf("sockets --json: exit %d, listeners on %v, want one per node:\n%s%s", code, nodesSeen, stdout, stderr)
	}

	// The node's own namespace: node-a's is its host root's process 1
	// (the sleeper), not the agent's own PID 1's. (Without a host root it
	// is this machine's init's, whose namespace this sandbox does not let
	// even root open: not checked here.)
	for _, c := range []struct{ node, pid string }{{"node-a", strconv.Itoa(k.sleeper)}} {
		code, stdout, stderr = k.run(t, "sockets", "node/"+c.node, "--node-netns")
		want := fmt.Sprintf("%s net:[%s] node/%s\n", c.node, inodeOf(t, "/proc/"+c.pid+"/ns/net"), c.node)
		if code != 0 || !strings.HasPrefix(stdout, want) {
			t.Errorf("sockets node/%s --node-netns: exit %d, stdout %q, want it to start with %q; stderr %s", c.node, code, stdout, want, stderr)
		}
	}

	// ps: every agent answers, each row with its node.
	code, stdout, stderr = k.run(t, "ps")
	t.Logf("ps:\n%s", stdout)
	rows := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(stdout))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) >= 6 && f[3] == "(pod)" {
			rows[f[0]+" "+f[4]] = true
		}
	}
	for i, n := range k.nodes {
		if !rows[n.name+" "+k.ns+"/"+k.pods[i].Name] {
			t.Errorf("ps: no row of node %s for pod %s; exit %d:\n%s%s", n.name, k.pods[i].Name, code, stdout, stderr)
		}
	}

	// An agent killed mid-capture: node-b is named, the others go on.
	file = filepath.Join(dir, "killed.pcapng")
	p = k.start(t, io.Discard, "capture", "-l", "app="+k.app, "-i", "eth0", "-w", file, "icmp")
	waitFor(t, "capture start", func() bool { return strings.Contains(p.stderr.String(), "capturing on") })
	for i := range k.nodes {
		k.ping(t, i, 2)
	}
	time.Sleep(500 * time.Millisecond)
	b := k.nodes[1]
	b.agent.Process.Kill()
	b.agent.Wait()
	waitFor(t, "the plugin noticing node-b", func() bool { return strings.Contains(p.stderr.String(), "node-b:") })
	k.ping(t, 0, 4)
	k.ping(t, 2, 1)
	time.Sleep(500 * time.Millisecond)
	if code := p.stop(t); code != 1 {
		t.Fatalf("capture with node-b killed: exit %d, want 1: %s", code, p.stderr)
	}
	if !strings.Contains(p.stderr.String(), "kubectl-netobs: capture: node node-b: ") {
		t.Errorf("stderr does not end with node-b's failure:\n%s", p.stderr)
	}
	t.Logf("capture with node-b killed, stderr:\n%s", p.stderr)
	captured, state = nodeCounts(t, p.stderr.String())
	perIfc = tsharkPerInterface(t, file)
	for i, want := range []int{12, 4, 6} {
		n := k.nodes[i].name
		if perIfc[k.ifName(i)] != want || captured[n] != want {
			t.Errorf("%s: tshark counts %d, stderr %d captured, want %d; all %v; stderr:\n%s", n, perIfc[k.ifName(i)], captured[n], want, perIfc, p.stderr)
		}
		if ok := state[n] == "to the end"; ok != (n != "node-b") {
			t.Errorf("%s ended %q", n, state[n])
		}
	}
}

func nodeIndex(k *kubeCluster, node string) int {
	for i, n := range k.nodes {
		if n.name == node {
			return i
		}
	}
	return 0
}
