// Package manifests_test checks deploy/kubernetes: every manifest decodes
// strictly into the Kubernetes API types, the agent runs with exactly the
// privileges its comments claim, and the user role allows every request
// kubectl-netobs makes.
package manifests_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/netobs/netobs/netobs/kube"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	kjson "k8s.io/apimachinery/pkg/runtime/serializer/json"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"
)

// splitDocs splits a YAML stream at its "---" lines.
func splitDocs(b []byte) [][]byte {
	var docs [][]byte
	for _, d := range bytes.Split(append([]byte("\n"), b...), []byte("\n---\n")) {
		if len(bytes.TrimSpace(stripComments(d))) > 0 {
			docs = append(docs, d)
		}
	}
	return docs
}

func stripComments(b []byte) []byte {
	var out [][]byte
	for _, l := range bytes.Split(b, []byte("\n")) {
		if !bytes.HasPrefix(bytes.TrimSpace(l), []byte("#")) {
			out = append(out, l)
		}
	}
	return bytes.Join(out, []byte("\n"))
}

// strict is the API server's own decoding, strict: unknown and duplicate
// fields fail, and field names match exactly. (sigs.k8s.io/yaml's
// UnmarshalStrict goes through encoding/json, which matches field names
// case-insensitively and so accepts "hostPid" for hostPID.)
var strict = kjson.NewSerializerWithOptions(kjson.DefaultMetaFactory, scheme.Scheme, scheme.Scheme,
	kjson.SerializerOptions{Yaml: true, Strict: true})

// decode decodes one document strictly into the API type its apiVersion
// and kind name.
func decode(doc []byte) (runtime.Object, error) {
	// The error as it is: runtime.IsStrictDecodingError does not unwrap.
	obj, _, err := strict.Decode(doc, nil, nil)
	if err != nil {
		return nil, err
	}
	return obj, nil
}

type kustomization struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Resources  []string `json:"resources"`
}

// load decodes every manifest the kustomization lists, and checks that it
// lists every YAML file here.
func load(t *testing.T) []runtime.Object {
	t.Helper()
	b, err := os.ReadFile("kustomization.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var k kustomization
	if err := yaml.UnmarshalStrict(b, &k); err != nil {
		t.Fatalf("kustomization.yaml: %v", err)
	}
	if k.APIVersion != "kustomize.config.k8s.io/v1beta1" || k.Kind != "Kustomization" {
		t.Errorf("kustomization.yaml is %s %s", k.APIVersion, k.Kind)
	}
	files, _ := filepath.Glob("*.yaml")
	var want []string
	for _, f := range files {
		if f != "kustomization.yaml" {
			want = append(want, f)
		}
	}
	got := append([]string(nil), k.Resources...)
	sort.Strings(got)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("kustomization lists %v, the directory has %v", got, want)
	}
	var objs []runtime.Object
	for _, f := range k.Resources {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range splitDocs(b) {
			obj, err := decode(doc)
			if err != nil {
				t.Errorf("%s document %d: %v", f, i+1, err)
				continue
			}
			objs = append(objs, obj)
		}
	}
	return objs
}

func TestManifestsDecodeStrictly(t *testing.T) {
	objs := load(t)
	kinds := map[string]int{}
	for _, o := range objs {
		kinds[fmt.Sprintf("%T", o)]++
	}
	want := map[string]int{"*v1.Namespace": 1, "*v1.ServiceAccount": 1, "*v1.DaemonSet": 1,
		"*v1.ClusterRole": 1, "*v1.Role": 1, "*v1.ClusterRoleBinding": 1, "*v1.RoleBinding": 1}
	if !reflect.DeepEqual(kinds, want) {
		t.Errorf("objects %v, want %v", kinds, want)
	}
	// The decoder is strict: a misspelt or unknown field fails.
	b, _ := os.ReadFile("daemonset.yaml")
	for _, bad := range []string{"      hostPid: false", "      hostPIDs: false", "      hostPID: false\n      hostPID: true"} {
		doc := bytes.Replace(b, []byte("      hostPID: false"), []byte(bad), 1)
		if bytes.Equal(b, doc) {
			t.Fatal("daemonset.yaml has no hostPID line to change")
		}
		if _, err := decode(doc); !runtime.IsStrictDecodingError(err) {
			t.Errorf("%q decoded: err = %v, want a strict decoding error", strings.TrimSpace(bad), err)
		}
	}
}

func TestNamespaceAllowsTheAgent(t *testing.T) {
	for _, o := range load(t) {
		if ns, ok := o.(*corev1.Namespace); ok {
			if ns.Name != kube.AgentNamespace || ns.Labels["pod-security.kubernetes.io/enforce"] != "privileged" {
				t.Errorf("namespace %s labels %v: want %s enforcing privileged", ns.Name, ns.Labels, kube.AgentNamespace)
			}
			return
		}
	}
	t.Fatal("no Namespace")
}

func TestDaemonSetSecurity(t *testing.T) {
	var ds *appsv1.DaemonSet
	for _, o := range load(t) {
		if d, ok := o.(*appsv1.DaemonSet); ok {
			ds = d
		}
	}
	if ds == nil {
		t.Fatal("no DaemonSet")
	}
	if ds.Namespace != kube.AgentNamespace {
		t.Errorf("namespace %q, want %q (where kubectl-netobs looks)", ds.Namespace, kube.AgentNamespace)
	}
	// kubectl-netobs finds the agents by kube.AgentSelector.
	sel, err := labels.Parse(kube.AgentSelector)
	if err != nil {
		t.Fatal(err)
	}
	if !sel.Matches(labels.Set(ds.Spec.Template.Labels)) {
		t.Errorf("pod labels %v do not match %s", ds.Spec.Template.Labels, kube.AgentSelector)
	}
	ps := ds.Spec.Template.Spec
	if ps.HostPID || ps.HostNetwork || ps.HostIPC {
		t.Errorf("hostPID %v hostNetwork %v hostIPC %v: want none", ps.HostPID, ps.HostNetwork, ps.HostIPC)
	}
	if len(ps.Tolerations) != 1 || ps.Tolerations[0].Operator != corev1.TolerationOpExists || ps.Tolerations[0].Key != "" || ps.Tolerations[0].Effect != "" {
		t.Errorf("tolerations %+v: want one that tolerates everything", ps.Tolerations)
	}
	if ps.AutomountServiceAccountToken == nil || *ps.AutomountServiceAccountToken {
		t.Error("the agent's pod mounts a service account token it does not need")
	}
	if len(ps.Containers) != 1 || len(ps.InitContainers) != 0 {
		t.Fatalf("%d containers, %d init containers: want one agent", len(ps.Containers), len(ps.InitContainers))
	}
	c := ps.Containers[0]
	sc := c.SecurityContext
	if sc == nil || sc.Capabilities == nil {
		t.Fatal("agent has no securityContext.capabilities")
	}
	if sc.Privileged != nil && *sc.Privileged {
		t.Error("agent is privileged")
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Error("allowPrivilegeEscalation not false")
	}
	add := map[corev1.Capability]bool{}
	for _, c := range sc.Capabilities.Add {
		add[c] = true
	}
	want := map[corev1.Capability]bool{"SYS_ADMIN": true, "NET_ADMIN": true, "NET_RAW": true, "SYS_PTRACE": true}
	if !reflect.DeepEqual(add, want) || len(sc.Capabilities.Add) != len(want) {
		t.Errorf("capabilities add %v, want exactly %v", sc.Capabilities.Add, want)
	}
	if !reflect.DeepEqual(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Errorf("capabilities drop %v, want [ALL]", sc.Capabilities.Drop)
	}
	args := strings.Join(c.Args, " ")
	listen := "--listen 127.0.0.1:" + strconv.Itoa(kube.AgentPort)
	if !strings.HasPrefix(args, "agent ") || !strings.Contains(args, listen) || !strings.Contains(args, "--host-root /host") {
		t.Errorf("args %q: want agent %s --host-root /host", args, listen)
	}
	if c.ReadinessProbe == nil || c.ReadinessProbe.Exec == nil || !strings.Contains(strings.Join(c.ReadinessProbe.Exec.Command, " "), "127.0.0.1:"+strconv.Itoa(kube.AgentPort)) {
		t.Errorf("readiness probe %+v does not check the agent's port", c.ReadinessProbe)
	}
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		if _, ok := c.Resources.Requests[r]; !ok {
			t.Errorf("no %s request", r)
		}
		if _, ok := c.Resources.Limits[r]; !ok {
			t.Errorf("no %s limit", r)
		}
	}
	// One P per CPU of the limit: Go's own default never goes below 2.
	cpus := c.Resources.Limits.Cpu().MilliValue()
	wantProcs := strconv.FormatInt((cpus+999)/1000, 10)
	var procs []string
	for _, e := range c.Env {
		if e.Name == "GOMAXPROCS" {
			procs = append(procs, e.Value)
		}
	}
	if !reflect.DeepEqual(procs, []string{wantProcs}) {
		t.Errorf("GOMAXPROCS set to %q, want it set once, to %s (the CPU limit, %dm, rounded up)", procs, wantProcs, cpus)
	}
	// /proc and /run of the host, read-only, under /host, seeing mounts
	// made later.
	hostPaths := map[string]string{}
	for _, v := range ps.Volumes {
		if v.HostPath != nil {
			hostPaths[v.Name] = v.HostPath.Path
		}
	}
	mounted := map[string]bool{}
	for _, m := range c.VolumeMounts {
		hp, ok := hostPaths[m.Name]
		if !ok {
			continue
		}
		if !m.ReadOnly || m.MountPropagation == nil || *m.MountPropagation != corev1.MountPropagationHostToContainer || m.MountPath != "/host"+hp {
			t.Errorf("host %s mounted at %s readOnly %v propagation %v: want /host%s read-only HostToContainer", hp, m.MountPath, m.ReadOnly, m.MountPropagation, hp)
		}
		mounted[hp] = true
	}
	if !reflect.DeepEqual(mounted, map[string]bool{"/proc": true, "/run": true}) {
		t.Errorf("host paths mounted %v, want /proc and /run only", mounted)
	}
}

// request is one API request kubectl-netobs makes.
type request struct {
	verb, group, resource, namespace string
}

// TestUserRBACAllowsThePlugin checks the user roles against every request
// netobs/kube makes, in the namespace it makes it.
func TestUserRBACAllowsThePlugin(t *testing.T) {
	var cr *rbacv1.ClusterRole
	var role *rbacv1.Role
	var crb *rbacv1.ClusterRoleBinding
	var rb *rbacv1.RoleBinding
	for _, o := range load(t) {
		switch o := o.(type) {
		case *rbacv1.ClusterRole:
			cr = o
		case *rbacv1.Role:
			role = o
		case *rbacv1.ClusterRoleBinding:
			crb = o
		case *rbacv1.RoleBinding:
			rb = o
		}
	}
	if cr == nil || role == nil || crb == nil || rb == nil {
		t.Fatal("want a ClusterRole, a Role and their bindings")
	}
	if crb.RoleRef.Kind != "ClusterRole" || crb.RoleRef.Name != cr.Name || rb.RoleRef.Kind != "Role" || rb.RoleRef.Name != role.Name || rb.Namespace != role.Namespace {
		t.Errorf("bindings do not bind the roles: %+v %+v", crb.RoleRef, rb.RoleRef)
	}
	if role.Namespace != kube.AgentNamespace {
		t.Errorf("role in %q, want the agents' namespace %q", role.Namespace, kube.AgentNamespace)
	}
	allows := func(rules []rbacv1.PolicyRule, r request) bool {
		for _, rule := range rules {
			if has(rule.Verbs, r.verb) && has(rule.APIGroups, r.group) && has(rule.Resources, r.resource) {
				return true
			}
		}
		return false
	}
	for _, r := range []request{
		{"get", "", "pods", "shop"}, {"list", "", "pods", "shop"}, {"list", "", "pods", ""},
		{"get", "apps", "deployments", "shop"}, {"list", "apps", "replicasets", "shop"},
		{"get", "", "nodes", ""},
		{"list", "", "pods", kube.AgentNamespace},
		// SPDY port-forward is a POST (create); WebSocket port-forward a GET.
		{"create", "", "pods/portforward", kube.AgentNamespace},
		{"get", "", "pods/portforward", kube.AgentNamespace},
	} {
		ok := allows(cr.Rules, r) || (r.namespace == role.Namespace && allows(role.Rules, r))
		if !ok {
			t.Errorf("user roles do not allow %s %s (group %q) in %q", r.verb, r.resource, r.group, r.namespace)
		}
	}
	// Port-forwarding reaches a node's agent: only in the agents' namespace.
	if allows(cr.Rules, request{"create", "", "pods/portforward", ""}) {
		t.Error("the ClusterRole allows port-forward to every pod in the cluster")
	}
	for _, rule := range append(cr.Rules, role.Rules...) {
		for _, v := range rule.Verbs {
			if v != "get" && v != "list" && !(v == "create" && reflect.DeepEqual(rule.Resources, []string{"pods/portforward"})) {
				t.Errorf("rule %+v grants %q: the user needs to read, and to create port-forwards only", rule, v)
			}
		}
	}
}

func has(list []string, s string) bool {
	for _, x := range list {
		if x == s || x == "*" {
			return true
		}
	}
	return false
}
