package kube

import (
	"errors"
	"strings"
	"testing"
)

func TestParseRef(t *testing.T) {
	for in, want := range map[string]Ref{
		"pod/web-1":             {KindPod, "web-1"},
		"po/a":                  {KindPod, "a"},
		"pods/a.b":              {KindPod, "a.b"},
		"deploy/web":            {KindDeployment, "web"},
		"deployments.apps/web":  {KindDeployment, "web"},
		"Deployment/web":        {KindDeployment, "web"},
		"node/ip-10-0-0-1.ec2":  {KindNode, "ip-10-0-0-1.ec2"},
		"no/kind-control-plane": {KindNode, "kind-control-plane"},
	} {
		got, err := ParseRef(in)
		if err != nil || got != want {
			t.Errorf("ParseRef(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "web", "pod/", "svc/web", "pod/Web", "pod/a/b", "pod/../x", "pod/a\x1b[31m", "/web"} {
		_, err := ParseRef(in)
		var se *RefSyntaxError
		if !errors.As(err, &se) {
			t.Errorf("ParseRef(%q) err = %v, want *RefSyntaxError", in, err)
		} else if strings.ContainsAny(err.Error(), "\n\x1b") {
			t.Errorf("ParseRef(%q): message %q is not one safe line", in, err)
		}
	}
}

func FuzzParseRef(f *testing.F) {
	for _, s := range []string{"pod/web", "deploy/x", "node/n1", "po/", "x/y/z", "pod/a\x00b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRef(s)
		if err != nil {
			if strings.ContainsAny(err.Error(), "\n\r\x1b") {
				t.Fatalf("error for %q is not one safe line: %q", s, err)
			}
			return
		}
		if r.Kind == 0 || r.Name == "" || strings.ContainsAny(r.Name, "/\x00") {
			t.Fatalf("ParseRef(%q) = %+v: invalid result", s, r)
		}
		// A parsed ref prints as something that parses to itself.
		if r2, err := ParseRef(r.String()); err != nil || r2 != r {
			t.Fatalf("round trip %q -> %v -> %v, %v", s, r, r2, err)
		}
	})
}
