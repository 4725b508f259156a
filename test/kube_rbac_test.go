package test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/netobs/netobs/internal/kubeplugin"
	"github.com/netobs/netobs/internal/nstest"
	"github.com/netobs/netobs/netobs/kube"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// runKubePlugin runs `kubectl netobs ARGS` in this process with the
// plugin's real environment (client from the kubeconfig, the API server's
// port-forward) and returns its status and output.
func runKubePlugin(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out, errb lockedBuffer
	code = kubeplugin.Run(ctx, args, &out, &errb, kubeplugin.DefaultEnv())
	return code, out.String(), errb.String()
}

// TestKubePluginRBACDenied: what a real API server's RBAC refuses (a fake
// clientset allows everything and answers every SelfSubjectAccessReview
// alike). A user without rights is refused get on the pod, then on the
// deployment, each one line naming verb, resource, name and namespace,
// exit 1. Bound to deploy/kubernetes/rbac-user.yaml's ClusterRole alone
// (read only, no pods/portforward in namespace netobs), the same user
// finds the pod and its node's agent and is refused the port-forward to
// the agent, over WebSockets (the server's Status) and over SPDY alone
// (the plugin's SelfSubjectAccessReview). With all of rbac-user.yaml
// (user "user", group netobs:users), RBAC lets the port-forward through:
// it fails further on, for want of a kubelet, and not as forbidden.
func TestKubePluginRBACDenied(t *testing.T) {
	api := startKubeAPI(t)
	ns, app := nstest.UniqueName("ns"), nstest.UniqueName("app")
	api.apply(t, filepath.Join("..", "deploy", "kubernetes", "namespace.yaml"))
	api.apply(t, filepath.Join("..", "deploy", "kubernetes", "rbac-user.yaml"))
	api.createNamespace(t, ns)
	rs := api.createDeployment(t, ns, "web", app)
	api.createNode(t, "node-a")
	agent := api.kubeletRun(t, kubePod(kube.AgentNamespace, "netobs-agent-node-a", "node-a", map[string]string{"app.kubernetes.io/name": "netobs-agent"}, nil), "")
	api.kubeletRun(t, kubePod(ns, "web-7d4b9-0", "node-a", map[string]string{"app": app}, []metav1.OwnerReference{controller("ReplicaSet", rs.Name, rs.UID)}), "")
	nobody := api.kubeconfigIn(t, "nobody", ns)

	refused := func(what string, code int, stderr string, want *kube.ForbiddenError) {
		t.Helper()
		lines := strings.Split(strings.TrimRight(stderr, "\n"), "\n")
		if code != 1 || len(lines) != 1 || !strings.HasPrefix(lines[0], "kubectl-netobs: ") || !strings.Contains(lines[0], want.Error()) {
			t.Errorf("%s: exit %d, stderr %q; want exit 1 and the one line %q", what, code, stderr, want.Error())
		}
	}
	code, _, stderr := runKubePlugin(t, "--kubeconfig", nobody, "sockets", "pod/web-7d4b9-0")
	refused("sockets pod/web-7d4b9-0 without rights", code, stderr, &kube.ForbiddenError{Verb: "get", Resource: "pods", Namespace: ns, Name: "web-7d4b9-0"})
	code, _, stderr = runKubePlugin(t, "--kubeconfig", nobody, "sockets", "deploy/web")
	refused("sockets deploy/web without rights", code, stderr, &kube.ForbiddenError{Verb: "get", Resource: "deployments.apps", Namespace: ns, Name: "web"})

	// Read-only rights: the pod and the agent are found, the port-forward
	// is refused.
	_, err := api.admin.RbacV1().ClusterRoleBindings().Create(context.Background(), &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: nstest.UniqueName("readonly")},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "netobs-user"},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: "netobs-nobody"}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	api.waitAllowed(t, "nobody", "get", "apps", "deployments", "", ns)
	api.waitAllowed(t, "nobody", "list", "", "pods", "", kube.AgentNamespace)
	pf := &kube.ForbiddenError{Verb: "create", Resource: "pods", Subresource: "portforward", Namespace: kube.AgentNamespace, Name: agent.Name}
	code, _, stderr = runKubePlugin(t, "--kubeconfig", nobody, "sockets", "deploy/web")
	refused("sockets deploy/web with read-only rights", code, stderr, pf)
	code, _, stderr = runKubePlugin(t, "--kubeconfig", nobody, "--spdy", "sockets", "pod/web-7d4b9-0")
	refused("--spdy sockets pod/web-7d4b9-0 with read-only rights", code, stderr, pf)

	// All of rbac-user.yaml: RBAC allows the port-forward.
	api.waitAllowed(t, "user", "create", "", "pods", "portforward", kube.AgentNamespace)
	code, _, stderr = runKubePlugin(t, "--kubeconfig", api.kubeconfigIn(t, "user", ns), "sockets", "pod/web-7d4b9-0")
	if code != 1 || strings.Contains(stderr, "forbidden") || !strings.Contains(stderr, "netobs-agent-node-a") {
		t.Errorf("sockets pod/web-7d4b9-0 as a netobs:users member: exit %d, stderr %q; want exit 1 for want of a kubelet behind the agent pod, not forbidden", code, stderr)
	}
	t.Logf("as a netobs:users member, with no kubelet: %s", stderr)
}
