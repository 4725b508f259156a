package main

import (
	"fmt"
	"net"
	"time"

	"github.com/spf13/cobra"
)

func init() { register(newHealthcheckCmd) }

// newHealthcheckCmd is the agent's readiness probe in deploy/kubernetes:
// the agent listens on its pod's loopback, which kubelet's TCP and gRPC
// probes (aimed at the pod IP) cannot reach, and the image (FROM scratch)
// has no shell or tool to try it from inside the container.
func newHealthcheckCmd(a *app) *cobra.Command {
	var addr string
	var timeout time.Duration
	c := &cobra.Command{
		Use:    "healthcheck --tcp HOST:PORT",
		Short:  "Exit 0 if a TCP connection to HOST:PORT opens (a readiness probe for containers without a shell)",
		Hidden: true,
		Args:   exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			if addr == "" {
				return usageErrorf("healthcheck: --tcp HOST:PORT is required")
			}
			if _, _, err := net.SplitHostPort(addr); err != nil {
				return usageErrorf("healthcheck: --tcp %q: %v", addr, err)
			}
			d := net.Dialer{Timeout: timeout}
			conn, err := d.DialContext(a.ctx, "tcp", addr)
			if err != nil {
				return fmt.Errorf("healthcheck: %w", err)
			}
			return conn.Close()
		},
	}
	c.Flags().StringVar(&addr, "tcp", "", "address to connect to")
	c.Flags().DurationVar(&timeout, "timeout", 3*time.Second, "give up after this long")
	return c
}
