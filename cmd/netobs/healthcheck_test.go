package main

import (
	"bytes"
	"context"
	"net"
	"strings"
	"testing"
)

func TestHealthcheck(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"healthcheck", "--tcp", addr}, nil, &out, &errb); code != 0 {
		t.Errorf("listening: exit %d %q", code, errb.String())
	}
	ln.Close()
	errb.Reset()
	if code := run(context.Background(), []string{"healthcheck", "--tcp", addr}, nil, &out, &errb); code != 1 || !strings.Contains(errb.String(), "connection refused") {
		t.Errorf("closed: exit %d %q, want 1 and connection refused", code, errb.String())
	}
	errb.Reset()
	if code := run(context.Background(), []string{"healthcheck", "--tcp", "nope"}, nil, &out, &errb); code != 2 {
		t.Errorf("bad address: exit %d %q, want 2", code, errb.String())
	}
}
