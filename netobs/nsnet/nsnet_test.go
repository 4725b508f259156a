package nsnet

import (
	"errors"
	"testing"
)

func TestParseBadInput(t *testing.T) {
	for _, tc := range []struct {
		op        op
		net, addr string
		want      error
	}{
		{opDial, "tcp", "example.com:80", ErrHostName},
		{opDial, "tcp", "localhost:80", ErrHostName},
		{opListen, "udp", "db:53", ErrHostName},
		{opDial, "tcp", "10.0.0.300:80", ErrAddress},
		{opDial, "tcp", "127.0.0.1", ErrAddress},
		{opDial, "tcp", "127.0.0.1:", ErrAddress},
		{opDial, "tcp", "127.0.0.1:http", ErrAddress},
		{opDial, "tcp", "127.0.0.1:70000", ErrAddress},
		{opDial, "tcp", "127.0.0.1:0", ErrAddress},
		{opDial, "tcp", "::1:80", ErrAddress},
		{opDial, "tcp", "[::1:80", ErrAddress},
		{opDial, "tcp", "[127.0.0.1]:80", ErrAddress},
		{opDial, "tcp4", "[::1]:80", ErrAddress},
		{opDial, "tcp6", "127.0.0.1:80", ErrAddress},
		{opDial, "tcp", "127.0.0.1%lo:80", ErrAddress},
		{opDial, "tcp", "", ErrAddress},
		{opDial, "unix", "", ErrAddress},
		{opDial, "sctp", "127.0.0.1:80", ErrNetwork},
		{opDial, "ip4:icmp", "127.0.0.1", ErrNetwork},
	} {
		_, err := parse(tc.op, tc.net, tc.addr)
		if !errors.Is(err, tc.want) {
			t.Errorf("parse(%s %q) = %v, want %v", tc.net, tc.addr, err, tc.want)
		}
	}
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		op        op
		net, addr string
		fam       family
		ip        string
		v6only    bool
		dual      bool
	}{
		{opListen, "tcp", ":80", famInet6, "::", false, true},
		{opListen, "tcp4", ":80", famInet4, "0.0.0.0", false, false},
		{opListen, "tcp6", ":80", famInet6, "::", true, false},
		{opDial, "tcp", ":80", famInet4, "127.0.0.1", false, false},
		{opDial, "tcp6", ":80", famInet6, "::1", false, false},
		{opDial, "tcp", "[::ffff:10.1.2.3]:80", famInet4, "10.1.2.3", false, false},
		{opDial, "udp6", "[fe80::1%eth0]:53", famInet6, "fe80::1", true, false},
		{opListen, "udp", "[::]:53", famInet6, "::", false, true},
	} {
		s, err := parse(tc.op, tc.net, tc.addr)
		if err != nil {
			t.Errorf("parse(%s %q): %v", tc.net, tc.addr, err)
			continue
		}
		if s.family != tc.fam || s.ip.String() != tc.ip || s.v6only != tc.v6only || s.dualFallback != tc.dual {
			t.Errorf("parse(%s %q) = %+v", tc.net, tc.addr, s)
		}
	}
}
