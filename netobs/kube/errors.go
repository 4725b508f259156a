package kube

import (
	"errors"
	"fmt"

	"github.com/netobs/netobs/internal/termsafe"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// DeployHint is how a missing agent gets deployed; errors say it.
const DeployHint = "kubectl apply -k deploy/kubernetes"

// ErrNoPods is returned (wrapped) when a selection matches no pod that can
// be observed.
var ErrNoPods = errors.New("no pods")

// ForbiddenError is an API request that RBAC refused: Verb on Resource
// (with Subresource, as "pods/portforward") in Namespace ("" for
// cluster-scoped resources or all namespaces).
type ForbiddenError struct {
	Verb        string
	Resource    string // "pods", "deployments.apps"
	Subresource string // "portforward", or ""
	Namespace   string
	Name        string // "" for list
	Err         error  // the API server's *apierrors.StatusError
}

func (e *ForbiddenError) Error() string {
	res := e.Resource
	if e.Subresource != "" {
		res += "/" + e.Subresource
	}
	where := "cluster-wide"
	if e.Namespace != "" {
		where = "in namespace " + termsafe.Quote(e.Namespace)
	}
	what := res
	if e.Name != "" {
		what += " " + termsafe.Quote(e.Name)
	}
	return fmt.Sprintf("forbidden: RBAC does not let you %s %s %s; ask for a role granting %q on %q (deploy/kubernetes/rbac-user.yaml has one)", e.Verb, what, where, e.Verb, res)
}

func (e *ForbiddenError) Unwrap() error { return e.Err }

// NotFoundError is a pod, deployment or node that does not exist.
type NotFoundError struct {
	Kind      string // "pod", "deployment", "node"
	Namespace string // "" for nodes
	Name      string
	Err       error
}

func (e *NotFoundError) Error() string {
	if e.Namespace == "" {
		return fmt.Sprintf("%s %s not found", e.Kind, termsafe.Quote(e.Name))
	}
	return fmt.Sprintf("%s %s not found in namespace %s", e.Kind, termsafe.Quote(e.Name), termsafe.Quote(e.Namespace))
}

func (e *NotFoundError) Unwrap() error { return e.Err }

// PodNotRunningError is a pod that has no network namespace to observe:
// Pending and not scheduled to a node yet (Node is ""), Pending on a node,
// or ended (Succeeded, Failed).
type PodNotRunningError struct {
	Namespace, Name string
	Phase           string
	Node            string
}

func (e *PodNotRunningError) Error() string {
	p := termsafe.Quote(e.Namespace + "/" + e.Name)
	if e.Node == "" {
		return fmt.Sprintf("pod %s is %s and not scheduled to a node yet: nothing to observe until it runs", p, e.Phase)
	}
	return fmt.Sprintf("pod %s is %s on node %s, not Running: nothing to observe", p, e.Phase, termsafe.Quote(e.Node))
}

// NoAgentError is a node with no netobs agent pod.
type NoAgentError struct {
	Node           string
	AgentNamespace string
	AgentSelector  string
}

func (e *NoAgentError) Error() string {
	return fmt.Sprintf("no netobs agent on node %s (no pod %s in namespace %s there): deploy the agents with `%s`",
		termsafe.Quote(e.Node), e.AgentSelector, termsafe.Quote(e.AgentNamespace), DeployHint)
}

// AgentNotReadyError is a node whose agent pod exists but is not Running
// and Ready.
type AgentNotReadyError struct {
	Node     string
	AgentPod string // namespace/name
	Phase    string
}

func (e *AgentNotReadyError) Error() string {
	return fmt.Sprintf("netobs agent %s on node %s is not ready (phase %s): see `kubectl -n %s describe pod %s`",
		termsafe.Quote(e.AgentPod), termsafe.Quote(e.Node), e.Phase, nsOf(e.AgentPod), nameOf(e.AgentPod))
}

// HostNetworkWarning is a pod that runs in its node's network namespace
// (hostNetwork: true): observing it observes the whole node. It is a
// warning, returned in [Result.Warnings], not an error.
type HostNetworkWarning struct {
	Namespace, Name string
	Node            string
}

func (e *HostNetworkWarning) Error() string {
	return fmt.Sprintf("pod %s uses hostNetwork: that is node %s's own network namespace, shared with everything on the node",
		termsafe.Quote(e.Namespace+"/"+e.Name), termsafe.Quote(e.Node))
}

// apiError turns an API error of verb on resource into a typed error: a
// *ForbiddenError for RBAC refusals (the resource taken from the server's
// status details where it gives one), a *NotFoundError for a missing named
// object, else err wrapped with the request.
func apiError(err error, verb, resource, subresource, kind, namespace, name string) error {
	if err == nil {
		return nil
	}
	if apierrors.IsForbidden(err) {
		fe := &ForbiddenError{Verb: verb, Resource: resource, Subresource: subresource, Namespace: namespace, Name: name, Err: err}
		var se apierrors.APIStatus
		if errors.As(err, &se) {
			if d := se.Status().Details; d != nil && d.Kind != "" {
				fe.Resource = d.Kind
				if d.Group != "" {
					fe.Resource += "." + d.Group
				}
			}
		}
		return fe
	}
	if apierrors.IsNotFound(err) && name != "" {
		return &NotFoundError{Kind: kind, Namespace: namespace, Name: name, Err: err}
	}
	target := resource
	if name != "" {
		target += " " + termsafe.Quote(name)
	}
	if namespace != "" {
		target += " in namespace " + termsafe.Quote(namespace)
	}
	return fmt.Errorf("%s %s: %w", verb, target, err)
}

func nsOf(nsName string) string {
	for i := 0; i < len(nsName); i++ {
		if nsName[i] == '/' {
			return nsName[:i]
		}
	}
	return ""
}

func nameOf(nsName string) string {
	for i := 0; i < len(nsName); i++ {
		if nsName[i] == '/' {
			return nsName[i+1:]
		}
	}
	return nsName
}
