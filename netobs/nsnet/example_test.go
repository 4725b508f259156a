package nsnet_test

import (
	"errors"
	"fmt"
	"io"
	"log"

	"github.com/netobs/netobs/netobs/nsnet"
	"github.com/netobs/netobs/nsjoin"
)

// A listener inside a namespace, served from the host: an ordinary
// *net.TCPListener whose socket lives in the namespace. Needs root.
func ExampleListen() {
	ns, err := nsjoin.Open("blue")
	if err != nil {
		log.Fatal(err)
	}
	defer ns.Close()
	ln, err := nsnet.Listen(ns, "tcp", "127.0.0.1:8080") // blue's loopback
	if err != nil {
		log.Fatal(err)
	}
	defer ln.Close()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			io.Copy(c, c)
		}()
	}
}

// A connection made from inside a namespace, used from the host. Needs
// root.
func ExampleDial() {
	ns, err := nsjoin.Open("blue")
	if err != nil {
		log.Fatal(err)
	}
	defer ns.Close()
	c, err := nsnet.Dial(ns, "tcp", "10.0.0.2:80")
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET / HTTP/1.0\r\n\r\n")
}

// Host names are refused before anything is created: Go's resolver would
// ask the host's DNS servers, not the namespace's. This runs without
// privilege.
func ExampleDial_hostName() {
	ns, err := nsjoin.Open("self")
	if err != nil {
		log.Fatal(err)
	}
	defer ns.Close()
	_, err = nsnet.Dial(ns, "tcp", "db.internal:5432")
	fmt.Println(errors.Is(err, nsnet.ErrHostName))
	// Output: true
}
