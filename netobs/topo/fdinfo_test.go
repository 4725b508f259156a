package topo

import (
	"strings"
	"testing"
)

func TestTunIff(t *testing.T) {
	for _, c := range []struct {
		in   string
		name string
		ok   bool
	}{
		{"pos:\t0\nflags:\t0104002\nmnt_id:\t25\nino:\t1041\niff:\ttap0\n", "tap0", true},
		{"pos:\t0\nflags:\t02\nmnt_id:\t25\nino:\t1041\n", "", false}, // not attached
		{"iff:\t<script>", "<script>", true},                          // no final newline
		{"iff:\t\x1b[31mred\n", "\x1b[31mred", true},
		{"iff:\t\n", "", false},
		{"iff:\t0123456789abcdef\n", "", false}, // longer than IFNAMSIZ allows
		{"xiff:\ttap0\n", "", false},
		{"", "", false},
	} {
		name, ok := tunIff([]byte(c.in))
		if name != c.name || ok != c.ok {
			t.Errorf("tunIff(%q) = %q, %v; want %q, %v", c.in, name, ok, c.name, c.ok)
		}
	}
}

// FuzzTunIff: any fdinfo text gives a name that fits an interface name and
// was on an iff: line, or nothing; never a panic.
func FuzzTunIff(f *testing.F) {
	f.Add([]byte("pos:\t0\nflags:\t0104002\nmnt_id:\t25\nino:\t1041\niff:\ttap0\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		name, ok := tunIff(b)
		if !ok {
			if name != "" {
				t.Fatalf("not ok but name %q", name)
			}
			return
		}
		if name == "" || len(name) > 15 || strings.Contains(name, "\n") {
			t.Fatalf("name %q", name)
		}
		if !strings.Contains(string(b), "iff:") {
			t.Fatalf("name %q from text without iff:", name)
		}
	})
}
