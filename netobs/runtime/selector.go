package runtime

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"unicode"
)

// ErrBadSelector: a malformed label selector.
var ErrBadSelector = errors.New("malformed label selector")

// Selector is a label selector as kubectl's -l takes it, equality-based:
// comma-separated requirements KEY=VALUE (or KEY==VALUE), KEY!=VALUE,
// KEY (the label is set) and !KEY (it is not). All must hold.
type Selector []Requirement

// Requirement is one term of a Selector.
type Requirement struct {
	Key, Value string
	// Op is one of "=", "!=", "exists", "!exists".
	Op string
}

// ParseSelector parses a label selector. Keys are up to 253+63 bytes of
// letters, digits, '-', '_', '.' and '/'; values up to 63 bytes of
// letters, digits, '-', '_' and '.' (Kubernetes' label syntax), empty
// allowed.
func ParseSelector(s string) (Selector, error) {
	if strings.TrimSpace(s) == "" {
		return nil, fmt.Errorf("%w: empty; want KEY=VALUE[,...]", ErrBadSelector)
	}
	var sel Selector
	for _, term := range strings.Split(s, ",") {
		term = strings.TrimSpace(term)
		var r Requirement
		switch {
		case strings.Contains(term, "!="):
			r.Key, r.Value, _ = strings.Cut(term, "!=")
			r.Op = "!="
		case strings.Contains(term, "=="):
			r.Key, r.Value, _ = strings.Cut(term, "==")
			r.Op = "="
		case strings.Contains(term, "="):
			r.Key, r.Value, _ = strings.Cut(term, "=")
			r.Op = "="
		case strings.HasPrefix(term, "!"):
			r.Key, r.Op = term[1:], "!exists"
		default:
			r.Key, r.Op = term, "exists"
		}
		r.Key, r.Value = strings.TrimSpace(r.Key), strings.TrimSpace(r.Value)
		if !validLabel(r.Key, 253+1+63, "/") || r.Key == "" {
			return nil, fmt.Errorf("%w %q: bad key in %q (letters, digits, '-', '_', '.', '/')", ErrBadSelector, s, term)
		}
		if !validLabel(r.Value, 63, "") {
			return nil, fmt.Errorf("%w %q: bad value in %q (up to 63 letters, digits, '-', '_', '.')", ErrBadSelector, s, term)
		}
		sel = append(sel, r)
	}
	return sel, nil
}

func validLabel(s string, max int, extra string) bool {
	if len(s) > max {
		return false
	}
	for _, c := range s {
		if c > unicode.MaxASCII || !(c == '-' || c == '_' || c == '.' || strings.ContainsRune(extra, c) || unicode.IsLetter(c) || unicode.IsDigit(c)) {
			return false
		}
	}
	return true
}

// String gives the selector back in its canonical form.
func (s Selector) String() string {
	var terms []string
	for _, r := range s {
		switch r.Op {
		case "exists":
			terms = append(terms, r.Key)
		case "!exists":
			terms = append(terms, "!"+r.Key)
		default:
			terms = append(terms, r.Key+r.Op+r.Value)
		}
	}
	return strings.Join(terms, ",")
}

// Matches reports whether labels satisfy every requirement.
func (s Selector) Matches(labels map[string]string) bool {
	for _, r := range s {
		v, ok := labels[r.Key]
		switch r.Op {
		case "=":
			if !ok || v != r.Value {
				return false
			}
		case "!=":
			if ok && v == r.Value {
				return false
			}
		case "exists":
			if !ok {
				return false
			}
		case "!exists":
			if ok {
				return false
			}
		}
	}
	return len(s) > 0
}

// Select returns every running container and CRI pod sandbox, of every
// runtime that answers, whose runtime labels (Docker and podman labels,
// CRI pod and container labels, containerd labels) match sel, each Detailed, in the order of
// List. None matching is ErrNotFound.
func Select(ctx context.Context, sel Selector, o Options) ([]Container, error) {
	rts, err := Connect(ctx, "", o)
	if err != nil {
		return nil, fmt.Errorf("-l %s: %w", sel, err)
	}
	defer closeRuntimes(rts)
	cs, err := listAll(ctx, rts)
	if err != nil {
		return nil, fmt.Errorf("-l %s: %w", sel, err)
	}
	var matched []listed
	for _, c := range cs {
		if c.Running && sel.Matches(c.Labels) {
			matched = append(matched, c)
		}
	}
	out, err := detailAll(ctx, matched)
	if err != nil {
		return nil, fmt.Errorf("-l %s: %w", sel, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: no running container or pod has labels %s", ErrNotFound, sel)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Label() < out[j].Label() })
	return out, nil
}
