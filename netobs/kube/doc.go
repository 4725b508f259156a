// Package kube finds the netobs agents that can observe a set of Kubernetes
// pods and opens connections to them through the API server.
//
// A [Resolver] turns what a user names (pod/NAME, deploy/NAME, node/NAME, a
// label selector) into pods through the API server, groups the pods by the
// node they run on, finds the netobs agent pod on each of those nodes (a
// Running and Ready pod labelled app.kubernetes.io/name=netobs-agent in
// namespace netobs, as deploy/kubernetes makes them) and returns one
// [Target] per node. A Target's Dial opens a byte stream to that agent's
// loopback port (7447) through the API server's pods/portforward
// subresource, so RBAC decides who may reach an agent, and the agent asked
// for `pod:NAMESPACE/NAME` observes that pod on its node.
//
// # Privileges
//
// None on the machine running it: everything goes through the API server
// with the user's kubeconfig. The user needs get/list on pods (and on
// deployments, replicasets and nodes for those forms) and create on
// pods/portforward in the agents' namespace; a refusal is a
// [*ForbiddenError] naming the verb and resource.
//
// # Threads and namespaces
//
// Nothing here enters a namespace; the agents do that on their nodes.
package kube
