// Package kubeplugin is the kubectl plugin's commands (`kubectl netobs
// capture|events|sockets|ps|targets`): cmd/kubectl-netobs only calls Run
// with DefaultEnv, and tests call Run with a fake clientset and a dialer
// that reaches the agents directly.
//
// Run resolves what the user names through netobs/kube (pods grouped by
// node, each node's agent pod, a port-forward dialer per agent) and hands
// the targets to Env.Agents; AgentClient, the real one, calls the agents
// with netobs/agent: one agent.Source per node, merged into one pcapng for
// capture, answers labelled with the node for events, sockets and ps.
//
// # Privileges
//
// None on the machine running it: the API server decides (RBAC), the
// agents do the namespace work on their nodes. Nothing here enters a
// namespace.
package kubeplugin
