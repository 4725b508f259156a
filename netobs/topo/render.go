package topo

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"

	"github.com/netobs/netobs/internal/termsafe"
)

// Format is an output format of the graph. The zero value is invalid.
type Format string

// The formats.
const (
	Text Format = "text"
	JSON Format = "json"
	DOT  Format = "dot"
	SVG  Format = "svg"
)

// Formats lists every format, in the order help texts name them.
var Formats = []Format{Text, JSON, DOT, SVG}

// ErrUnknownFormat: a format name is not text, json, dot or svg.
var ErrUnknownFormat = errors.New("unknown format")

// ErrNoGraphviz: SVG needs Graphviz's dot program, which is not on PATH.
var ErrNoGraphviz = errors.New("svg needs Graphviz's dot program on PATH: install graphviz (apt-get install graphviz), or write --format dot and render it elsewhere")

// ParseFormat parses a format name.
func ParseFormat(s string) (Format, error) {
	for _, f := range Formats {
		if strings.EqualFold(s, string(f)) {
			return f, nil
		}
	}
	return "", fmt.Errorf("%w %q (want text, json, dot or svg)", ErrUnknownFormat, s)
}

// Write renders g in format f to w. SVG runs Graphviz's dot, stopped if
// ctx is cancelled.
func (g *Graph) Write(ctx context.Context, w io.Writer, f Format) error {
	switch f {
	case Text:
		return g.WriteText(w)
	case JSON:
		return g.WriteJSON(w)
	case DOT:
		return g.WriteDOT(w)
	case SVG:
		return g.WriteSVG(ctx, w)
	}
	return fmt.Errorf("%w %q", ErrUnknownFormat, string(f))
}

// relations indexes the edges by interface, for the renderers.
type relations struct {
	ifaces map[string]*Interface
	nss    map[string]*Namespace
	peers  map[string][]string // interface ID -> veth peers
	parent map[string][]string // interface ID -> parents
	owners map[string][]*Process
	ports  map[string][]*Interface // master ID -> ports
}

func (g *Graph) relations() *relations {
	r := &relations{
		ifaces: map[string]*Interface{}, nss: map[string]*Namespace{},
		peers: map[string][]string{}, parent: map[string][]string{},
		owners: map[string][]*Process{}, ports: map[string][]*Interface{},
	}
	procs := map[string]*Process{}
	for _, p := range g.Processes {
		procs[p.ID] = p
	}
	for _, n := range g.Namespaces {
		r.nss[n.ID] = n
		for _, i := range n.Interfaces {
			r.ifaces[i.ID] = i
		}
	}
	for _, e := range g.Edges {
		switch e.Kind {
		case Veth:
			r.peers[e.From] = append(r.peers[e.From], e.To)
			r.peers[e.To] = append(r.peers[e.To], e.From)
		case Parent:
			r.parent[e.From] = append(r.parent[e.From], e.To)
		case Owner:
			if p := procs[e.From]; p != nil {
				r.owners[e.To] = append(r.owners[e.To], p)
			}
		case Port:
			if i := r.ifaces[e.From]; i != nil {
				r.ports[e.To] = append(r.ports[e.To], i)
			}
		}
	}
	return r
}

// name returns an interface's name as seen from namespace ns: NAME in the
// same namespace, NAME@REF in another.
func (r *relations) name(id, ns string) string {
	i := r.ifaces[id]
	if i == nil {
		return id
	}
	if i.NS == ns {
		return i.Name
	}
	if n := r.nss[i.NS]; n != nil {
		return i.Name + "@" + n.Ref()
	}
	return i.Name + "@" + i.NS
}

// header describes a namespace in one line (not escaped).
func header(n *Namespace) string {
	var parts []string
	parts = append(parts, n.ID)
	if len(n.Names) > 0 {
		parts = append(parts, strings.Join(n.Names, ", "))
	}
	if n.Host {
		parts = append(parts, "(host)")
	}
	if n.PID != 0 {
		cmd := n.Command
		if len(cmd) > 60 {
			cmd = cmd[:57] + "..."
		}
		parts = append(parts, fmt.Sprintf("pid %d: %s", n.PID, cmd))
	}
	return strings.Join(parts, " ")
}

// WriteText writes an indented tree per namespace: interfaces by index,
// ports under their master, each with its peers, parents and owners.
// Every name is escaped for a terminal.
func (g *Graph) WriteText(w io.Writer) error {
	bw := bufio.NewWriter(w)
	r := g.relations()
	for k, n := range g.Namespaces {
		if k > 0 {
			bw.WriteString("\n")
		}
		bw.WriteString(termsafe.Escape(header(n)) + "\n")
		if n.Err != "" {
			bw.WriteString("  error: " + termsafe.Escape(n.Err) + "\n")
		}
		done := map[string]bool{}
		var walk func(i *Interface, depth int)
		walk = func(i *Interface, depth int) {
			if done[i.ID] {
				return
			}
			done[i.ID] = true
			bw.WriteString(strings.Repeat("  ", depth) + termsafe.Escape(r.line(i)) + "\n")
			for _, p := range r.ports[i.ID] {
				walk(p, depth+1)
			}
		}
		for _, i := range n.Interfaces {
			if i.Master == "" || r.ifaces[i.Master] == nil {
				walk(i, 1)
			}
		}
		for _, i := range n.Interfaces { // in a master loop, if the kernel ever made one
			walk(i, 1)
		}
	}
	return bw.Flush()
}

// line describes an interface in one line (not escaped).
func (r *relations) line(i *Interface) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %s mtu %d", i.Name, i.Kind, i.State, i.MTU)
	if !i.Up {
		b.WriteString(" (admin down)")
	}
	if i.MAC != "" {
		b.WriteString(" " + i.MAC)
	}
	for _, a := range shortAddrs(i.Addrs) {
		b.WriteString(" " + a)
	}
	if i.Physical {
		b.WriteString(" physical " + strings.Trim(i.Bus+"/"+i.Device, "/"))
	}
	for _, p := range r.peers[i.ID] {
		b.WriteString(" ⇄ " + r.name(p, i.NS))
	}
	for _, p := range r.parent[i.ID] {
		b.WriteString(" on " + r.name(p, i.NS))
	}
	if i.Unresolved != "" {
		if i.Kind == "veth" {
			b.WriteString(" ⇄ " + i.Unresolved + " (not drawn)")
		} else {
			b.WriteString(" on " + i.Unresolved + " (not drawn)")
		}
	}
	for _, p := range r.owners[i.ID] {
		fmt.Fprintf(&b, " held by %s[%d]", p.Comm, p.PID)
	}
	return b.String()
}

// maxAddrs is how many addresses of an interface text and DOT show; JSON
// has them all.
const maxAddrs = 4

func shortAddrs(addrs []string) []string {
	if len(addrs) <= maxAddrs {
		return addrs
	}
	return append(addrs[:maxAddrs:maxAddrs], fmt.Sprintf("(%d more)", len(addrs)-maxAddrs))
}

// WriteJSON writes the graph as one JSON object and a newline:
// {"nodes":[...],"edges":[...]}, where each node has a "type"
// (namespace, interface, process) and an "id" that edges refer to.
func (g *Graph) WriteJSON(w io.Writer) error {
	type nsNode struct {
		Type string `json:"type"`
		*Namespace
	}
	type ifNode struct {
		Type string `json:"type"`
		*Interface
	}
	type procNode struct {
		Type string `json:"type"`
		*Process
	}
	nodes := []any{}
	for _, n := range g.Namespaces {
		nodes = append(nodes, nsNode{"namespace", n})
	}
	for _, n := range g.Namespaces {
		for _, i := range n.Interfaces {
			nodes = append(nodes, ifNode{"interface", i})
		}
	}
	for _, p := range g.Processes {
		nodes = append(nodes, procNode{"process", p})
	}
	edges := g.Edges
	if edges == nil {
		edges = []Edge{}
	}
	return json.NewEncoder(w).Encode(struct {
		Nodes []any  `json:"nodes"`
		Edges []Edge `json:"edges"`
	}{nodes, edges})
}

// dotQuote returns s as a DOT string whose label shows s as text: no
// control characters (termsafe), no Graphviz escapes (\N, \l, ...) and
// no HTML entities (&lt;) are interpreted.
func dotQuote(s string) string {
	s = termsafe.Escape(s)
	s = strings.NewReplacer(`\`, `\\`, `"`, `\"`, `&`, `&amp;`).Replace(s)
	return `"` + s + `"`
}

// dotLabel joins lines, each quoted, with DOT's centred line break.
func dotLabel(lines ...string) string {
	var parts []string
	for _, l := range lines {
		q := dotQuote(l)
		parts = append(parts, q[1:len(q)-1])
	}
	return `"` + strings.Join(parts, `\n`) + `"`
}

// WriteDOT writes the graph for Graphviz: a cluster per namespace, a box
// per interface, an ellipse per process; veth pairs as plain lines, ports
// as dashed arrows to their master, stacked devices as dotted arrows to
// their parent, owners as bold arrows.
func (g *Graph) WriteDOT(w io.Writer) error {
	bw := bufio.NewWriter(w)
	bw.WriteString("digraph netobs {\n")
	bw.WriteString("\tgraph [rankdir=LR, fontname=\"Helvetica\", fontsize=11];\n")
	bw.WriteString("\tnode [shape=box, style=rounded, fontname=\"Helvetica\", fontsize=10];\n")
	bw.WriteString("\tedge [fontname=\"Helvetica\", fontsize=9];\n")
	for k, n := range g.Namespaces {
		fmt.Fprintf(bw, "\tsubgraph \"cluster_%d\" {\n", k)
		label := []string{n.ID}
		if len(n.Names) > 0 {
			label = append(label, strings.Join(n.Names, ", "))
		}
		if n.Host {
			label = append(label, "host")
		}
		if n.PID != 0 && len(n.Names) == 0 {
			label = append(label, "pid "+strconv.Itoa(n.PID))
		}
		if n.Err != "" {
			label = append(label, "error: "+n.Err)
		}
		fmt.Fprintf(bw, "\t\tlabel=%s;\n", dotLabel(label...))
		if n.Host {
			bw.WriteString("\t\tstyle=bold;\n")
		}
		for _, i := range n.Interfaces {
			lines := []string{i.Name, i.Kind + " " + i.State}
			lines = append(lines, shortAddrs(i.Addrs)...)
			if i.Physical {
				lines = append(lines, "physical "+strings.Trim(i.Bus+"/"+i.Device, "/"))
			}
			if i.Unresolved != "" {
				lines = append(lines, "→ "+i.Unresolved)
			}
			attrs := ""
			if !i.Up {
				attrs = ", color=gray50, fontcolor=gray50"
			}
			fmt.Fprintf(bw, "\t\t%s [label=%s%s];\n", dotQuote(i.ID), dotLabel(lines...), attrs)
		}
		if len(n.Interfaces) == 0 {
			// An empty cluster is not drawn: give it a point to hold.
			fmt.Fprintf(bw, "\t\t%s [shape=point, style=invis];\n", dotQuote(n.ID))
		}
		bw.WriteString("\t}\n")
	}
	for _, p := range g.Processes {
		fmt.Fprintf(bw, "\t%s [shape=ellipse, style=solid, label=%s];\n", dotQuote(p.ID), dotLabel(p.Comm, "pid "+strconv.Itoa(p.PID)))
	}
	for _, e := range g.Edges {
		var attrs string
		switch e.Kind {
		case Veth:
			attrs = "dir=none, penwidth=2"
		case Port:
			attrs = "style=dashed, arrowhead=empty"
		case Parent:
			attrs = "style=dotted"
		case Owner:
			attrs = "style=bold, arrowhead=dot"
		}
		fmt.Fprintf(bw, "\t%s -> %s [%s];\n", dotQuote(e.From), dotQuote(e.To), attrs)
	}
	bw.WriteString("}\n")
	return bw.Flush()
}

// WriteSVG renders the graph to SVG with Graphviz's dot (`dot -Tsvg`),
// which must be on PATH (ErrNoGraphviz otherwise). Graphviz escapes the
// text of labels for XML; WriteDOT has made sure it sees no markup of
// its own.
func (g *Graph) WriteSVG(ctx context.Context, w io.Writer) error {
	path, err := exec.LookPath("dot")
	if err != nil {
		return ErrNoGraphviz
	}
	var src, stderr bytes.Buffer
	if err := g.WriteDOT(&src); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, path, "-Tsvg")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = &src, w, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if i := strings.IndexByte(msg, '\n'); i >= 0 {
			msg = msg[:i]
		}
		if msg != "" {
			return fmt.Errorf("dot -Tsvg: %w: %s", err, termsafe.Escape(msg))
		}
		return fmt.Errorf("dot -Tsvg: %w", err)
	}
	return nil
}
