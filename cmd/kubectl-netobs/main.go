// Command kubectl-netobs is the kubectl plugin of netobs: installed on the
// PATH as kubectl-netobs, it runs as `kubectl netobs`. It resolves pods,
// deployments and nodes through the API server with the user's kubeconfig,
// finds the netobs agent on each node concerned (deploy/kubernetes) and
// reaches it through the API server's port-forward. The commands are in
// internal/kubeplugin; see the README's Kubernetes section.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/netobs/netobs/internal/kubeplugin"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	code := kubeplugin.Run(ctx, os.Args[1:], os.Stdout, os.Stderr, kubeplugin.DefaultEnv())
	stop()
	os.Exit(code)
}
