// Command connrate measures short TCP connections per second for
// bench/40-forward.sh: with -serve it is the service (answer one byte,
// close), otherwise the client (connect, read to EOF, close, repeat) with
// a few connections in flight, for a fixed time.
package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	serve := flag.String("serve", "", "serve on this address")
	conc := flag.Int("c", 4, "connections in flight")
	dur := flag.Duration("t", 3*time.Second, "how long to measure")
	flag.Parse()
	if *serve != "" {
		ln, err := net.Listen("tcp", *serve)
		if err != nil {
			fmt.Fprintln(os.Stderr, "connrate:", err)
			os.Exit(1)
		}
		for {
			c, err := ln.Accept()
			if err != nil {
				continue
			}
			go func() { c.Write([]byte{'x'}); c.Close() }()
		}
	}
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: connrate [-c N] [-t DUR] HOST:PORT | connrate -serve HOST:PORT")
		os.Exit(2)
	}
	addr := flag.Arg(0)
	var done, failed atomic.Int64
	stop := time.Now().Add(*dur)
	var wg sync.WaitGroup
	for i := 0; i < *conc; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) {
				c, err := net.DialTimeout("tcp", addr, 5*time.Second)
				if err != nil {
					failed.Add(1)
					time.Sleep(time.Millisecond)
					continue
				}
				c.SetDeadline(time.Now().Add(5 * time.Second))
				if b, _ := io.ReadAll(c); len(b) == 1 {
					done.Add(1)
				} else {
					failed.Add(1)
				}
				c.Close()
			}
		}()
	}
	wg.Wait()
	fmt.Printf("%.0f %d\n", float64(done.Load())/dur.Seconds(), failed.Load())
}
