//go:build linux && cgo

package exechook

import (
	"reflect"
	"testing"

	"github.com/netobs/netobs/nsjoin/internal/hookproto"
	"golang.org/x/sys/unix"
)

// TestParseSpecRoundTrip: what nsjoin sends, the hook's C parser reads back
// unchanged; what nsjoin never sends, it refuses.
func TestParseSpecRoundTrip(t *testing.T) {
	good := []hookproto.Spec{
		{Joins: []hookproto.Join{{Flag: unix.CLONE_NEWNET, FD: 3}}},
		{Joins: []hookproto.Join{{Flag: unix.CLONE_NEWUSER, FD: 5}, {Flag: unix.CLONE_NEWPID, FD: 6}, {Flag: unix.CLONE_NEWNS, FD: 7}}, Fork: true},
		{Unshare: unix.CLONE_NEWUTS, Hostname: "a-b.c"},
		{Unshare: unix.CLONE_NEWUSER | unix.CLONE_NEWNET | unix.CLONE_NEWTIME, MapRoot: true, UID: 4294967295, GID: 1000, Fork: true},
		{Unshare: unix.CLONE_NEWPID | unix.CLONE_NEWNS, MountProc: true, Fork: true},
	}
	for _, s := range good {
		got, ok := parseSpec([]byte(s.Instructions()))
		if !ok || !reflect.DeepEqual(got, s) {
			t.Errorf("parse %q = %+v %v, want %+v", s.Instructions(), got, ok, s)
		}
	}
	for _, bad := range []string{"", ",", "jX:3", "j40000000:3,", "j40000000:2", "j40000000:3,j40000000:4",
		"j40000000:3,j20000000:3", "j3:3", "n0", "n1", "n-20000000", "n+4000000", "n4000000,n4000000",
		"hx", "n4000000,h", "n4000000,hx y", "n4000000,h" + string(make([]byte, 65)), "m0:0", "n10000000,m0", "n10000000,m1:-1",
		"n10000000,m4294967296:0", "p", "n4000000,p", "n20000000,pp", "s2", "n40000000,f,f", "j40000000:3,n40000000",
		"j40000000: 3", "j40000000:03x", "n4000000,hX,", "n4000000\x00,hX"} {
		if s, ok := parseSpec([]byte(bad)); ok {
			t.Errorf("parse %q accepted: %+v", bad, s)
		}
	}
}

// FuzzParseSpec feeds the hook's C parser arbitrary instructions: it must
// not crash, and what it accepts must be what nsjoin could have sent.
func FuzzParseSpec(f *testing.F) {
	f.Add([]byte("j40000000:3,f"))
	f.Add([]byte("n14000000,hhost,p,f"))
	f.Add([]byte("n10000080,m1000:1000,f"))
	f.Add([]byte("j10000000:3,j20000:4,j20000000:5,j40000000:6,f"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, ok := parseSpec(b)
		if !ok {
			return
		}
		again, ok := parseSpec([]byte(s.Instructions()))
		if !ok || !reflect.DeepEqual(again, s) {
			t.Fatalf("accepted %q as %+v, but its encoding %q parses as %+v %v", b, s, s.Instructions(), again, ok)
		}
		if (len(s.Joins) > 0) == (s.Unshare != 0) {
			t.Fatalf("accepted %q: joins and unshare both or neither", b)
		}
		if len(s.Hostname) > 64 {
			t.Fatalf("accepted %q: hostname of %d bytes", b, len(s.Hostname))
		}
		for _, j := range s.Joins {
			if j.FD < 3 {
				t.Fatalf("accepted %q: join fd %d", b, j.FD)
			}
		}
	})
}
