//go:build linux

// Command tapfloor is the floor of the inject benchmark in
// bench/20-attach.sh: the least a program can do to write the frames of a
// pcap into a TAP device in a namespace. It reads the whole file into
// memory first (with netobs/attach's own reader, as --inject does), creates
// the device the way netobs attach does (tapdev.Create: /dev/net/tun opened
// inside the namespace, non-blocking, IFF_TAP|IFF_NO_PI), then writes every
// frame with nothing else done per frame, once per mode given to -modes:
//
//	write  one write(2) per frame in a tight loop (through the device's
//	       *os.File: Go's descriptor lock and poller check, tens of ns)
//	uring  batches of 64 frames, one io_uring_enter each, through the
//	       same tapdev.Queue.WriteBatch netobs's --inject uses
//
// For each mode it prints one line:
//
//	tapfloor MODE FRAMES SECONDS FRAMES/S rx+N dropped+N io_uring=yes|no
//
// where rx and dropped are the device's RX packet and RX dropped counters
// (read over netlink in the namespace) before and after the mode, and
// io_uring says whether the process held an io_uring descriptor after it.
// It exits 1 if a mode wrote fewer frames than the file holds or the RX
// counter did not rise by that many.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/netobs/netobs/netobs/attach"
	"github.com/netobs/netobs/nsjoin"
	"github.com/netobs/netobs/tapdev"
)

// batch is the number of frames per WriteBatch call, as in netobs's
// inject loop.
const batch = 64

func main() {
	nsRef := flag.String("ns", "", "target network namespace (NSREF, as netobs attach takes)")
	name := flag.String("name", "floor0", "tap device to create in the namespace")
	in := flag.String("in", "", "pcap or pcapng file of Ethernet frames")
	modes := flag.String("modes", "write,uring", "comma-separated modes, run in this order: write, uring")
	flag.Parse()
	if *nsRef == "" || *in == "" {
		fmt.Fprintln(os.Stderr, "usage: tapfloor -ns NSREF -in FILE [-name DEV] [-modes write,uring]")
		os.Exit(2)
	}
	if err := run(*nsRef, *name, *in, strings.Split(*modes, ",")); err != nil {
		fmt.Fprintln(os.Stderr, "tapfloor:", err)
		os.Exit(1)
	}
}

func run(nsRef, name, path string, modes []string) error {
	for _, m := range modes {
		if m != "write" && m != "uring" {
			return fmt.Errorf("unknown mode %q (write or uring)", m)
		}
	}
	frames, err := load(path)
	if err != nil {
		return err
	}
	ns, err := nsjoin.Open(nsRef)
	if err != nil {
		return err
	}
	d, err := tapdev.Create(ns, tapdev.Config{Kind: tapdev.TAP, Name: name})
	ns.Close()
	if err != nil {
		return err
	}
	defer d.Close()
	q := d.Queues()[0]
	failed := false
	for _, m := range modes {
		st0, err := d.Stats()
		if err != nil {
			return err
		}
		var n int
		var werr error
		t0 := time.Now()
		switch m {
		case "write":
			for _, f := range frames {
				if _, werr = q.Write(f); werr != nil {
					break
				}
				n++
			}
		case "uring":
			for i := 0; i < len(frames) && werr == nil; i += batch {
				var k int
				k, werr = q.WriteBatch(frames[i:min(i+batch, len(frames))])
				n += k
			}
		}
		secs := time.Since(t0).Seconds()
		st1, err := d.Stats()
		if err != nil {
			return err
		}
		rx, drop := st1.RxPackets-st0.RxPackets, st1.RxDropped-st0.RxDropped
		uring := "no"
		if holdsUring() {
			uring = "yes"
		}
		fmt.Printf("tapfloor %s %d %.6f %.0f rx+%d dropped+%d io_uring=%s\n", m, n, secs, float64(n)/secs, rx, drop, uring)
		if werr != nil || n != len(frames) || rx != uint64(len(frames)) {
			fmt.Fprintf(os.Stderr, "tapfloor: %s: %d of %d frames written, RX +%d, error: %v\n", m, n, len(frames), rx, werr)
			failed = true
		}
	}
	if failed {
		return fmt.Errorf("not every frame was written")
	}
	return nil
}

// load reads every frame of the file into one buffer.
func load(path string) ([][]byte, error) {
	in, err := attach.OpenInject(path, tapdev.TAP)
	if err != nil {
		return nil, err
	}
	defer in.Close()
	var arena []byte
	var ends []int
	for {
		d, err := in.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		arena = append(arena, d...)
		ends = append(ends, len(arena))
	}
	frames := make([][]byte, len(ends))
	prev := 0
	for i, e := range ends {
		frames[i] = arena[prev:e:e]
		prev = e
	}
	return frames, nil
}

// holdsUring reports whether the process has an io_uring descriptor open.
func holdsUring() bool {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return false
	}
	for _, e := range ents {
		if l, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && strings.Contains(l, "io_uring") {
			return true
		}
	}
	return false
}
