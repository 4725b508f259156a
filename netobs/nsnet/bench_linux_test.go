package nsnet_test

import (
	"net"
	"testing"
	"time"

	"github.com/netobs/netobs/netobs/nsnet"
)

// BenchmarkDialTCP connects to a loopback listener inside a namespace with
// nsnet.Dial, and, as the anchor in the same run, to a loopback listener
// of the host with net.Dial. It reports ns/op for nsnet.Dial and the ratio
// (x-net.Dial): the price of creating the socket inside the namespace.
func BenchmarkDialTCP(b *testing.B) {
	_, ns := openNS(b)
	acceptAll := func(ln net.Listener) {
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
	}
	lnNS, err := nsnet.Listen(ns, "tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer lnNS.Close()
	lnHost, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer lnHost.Close()
	acceptAll(lnNS)
	acceptAll(lnHost)
	var tNS, tHost time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		c, err := nsnet.Dial(ns, "tcp", lnNS.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		c.Close()
		t1 := time.Now()
		h, err := net.Dial("tcp", lnHost.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		h.Close()
		tNS += t1.Sub(t0)
		tHost += time.Since(t1)
	}
	b.ReportMetric(float64(tNS.Nanoseconds())/float64(b.N), "ns/nsnet.Dial")
	b.ReportMetric(float64(tHost.Nanoseconds())/float64(b.N), "ns/net.Dial")
	b.ReportMetric(float64(tNS)/float64(tHost), "x-net.Dial")
}
