package kube

import (
	"context"
	"errors"
	"io"
	"net"
	"reflect"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// cluster is a fake cluster: nodes n1, n2, n3; ready agents on n1 and n2,
// none on n3; a deployment web (2 pods on n1 and n2, one Pending) whose
// labels overlap another deployment's.
func cluster(extra ...runtime.Object) []runtime.Object {
	objs := []runtime.Object{
		node("n1"), node("n2"), node("n3"),
		agent("netobs-agent-a", "n1", true),
		agent("netobs-agent-b", "n2", true),
		pod("default", "solo", "n1", nil),
		pod("other", "db", "n1", map[string]string{"app": "db"}),
		pod("default", "far", "n3", nil),
	}
	web := deployment("default", "web", map[string]string{"app": "web"})
	rs := replicaSet("default", "web-abc", web, map[string]string{"app": "web", "pod-template-hash": "abc"})
	// Same labels, another owner: its pods are not web's.
	other := deployment("default", "web-canary", map[string]string{"app": "web", "track": "canary"})
	ors := replicaSet("default", "web-canary-x", other, map[string]string{"app": "web", "track": "canary"})
	objs = append(objs, web, rs, other, ors,
		owned(pod("default", "web-abc-1", "n1", map[string]string{"app": "web", "pod-template-hash": "abc"}), rs),
		owned(pod("default", "web-abc-2", "n2", map[string]string{"app": "web", "pod-template-hash": "abc"}), rs),
		owned(pending(pod("default", "web-abc-3", "", map[string]string{"app": "web", "pod-template-hash": "abc"})), rs),
		owned(pod("default", "web-canary-x-1", "n2", map[string]string{"app": "web", "track": "canary"}), ors),
	)
	return append(objs, extra...)
}

func uid(kind, ns, name string) types.UID { return types.UID(kind + "-" + ns + "-" + name) }

func node(name string) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, UID: uid("node", "", name)}}
}

func pod(ns, name, nodeName string, lbl map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: uid("pod", ns, name), Labels: lbl},
		Spec:       corev1.PodSpec{NodeName: nodeName, Containers: []corev1.Container{{Name: "main"}, {Name: "sidecar"}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{
			{Type: corev1.PodReady, Status: corev1.ConditionTrue},
		}},
	}
}

func pending(p *corev1.Pod) *corev1.Pod {
	p.Status = corev1.PodStatus{Phase: corev1.PodPending}
	return p
}

func agent(name, nodeName string, ready bool) *corev1.Pod {
	p := pod(AgentNamespace, name, nodeName, map[string]string{"app.kubernetes.io/name": "netobs-agent"})
	if !ready {
		p.Status.Conditions[0].Status = corev1.ConditionFalse
	}
	return p
}

func deployment(ns, name string, match map[string]string) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: uid("deploy", ns, name)},
		Spec:       appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: match}},
	}
}

func replicaSet(ns, name string, owner *appsv1.Deployment, match map[string]string) *appsv1.ReplicaSet {
	t := true
	return &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: uid("rs", ns, name), Labels: match,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: owner.Name, UID: owner.UID, Controller: &t}}},
		Spec: appsv1.ReplicaSetSpec{Selector: &metav1.LabelSelector{MatchLabels: match}},
	}
}

func owned(p *corev1.Pod, rs *appsv1.ReplicaSet) *corev1.Pod {
	t := true
	p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: rs.Name, UID: rs.UID, Controller: &t}}
	return p
}

func resolver(objs ...runtime.Object) (*Resolver, *fake.Clientset) {
	c := fake.NewClientset(objs...)
	return &Resolver{Client: c}, c
}

func refs(t *testing.T, ss ...string) []Ref {
	t.Helper()
	var rs []Ref
	for _, s := range ss {
		r, err := ParseRef(s)
		if err != nil {
			t.Fatal(err)
		}
		rs = append(rs, r)
	}
	return rs
}

// layout is node → the pods' refs, for comparing results.
func layout(res *Result) map[string][]string {
	m := map[string][]string{}
	for _, t := range res.Targets {
		m[t.Node+" via "+t.AgentPod] = t.Refs()
	}
	return m
}

func TestResolveGroupsByNode(t *testing.T) {
	r, _ := resolver(cluster()...)
	res, err := r.Resolve(context.Background(), Query{Refs: refs(t, "pod/solo", "deploy/web"), Namespace: "default"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"n1 via netobs/netobs-agent-a": {"pod:default/solo", "pod:default/web-abc-1"},
		"n2 via netobs/netobs-agent-b": {"pod:default/web-abc-2"},
	}
	if got := layout(res); !reflect.DeepEqual(got, want) {
		t.Errorf("targets = %v, want %v", got, want)
	}
	if res.Targets[0].Node != "n1" || res.Targets[1].Node != "n2" {
		t.Errorf("targets not sorted by node: %v", layout(res))
	}
	// The pending replica is a warning, not an error, and says it is not
	// scheduled.
	var pnr *PodNotRunningError
	if len(res.Warnings) != 1 || !errors.As(res.Warnings[0], &pnr) || pnr.Name != "web-abc-3" || pnr.Node != "" {
		t.Errorf("warnings = %v, want web-abc-3 not scheduled", res.Warnings)
	}
	p := res.Targets[0].Pods[0]
	if p.UID != uid("pod", "default", "solo") || !reflect.DeepEqual(p.Containers, []string{"main", "sidecar"}) || p.Node != "n1" || p.HostNetwork {
		t.Errorf("pod info = %+v", p)
	}
}

func TestResolveDeploymentOnlyItsOwnPods(t *testing.T) {
	r, _ := resolver(cluster()...)
	res, err := r.Resolve(context.Background(), Query{Refs: refs(t, "deployment/web-canary"), Namespace: "default"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{"n2 via netobs/netobs-agent-b": {"pod:default/web-canary-x-1"}}
	if got := layout(res); !reflect.DeepEqual(got, want) {
		t.Errorf("targets = %v, want %v", got, want)
	}
	// -l narrows a deployment's pods.
	res, err = r.Resolve(context.Background(), Query{Refs: refs(t, "deploy/web"), Namespace: "default", Selector: "app=web,pod-template-hash=abc"})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(res.Targets); n != 2 {
		t.Errorf("deploy/web -l: %d targets, want 2", n)
	}
	_, err = r.Resolve(context.Background(), Query{Refs: refs(t, "deploy/web"), Namespace: "default", Selector: "app=none"})
	if !errors.Is(err, ErrNoPods) {
		t.Errorf("deploy/web -l app=none: err = %v, want ErrNoPods", err)
	}
}

func TestResolveNode(t *testing.T) {
	r, _ := resolver(cluster(pod("kube-system", "proxy", "n1", nil))...)
	// Every namespace's pods on n1, not the agent itself.
	res, err := r.Resolve(context.Background(), Query{Refs: refs(t, "node/n1"), Namespace: "default"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{"n1 via netobs/netobs-agent-a": {
		"pod:default/solo", "pod:default/web-abc-1", "pod:kube-system/proxy", "pod:other/db"}}
	if got := layout(res); !reflect.DeepEqual(got, want) {
		t.Errorf("node/n1 = %v, want %v", got, want)
	}
	// -n given: that namespace only.
	res, err = r.Resolve(context.Background(), Query{Refs: refs(t, "no/n1"), Namespace: "other", NamespaceExplicit: true})
	if err != nil {
		t.Fatal(err)
	}
	want = map[string][]string{"n1 via netobs/netobs-agent-a": {"pod:other/db"}}
	if got := layout(res); !reflect.DeepEqual(got, want) {
		t.Errorf("node/n1 -n other = %v, want %v", got, want)
	}
	// The node itself.
	res, err = r.Resolve(context.Background(), Query{Refs: refs(t, "node/n2"), NodeNetns: true})
	if err != nil {
		t.Fatal(err)
	}
	want = map[string][]string{"n2 via netobs/netobs-agent-b": {NodeNetnsRef}}
	if got := layout(res); !reflect.DeepEqual(got, want) {
		t.Errorf("node/n2 itself = %v, want %v", got, want)
	}
}

func TestResolveSelector(t *testing.T) {
	r, _ := resolver(cluster()...)
	res, err := r.Resolve(context.Background(), Query{Selector: "app=db", AllNamespaces: true})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{"n1 via netobs/netobs-agent-a": {"pod:other/db"}}
	if got := layout(res); !reflect.DeepEqual(got, want) {
		t.Errorf("-A -l app=db = %v, want %v", got, want)
	}
	if _, err := r.Resolve(context.Background(), Query{Selector: "app=db", Namespace: "default"}); !errors.Is(err, ErrNoPods) {
		t.Errorf("-n default -l app=db: err = %v, want ErrNoPods", err)
	}
	var se *SelectorError
	if _, err := r.Resolve(context.Background(), Query{Selector: "a in (", Namespace: "default"}); !errors.As(err, &se) {
		t.Errorf("bad selector: err = %v, want *SelectorError", err)
	}
}

func TestResolveNoAgentOnNode(t *testing.T) {
	r, _ := resolver(cluster()...)
	_, err := r.Resolve(context.Background(), Query{Refs: refs(t, "pod/far", "pod/solo"), Namespace: "default"})
	var na *NoAgentError
	if !errors.As(err, &na) || na.Node != "n3" {
		t.Fatalf("err = %v, want *NoAgentError for n3", err)
	}
	if msg := err.Error(); !strings.Contains(msg, DeployHint) || strings.Contains(msg, "\n") {
		t.Errorf("message %q: want one line saying %q", msg, DeployHint)
	}
}

func TestResolveAgentNotReady(t *testing.T) {
	objs := cluster(agent("netobs-agent-c", "n3", false))
	r, _ := resolver(objs...)
	_, err := r.Resolve(context.Background(), Query{Refs: refs(t, "pod/far"), Namespace: "default"})
	var nr *AgentNotReadyError
	if !errors.As(err, &nr) || nr.Node != "n3" || nr.AgentPod != "netobs/netobs-agent-c" {
		t.Fatalf("err = %v, want *AgentNotReadyError for netobs/netobs-agent-c on n3", err)
	}
	// A second, ready agent on the node (a rolling update) is used.
	r, _ = resolver(append(objs, agent("netobs-agent-d", "n3", true))...)
	res, err := r.Resolve(context.Background(), Query{Refs: refs(t, "pod/far"), Namespace: "default"})
	if err != nil {
		t.Fatal(err)
	}
	if a := res.Targets[0].AgentPod; a != "netobs/netobs-agent-d" {
		t.Errorf("agent = %s, want the ready netobs/netobs-agent-d", a)
	}
}

func TestResolvePodNotRunning(t *testing.T) {
	r, _ := resolver(cluster(pending(pod("default", "new", "", nil)), pending(pod("default", "starting", "n1", nil)))...)
	for _, tc := range []struct {
		pod, node string
	}{{"new", ""}, {"starting", "n1"}} {
		_, err := r.Resolve(context.Background(), Query{Refs: refs(t, "pod/"+tc.pod), Namespace: "default"})
		var pnr *PodNotRunningError
		if !errors.As(err, &pnr) || pnr.Name != tc.pod || pnr.Node != tc.node || pnr.Phase != "Pending" {
			t.Errorf("pod/%s: err = %v, want *PodNotRunningError on node %q", tc.pod, err, tc.node)
		}
	}
}

func TestResolveHostNetworkWarns(t *testing.T) {
	hn := pod("kube-system", "cni", "n2", nil)
	hn.Spec.HostNetwork = true
	r, _ := resolver(cluster(hn)...)
	res, err := r.Resolve(context.Background(), Query{Refs: refs(t, "pod/cni"), Namespace: "kube-system"})
	if err != nil {
		t.Fatal(err)
	}
	var w *HostNetworkWarning
	if len(res.Warnings) != 1 || !errors.As(res.Warnings[0], &w) || w.Node != "n2" {
		t.Errorf("warnings = %v, want one *HostNetworkWarning on n2", res.Warnings)
	}
	if !res.Targets[0].Pods[0].HostNetwork {
		t.Error("PodInfo.HostNetwork not set")
	}
}

func TestResolveNotFound(t *testing.T) {
	r, _ := resolver(cluster()...)
	for _, ref := range []string{"pod/nope", "deploy/nope", "node/nope"} {
		_, err := r.Resolve(context.Background(), Query{Refs: refs(t, ref), Namespace: "default"})
		var nf *NotFoundError
		if !errors.As(err, &nf) || nf.Name != "nope" || !apierrors.IsNotFound(err) {
			t.Errorf("%s: err = %v, want *NotFoundError wrapping the API's NotFound", ref, err)
		}
	}
}

// forbid makes the fake API server refuse verb on resource as RBAC does.
func forbid(c *fake.Clientset, verb, group, resource string) {
	c.PrependReactor(verb, resource, func(a k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Group: group, Resource: resource}, "",
			errors.New(`User "alice" cannot `+verb+` resource "`+resource+`"`))
	})
}

func TestResolveForbidden(t *testing.T) {
	for _, tc := range []struct {
		ref, verb, group, resource, wantRes string
	}{
		{"pod/solo", "get", "", "pods", "pods"},
		{"deploy/web", "get", "apps", "deployments", "deployments.apps"},
		{"deploy/web", "list", "apps", "replicasets", "replicasets.apps"},
		{"node/n1", "get", "", "nodes", "nodes"},
		{"node/n1", "list", "", "pods", "pods"},
	} {
		r, c := resolver(cluster()...)
		forbid(c, tc.verb, tc.group, tc.resource)
		_, err := r.Resolve(context.Background(), Query{Refs: refs(t, tc.ref), Namespace: "default"})
		var fe *ForbiddenError
		if !errors.As(err, &fe) || fe.Verb != tc.verb || fe.Resource != tc.wantRes || !apierrors.IsForbidden(err) {
			t.Errorf("%s with %s %s refused: err = %v, want *ForbiddenError %s %s", tc.ref, tc.verb, tc.resource, err, tc.verb, tc.wantRes)
			continue
		}
		if msg := err.Error(); !strings.Contains(msg, tc.verb+" "+tc.wantRes) || strings.Contains(msg, "\n") {
			t.Errorf("message %q does not name %s %s on one line", msg, tc.verb, tc.wantRes)
		}
	}
	// Listing the agents is refused in their namespace: named as such.
	r, c := resolver(cluster()...)
	c.PrependReactor("list", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetNamespace() != AgentNamespace {
			return false, nil, nil
		}
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "pods"}, "", errors.New("no"))
	})
	_, err := r.Resolve(context.Background(), Query{Refs: refs(t, "pod/solo"), Namespace: "default"})
	var fe *ForbiddenError
	if !errors.As(err, &fe) || fe.Namespace != AgentNamespace || fe.Verb != "list" {
		t.Errorf("agents not listable: err = %v, want *ForbiddenError list pods in %s", err, AgentNamespace)
	}
}

// directDialer stands in for port-forward: it dials addr whatever pod is
// asked for, and records what was asked.
type directDialer struct {
	addr  string
	asked []string
}

func (d *directDialer) DialPod(ctx context.Context, ns, name string, port int) (net.Conn, error) {
	d.asked = append(d.asked, ns+"/"+name+":"+itoa(port))
	var nd net.Dialer
	return nd.DialContext(ctx, "tcp", d.addr)
}

func itoa(i int) string { return strconv.Itoa(i) }

func TestTargetDial(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		io.Copy(c, c)
		c.Close()
	}()
	d := &directDialer{addr: ln.Addr().String()}
	r, _ := resolver(cluster()...)
	r.Dialer = d
	res, err := r.Resolve(context.Background(), Query{Refs: refs(t, "pod/solo"), Namespace: "default"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := res.Targets[0].Dial(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("echo = %q, %v", buf, err)
	}
	if want := []string{"netobs/netobs-agent-a:7447"}; !reflect.DeepEqual(d.asked, want) {
		t.Errorf("dialed %v, want %v", d.asked, want)
	}
}

func TestAllAgents(t *testing.T) {
	r, _ := resolver(cluster(agent("netobs-agent-c", "n3", false))...)
	res, err := r.AllAgents(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var nodes []string
	for _, tg := range res.Targets {
		nodes = append(nodes, tg.Node)
	}
	var nr *AgentNotReadyError
	if !reflect.DeepEqual(nodes, []string{"n1", "n2"}) || len(res.Warnings) != 1 || !errors.As(res.Warnings[0], &nr) {
		t.Errorf("nodes %v warnings %v: want n1 n2 and n3 not ready", nodes, res.Warnings)
	}
	r, _ = resolver(node("n1"))
	var na *NoAgentError
	if _, err := r.AllAgents(context.Background()); !errors.As(err, &na) {
		t.Errorf("no agents at all: err = %v, want *NoAgentError", err)
	}
}
