// Command withhook links the exec hook: its own main runs unless nsjoin's
// Cmd.Start (or a test that plays its part) started it.
package main

import (
	"runtime"

	"github.com/netobs/netobs/nsjoin/testdata/probe"

	_ "github.com/netobs/netobs/nsjoin/exechook"
)

func init() { runtime.LockOSThread() }

func main() { probe.Main() }
