package kube

import (
	"fmt"
	"strings"

	"github.com/netobs/netobs/internal/termsafe"
	"k8s.io/apimachinery/pkg/util/validation"
)

// Kind is what a [Ref] names.
type Kind int

const (
	_ Kind = iota // the zero Kind is invalid on purpose
	KindPod
	KindDeployment
	KindNode
)

func (k Kind) String() string {
	switch k {
	case KindPod:
		return "pod"
	case KindDeployment:
		return "deployment"
	case KindNode:
		return "node"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Ref is one object a user names on the command line, as kubectl spells
// it: pod/NAME, deploy/NAME, node/NAME.
type Ref struct {
	Kind Kind
	Name string
}

func (r Ref) String() string { return r.Kind.String() + "/" + r.Name }

// kinds maps kubectl's spellings (singular, plural, short) to a Kind.
var kinds = map[string]Kind{
	"pod": KindPod, "pods": KindPod, "po": KindPod,
	"deploy": KindDeployment, "deployment": KindDeployment, "deployments": KindDeployment,
	"deployment.apps": KindDeployment, "deployments.apps": KindDeployment,
	"node": KindNode, "nodes": KindNode, "no": KindNode,
}

// RefSyntaxError is a reference that is not KIND/NAME with a known kind and
// a valid object name.
type RefSyntaxError struct {
	Ref    string
	Reason string
}

func (e *RefSyntaxError) Error() string {
	return fmt.Sprintf("bad reference %s: %s (want pod/NAME, deploy/NAME or node/NAME)", termsafe.Quote(e.Ref), e.Reason)
}

// ParseRef parses pod/NAME, deploy/NAME or node/NAME (kubectl's plural and
// short kind names are accepted too). NAME must be a valid Kubernetes
// object name (a DNS-1123 subdomain), so nothing odd reaches a URL path.
func ParseRef(s string) (Ref, error) {
	kind, name, ok := strings.Cut(s, "/")
	if !ok {
		return Ref{}, &RefSyntaxError{Ref: s, Reason: "no kind/"}
	}
	k, ok := kinds[strings.ToLower(kind)]
	if !ok {
		return Ref{}, &RefSyntaxError{Ref: s, Reason: "unknown kind " + termsafe.Quote(kind)}
	}
	if name == "" {
		return Ref{}, &RefSyntaxError{Ref: s, Reason: "empty name"}
	}
	if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
		return Ref{}, &RefSyntaxError{Ref: s, Reason: "not a valid object name"}
	}
	return Ref{Kind: k, Name: name}, nil
}

// IsKind tells whether s is a kind ParseRef knows ("pod", "deploy", ...),
// so that a command line can tell references from a filter expression.
func IsKind(s string) bool {
	_, ok := kinds[strings.ToLower(s)]
	return ok
}
