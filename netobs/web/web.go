package web

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/netobs/netobs/netobs/events"
	"github.com/netobs/netobs/netobs/topo"
)

//go:embed assets
var assets embed.FS

// ErrTokenRequired: the server listens on an address other than loopback
// without a token.
var ErrTokenRequired = errors.New("a token is required to listen on an address other than loopback")

// Options configures a Server.
type Options struct {
	// Addr is the address the server listens on (host:port), used to
	// check Host headers and whether a token is needed.
	Addr string
	// Token, if not empty, must be carried by every request. It is
	// required when Addr is not a loopback address.
	Token string
	// Heartbeat is how often an idle event stream gets a comment line,
	// so proxies and browsers keep it open; zero means 15 seconds.
	Heartbeat time.Duration
}

// Server serves the page and its API. Create it with New.
type Server struct {
	opts  Options
	hosts map[string]bool // Host header values accepted
	mux   *http.ServeMux
}

// New checks opts and returns a server; the caller listens on opts.Addr
// and serves Handler.
func New(opts Options) (*Server, error) {
	host, port, err := net.SplitHostPort(opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("listen address %q: %w", opts.Addr, err)
	}
	ip := net.ParseIP(host)
	loopback := host == "localhost" || (ip != nil && ip.IsLoopback())
	if !loopback && opts.Token == "" {
		return nil, ErrTokenRequired
	}
	if opts.Heartbeat == 0 {
		opts.Heartbeat = 15 * time.Second
	}
	s := &Server{opts: opts, hosts: map[string]bool{}, mux: http.NewServeMux()}
	s.hosts[net.JoinHostPort(host, port)] = true
	if loopback {
		for _, h := range []string{"localhost", "127.0.0.1", "::1"} {
			s.hosts[net.JoinHostPort(h, port)] = true
		}
	}
	static, _ := fs.Sub(assets, "assets")
	s.mux.Handle("GET /", http.FileServerFS(static))
	s.mux.HandleFunc("GET /api/topology", s.topology)
	s.mux.HandleFunc("GET /api/events", s.events)
	return s, nil
}

// NewToken returns a random token for Options.Token.
func NewToken() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Handler returns the server's handler, with the checks every request
// passes first.
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-store")
		// Without a token, the Host check is what keeps a web page that
		// rebinds its own name to 127.0.0.1 out; with one, the token does
		// (and the host may be any name of a machine listening on all).
		if s.opts.Token == "" && !s.hosts[r.Host] {
			http.Error(w, "unknown host", http.StatusMisdirectedRequest)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			// Nothing here changes state; what will must also check
			// the Origin header.
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		if s.opts.Token != "" && !s.authorized(r) {
			http.Error(w, "token required", http.StatusUnauthorized)
			return
		}
		s.mux.ServeHTTP(w, r)
	})
}

func (s *Server) authorized(r *http.Request) bool {
	got := r.URL.Query().Get("token")
	if v, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		got = v
	}
	return subtle.ConstantTimeCompare([]byte(got), []byte(s.opts.Token)) == 1
}

func (s *Server) topology(w http.ResponseWriter, r *http.Request) {
	g, err := topo.Build(topo.Options{All: true})
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	g.WriteJSON(w)
}

// events streams routing-netlink events of every namespace as
// server-sent events until the client goes away.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	kinds, _ := events.ParseKinds("link,addr,nsid")
	wt, err := events.New(ctx, nil, events.Options{All: true, Kinds: kinds})
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	defer wt.Close()
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, ": netobs events\n\n")
	fl.Flush()
	tick := time.NewTicker(s.opts.Heartbeat)
	defer tick.Stop()
	ch := wt.Events()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if _, err := fmt.Fprint(w, ": keepalive\n\n"); err != nil {
				return
			}
			fl.Flush()
		case ev, ok := <-ch:
			if !ok {
				return
			}
			b, err := json.Marshal(ev)
			if err != nil {
				continue
			}
			// JSON has no raw newlines, so one data line holds it.
			if _, err := fmt.Fprintf(w, "data: %s\n\n", b); err != nil {
				return
			}
			fl.Flush()
		}
	}
}
