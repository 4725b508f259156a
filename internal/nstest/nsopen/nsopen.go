// Package nsopen opens nsjoin handles for tests. It is apart from nstest
// because nsjoin's own tests use nstest, which must therefore not import
// nsjoin.
package nsopen

import (
	"testing"

	"github.com/netobs/netobs/internal/nstest"
	"github.com/netobs/netobs/nsjoin"
)

// Open opens the network namespace ref and closes it when the test ends.
func Open(tb testing.TB, ref string) *nsjoin.NS {
	tb.Helper()
	ns, err := nsjoin.Open(ref)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ns.Close() })
	return ns
}

// New makes a named network namespace (nstest.NetNS) and opens it.
func New(tb testing.TB) (string, *nsjoin.NS) {
	tb.Helper()
	name := nstest.NetNS(tb)
	return name, Open(tb, name)
}
