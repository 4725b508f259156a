package forward

import (
	"io"
	"net"
	"testing"
	"time"
)

// TestNoPipesKept: the pipes TCP data is spliced through are closed with
// their connection: after 100 connections have ended, none is left.
func TestNoPipesKept(t *testing.T) {
	ended := make(chan Conn, 100)
	addr, stop := serveTCP(t, echoServer(t), func(c Conn) { ended <- c })
	before := pipeFDs()
	var clients []net.Conn
	for i := 0; i < 100; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
		c.Write([]byte("through a pipe"))
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.ReadFull(c, make([]byte, 14)); err != nil {
			t.Fatal(err)
		}
	}
	if open := pipeFDs() - before; open < 100 {
		t.Errorf("%d pipe ends with 100 connections open; splicing uses none?", open)
	}
	for _, c := range clients {
		c.Close()
	}
	for i := 0; i < 100; i++ {
		select {
		case <-ended:
		case <-time.After(30 * time.Second):
			t.Fatalf("only %d of 100 connections ended", i)
		}
	}
	if left := pipeFDs() - before; left > 0 {
		t.Errorf("%d pipe ends left after every connection ended", left)
	}
	stop()
}
