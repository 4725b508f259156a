package nstest_test

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/netobs/netobs/netobs/events"
	"github.com/netobs/netobs/nstest"
)

// exampleT stands in, so that the examples run, for the *testing.T that a
// test function receives: it runs cleanups at the end and panics where a
// test would fail or skip (the examples need root).
type exampleT struct {
	testing.TB
	cleanups []func()
}

func (t *exampleT) Helper()                           {}
func (t *exampleT) Cleanup(f func())                  { t.cleanups = append(t.cleanups, f) }
func (t *exampleT) Fatalf(format string, args ...any) { panic(fmt.Sprintf(format, args...)) }
func (t *exampleT) Errorf(format string, args ...any) { panic(fmt.Sprintf(format, args...)) }
func (t *exampleT) Skip(args ...any)                  { panic(fmt.Sprint(args...)) }
func (t *exampleT) end() {
	for i := len(t.cleanups) - 1; i >= 0; i-- {
		t.cleanups[i]()
	}
}

// A server in one namespace, a client in another, joined by a veth. In a
// test, t is the test's *testing.T, and the test may call t.Parallel: its
// namespaces, addresses and names are its own.
func Example() {
	t := &exampleT{}
	defer t.end()

	client, server := nstest.NewNetNS(t), nstest.NewNetNS(t)
	nstest.Veth(t, client, server, "10.230.0.1/24", "10.230.0.2/24")

	ln := nstest.Listen(t, server, "tcp", "10.230.0.2:8080")
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		fmt.Fprintf(c, "hello %v\n", c.RemoteAddr().(*net.TCPAddr).IP)
	}()

	c := nstest.Dial(t, client, "tcp", "10.230.0.2:8080")
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	fmt.Print(line)
	// Output: hello 10.230.0.1
}

// Record what crosses an interface and assert on it.
func ExampleCapture() {
	t := &exampleT{}
	defer t.end()

	a, b := nstest.NewNetNS(t), nstest.NewNetNS(t)
	_, lb := nstest.Veth(t, a, b, "10.231.0.1/24", "10.231.0.2/24")

	packets := nstest.Capture(t, b, lb.Name, "udp port 5353")
	conn := nstest.Dial(t, a, "udp", "10.231.0.2:5353")
	conn.Write([]byte("query"))

	p := packets.WaitFor(t, "the query", func(p nstest.Packet) bool { return p.DstPort == 5353 })
	fmt.Println(p.Src, ">", p.Dst, p.Proto, "wire length", p.Length)
	// Output: 10.231.0.1 > 10.231.0.2 udp wire length 47
}

// Check what a program configured, as the kernel reports it.
func ExampleEvents() {
	t := &exampleT{}
	defer t.end()

	ns := nstest.NewNetNS(t)
	changes := nstest.Events(t, ns)

	// The code under test would configure the namespace here.
	l, _ := nstest.Veth(t, ns, nstest.NewNetNS(t), "10.232.0.1/24", "")

	ev := changes.WaitFor(t, "the address", func(ev events.Event) bool {
		return ev.Kind == "addr" && ev.Action == events.Added
	})
	fmt.Println(ev.Kind, ev.Action, ev.Index == l.Index, strings.Fields(ev.Text)[2:4])
	// Output: addr add true [inet 10.232.0.1/24]
}

// Three namespaces on one bridge, the bridge in a fourth, and a route.
func ExampleBridge() {
	t := &exampleT{}
	defer t.end()

	hub := nstest.NewNetNS(t)
	web, db, cache := nstest.NewNetNS(t), nstest.NewNetNS(t), nstest.NewNetNS(t)
	nstest.Bridge(t, hub, "10.233.0.1/24",
		nstest.End{NS: web, Addrs: []string{"10.233.0.10/24"}},
		nstest.End{NS: db, Addrs: []string{"10.233.0.20/24"}},
		nstest.End{NS: cache, Addrs: []string{"10.233.0.30/24"}},
	)
	nstest.AddRoute(t, web, "default", "10.233.0.1")

	ln := nstest.Listen(t, db, "tcp", "10.233.0.20:5432")
	go func() {
		if c, err := ln.Accept(); err == nil {
			fmt.Println("db accepted a connection from", c.RemoteAddr().(*net.TCPAddr).IP)
			c.Close()
		}
	}()
	c := nstest.Dial(t, web, "tcp", "10.233.0.20:5432")
	c.Read(make([]byte, 1)) // until the server closes
	// Output: db accepted a connection from 10.233.0.10
}
