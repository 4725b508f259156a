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
	"sync"
	"time"

	"github.com/netobs/netobs/netobs/capture"
	"github.com/netobs/netobs/netobs/events"
	"github.com/netobs/netobs/netobs/pktout"
	"github.com/netobs/netobs/netobs/sockdiag"
	"github.com/netobs/netobs/netobs/topo"
	"github.com/netobs/netobs/nsjoin"
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
	// HostRoot is where the host's / is mounted when the server runs in a
	// container with the host's /proc and /run under it (see
	// topo.Options.HostRoot); "" or "/" means its own.
	HostRoot string
}

// Server serves the page and its API. Create it with New.
type Server struct {
	opts   Options
	hosts  map[string]bool // Host header values accepted
	mux    *http.ServeMux
	origin *http.CrossOriginProtection

	mu   sync.Mutex
	caps map[string]*runningCapture // running captures by ID; guarded by mu
}

// runningCapture is a capture the page started: stopCapture cancels it and
// reads its final counts from stats (nil when it ended without them).
type runningCapture struct {
	cancel context.CancelFunc
	stats  chan []pktout.Stats // capacity 1, sent once
}

// CaptureCounts is what POST /api/capture/stop answers: the capture's
// final counts, as tcpdump prints them, over all its interfaces.
type CaptureCounts struct {
	Captured uint64 `json:"captured"`
	Received uint64 `json:"received"`
	Dropped  uint64 `json:"dropped"`
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
	s := &Server{opts: opts, hosts: map[string]bool{}, mux: http.NewServeMux(),
		origin: http.NewCrossOriginProtection(), caps: map[string]*runningCapture{}}
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
	s.mux.HandleFunc("GET /api/sockets", s.sockets)
	s.mux.HandleFunc("POST /api/capture", s.capture)
	s.mux.HandleFunc("POST /api/capture/stop", s.stopCapture)
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
		switch {
		case r.Method == http.MethodGet || r.Method == http.MethodHead:
		case r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, "/api/capture"):
			// A POST does something: only the page itself (or a
			// client that is no browser) may send it, never another
			// site's page through the user's browser.
			if err := s.origin.Check(r); err != nil {
				http.Error(w, "cross-origin request refused", http.StatusForbidden)
				return
			}
		default:
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
	g, err := topo.Build(topo.Options{All: true, HostRoot: s.opts.HostRoot})
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	g.WriteJSON(w)
}

// openNamespace opens the namespace with topo's node ID nsID, or answers
// 404 (no such namespace) or 500 and reports false.
func (s *Server) openNamespace(w http.ResponseWriter, nsID string) (*nsjoin.NS, bool) {
	ns, err := topo.OpenNamespaceUnder(s.opts.HostRoot, nsID)
	if errors.Is(err, fs.ErrNotExist) {
		http.Error(w, fmt.Sprintf("no namespace %q", nsID), http.StatusNotFound)
		return nil, false
	} else if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return nil, false
	}
	return ns, true
}

// sockets answers the TCP and UDP sockets of namespace ns (topo's node
// ID) with the processes holding them, as a JSON array of sockdiag's
// objects.
func (s *Server) sockets(w http.ResponseWriter, r *http.Request) {
	nsID := r.URL.Query().Get("ns")
	if nsID == "" {
		http.Error(w, "want an ns parameter", http.StatusBadRequest)
		return
	}
	ns, ok := s.openNamespace(w, nsID)
	if !ok {
		return
	}
	defer ns.Close()
	socks, err := sockdiag.List(ns, sockdiag.Options{})
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	if socks == nil {
		socks = []sockdiag.Socket{}
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(socks)
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
	wt, err := events.New(ctx, nil, events.Options{All: true, Kinds: kinds, HostRoot: s.opts.HostRoot})
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

// maxCaptures bounds the captures running at once.
const maxCaptures = 8

// streamer is a pcapng writer that also pushes what it wrote to the
// client at every flush.
type streamer struct {
	*pktout.PcapngWriter
	fl http.Flusher
}

func (st streamer) Flush() error {
	err := st.PcapngWriter.Flush()
	st.fl.Flush()
	return err
}

// safeName keeps letters, digits, '.', '-' and '_' of s for a file name.
func safeName(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-') {
			b[i] = '_'
		}
	}
	return string(b)
}

// capture captures on interface iface of namespace ns (topo's node ID)
// and streams pcapng until the client goes away or stopCapture stops it;
// then the final statistics blocks carry the kernel's drop counts.
func (s *Server) capture(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	q := r.URL.Query()
	nsID, iface := q.Get("ns"), q.Get("iface")
	if nsID == "" || iface == "" {
		http.Error(w, "want ns and iface parameters", http.StatusBadRequest)
		return
	}
	ns, ok := s.openNamespace(w, nsID)
	if !ok {
		return
	}
	defer ns.Close()
	c, err := capture.OpenContext(r.Context(), []capture.Target{{NS: ns}}, capture.Config{Interfaces: []string{iface}, Immediate: true})
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	defer c.Close()
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	id := NewToken()
	s.mu.Lock()
	if len(s.caps) >= maxCaptures {
		s.mu.Unlock()
		http.Error(w, fmt.Sprintf("%d captures are running already", maxCaptures), http.StatusTooManyRequests)
		return
	}
	rc := &runningCapture{cancel: cancel, stats: make(chan []pktout.Stats, 1)}
	s.caps[id] = rc
	s.mu.Unlock()
	var final []pktout.Stats
	defer func() {
		s.mu.Lock()
		delete(s.caps, id)
		s.mu.Unlock()
		rc.stats <- final
	}()

	h := w.Header()
	h.Set("Content-Type", "application/x-pcapng")
	h.Set("Content-Disposition", fmt.Sprintf(`attachment; filename="netobs-%d-%s.pcapng"`, ns.ID().Inode, safeName(iface)))
	h.Set("X-Netobs-Capture", id)
	w.WriteHeader(http.StatusOK)
	pw, err := pktout.NewPcapngWriter(w, c.Interfaces(), "netobs serve")
	if err != nil {
		return
	}
	st := streamer{pw, fl}
	st.Flush()
	if err := c.Run(ctx, st); err != nil {
		return // the client went away, or the capture failed mid-stream: no way to say so now
	}
	final = c.Stats()
	pw.WriteStats(final)
	st.Flush()
}

// stopCapture ends the capture with the given id: its stream gets its
// statistics blocks and ends, and the answer is its final counts
// (CaptureCounts), the kernel's drops among them; 204 if it ended without
// them (its client went away first).
func (s *Server) stopCapture(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("id")
	s.mu.Lock()
	rc := s.caps[id]
	s.mu.Unlock()
	if rc == nil {
		http.Error(w, "no such capture", http.StatusNotFound)
		return
	}
	rc.cancel()
	var final []pktout.Stats
	select {
	case final = <-rc.stats:
	case <-r.Context().Done():
		return
	}
	if final == nil {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	var sum CaptureCounts
	for _, st := range final {
		sum.Captured += st.Captured
		sum.Received += st.Received
		sum.Dropped += st.Dropped
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(sum)
}
