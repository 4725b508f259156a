// Package pktout turns packets into output: pcap and pcapng files, and
// tcpdump-like one-line summaries or JSON objects. It is the one packet
// writer and summariser of netobs: capture, attach (and what comes after
// them) hand it Packets and write through it.
//
// PcapWriter writes classic pcap with nanosecond timestamps (magic
// 0xa1b23c4d). PcapngWriter writes one section with an interface
// description block per Interface (name, description, filter,
// if_tsresol=9) and, at the end, interface statistics blocks (isb_ifrecv,
// isb_osdrop and isb_ifdrop, isb_usrdeliv). Both buffer whole records and,
// when a write fails part-way (a full disk), cut a file back to its last
// whole record so it stays readable to its end; Written says how many
// packets it holds.
//
// SummaryWriter writes one line per packet in tcpdump -n's words (lengths
// as on the wire, also for packets cut by a snapshot length), or one JSON
// object per packet (PacketSummary).
//
// # Privileges and namespaces
//
// None: pktout does no system calls of its own beyond writing to the
// io.Writer it is given, and runs on any goroutine. A writer is not safe
// for concurrent use. When that io.Writer is an *os.File open on a regular
// file, pcap and pcapng records are written to it with write(2) made as a
// raw system call (the file cannot block the way a pipe can, and telling
// the Go runtime about each write cost capture a sixth of its CPU).
package pktout
