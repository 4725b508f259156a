package runtime

import (
	"errors"
	"strings"
	"testing"
)

func TestParseRef(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Ref
		err  error
	}{
		{"docker:web", Ref{"docker", "web"}, nil},
		{"docker:/web", Ref{"docker", "web"}, nil},
		{"podman:0eab12", Ref{"podman", "0eab12"}, nil},
		{"container:0eab", Ref{"", "0eab"}, nil},
		{"container:my_app-1.2", Ref{"", "my_app-1.2"}, nil},
		{"docker:", Ref{}, ErrBadRef},
		{"container:", Ref{}, ErrBadRef},
		{"docker:a/b", Ref{}, ErrBadRef},
		{"docker:a b", Ref{}, ErrBadRef},
		{"docker:a\x1b[31m", Ref{}, ErrBadRef},
		{"docker:é", Ref{}, ErrBadRef},
		{"docker:" + strings.Repeat("a", 256), Ref{}, ErrBadRef},
		{"lxc:web", Ref{}, ErrBadRef},
		{"web", Ref{}, ErrBadRef},
	} {
		got, err := ParseRef(tc.in)
		if !errors.Is(err, tc.err) || got != tc.want {
			t.Errorf("ParseRef(%q) = %+v, %v; want %+v, %v", tc.in, got, err, tc.want, tc.err)
		}
		if err != nil && strings.ContainsAny(err.Error(), "\n\x1b") {
			t.Errorf("ParseRef(%q) error %q is not one clean line", tc.in, err)
		}
	}
	for in, want := range map[string]bool{"docker:x": true, "podman:": true, "container:1": true, "lxc:x": false, "web": false, "/run/netns/docker:x": false, "1234": false} {
		if IsRef(in) != want {
			t.Errorf("IsRef(%q) = %v, want %v", in, !want, want)
		}
	}
}

func TestMatch(t *testing.T) {
	cs := []Container{
		{Runtime: "docker", ID: "abc111", Name: "web"},
		{Runtime: "docker", ID: "abc222", Name: "db"},
		{Runtime: "podman", ID: "def333", Name: "web"},
		{Runtime: "podman", ID: "abc", Name: "abc2"},
	}
	for _, tc := range []struct {
		key, want string
		err       error
		n         int
	}{
		{key: "abc111", want: "abc111"},
		{key: "abc", want: "abc"},   // a full ID before names and prefixes
		{key: "db", want: "abc222"}, // a name
		{key: "abc2", want: "abc"},  // a name before a prefix
		{key: "abc1", want: "abc111"},
		{key: "d", want: "def333"},
		{key: "ab", err: ErrAmbiguous, n: 3},
		{key: "web", err: ErrAmbiguous, n: 2},
		{key: "xyz", err: ErrNotFound},
	} {
		c, err := match("container:"+tc.key, tc.key, cs)
		if !errors.Is(err, tc.err) || (tc.err == nil && c.ID != tc.want) {
			t.Errorf("match %q = %q, %v; want %q, %v", tc.key, c.ID, err, tc.want, tc.err)
			continue
		}
		var amb *AmbiguousError
		if errors.As(err, &amb) {
			if len(amb.Matches) != tc.n {
				t.Errorf("match %q: %d matches listed, want %d", tc.key, len(amb.Matches), tc.n)
			}
			for _, m := range amb.Matches {
				if !strings.Contains(err.Error(), m.Runtime+":"+m.ID) {
					t.Errorf("match %q: error %q does not list %s:%s", tc.key, err, m.Runtime, m.ID)
				}
			}
		}
	}
}

func FuzzParseRef(f *testing.F) {
	for _, s := range []string{"docker:web", "podman:0eab", "container:a", "docker:", "docker:/x", "pod:a/b/c", "docker:a\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRef(s)
		if err != nil {
			if !errors.Is(err, ErrBadRef) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("ParseRef(%q): error %v", s, err)
			}
			return
		}
		if !IsRef(s) || r.Key == "" || len(r.Key) > 255 || strings.ContainsAny(r.Key, "/: \x00") {
			t.Fatalf("ParseRef(%q) = %+v accepted a bad key", s, r)
		}
		again, err := ParseRef(r.String())
		if err != nil || again != r {
			t.Fatalf("ParseRef(%q).String() = %q does not parse back: %+v, %v", s, r.String(), again, err)
		}
	})
}
