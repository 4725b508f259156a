package test

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/netobs/netobs/internal/nstest"
)

// topoLab: two namespaces joined by a veth pair, one end a port of a
// bridge.
func topoLab(t *testing.T) (a, b string) {
	t.Helper()
	a, b = nstest.NetNS(t), nstest.NetNS(t)
	nstest.Run(t, "ip", "-n", b, "link", "add", "br0", "type", "bridge")
	nstest.Run(t, "ip", "-n", a, "link", "add", "eth0", "type", "veth", "peer", "name", "port0", "netns", b)
	nstest.Run(t, "ip", "-n", b, "link", "set", "port0", "master", "br0")
	nstest.Run(t, "ip", "-n", a, "addr", "add", "10.78.0.1/24", "dev", "eth0")
	return a, b
}

// TestTopoFormats: text names the peer across namespaces and puts the
// port under its bridge; json has the nodes and edges; dot parses with
// Graphviz; svg (written with -o) is well-formed XML.
func TestTopoFormats(t *testing.T) {
	nstest.RequireTools(t, "dot")
	a, b := topoLab(t)
	text := mustNetobs(t, "topo", a, b)
	for _, want := range []string{"eth0 veth", "⇄ port0@" + b, "10.78.0.1/24", "\n  br0 bridge", "\n    port0 veth", "⇄ eth0@" + a} {
		if !strings.Contains(text, want) {
			t.Errorf("text lacks %q:\n%s", want, text)
		}
	}

	var g struct {
		Nodes []map[string]any `json:"nodes"`
		Edges []struct{ Kind, From, To string }
	}
	out := mustNetobs(t, "topo", "--format", "json", a, b)
	if err := json.Unmarshal([]byte(out), &g); err != nil {
		t.Fatalf("json: %v\n%s", err, out)
	}
	kinds := map[string]int{}
	for _, e := range g.Edges {
		kinds[e.Kind]++
	}
	types := map[any]int{}
	for _, n := range g.Nodes {
		types[n["type"]]++
	}
	if kinds["veth"] != 1 || kinds["port"] != 1 || len(g.Edges) != 2 {
		t.Errorf("edges %+v, want one veth and one port", g.Edges)
	}
	if types["namespace"] != 2 || types["interface"] != 5 {
		t.Errorf("node types %v, want 2 namespaces and 5 interfaces (lo, eth0; lo, br0, port0)", types)
	}

	dir := t.TempDir()
	dotFile := filepath.Join(dir, "lab.dot")
	mustNetobs(t, "topo", "--format", "dot", "-o", dotFile, a, b)
	if out, err := exec.Command("dot", "-Tplain", dotFile).CombinedOutput(); err != nil {
		t.Errorf("dot cannot read netobs's DOT: %v\n%s", err, out)
	}
	svgFile := filepath.Join(dir, "lab.svg")
	if out := mustNetobs(t, "topo", "--format", "svg", "-o", svgFile, a, b); out != "" {
		t.Errorf("-o FILE wrote to stdout too: %q", out)
	}
	svg, err := os.ReadFile(svgFile)
	if err != nil {
		t.Fatal(err)
	}
	dec := xml.NewDecoder(bytes.NewReader(svg))
	for {
		_, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("svg is not XML: %v", err)
		}
	}
	if !bytes.Contains(svg, []byte("port0")) {
		t.Errorf("svg does not show port0")
	}
}

// TestTopoErrors: usage mistakes exit 2, a missing namespace or a missing
// Graphviz exit 1, each with one line naming the fix; a failed -o file is
// not left behind.
func TestTopoErrors(t *testing.T) {
	a, _ := topoLab(t)
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"topo", "--format", "png", a}, 2, `unknown format "png"`},
		{[]string{"topo", "--all", a}, 2, "give it no NSREF"},
		{[]string{"topo", "no-such-ns-" + a}, 1, "no such named network namespace"},
	} {
		r := netobs(t, c.args...)
		if r.code != c.code || !strings.Contains(r.stderr, c.want) || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
			t.Errorf("netobs %s: exit %d, stderr %q; want exit %d and one line with %q", strings.Join(c.args, " "), r.code, r.stderr, c.code, c.want)
		}
	}
	out := filepath.Join(t.TempDir(), "x.svg")
	cmd := exec.Command(netobsBin, "topo", "--format", "svg", "-o", out, a)
	cmd.Env = append(os.Environ(), "PATH=/nonexistent")
	stderr, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(string(stderr), "install graphviz") {
		t.Errorf("svg without dot on PATH: %v, %q; want exit 1 naming graphviz", err, stderr)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("failed svg left %s behind: %v", out, err)
	}
}

// TestServe: serve prints the URL it listens on, answers the API there
// with the topology, refuses a foreign Host, and on SIGINT ends its event
// streams and exits 0; off loopback it makes a token the URL carries and
// requests without it are refused.
func TestServe(t *testing.T) {
	nstest.RequireRoot(t)
	a, _ := topoLab(t)
	p := startNetobs(t, "serve", "--listen", "127.0.0.1:0")
	url := p.waitStderr(t, `serving (http://127\.0\.0\.1:\d+/) `)[1]
	get := func(u, host string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", u, nil)
		if host != "" {
			req.Host = host
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", u, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get(url+"api/topology", ""); code != 200 || !strings.Contains(body, `"names":["`+a+`"]`) {
		t.Errorf("topology: %d, lab namespace %s missing:\n%.300s", code, a, body)
	}
	if code, _ := get(url, "rebound.example"); code != http.StatusMisdirectedRequest {
		t.Errorf("foreign Host: %d, want 421", code)
	}
	// An open event stream must not keep serve from stopping.
	resp, err := http.Get(url + "api/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("events Content-Type %q", ct)
	}
	if code := p.stop(t, syscall.SIGINT); code != 0 {
		t.Errorf("serve exited %d on SIGINT; stderr:\n%s", code, p.stderr.String())
	}

	p = startNetobs(t, "serve", "--listen", "0.0.0.0:0")
	m := p.waitStderr(t, `serving http://0\.0\.0\.0:(\d+)/\?token=([0-9a-f]{32}) `)
	base := "http://127.0.0.1:" + m[1] + "/"
	if code, _ := get(base, ""); code != http.StatusUnauthorized {
		t.Errorf("no token: %d, want 401", code)
	}
	if code, _ := get(base+"?token="+m[2], ""); code != 200 {
		t.Errorf("with the printed token: %d, want 200", code)
	}
	if code := p.stop(t, syscall.SIGTERM); code != 0 {
		t.Errorf("serve exited %d on SIGTERM", code)
	}
}
