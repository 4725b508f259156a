package nsjoin_test

import (
	"fmt"
	"log"
	"os"
	"strconv"
	"strings"

	"github.com/netobs/netobs/nsjoin"
	// Command and Unshare re-execute the program with a hook that joins
	// the namespaces before the Go runtime starts; a program links it in
	// by importing this package in its main package.
	_ "github.com/netobs/netobs/nsjoin/exechook"
)

// Open takes what the netobs CLI takes: "self", a PID, an `ip netns` name
// or a path to an nsfs file. Handles are compared by namespace identity.
// Opening the process's own namespace needs no privilege.
func ExampleOpen() {
	self, err := nsjoin.Open("self")
	if err != nil {
		log.Fatal(err)
	}
	defer self.Close()
	byPID, err := nsjoin.Open(strconv.Itoa(os.Getpid()))
	if err != nil {
		log.Fatal(err)
	}
	defer byPID.Close()
	fmt.Println(self.Type(), nsjoin.Same(self, byPID), strings.HasPrefix(self.String(), "net:["))
	// Output: net true true
}

// Do runs a function on a thread inside the namespace and brings the
// thread back. Make only leaf system calls inside: here, read the
// namespace's interface table, which /proc/thread-self/net shows for the
// calling thread. Needs CAP_SYS_ADMIN (root).
func ExampleNS_Do() {
	ns, err := nsjoin.Open("blue") // as made by `ip netns add blue`
	if err != nil {
		log.Fatal(err)
	}
	defer ns.Close()
	var dev []byte
	err = ns.Do(func() error {
		var err error
		dev, err = os.ReadFile("/proc/thread-self/net/dev")
		return err
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s", dev)
}

// Command runs a program in any set of namespaces, like nsenter; every
// namespace type works, since the hook joins them before the Go runtime
// of the child starts. The program must import nsjoin/exechook (see the
// imports above). Needs root.
func ExampleCommand() {
	ns, err := nsjoin.Open("blue")
	if err != nil {
		log.Fatal(err)
	}
	defer ns.Close()
	cmd, err := nsjoin.Command([]*nsjoin.NS{ns}, "ip", "-br", "addr")
	if err != nil {
		log.Fatal(err)
	}
	cmd.Cmd.Stdout, cmd.Cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		log.Fatal(err)
	}
}

// NewNamed makes a namespace that `ip netns` sees, as `ip netns add` does;
// DeleteNamed removes the name, as `ip netns del` does. Needs root.
func ExampleNewNamed() {
	ns, err := nsjoin.NewNamed("blue")
	if err != nil {
		log.Fatal(err) // errors.Is(err, nsjoin.ErrExists) if the name is taken
	}
	defer nsjoin.DeleteNamed("blue")
	defer ns.Close()
	fmt.Println(ns.Ref(), ns.Path())
}
