package test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/netobs/netobs/internal/nstest"
	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
)

// kubeAPI is a real Kubernetes API server with a real etcd: bin/kubeapi
// (test/kubeapi, built by make kubeapi) running for one test. No kubelet,
// scheduler or controller runs: tests create the objects those would and
// play the kubelet (kubeletRun).
type kubeAPI struct {
	dir   string
	admin kubernetes.Interface
}

// kubeconfig is the path of the kubeconfig of user "admin" (everything),
// "user" (group netobs:users, what deploy/kubernetes/rbac-user.yaml binds)
// or "nobody" (no group): see test/kubeapi/main.go.
func (a *kubeAPI) kubeconfig(user string) string {
	return filepath.Join(a.dir, user+".kubeconfig")
}

// startKubeAPI starts bin/kubeapi and waits until it is ready; it is
// stopped (SIGTERM, by PID) when the test ends, even on failure, and its
// etcd data and certificates are in the test's temporary directory. A
// missing bin/kubeapi skips the test, or fails it under CI=true.
func startKubeAPI(t *testing.T) *kubeAPI {
	t.Helper()
	bin, err := filepath.Abs(filepath.Join("..", "bin", "kubeapi"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(bin); err != nil {
		nstest.Unavailable(t, "needs bin/kubeapi (a real kube-apiserver and etcd, built from source): run make kubeapi")
	}
	a := &kubeAPI{dir: t.TempDir()}
	logPath := filepath.Join(a.dir, "kubeapi.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(bin, a.dir)
	cmd.Stderr = logf
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	ready, exited := make(chan struct{}), make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if sc.Text() == "ready" {
				close(ready)
			}
		}
		io.Copy(io.Discard, stdout)
		exited <- cmd.Wait()
	}()
	logTail := func() string {
		b, _ := os.ReadFile(logPath)
		if len(b) > 4000 {
			b = b[len(b)-4000:]
		}
		return string(b)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("kubeapi (pid %d) ended badly on SIGTERM: %v; its log ends:\n%s", cmd.Process.Pid, err, logTail())
			}
		case <-time.After(time.Minute):
			cmd.Process.Kill()
			<-exited
			t.Errorf("kubeapi (pid %d) did not stop within a minute of SIGTERM: killed", cmd.Process.Pid)
		}
	})
	select {
	case <-ready:
	case err := <-exited:
		exited <- err
		t.Fatalf("kubeapi exited before it was ready (%v); its log ends:\n%s", err, logTail())
	case <-time.After(3 * time.Minute):
		t.Fatalf("kubeapi not ready after 3 minutes; its log ends:\n%s", logTail())
	}
	rc, err := clientcmd.BuildConfigFromFlags("", a.kubeconfig("admin"))
	if err != nil {
		t.Fatal(err)
	}
	if a.admin, err = kubernetes.NewForConfig(rc); err != nil {
		t.Fatal(err)
	}
	return a
}

// kubeconfigIn writes a copy of user's kubeconfig whose context has
// namespace ns (as `kubectl config set-context --current --namespace`).
func (a *kubeAPI) kubeconfigIn(t *testing.T, user, ns string) string {
	t.Helper()
	cfg, err := clientcmd.LoadFromFile(a.kubeconfig(user))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Contexts[cfg.CurrentContext].Namespace = ns
	p := filepath.Join(t.TempDir(), user+"-"+ns+".kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, p); err != nil {
		t.Fatal(err)
	}
	return p
}

// apply creates the objects of a manifest file (several YAML documents) as
// the admin; it knows the kinds deploy/kubernetes's RBAC files use.
func (a *kubeAPI) apply(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	d := yaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096)
	for {
		var raw map[string]any
		if err := d.Decode(&raw); errors.Is(err, io.EOF) {
			return
		} else if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if raw == nil {
			continue
		}
		j, err := json.Marshal(raw)
		if err != nil {
			t.Fatal(err)
		}
		obj, _, err := scheme.Codecs.UniversalDeserializer().Decode(j, nil, nil)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		switch o := obj.(type) {
		case *corev1.Namespace:
			_, err = a.admin.CoreV1().Namespaces().Create(ctx, o, metav1.CreateOptions{})
		case *rbacv1.ClusterRole:
			_, err = a.admin.RbacV1().ClusterRoles().Create(ctx, o, metav1.CreateOptions{})
		case *rbacv1.ClusterRoleBinding:
			_, err = a.admin.RbacV1().ClusterRoleBindings().Create(ctx, o, metav1.CreateOptions{})
		case *rbacv1.Role:
			_, err = a.admin.RbacV1().Roles(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		case *rbacv1.RoleBinding:
			_, err = a.admin.RbacV1().RoleBindings(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		default:
			t.Fatalf("%s: apply does not know %T", path, obj)
		}
		if err != nil {
			t.Fatalf("%s: create %T: %v", path, obj, err)
		}
	}
}

// createNamespace creates namespace ns unless it exists.
func (a *kubeAPI) createNamespace(t *testing.T, ns string) {
	t.Helper()
	_, err := a.admin.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("create namespace %s: %v", ns, err)
	}
}

// kubeletRun creates pod p (its spec.nodeName set: no scheduler runs) and
// then does what the node's kubelet would once it runs: status Running and
// Ready, with podIP, through the status subresource. It returns the pod
// as the API server has it.
func (a *kubeAPI) kubeletRun(t *testing.T, p *corev1.Pod, podIP string) *corev1.Pod {
	t.Helper()
	ctx := context.Background()
	status := p.Status
	p = p.DeepCopy()
	p.Status = corev1.PodStatus{}
	created, err := a.admin.CoreV1().Pods(p.Namespace).Create(ctx, p, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create pod %s/%s: %v", p.Namespace, p.Name, err)
	}
	created.Status = status
	created.Status.PodIP = podIP
	if podIP != "" {
		created.Status.PodIPs = []corev1.PodIP{{IP: podIP}}
	}
	now := metav1.Now()
	created.Status.StartTime = &now
	updated, err := a.admin.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, created, metav1.UpdateOptions{})
	if err != nil {
		t.Fatalf("update status of pod %s/%s: %v", p.Namespace, p.Name, err)
	}
	return updated
}

// waitAllowed waits until user may verb resource (with subresource) in
// namespace ns, as the API server's authorizer answers a
// SelfSubjectAccessReview: RBAC objects take effect once the server's
// informers have them, not when their create returns.
func (a *kubeAPI) waitAllowed(t *testing.T, user, verb, group, resource, subresource, ns string) {
	t.Helper()
	rc, err := clientcmd.BuildConfigFromFlags("", a.kubeconfig(user))
	if err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, user+" allowed to "+verb+" "+resource+"/"+subresource+" in "+ns, func() bool {
		r, err := cs.AuthorizationV1().SelfSubjectAccessReviews().Create(context.Background(), &authorizationv1.SelfSubjectAccessReview{
			Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authorizationv1.ResourceAttributes{
				Namespace: ns, Verb: verb, Group: group, Resource: resource, Subresource: subresource}},
		}, metav1.CreateOptions{})
		return err == nil && r.Status.Allowed
	})
}

// createDeployment creates deployment name in ns, selecting label
// app=app, and the ReplicaSet name-7d4b9 that the deployment controller
// would make (no controller-manager runs), owned by the deployment. It
// returns the ReplicaSet, to own the pods the test makes.
func (a *kubeAPI) createDeployment(t *testing.T, ns, name, app string) *appsv1.ReplicaSet {
	t.Helper()
	ctx := context.Background()
	labels := map[string]string{"app": app}
	deploy, err := a.admin.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "main", Image: "netobs-test"}}},
			},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create deployment %s/%s: %v", ns, name, err)
	}
	rs, err := a.admin.AppsV1().ReplicaSets(ns).Create(ctx, &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: name + "-7d4b9", Labels: labels,
			OwnerReferences: []metav1.OwnerReference{controller("Deployment", name, deploy.UID)}},
		Spec: appsv1.ReplicaSetSpec{Selector: deploy.Spec.Selector, Template: deploy.Spec.Template},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create replicaset %s/%s: %v", ns, name, err)
	}
	return rs
}

// createNode creates Node name (no kubelet registers it).
func (a *kubeAPI) createNode(t *testing.T, name string) {
	t.Helper()
	if _, err := a.admin.CoreV1().Nodes().Create(context.Background(), &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create node %s: %v", name, err)
	}
}
