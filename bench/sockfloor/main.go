// Command sockfloor is the transport floor of the agent benchmark in
// bench/90-agent.sh: the least two processes can do to move a capture
// file's bytes over loopback TCP into a file, as a capture through
// `netobs agent` must (the agent sends, the client receives and writes).
// It runs as two processes, like the agent and its client:
//
//	sockfloor recv -out FILE           listen on 127.0.0.1 (a free port),
//	                                   print the address on stdout, accept
//	                                   one connection, write all it reads
//	                                   to FILE
//	sockfloor send -to ADDR -in FILE   read FILE into memory, then send it
//	                                   to ADDR in writes of -chunk bytes,
//	                                   spread evenly over -pace (default 0:
//	                                   as fast as they go)
//
// Each prints one line on stderr when done:
//
//	sockfloor send|recv BYTES SECONDS CPU
//
// where CPU is the process's user+system seconds spent while moving the
// bytes (getrusage before and after: reading the file and starting up are
// left out, so the figure is a lower bound). Plain Go reads and writes of
// -chunk bytes, nothing done per packet: what any design that moves the
// bytes through a socket in pieces that size pays at least.
//
// A capture's bytes do not come all at once but at the pace of the
// traffic, and moving them at that pace costs both ends more than in one
// burst (measured on the project's VM: 192 MB sent in 0.1 s cost the sender
// 0.04 s of CPU and the receiver 0.10 s; the same spread over 3.4 s, 0.12–0.18
// s and 0.14–0.20 s), so bench/90-agent.sh sends at the pace of its flood.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 || (os.Args[1] != "send" && os.Args[1] != "recv") {
		usage()
	}
	mode := os.Args[1]
	fs := flag.NewFlagSet(mode, flag.ExitOnError)
	out := fs.String("out", "", "recv: file to write")
	to := fs.String("to", "", "send: address to send to")
	in := fs.String("in", "", "send: file to send")
	chunk := fs.Int("chunk", 512<<10, "bytes per read or write")
	pace := fs.Duration("pace", 0, "send: spread the writes evenly over this long")
	_ = fs.Parse(os.Args[2:])
	var err error
	switch {
	case mode == "recv" && *out != "":
		err = recv(*out, *chunk)
	case mode == "send" && *to != "" && *in != "":
		err = send(*to, *in, *chunk, *pace)
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "sockfloor:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: sockfloor recv -out FILE | sockfloor send -to ADDR -in FILE [-chunk BYTES] [-pace DURATION]")
	os.Exit(2)
}

func recv(path string, chunk int) error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer l.Close()
	fmt.Println(l.Addr())
	c, err := l.Accept()
	if err != nil {
		return err
	}
	defer c.Close()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	buf := make([]byte, chunk)
	var n int64
	t0, c0 := time.Now(), cpu()
	for {
		k, rerr := c.Read(buf)
		if k > 0 {
			if _, err := f.Write(buf[:k]); err != nil {
				return err
			}
			n += int64(k)
		}
		if errors.Is(rerr, io.EOF) {
			break
		}
		if rerr != nil {
			return rerr
		}
	}
	report("recv", n, t0, c0)
	return f.Close()
}

func send(addr, path string, chunk int, pace time.Duration) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	t0, c0 := time.Now(), cpu()
	for off := 0; off < len(data); off += chunk {
		if pace > 0 { // this chunk's share of pace, from t0
			time.Sleep(time.Until(t0.Add(time.Duration(float64(pace) * float64(off) / float64(len(data))))))
		}
		if _, err := c.Write(data[off:min(off+chunk, len(data))]); err != nil {
			return err
		}
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		return err
	}
	report("send", int64(len(data)), t0, c0)
	return nil
}

func report(mode string, n int64, t0 time.Time, c0 float64) {
	fmt.Fprintf(os.Stderr, "sockfloor %s %d %.6f %.6f\n", mode, n, time.Since(t0).Seconds(), cpu()-c0)
}

// cpu is the process's user+system time in seconds.
func cpu() float64 {
	var r syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &r); err != nil {
		return 0
	}
	return float64(r.Utime.Nano()+r.Stime.Nano()) / 1e9
}
