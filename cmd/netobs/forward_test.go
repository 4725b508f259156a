package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestDefaultLoopback(t *testing.T) {
	for in, want := range map[string]string{
		"80":           "127.0.0.1:80",
		":80":          "127.0.0.1:80",
		"0.0.0.0:80":   "0.0.0.0:80",
		"[::]:80":      "[::]:80",
		"10.0.0.1:53":  "10.0.0.1:53",
		"example.com:": "example.com:",
	} {
		if got := defaultLoopback(in); got != want {
			t.Errorf("defaultLoopback(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestForwardUsage runs the command in-process: usage mistakes exit 2 with
// one line, before any namespace is opened.
func TestForwardUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"forward", "x", "0", "db:80"}, "host names are not resolved"},
		{[]string{"forward", "x", "0", "[::1]:0"}, "cannot connect to port 0"},
		{[]string{"forward", "x", "--reverse", "0", "127.0.0.1:0"}, "not a number from 1 to 65535"},
		{[]string{"forward", "x", "--max-sessions", "0", "0", "80"}, "must be positive"},
		{[]string{"forward", "x", "0"}, "needs NSREF, LISTEN and TARGET"},
		{[]string{"sockets"}, "needs NSREF"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), tc.args, strings.NewReader(""), &stdout, &stderr)
		if code != 2 || !strings.Contains(stderr.String(), tc.want) || strings.Count(stderr.String(), "\n") != 1 {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", tc.args, code, stderr.String(), tc.want)
		}
	}
}
