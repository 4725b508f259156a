//go:build linux

// Command naivetap is the baseline for bench/20-attach.sh: the TAP (or,
// with -tun, TUN) reader a user would write with songgao/water, run inside
// the namespace with `ip netns exec`: create the device, read it in a
// loop, one frame per Read, count. It stops on SIGINT/SIGTERM and prints the count. With -gen it
// instead writes a pcap of n UDP frames of a given size for the inject
// benchmark.
package main

import (
	"encoding/binary"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	"github.com/songgao/water"
)

func main() {
	name := flag.String("name", "naive0", "device name")
	tun := flag.Bool("tun", false, "make a TUN device instead of a TAP")
	gen := flag.String("gen", "", "write a pcap of -n frames of -size bytes to this file and exit")
	n := flag.Int("n", 100000, "frames for -gen")
	size := flag.Int("size", 64, "frame size for -gen")
	flag.Parse()
	if *gen != "" {
		if err := genPcap(*gen, *n, *size); err != nil {
			fmt.Fprintln(os.Stderr, "naivetap:", err)
			os.Exit(1)
		}
		return
	}
	kind := water.DeviceType(water.TAP)
	if *tun {
		kind = water.TUN
	}
	ifce, err := water.New(water.Config{DeviceType: kind, PlatformSpecificParams: water.PlatformSpecificParams{Name: *name}})
	if err != nil {
		fmt.Fprintln(os.Stderr, "naivetap:", err)
		os.Exit(1)
	}
	var count atomic.Uint64
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		buf := make([]byte, 65536)
		for {
			if _, err := ifce.Read(buf); err != nil {
				return
			}
			count.Add(1)
		}
	}()
	fmt.Fprintln(os.Stderr, "naivetap: reading", ifce.Name())
	<-sig
	fmt.Printf("%d frames read\n", count.Load())
}

// genPcap writes n Ethernet/IPv4/UDP frames of size bytes addressed to a
// MAC nobody has, so the namespace drops them early.
func genPcap(path string, n, size int) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	w := pcapgo.NewWriter(f)
	if err := w.WriteFileHeader(65535, layers.LinkTypeEthernet); err != nil {
		return err
	}
	frame := make([]byte, size)
	copy(frame, []byte{0x02, 0, 0, 0, 0, 0x99, 0x02, 0, 0, 0, 0, 0x98, 0x08, 0x00})
	ip := frame[14:34]
	ip[0], ip[8], ip[9] = 0x45, 64, 17
	binary.BigEndian.PutUint16(ip[2:], uint16(size-14))
	copy(ip[12:], []byte{10, 88, 0, 2, 10, 88, 0, 1})
	binary.BigEndian.PutUint16(frame[34:], 9000)
	binary.BigEndian.PutUint16(frame[36:], 9)
	binary.BigEndian.PutUint16(frame[38:], uint16(size-34))
	now := time.Now()
	for i := 0; i < n; i++ {
		if err := w.WritePacket(gopacket.CaptureInfo{Timestamp: now, CaptureLength: size, Length: size}, frame); err != nil {
			return err
		}
	}
	return nil
}
