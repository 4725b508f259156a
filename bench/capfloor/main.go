//go:build linux

// Command capfloor is the floor of the 64-byte part of the capture
// benchmark in bench/30-capture.sh: the least a program can do to capture
// an interface's packets into a pcap file. It reads a TPACKET_V3 ring of the
// geometry netobs capture uses by default (4 blocks of 1 MiB, 100 ms block
// timeout) and, for each packet, appends a 16-byte record header and the
// packet's bytes to a 256 KiB buffer that it writes out with write(2) when
// full, as netobs's writer does; a packet of 1 KiB or more it does not copy
// but writes straight from the ring with writev(2) (up to 1024 pieces a
// call, all written before its block goes back to the kernel). Nothing
// else: no filter, no interface metadata, no Go poller (it waits in
// poll(2) on a locked thread).
//
//	capfloor -i IFACE -w FILE
//
// It captures in the network namespace it runs in (run it under `ip netns
// exec`), prints "listening on IFACE" on stderr once the ring is bound,
// and on SIGINT or SIGTERM writes what it holds and prints, as tcpdump
// does:
//
//	N packets captured
//	N packets received by filter
//	N packets dropped by kernel
package main

import (
	"encoding/binary"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"runtime"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

const (
	blockSize = 1 << 20
	nblocks   = 4
	blockTO   = 100 // ms
	bufSize   = 256 << 10
)

func main() {
	ifname := flag.String("i", "", "interface to capture on")
	out := flag.String("w", "", "pcap file to write")
	flag.Parse()
	if *ifname == "" || *out == "" {
		fmt.Fprintln(os.Stderr, "usage: capfloor -i IFACE -w FILE")
		os.Exit(2)
	}
	if err := run(*ifname, *out); err != nil {
		fmt.Fprintln(os.Stderr, "capfloor:", err)
		os.Exit(1)
	}
}

func run(ifname, out string) error {
	runtime.LockOSThread()
	ifc, err := net.InterfaceByName(ifname)
	if err != nil {
		return err
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer f.Close()
	ofd := int(f.Fd())
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
	if err != nil {
		return os.NewSyscallError("socket", err)
	}
	defer unix.Close(fd)
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VERSION, unix.TPACKET_V3); err != nil {
		return os.NewSyscallError("setsockopt PACKET_VERSION", err)
	}
	req := unix.TpacketReq3{Block_size: blockSize, Block_nr: nblocks, Frame_size: 2048,
		Frame_nr: blockSize / 2048 * nblocks, Retire_blk_tov: blockTO}
	if err := unix.SetsockoptTpacketReq3(fd, unix.SOL_PACKET, unix.PACKET_RX_RING, &req); err != nil {
		return os.NewSyscallError("setsockopt PACKET_RX_RING", err)
	}
	mem, err := unix.Mmap(fd, 0, blockSize*nblocks, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return os.NewSyscallError("mmap", err)
	}
	defer unix.Munmap(mem)
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifc.Index}); err != nil {
		return os.NewSyscallError("bind", err)
	}

	var stop atomic.Bool
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() { <-sigs; stop.Store(true) }()

	buf := make([]byte, 0, bufSize+blockSize)
	// pcap file header: nanosecond timestamps, Ethernet, snaplen 262144.
	buf = binary.LittleEndian.AppendUint32(buf, 0xa1b23c4d)
	buf = binary.LittleEndian.AppendUint16(buf, 2)
	buf = binary.LittleEndian.AppendUint16(buf, 4)
	buf = append(buf, make([]byte, 8)...)
	buf = binary.LittleEndian.AppendUint32(buf, 262144)
	buf = binary.LittleEndian.AppendUint32(buf, 1)
	// iov: what the next writev writes, in order: pieces of buf (record
	// headers, small packets) and packets in the ring; done is how much of
	// buf is in iov already.
	var iov [][]byte
	done := 0
	flush := func() error {
		if done < len(buf) {
			iov = append(iov, buf[done:])
		}
		for len(iov) > 0 {
			k := min(len(iov), 1024)
			n, err := unix.Writev(ofd, iov[:k])
			if err != nil {
				return os.NewSyscallError("writev", err)
			}
			for n > 0 { // a short write: skip what went
				if n >= len(iov[0]) {
					n -= len(iov[0])
					iov = iov[1:]
				} else {
					iov[0] = iov[0][n:]
					n = 0
				}
			}
		}
		iov, buf, done = iov[:0], buf[:0], 0
		return nil
	}
	fmt.Fprintf(os.Stderr, "listening on %s\n", ifname)

	var captured uint64
	pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN | unix.POLLERR}}
	for cur := 0; ; cur = (cur + 1) % nblocks {
		bd := (*unix.TpacketBlockDesc)(unsafe.Pointer(&mem[cur*blockSize]))
		h1 := (*unix.TpacketHdrV1)(unsafe.Pointer(&bd.Hdr[0]))
		status := (*atomic.Uint32)(unsafe.Pointer(&h1.Block_status))
		for status.Load()&unix.TP_STATUS_USER == 0 {
			if stop.Load() {
				return finish(fd, flush, captured)
			}
			if _, err := unix.Poll(pfd, blockTO+10); err != nil && err != unix.EINTR {
				return os.NewSyscallError("poll", err)
			}
		}
		off := int(h1.Offset_to_first_pkt)
		for i := uint32(0); i < h1.Num_pkts; i++ {
			p := cur*blockSize + off
			h := (*unix.Tpacket3Hdr)(unsafe.Pointer(&mem[p]))
			data := mem[p+int(h.Mac) : p+int(h.Mac)+int(h.Snaplen)]
			buf = binary.LittleEndian.AppendUint32(buf, h.Sec)
			buf = binary.LittleEndian.AppendUint32(buf, h.Nsec)
			buf = binary.LittleEndian.AppendUint32(buf, h.Snaplen)
			buf = binary.LittleEndian.AppendUint32(buf, h.Len)
			if len(data) < 1024 {
				buf = append(buf, data...)
			} else {
				iov = append(iov, buf[done:], data)
				done = len(buf)
			}
			captured++
			if len(buf) >= bufSize || len(iov) >= 1024 {
				if err := flush(); err != nil {
					return err
				}
			}
			off += int(h.Next_offset)
		}
		if len(iov) > 0 { // pieces of this block: out before it goes back
			if err := flush(); err != nil {
				return err
			}
		}
		status.Store(unix.TP_STATUS_KERNEL)
		if stop.Load() {
			return finish(fd, flush, captured)
		}
	}
}

// finish writes what is buffered and prints the counts as tcpdump does.
func finish(fd int, flush func() error, captured uint64) error {
	if err := flush(); err != nil {
		return err
	}
	st, err := unix.GetsockoptTpacketStatsV3(fd, unix.SOL_PACKET, unix.PACKET_STATISTICS)
	if err != nil {
		return os.NewSyscallError("getsockopt PACKET_STATISTICS", err)
	}
	fmt.Fprintf(os.Stderr, "%d packets captured\n%d packets received by filter\n%d packets dropped by kernel\n",
		captured, st.Packets, st.Drops)
	return nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
