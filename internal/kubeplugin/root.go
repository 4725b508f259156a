package kubeplugin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/netobs/netobs/internal/buildinfo"
	"github.com/netobs/netobs/internal/termsafe"
	"github.com/netobs/netobs/netobs/agent"
	"github.com/netobs/netobs/netobs/kube"
	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// Env is what the commands need from outside: the API server and the
// agents. Tests replace both (a fake clientset, a dialer that reaches the
// agents directly).
type Env struct {
	// Connect makes a client from the kubeconfig flags, and the dialer
	// that reaches a port of a pod (the API server's port-forward).
	Connect func(cfg clientcmd.ClientConfig, spdyOnly bool) (kubernetes.Interface, kube.PodDialer, error)
	// Agents runs the operations on the nodes' agents.
	Agents kube.Agents
}

// DefaultEnv is the plugin's real environment: the kubeconfig's API
// server, its port-forward, and the netobs agent client.
func DefaultEnv() *Env {
	return &Env{
		Connect: func(cfg clientcmd.ClientConfig, spdyOnly bool) (kubernetes.Interface, kube.PodDialer, error) {
			rc, err := cfg.ClientConfig()
			if err != nil {
				return nil, nil, err
			}
			rc.UserAgent = "kubectl-netobs"
			cs, err := kubernetes.NewForConfig(rc)
			if err != nil {
				return nil, nil, err
			}
			return cs, &kube.PortForwarder{Config: rc, Client: cs, SPDYOnly: spdyOnly}, nil
		},
		Agents: AgentClient{},
	}
}

// app is one invocation: its streams, env and the flags every command
// shares.
type app struct {
	stdout, stderr io.Writer
	env            *Env

	loading       *clientcmd.ClientConfigLoadingRules
	overrides     clientcmd.ConfigOverrides
	allNamespaces bool
	selector      string
	agentNS       string
	agentPort     int
	spdyOnly      bool
}

// usageError marks a mistake in how the plugin was called: exit status 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usageErrorf(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

func isUsage(err error) bool {
	var ue usageError
	var rs *kube.RefSyntaxError
	var se *kube.SelectorError
	return errors.As(err, &ue) || errors.As(err, &rs) || errors.As(err, &se) || errors.Is(err, agent.ErrUsage)
}

// Run executes the plugin with args and returns the exit status: 0, 1 for
// a runtime failure, 2 for a usage mistake. Each error is one line on
// stderr (joined errors, one line each).
func Run(ctx context.Context, args []string, stdout, stderr io.Writer, e *Env) int {
	a := &app{stdout: stdout, stderr: stderr, env: e}
	root := a.rootCmd()
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	for _, line := range errLines(err) {
		fmt.Fprintln(stderr, "kubectl-netobs: "+line)
	}
	if isUsage(err) {
		return 2
	}
	return 1
}

// errLines is one line per error joined in err, each made one line.
func errLines(err error) []string {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var lines []string
		for _, e := range j.Unwrap() {
			lines = append(lines, errLines(e)...)
		}
		return lines
	}
	return []string{strings.Join(strings.Fields(termsafe.Escape(err.Error())), " ")}
}

func (a *app) rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "kubectl-netobs",
		Short: "Observe pods' network namespaces on a Kubernetes cluster through netobs agents",
		Long: `kubectl netobs finds the pods you name through the API server (with your
kubeconfig, as kubectl does), groups them by node, finds the netobs agent on
each of those nodes (namespace netobs, label app.kubernetes.io/name=netobs-agent;
deploy them with ` + "`" + kube.DeployHint + "`" + `) and reaches it through the API
server's port-forward, so RBAC decides who may look.

What to observe: pod/NAME, deploy/NAME (its ReplicaSets' pods), node/NAME
(every pod on the node; with --node-netns the node's own namespace), or
-l SELECTOR (with -A in every namespace).`,
		Version:       buildinfo.Version(),
		SilenceErrors: true,
		SilenceUsage:  true,
		Annotations:   map[string]string{cobra.CommandDisplayNameAnnotation: "kubectl netobs"},
	}
	root.SetVersionTemplate("kubectl-netobs {{.Version}}\n")
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return usageError{err} })
	root.CompletionOptions.DisableDefaultCmd = true

	pf := root.PersistentFlags()
	a.loading = clientcmd.NewDefaultClientConfigLoadingRules()
	pf.StringVar(&a.loading.ExplicitPath, "kubeconfig", "", "path to the kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
	clientcmd.BindOverrideFlags(&a.overrides, pf, clientcmd.RecommendedConfigOverrideFlags(""))
	pf.BoolVarP(&a.allNamespaces, "all-namespaces", "A", false, "with -l: select pods in every namespace")
	pf.StringVarP(&a.selector, "selector", "l", "", "label selector (KEY=VALUE,KEY!=VALUE,KEY in (A,B)) selecting pods, or narrowing deploy/ and node/")
	pf.StringVar(&a.agentNS, "agent-namespace", kube.AgentNamespace, "namespace of the netobs agents")
	pf.IntVar(&a.agentPort, "agent-port", kube.AgentPort, "port the agents listen on, on their pod's loopback")
	pf.BoolVar(&a.spdyOnly, "spdy", false, "port-forward over SPDY only, without trying WebSockets first")

	root.AddCommand(a.captureCmd(), a.eventsCmd(), a.socketsCmd(), a.psCmd(), a.targetsCmd())
	return root
}

// resolver connects to the API server with the kubeconfig flags.
func (a *app) resolver() (*kube.Resolver, string, bool, error) {
	cfg := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(a.loading, &a.overrides)
	ns, explicit, err := cfg.Namespace()
	if err != nil {
		return nil, "", false, fmt.Errorf("kubeconfig: %w", err)
	}
	cs, d, err := a.env.Connect(cfg, a.spdyOnly)
	if err != nil {
		return nil, "", false, fmt.Errorf("kubeconfig: %w", err)
	}
	if a.agentPort < 1 || a.agentPort > 65535 {
		return nil, "", false, usageErrorf("--agent-port %d: want 1 to 65535", a.agentPort)
	}
	return &kube.Resolver{Client: cs, Dialer: d, AgentNamespace: a.agentNS, AgentPort: a.agentPort}, ns, explicit, nil
}

// splitArgs takes the leading arguments that name a kind (pod/, deploy/,
// node/, ...) as references and the rest as a filter expression, as
// tcpdump takes everything after its options.
//
// A first argument that looks like KIND/NAME with a kind it does not know
// (svc/web) is reported as such rather than taken for a filter: no filter
// expression starts with a word and a slash.
func splitArgs(args []string) ([]kube.Ref, []string, error) {
	var refs []kube.Ref
	for i, s := range args {
		kind, _, ok := strings.Cut(s, "/")
		if !ok || !kube.IsKind(kind) {
			if i == 0 && ok && isWord(kind) {
				_, err := kube.ParseRef(s)
				return nil, nil, err
			}
			return refs, args[i:], nil
		}
		r, err := kube.ParseRef(s)
		if err != nil {
			return nil, nil, err
		}
		refs = append(refs, r)
	}
	return refs, nil, nil
}

func isWord(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == '.') {
			return false
		}
	}
	return true
}

// resolve finds the targets of refs with the shared flags, and prints the
// warnings and what goes where on stderr.
func (a *app) resolve(ctx context.Context, refs []kube.Ref, nodeNetns bool) ([]kube.Target, error) {
	if len(refs) == 0 && a.selector == "" {
		return nil, usageErrorf("name what to observe: pod/NAME, deploy/NAME, node/NAME or -l SELECTOR")
	}
	if a.selector != "" {
		for _, ref := range refs {
			if ref.Kind == kube.KindPod {
				return nil, usageErrorf("-l narrows deploy/NAME and node/NAME or selects pods alone; it does not apply to %s", ref)
			}
		}
	}
	if a.allNamespaces && len(refs) > 0 {
		for _, ref := range refs {
			if ref.Kind != kube.KindNode {
				return nil, usageErrorf("-A applies to -l and node/NAME, not to %s", ref)
			}
		}
	}
	r, ns, explicit, err := a.resolver()
	if err != nil {
		return nil, err
	}
	res, err := r.Resolve(ctx, kube.Query{
		Refs: refs, Namespace: ns, NamespaceExplicit: explicit, AllNamespaces: a.allNamespaces,
		Selector: a.selector, NodeNetns: nodeNetns,
	})
	if err != nil {
		return nil, err
	}
	a.report(res)
	return res.Targets, nil
}

func (a *app) report(res *kube.Result) {
	for _, w := range res.Warnings {
		for _, line := range errLines(w) {
			fmt.Fprintln(a.stderr, "kubectl-netobs: warning: "+line)
		}
	}
}

// openOutput opens -w's FILE, or stdout for "-" unless it is a terminal.
func (a *app) openOutput(name string) (io.Writer, func() error, error) {
	if name == "-" {
		if f, ok := a.stdout.(*os.File); ok && termsafe.IsTerminal(f) {
			return nil, nil, usageErrorf("capture: refusing to write pcapng to a terminal: redirect stdout or pipe it (-w - | wireshark -k -i -)")
		}
		return a.stdout, func() error { return nil }, nil
	}
	f, err := os.Create(name)
	if err != nil {
		return nil, nil, err
	}
	return f, f.Close, nil
}
