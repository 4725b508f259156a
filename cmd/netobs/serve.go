package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/netobs/netobs/netobs/web"
	"github.com/spf13/cobra"
)

func init() { register(newServeCmd) }

func newServeCmd(a *app) *cobra.Command {
	var (
		listen string
		token  string
	)
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve a web page showing the namespace graph, live",
		Long: `serve serves a web page that draws every network namespace, its interfaces
and the links between them (what 'netobs topo --all' shows), redrawn as links
and addresses change, with a log of those events and a filter box. The page
and its script are embedded in netobs: no CDN, it works offline.

It listens on loopback (127.0.0.1:7070) by default. Any other address needs a
token: give --token, or netobs makes one; every request must then carry it,
and the URL printed on stderr does. Interface and process names from inside
namespaces are shown as text, never run as HTML.

Each interface on the page has a button that starts a capture on it; the
stop button that appears ends it and saves a pcapng file. Received and sent
packet counters show next to each interface. Clicking a namespace lists its
TCP and UDP sockets and their processes beside the graph.

The page's API, for other clients too:
  GET /api/topology   the graph as 'netobs topo --format json' prints it,
                      with each interface's packet and byte counters
  GET /api/events     server-sent events, one per link, addr or nsid event,
                      as 'netobs events --json' prints them
  GET /api/sockets?ns=net:[INODE]
                      that namespace's TCP and UDP sockets and processes,
                      a JSON array of 'netobs sockets --json' objects
  POST /api/capture?ns=net:[INODE]&iface=NAME
                      pcapng of that interface, streamed until the client
                      goes away or the capture is stopped; the header
                      X-Netobs-Capture is its id
  POST /api/capture/stop?id=ID
                      ends that capture, with the kernel's drop count
A POST that a browser says comes from another site is refused.

Needs root, like topo and events --all. Stops on SIGINT or SIGTERM.`,
		Example: `  netobs serve
  netobs serve --listen 127.0.0.1:0          # any free port; the URL is printed
  netobs serve --listen 0.0.0.0:7070         # prints a URL with a generated token`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			host, _, err := net.SplitHostPort(listen)
			if err != nil {
				return usageErrorf("serve: --listen %q: want HOST:PORT", listen)
			}
			ip := net.ParseIP(host)
			loopback := host == "localhost" || (ip != nil && ip.IsLoopback())
			if !loopback && token == "" {
				token = web.NewToken()
			}
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return fmt.Errorf("serve: %w", err)
			}
			// The host as given (Go reports 0.0.0.0 as [::]), the port as bound.
			addr := net.JoinHostPort(host, fmt.Sprint(ln.Addr().(*net.TCPAddr).Port))
			s, err := web.New(web.Options{Addr: addr, Token: token, HostRoot: a.hostRoot})
			if err != nil {
				ln.Close()
				return fmt.Errorf("serve: %w", err)
			}
			srv := &http.Server{
				Handler:           s.Handler(),
				ReadHeaderTimeout: 10 * time.Second,
				BaseContext:       func(net.Listener) context.Context { return a.ctx },
			}
			url := "http://" + addr + "/"
			if token != "" {
				url += "?token=" + token
			}
			fmt.Fprintf(a.stderr, "netobs: serving %s (Ctrl-C to stop)\n", url)
			done := make(chan error, 1)
			go func() { done <- srv.Serve(ln) }()
			select {
			case err := <-done:
				return fmt.Errorf("serve: %w", err)
			case <-a.ctx.Done():
			}
			// The request contexts derive from a.ctx: event streams end now.
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
				return fmt.Errorf("serve: %w", err)
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&listen, "listen", "127.0.0.1:7070", "address to listen on (HOST:PORT); not loopback needs a token")
	fl.StringVar(&token, "token", "", "token every request must carry (Authorization: Bearer or ?token=); generated when --listen is not loopback")
	return cmd
}
