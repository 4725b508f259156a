package kubeplugin

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/netobs/netobs/netobs/kube"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/clientcmd"
)

// recorder is an Agents that records what it is asked, standing in for
// the agent client behind the seam.
type recorder struct {
	op      string
	targets []kube.Target
	capture kube.CaptureRequest
	sockets kube.SocketsRequest
}

func (r *recorder) Capture(ctx context.Context, t []kube.Target, req kube.CaptureRequest, _ io.Writer) error {
	r.op, r.targets, r.capture = "capture", t, req
	return nil
}

func (r *recorder) Events(ctx context.Context, t []kube.Target, req kube.EventsRequest, _ io.Writer) error {
	r.op, r.targets = "events", t
	return nil
}

func (r *recorder) Sockets(ctx context.Context, t []kube.Target, req kube.SocketsRequest, _ io.Writer) error {
	r.op, r.targets, r.sockets = "sockets", t, req
	return nil
}

func (r *recorder) PS(ctx context.Context, t []kube.Target, req kube.PSRequest, _ io.Writer) error {
	r.op, r.targets = "ps", t
	return nil
}

type dialer struct{}

func (dialer) DialPod(ctx context.Context, ns, name string, port int) (net.Conn, error) {
	return nil, errors.New("not dialed in these tests")
}

func pod(ns, name, node string, lbl map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID("uid-" + ns + "-" + name), Labels: lbl},
		Spec:       corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "c"}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{
			{Type: corev1.PodReady, Status: corev1.ConditionTrue}}},
	}
}

func agentPod(name, node string, ready bool) *corev1.Pod {
	p := pod("netobs", name, node, map[string]string{"app.kubernetes.io/name": "netobs-agent"})
	if !ready {
		p.Status.Conditions[0].Status = corev1.ConditionFalse
	}
	return p
}

func objects() []runtime.Object {
	hn := pod("kube-system", "cni", "n2", nil)
	hn.Spec.HostNetwork = true
	pend := pod("default", "new", "", nil)
	pend.Status = corev1.PodStatus{Phase: corev1.PodPending}
	return []runtime.Object{
		&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}},
		&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n2"}},
		&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n3"}},
		&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n4"}},
		agentPod("netobs-agent-1", "n1", true), agentPod("netobs-agent-2", "n2", true),
		agentPod("netobs-agent-4", "n4", false),
		pod("default", "a", "n1", map[string]string{"app": "x"}),
		pod("default", "b", "n2", map[string]string{"app": "x"}),
		pod("other", "c", "n1", map[string]string{"app": "x"}),
		pod("default", "far", "n3", nil),
		pod("default", "stuck", "n4", nil),
		hn, pend,
	}
}

type result struct {
	code           int
	stdout, stderr string
	rec            *recorder
}

// plugin runs the plugin against a fake cluster; setup may add reactors.
func plugin(t *testing.T, setup func(*fake.Clientset), args ...string) result {
	t.Helper()
	cs := fake.NewClientset(objects()...)
	if setup != nil {
		setup(cs)
	}
	rec := &recorder{}
	e := &Env{
		Connect: func(cfg clientcmd.ClientConfig, spdyOnly bool) (kubernetes.Interface, kube.PodDialer, error) {
			return cs, dialer{}, nil
		},
		Agents: rec,
	}
	kc := kubeconfig(t)
	var out, errb bytes.Buffer
	code := Run(context.Background(), append([]string{"--kubeconfig", kc}, args...), &out, &errb, e)
	return result{code, out.String(), errb.String(), rec}
}

func TestCaptureGroupsAndAsksAgents(t *testing.T) {
	w := filepath.Join(t.TempDir(), "out.pcapng")
	r := plugin(t, nil, "capture", "pod/a", "pod/b", "-i", "eth0,lo", "-c", "5", "-w", w, "tcp", "port", "80")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if r.rec.op != "capture" {
		t.Fatalf("agents asked %q, want capture", r.rec.op)
	}
	var got []string
	for _, tg := range r.rec.targets {
		got = append(got, tg.Node+"="+tg.AgentPod+"="+strings.Join(tg.Refs(), ","))
	}
	want := []string{"n1=netobs/netobs-agent-1=pod:default/a", "n2=netobs/netobs-agent-2=pod:default/b"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("targets %v, want %v", got, want)
	}
	req := r.rec.capture
	if req.Filter != "tcp port 80" || !reflect.DeepEqual(req.Interfaces, []string{"eth0", "lo"}) || req.Count != 5 || !req.PcapNG || req.Output == nil {
		t.Errorf("request %+v", req)
	}
	if _, err := os.Stat(w); err != nil {
		t.Errorf("-w file not created: %v", err)
	}
	if !strings.Contains(r.stderr, "capture on node n1 via netobs/netobs-agent-1: pod:default/a") {
		t.Errorf("stderr does not say what goes where: %q", r.stderr)
	}
}

func TestSelectorAllNamespaces(t *testing.T) {
	r := plugin(t, nil, "targets", "-A", "-l", "app=x")
	want := "node n1 agent netobs/netobs-agent-1: pod:default/a pod:other/c\nnode n2 agent netobs/netobs-agent-2: pod:default/b\n"
	if r.code != 0 || r.stdout != want {
		t.Errorf("exit %d stdout %q stderr %q; want %q", r.code, r.stdout, r.stderr, want)
	}
	r = plugin(t, nil, "sockets", "-n", "other", "-l", "app=x", "--listening", "-t")
	if r.code != 0 || len(r.rec.targets) != 1 || r.rec.targets[0].Pods[0].Name != "c" || !r.rec.sockets.Listening || !r.rec.sockets.TCP {
		t.Errorf("sockets -n other -l app=x: exit %d %q, targets %+v req %+v", r.code, r.stderr, r.rec.targets, r.rec.sockets)
	}
}

func TestPS(t *testing.T) {
	r := plugin(t, nil, "ps")
	if r.code != 0 || len(r.rec.targets) != 2 || !strings.Contains(r.stderr, "warning: netobs agent") {
		t.Errorf("ps: exit %d, %d targets, stderr %q; want n1, n2 and a warning for n4", r.code, len(r.rec.targets), r.stderr)
	}
	r = plugin(t, nil, "ps", "node/n2")
	if r.code != 0 || len(r.rec.targets) != 1 || r.rec.targets[0].Node != "n2" {
		t.Errorf("ps node/n2: exit %d %q targets %+v", r.code, r.stderr, r.rec.targets)
	}
}

// TestErrors checks each error case: one line, the right exit status, the
// words a user needs.
func TestErrors(t *testing.T) {
	forbidPods := func(cs *fake.Clientset) {
		cs.PrependReactor("get", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
			return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "pods"}, "a", errors.New(`User "bob" cannot get resource "pods"`))
		})
	}
	for _, tc := range []struct {
		name  string
		setup func(*fake.Clientset)
		args  []string
		code  int
		want  string
	}{
		{"no agent", nil, []string{"capture", "pod/far"}, 1, `no netobs agent on node n3 (no pod app.kubernetes.io/name=netobs-agent in namespace netobs there): deploy the agents with ` + "`kubectl apply -k deploy/kubernetes`"},
		{"agent not ready", nil, []string{"capture", "pod/stuck"}, 1, `netobs agent netobs/netobs-agent-4 on node n4 is not ready`},
		{"pending", nil, []string{"events", "pod/new"}, 1, `pod default/new is Pending and not scheduled to a node yet`},
		{"forbidden", forbidPods, []string{"capture", "pod/a"}, 1, `forbidden: RBAC does not let you get pods a in namespace default`},
		{"not found", nil, []string{"capture", "pod/zz"}, 1, `pod zz not found in namespace default`},
		{"bad ref", nil, []string{"capture", "pod/Not_A_Name"}, 2, `bad reference pod/Not_A_Name`},
		{"unknown kind", nil, []string{"capture", "svc/web", "port", "80"}, 2, `bad reference svc/web: unknown kind svc`},
		{"CIDR filter is a filter", nil, []string{"capture", "-l", "app=none", "net", "10.0.0.0/8"}, 1, `no pods: nothing running matches -l app=none`},
		{"bad selector", nil, []string{"capture", "-l", "a in ("}, 2, `bad label selector`},
		{"nothing named", nil, []string{"capture"}, 2, `name what to observe`},
		{"unknown flag", nil, []string{"capture", "--bogus", "pod/a"}, 2, `unknown flag: --bogus`},
		{"ps of a pod", nil, []string{"ps", "pod/a"}, 2, `ps takes nodes`},
		{"ps -l", nil, []string{"ps", "-l", "app=x"}, 2, `ps: -l does not apply`},
		{"-l with pod/", nil, []string{"capture", "-l", "app=x", "pod/a"}, 2, `it does not apply to pod/a`},
		{"-A with pod/", nil, []string{"capture", "-A", "pod/a"}, 2, `-A applies to -l and node/NAME, not to pod/a`},
		{"two missing agents", nil, []string{"capture", "pod/far", "pod/stuck"}, 1, `no netobs agent on node n3`},
	} {
		r := plugin(t, tc.setup, tc.args...)
		if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%s: exit %d stderr %q; want %d and %q", tc.name, r.code, r.stderr, tc.code, tc.want)
		}
		if r.rec.op != "" {
			t.Errorf("%s: agents were asked to %s", tc.name, r.rec.op)
		}
		lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
		for _, l := range lines {
			if !strings.HasPrefix(l, "kubectl-netobs: ") {
				t.Errorf("%s: stderr line %q is not one prefixed line", tc.name, l)
			}
		}
		if tc.name == "two missing agents" && len(lines) != 2 {
			t.Errorf("two missing agents: %d lines, want one per node: %q", len(lines), r.stderr)
		}
	}
}

func TestHostNetworkWarns(t *testing.T) {
	r := plugin(t, nil, "capture", "-n", "kube-system", "pod/cni")
	if r.code != 0 || !strings.Contains(r.stderr, "kubectl-netobs: warning: pod kube-system/cni uses hostNetwork: that is node n2's own network namespace") {
		t.Errorf("exit %d stderr %q", r.code, r.stderr)
	}
}

// TestAgentUnreachable: with the real agent client, an agent that cannot
// be dialed (here: the dialer refuses) is named by its node, one line per
// node with the dialer's own error, exit 1; capture says no agent could
// capture.
func TestAgentUnreachable(t *testing.T) {
	cs := fake.NewClientset(objects()...)
	e := &Env{
		Connect: func(clientcmd.ClientConfig, bool) (kubernetes.Interface, kube.PodDialer, error) {
			return cs, dialer{}, nil
		},
		Agents: AgentClient{},
	}
	for _, args := range [][]string{
		{"capture", "-n", "default", "pod/a", "-w", filepath.Join(t.TempDir(), "x.pcapng")},
		{"sockets", "-n", "default", "pod/a", "pod/b"},
		{"events", "-n", "default", "pod/a", "pod/b"},
		{"ps"},
	} {
		var out, errb bytes.Buffer
		code := Run(context.Background(), append([]string{"--kubeconfig", kubeconfig(t)}, args...), &out, &errb, e)
		if code != 1 || !strings.Contains(errb.String(), "n1") || !strings.Contains(errb.String(), "agent n1: unreachable: not dialed in these tests") {
			t.Errorf("%s: exit %d stderr %q", args[0], code, errb.String())
		}
		if args[0] != "capture" && !strings.Contains(errb.String(), "kubectl-netobs: "+args[0]+": node n2: ") {
			t.Errorf("%s: stderr does not name node n2 on a line of its own: %q", args[0], errb.String())
		}
	}
}

// TestKubeconfigContext: --context selects a context whose namespace
// applies to pod/ references, and -n overrides it; node/NAME looks at
// every namespace unless -n is given.
func TestKubeconfigContext(t *testing.T) {
	kc := kubeconfig(t)
	cs := fake.NewClientset(objects()...)
	var gotServer string
	e := &Env{
		Connect: func(cfg clientcmd.ClientConfig, _ bool) (kubernetes.Interface, kube.PodDialer, error) {
			rc, err := cfg.ClientConfig()
			if err != nil {
				return nil, nil, err
			}
			gotServer = rc.Host
			return cs, dialer{}, nil
		},
		Agents: &recorder{},
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--context", "oth", "pod/c"}, "node n1 agent netobs/netobs-agent-1: pod:other/c\n"},
		{[]string{"pod/a"}, "node n1 agent netobs/netobs-agent-1: pod:default/a\n"},
		{[]string{"--context", "oth", "-n", "default", "pod/a"}, "node n1 agent netobs/netobs-agent-1: pod:default/a\n"},
		{[]string{"--context", "oth", "node/n1"}, "node n1 agent netobs/netobs-agent-1: pod:default/a pod:other/c\n"},
		{[]string{"-n", "other", "node/n1"}, "node n1 agent netobs/netobs-agent-1: pod:other/c\n"},
	} {
		var out, errb bytes.Buffer
		code := Run(context.Background(), append([]string{"targets", "--kubeconfig", kc}, tc.args...), &out, &errb, e)
		if code != 0 || out.String() != tc.want {
			t.Errorf("%v: exit %d stdout %q stderr %q; want %q", tc.args, code, out.String(), errb.String(), tc.want)
		}
	}
	if gotServer != "https://127.0.0.1:1" {
		t.Errorf("client made for %q, want the kubeconfig's server", gotServer)
	}
	var out, errb bytes.Buffer
	if code := Run(context.Background(), []string{"targets", "--kubeconfig", kc, "--context", "nope", "pod/a"}, &out, &errb, e); code != 1 || !strings.Contains(errb.String(), "nope") {
		t.Errorf("unknown context: exit %d stderr %q", code, errb.String())
	}
}

// kubeconfig writes a kubeconfig with contexts dflt (current, namespace
// unset: "default") and oth (namespace "other").
func kubeconfig(t *testing.T) string {
	t.Helper()
	kc := filepath.Join(t.TempDir(), "config")
	err := os.WriteFile(kc, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts:
- {name: dflt, context: {cluster: c, user: u}}
- {name: oth, context: {cluster: c, user: u, namespace: other}}
current-context: dflt
`), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	return kc
}
