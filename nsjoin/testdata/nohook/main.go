// Command nohook links nsjoin and netobs's packages but not the exec hook:
// whatever _NSJOIN_EXEC holds, its own main runs, and Unshare fails with
// nsjoin.ErrHookNotLinked.
package main

import (
	"runtime"

	"github.com/netobs/netobs/netobs/capture"
	"github.com/netobs/netobs/netobs/nsnet"
	"github.com/netobs/netobs/nsjoin/testdata/probe"
	"github.com/netobs/netobs/tapdev"
)

var _, _, _ = capture.Open, nsnet.Listen, tapdev.Create

func init() { runtime.LockOSThread() }

func main() { probe.Main() }
