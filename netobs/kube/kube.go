package kube

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sort"

	"github.com/netobs/netobs/internal/termsafe"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

// Where deploy/kubernetes puts the agents and the port they listen on (on
// their pod's loopback only, reached through port-forward).
const (
	AgentNamespace = "netobs"
	AgentSelector  = "app.kubernetes.io/name=netobs-agent"
	AgentPort      = 7447
)

// NodeNetnsRef is what a [Target] asks its agent for to observe the node's
// own network namespace: the namespace of the node's process 1, which the
// agent resolves under its --host-root.
const NodeNetnsRef = "1"

// PodInfo is one pod to observe, as the API server describes it.
type PodInfo struct {
	Namespace   string
	Name        string
	UID         types.UID
	Node        string
	HostNetwork bool     // the pod shares its node's network namespace
	Containers  []string // container names, in spec order
}

// AgentRef is what the pod's node agent is asked for: pod:NAMESPACE/NAME.
func (p PodInfo) AgentRef() string { return "pod:" + p.Namespace + "/" + p.Name }

// Target is one node to observe through its agent.
type Target struct {
	Node     string
	AgentPod string // NAMESPACE/NAME of the agent pod on Node
	// Pods are the pods on Node to observe, sorted by namespace and name.
	Pods []PodInfo
	// NodeNetns is set when the node's own network namespace is to be
	// observed (node/NAME with Query.NodeNetns).
	NodeNetns bool
	// Dial opens a new byte stream to the agent's port. Each call is a new
	// connection (a new port-forward); the caller closes it. Cancelling
	// ctx abandons a dial in progress, not an established connection.
	Dial func(ctx context.Context) (net.Conn, error)
}

// Refs are the references to ask the agent for, one per pod (hostNetwork
// pods included: the agent resolves them to the node's namespace), then
// NodeNetnsRef if NodeNetns is set.
func (t Target) Refs() []string {
	var refs []string
	for _, p := range t.Pods {
		refs = append(refs, p.AgentRef())
	}
	if t.NodeNetns {
		refs = append(refs, NodeNetnsRef)
	}
	return refs
}

// PodDialer opens a stream to a port of a pod. [PortForwarder] does it
// through the API server; tests dial directly.
type PodDialer interface {
	DialPod(ctx context.Context, namespace, name string, port int) (net.Conn, error)
}

// Resolver finds pods and their nodes' agents through the API server.
type Resolver struct {
	Client kubernetes.Interface
	Dialer PodDialer
	// Where the agents are; the zero values mean AgentNamespace,
	// AgentSelector and AgentPort.
	AgentNamespace string
	AgentSelector  string
	AgentPort      int
}

// Query is what to observe.
type Query struct {
	Refs []Ref
	// Namespace of pod/ and deploy/ references and of a bare selector.
	Namespace string
	// NamespaceExplicit is set when the user gave -n: node/NAME then looks
	// only at that namespace's pods, else at every namespace's.
	NamespaceExplicit bool
	// AllNamespaces (-A) makes a bare selector look in every namespace.
	AllNamespaces bool
	// Selector (-l) restricts deploy/ and node/ references and, without
	// references, selects the pods.
	Selector string
	// NodeNetns makes node/NAME mean the node's own network namespace
	// instead of the pods on it.
	NodeNetns bool
}

// Result is what Resolve found.
type Result struct {
	Targets []Target // one per node, sorted by node name
	// Warnings are things the user should know that do not stop the
	// observation: *HostNetworkWarning, and *PodNotRunningError for pods
	// that a deployment, node or selector matched and that are left out.
	Warnings []error
}

// SelectorError is a -l selector that does not parse.
type SelectorError struct {
	Selector string
	Err      error
}

func (e *SelectorError) Error() string {
	return fmt.Sprintf("bad label selector %s: %v", termsafe.Quote(e.Selector), e.Err)
}

func (e *SelectorError) Unwrap() error { return e.Err }

func (r *Resolver) agentNamespace() string {
	if r.AgentNamespace != "" {
		return r.AgentNamespace
	}
	return AgentNamespace
}

func (r *Resolver) agentSelector() string {
	if r.AgentSelector != "" {
		return r.AgentSelector
	}
	return AgentSelector
}

func (r *Resolver) agentPort() int {
	if r.AgentPort != 0 {
		return r.AgentPort
	}
	return AgentPort
}

// selection collects pods in the order found, without duplicates.
type selection struct {
	pods     []*corev1.Pod
	seen     map[types.UID]bool
	explicit map[types.UID]bool
	nodes    map[string]bool // node/NAME with NodeNetns
}

func (s *selection) add(p *corev1.Pod, explicit bool) {
	if s.seen[p.UID] {
		s.explicit[p.UID] = s.explicit[p.UID] || explicit
		return
	}
	s.seen[p.UID] = true
	s.explicit[p.UID] = explicit
	s.pods = append(s.pods, p)
}

// Resolve finds the pods q names, groups them by node and finds each
// node's agent. The error joins one typed error per problem (see the
// package's error types); a pod named by pod/NAME that is not Running is
// an error, one matched by a deployment, node or selector is a warning.
func (r *Resolver) Resolve(ctx context.Context, q Query) (*Result, error) {
	sel := labels.Everything()
	if q.Selector != "" {
		s, err := labels.Parse(q.Selector)
		if err != nil {
			return nil, &SelectorError{Selector: q.Selector, Err: err}
		}
		sel = s
	}
	if len(q.Refs) == 0 && q.Selector == "" {
		return nil, fmt.Errorf("name what to observe: pod/NAME, deploy/NAME, node/NAME or -l SELECTOR")
	}
	s := &selection{seen: map[types.UID]bool{}, explicit: map[types.UID]bool{}, nodes: map[string]bool{}}
	if len(q.Refs) == 0 {
		ns := q.Namespace
		if q.AllNamespaces {
			ns = metav1.NamespaceAll
		}
		pods, err := r.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
		if err != nil {
			return nil, apiError(err, "list", "pods", "", "pod", ns, "")
		}
		for i := range pods.Items {
			if !r.isAgent(&pods.Items[i]) {
				s.add(&pods.Items[i], false)
			}
		}
	}
	for _, ref := range q.Refs {
		var err error
		switch ref.Kind {
		case KindPod:
			err = r.addPod(ctx, s, q.Namespace, ref.Name)
		case KindDeployment:
			err = r.addDeployment(ctx, s, q.Namespace, ref.Name, sel)
		case KindNode:
			err = r.addNode(ctx, s, q, ref.Name, sel)
		default:
			err = fmt.Errorf("reference %s: unknown kind", termsafe.Quote(ref.String()))
		}
		if err != nil {
			return nil, err
		}
	}

	res := &Result{}
	var errs []error
	byNode := map[string][]PodInfo{}
	for _, p := range s.pods {
		if p.Status.Phase != corev1.PodRunning || p.Spec.NodeName == "" || p.DeletionTimestamp != nil {
			phase := string(p.Status.Phase)
			if p.DeletionTimestamp != nil {
				phase = "Terminating"
			}
			if phase == "" {
				phase = "Pending"
			}
			e := &PodNotRunningError{Namespace: p.Namespace, Name: p.Name, Phase: phase, Node: p.Spec.NodeName}
			if s.explicit[p.UID] {
				errs = append(errs, e)
			} else {
				res.Warnings = append(res.Warnings, e)
			}
			continue
		}
		if p.Spec.HostNetwork {
			res.Warnings = append(res.Warnings, &HostNetworkWarning{Namespace: p.Namespace, Name: p.Name, Node: p.Spec.NodeName})
		}
		byNode[p.Spec.NodeName] = append(byNode[p.Spec.NodeName], podInfo(p))
	}
	for n := range s.nodes {
		if _, ok := byNode[n]; !ok {
			byNode[n] = nil
		}
	}
	if len(byNode) == 0 {
		if len(errs) > 0 {
			return nil, errors.Join(errs...)
		}
		return nil, fmt.Errorf("%w: nothing running matches %s", ErrNoPods, describe(q))
	}

	agents, err := r.agents(ctx)
	if err != nil {
		return nil, err
	}
	nodes := make([]string, 0, len(byNode))
	for n := range byNode {
		nodes = append(nodes, n)
	}
	sort.Strings(nodes)
	for _, n := range nodes {
		a, err := r.agentOn(agents, n)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		pods := byNode[n]
		sort.Slice(pods, func(i, j int) bool {
			if pods[i].Namespace != pods[j].Namespace {
				return pods[i].Namespace < pods[j].Namespace
			}
			return pods[i].Name < pods[j].Name
		})
		res.Targets = append(res.Targets, r.target(n, a, pods, s.nodes[n]))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return res, nil
}

// AllAgents returns one Target without pods for every node that has a
// Ready agent (for `ps`), sorted by node; nodes whose agent is not ready
// come back as *AgentNotReadyError warnings.
func (r *Resolver) AllAgents(ctx context.Context) (*Result, error) {
	agents, err := r.agents(ctx)
	if err != nil {
		return nil, err
	}
	nodes := make([]string, 0, len(agents))
	for n := range agents {
		nodes = append(nodes, n)
	}
	sort.Strings(nodes)
	res := &Result{}
	for _, n := range nodes {
		a, err := r.agentOn(agents, n)
		if err != nil {
			res.Warnings = append(res.Warnings, err)
			continue
		}
		res.Targets = append(res.Targets, r.target(n, a, nil, false))
	}
	if len(res.Targets) == 0 {
		return nil, &NoAgentError{Node: "any", AgentNamespace: r.agentNamespace(), AgentSelector: r.agentSelector()}
	}
	return res, nil
}

func (r *Resolver) target(node string, agent *corev1.Pod, pods []PodInfo, nodeNetns bool) Target {
	ns, name, port, d := agent.Namespace, agent.Name, r.agentPort(), r.Dialer
	return Target{
		Node:      node,
		AgentPod:  ns + "/" + name,
		Pods:      pods,
		NodeNetns: nodeNetns,
		Dial: func(ctx context.Context) (net.Conn, error) {
			if d == nil {
				return nil, fmt.Errorf("dial agent %s/%s: no dialer configured", ns, name)
			}
			return d.DialPod(ctx, ns, name, port)
		},
	}
}

func podInfo(p *corev1.Pod) PodInfo {
	pi := PodInfo{Namespace: p.Namespace, Name: p.Name, UID: p.UID, Node: p.Spec.NodeName, HostNetwork: p.Spec.HostNetwork}
	for _, c := range p.Spec.Containers {
		pi.Containers = append(pi.Containers, c.Name)
	}
	return pi
}

func (r *Resolver) addPod(ctx context.Context, s *selection, ns, name string) error {
	p, err := r.Client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return apiError(err, "get", "pods", "", "pod", ns, name)
	}
	s.add(p, true)
	return nil
}

func (r *Resolver) addDeployment(ctx context.Context, s *selection, ns, name string, extra labels.Selector) error {
	d, err := r.Client.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return apiError(err, "get", "deployments.apps", "", "deployment", ns, name)
	}
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil {
		return fmt.Errorf("deployment %s: its selector: %w", termsafe.Quote(ns+"/"+name), err)
	}
	rss, err := r.Client.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return apiError(err, "list", "replicasets.apps", "", "replicaset", ns, "")
	}
	owned := map[types.UID]bool{}
	for i := range rss.Items {
		if metav1.IsControlledBy(&rss.Items[i], d) {
			owned[rss.Items[i].UID] = true
		}
	}
	podSel := sel
	if reqs, ok := extra.Requirements(); ok && len(reqs) > 0 {
		podSel = sel.Add(reqs...)
	}
	pods, err := r.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: podSel.String()})
	if err != nil {
		return apiError(err, "list", "pods", "", "pod", ns, "")
	}
	n := 0
	for i := range pods.Items {
		p := &pods.Items[i]
		if c := metav1.GetControllerOf(p); c != nil && owned[c.UID] {
			s.add(p, false)
			n++
		}
	}
	if n == 0 {
		return fmt.Errorf("%w: deployment %s has no pods", ErrNoPods, termsafe.Quote(ns+"/"+name))
	}
	return nil
}

func (r *Resolver) addNode(ctx context.Context, s *selection, q Query, name string, sel labels.Selector) error {
	if _, err := r.Client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{}); err != nil {
		return apiError(err, "get", "nodes", "", "node", "", name)
	}
	if q.NodeNetns {
		s.nodes[name] = true
		return nil
	}
	ns := metav1.NamespaceAll
	if q.NamespaceExplicit && !q.AllNamespaces {
		ns = q.Namespace
	}
	pods, err := r.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{
		LabelSelector: sel.String(),
		FieldSelector: "spec.nodeName=" + name,
	})
	if err != nil {
		return apiError(err, "list", "pods", "", "pod", ns, "")
	}
	for i := range pods.Items {
		p := &pods.Items[i]
		// The field selector is the server's; the check is ours, so that
		// a server (or fake) ignoring it cannot widen the selection.
		if p.Spec.NodeName == name && !r.isAgent(p) {
			s.add(p, false)
		}
	}
	return nil
}

// isAgent tells the agents themselves apart, so that observing a node or
// a namespace does not observe the observer's own traffic.
func (r *Resolver) isAgent(p *corev1.Pod) bool {
	if p.Namespace != r.agentNamespace() {
		return false
	}
	sel, err := labels.Parse(r.agentSelector())
	return err == nil && sel.Matches(labels.Set(p.Labels))
}

// agents lists the agent pods by node.
func (r *Resolver) agents(ctx context.Context) (map[string][]*corev1.Pod, error) {
	ns := r.agentNamespace()
	list, err := r.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: r.agentSelector()})
	if err != nil {
		return nil, apiError(err, "list", "pods", "", "pod", ns, "")
	}
	m := map[string][]*corev1.Pod{}
	for i := range list.Items {
		p := &list.Items[i]
		if p.Spec.NodeName != "" {
			m[p.Spec.NodeName] = append(m[p.Spec.NodeName], p)
		}
	}
	return m, nil
}

// agentOn picks node's agent: a Ready one (the first by name, during a
// rolling update there can be two), else an error saying why there is none.
func (r *Resolver) agentOn(agents map[string][]*corev1.Pod, node string) (*corev1.Pod, error) {
	cands := agents[node]
	if len(cands) == 0 {
		return nil, &NoAgentError{Node: node, AgentNamespace: r.agentNamespace(), AgentSelector: r.agentSelector()}
	}
	sort.Slice(cands, func(i, j int) bool { return cands[i].Name < cands[j].Name })
	for _, p := range cands {
		if podReady(p) {
			return p, nil
		}
	}
	p := cands[0]
	phase := string(p.Status.Phase)
	if p.DeletionTimestamp != nil {
		phase = "Terminating"
	} else if phase == string(corev1.PodRunning) {
		phase = "Running, not Ready"
	} else if phase == "" {
		phase = "Pending"
	}
	return nil, &AgentNotReadyError{Node: node, AgentPod: p.Namespace + "/" + p.Name, Phase: phase}
}

func podReady(p *corev1.Pod) bool {
	if p.Status.Phase != corev1.PodRunning || p.DeletionTimestamp != nil {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func describe(q Query) string {
	var d string
	for i, r := range q.Refs {
		if i > 0 {
			d += " "
		}
		d += termsafe.Quote(r.String())
	}
	if q.Selector != "" {
		if d != "" {
			d += " "
		}
		d += "-l " + termsafe.Quote(q.Selector)
	}
	return d
}
