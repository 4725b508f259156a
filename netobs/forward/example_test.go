package forward_test

import (
	"bufio"
	"context"
	"fmt"
	"log"
	"net"

	"github.com/netobs/netobs/netobs/forward"
	"github.com/netobs/netobs/netobs/nsnet"
	"github.com/netobs/netobs/nsjoin"
)

// The engine alone, between two host sockets: it knows nothing of
// namespaces, so this runs without privilege.
func ExampleServeTCP() {
	target, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer target.Close()
	go func() {
		c, err := target.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		fmt.Fprintln(c, "hello from the target")
	}()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan forward.Stats)
	go func() {
		st, _ := forward.ServeTCP(ctx, ln, forward.Config{
			Dial: func(ctx context.Context) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "tcp", target.Addr().String())
			},
		})
		served <- st
	}()

	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		log.Fatal(err)
	}
	line, _ := bufio.NewReader(c).ReadString('\n')
	c.Close()
	fmt.Print(line)
	cancel() // closes the listener and every connection
	st := <-served
	fmt.Println("connections:", st.Conns, "bytes down:", st.Down)
	// Output:
	// hello from the target
	// connections: 1 bytes down: 22
}

// `netobs forward` in a few lines: a host port relayed to a service on the
// loopback of a namespace, reached by dialing from inside it. Needs root.
func ExampleServeTCP_namespace() {
	ns, err := nsjoin.Open("blue")
	if err != nil {
		log.Fatal(err)
	}
	defer ns.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:8080")
	if err != nil {
		log.Fatal(err)
	}
	_, err = forward.ServeTCP(context.Background(), ln, forward.Config{
		Dial: func(ctx context.Context) (net.Conn, error) {
			return nsnet.DialContext(ctx, ns, "tcp", "127.0.0.1:80")
		},
	})
	if err != nil {
		log.Fatal(err)
	}
}
