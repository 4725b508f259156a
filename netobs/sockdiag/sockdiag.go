package sockdiag

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strconv"
)

// Socket is one TCP or UDP socket of a namespace.
type Socket struct {
	Proto string // "tcp" or "udp"
	// State is the kernel state in ss's spelling: LISTEN, ESTAB, SYN-SENT,
	// SYN-RECV, FIN-WAIT-1, FIN-WAIT-2, TIME-WAIT, CLOSE-WAIT, LAST-ACK,
	// CLOSING, UNCONN (an unconnected UDP socket, or a closed TCP one).
	State string
	Local netip.AddrPort
	Peer  netip.AddrPort
	// V6Only is set for IPv6 sockets that refuse IPv4; an IPv6 wildcard
	// socket without it accepts both and ss shows its address as "*".
	V6Only bool
	// Iface is the index of the device the socket is bound to, 0 if none;
	// IfName its name in the namespace when it could be found.
	Iface  uint32
	IfName string
	// RecvQ and SendQ are ss's Recv-Q and Send-Q: for a listening socket,
	// the accept queue's length and its limit; otherwise bytes queued.
	RecvQ, SendQ uint32
	UID          uint32
	Inode        uint64 // 0 for sockets no file holds (TIME-WAIT, orphans)
	Procs        []Proc
}

// Proc is a process holding a socket through one of its file descriptors.
type Proc struct {
	PID  int    `json:"pid"`
	Comm string `json:"comm"`
	FD   int    `json:"fd"`
}

// Options select sockets. With neither TCP nor UDP set, both are listed.
type Options struct {
	TCP, UDP bool
	// Listening lists only listening TCP sockets and unconnected UDP
	// sockets, like ss -l; otherwise every state is listed, like ss -a.
	Listening bool
	// NoProcs skips the /proc scan for owning processes.
	NoProcs bool
}

// TCP states as include/net/tcp_states.h numbers them.
var stateNames = [...]string{
	1: "ESTAB", 2: "SYN-SENT", 3: "SYN-RECV", 4: "FIN-WAIT-1", 5: "FIN-WAIT-2",
	6: "TIME-WAIT", 7: "UNCONN", 8: "CLOSE-WAIT", 9: "LAST-ACK", 10: "LISTEN",
	11: "CLOSING", 12: "NEW-SYN-RECV",
}

const (
	stateClose  = 7
	stateListen = 10
)

func stateName(s uint8) string {
	if int(s) < len(stateNames) && stateNames[s] != "" {
		return stateNames[s]
	}
	return "UNKNOWN-" + strconv.Itoa(int(s))
}

// LocalString formats the local address as ss does: "*" for a dual-stack
// wildcard, "%dev" for a bound device.
func (s *Socket) LocalString() string { return s.format(s.Local, false) }

// PeerString formats the peer address as ss does ("0.0.0.0:*" when none).
func (s *Socket) PeerString() string { return s.format(s.Peer, true) }

func (s *Socket) format(ap netip.AddrPort, peer bool) string {
	host := ap.Addr().String()
	if ap.Addr().Is6() {
		host = "[" + host + "]"
	}
	if ap.Addr().Is6() && ap.Addr().IsUnspecified() && !s.V6Only {
		host = "*"
	}
	if !peer && s.IfName != "" {
		host += "%" + s.IfName
	} else if !peer && s.Iface != 0 {
		host += fmt.Sprintf("%%if%d", s.Iface)
	}
	port := strconv.Itoa(int(ap.Port()))
	if ap.Port() == 0 {
		port = "*"
	}
	return host + ":" + port
}

type socketJSON struct {
	Netid     string `json:"netid"`
	State     string `json:"state"`
	RecvQ     uint32 `json:"recv_q"`
	SendQ     uint32 `json:"send_q"`
	Local     string `json:"local"`
	Peer      string `json:"peer"`
	LocalAddr string `json:"local_addr"`
	LocalPort uint16 `json:"local_port"`
	PeerAddr  string `json:"peer_addr"`
	PeerPort  uint16 `json:"peer_port"`
	V6Only    bool   `json:"v6only,omitempty"`
	Iface     string `json:"iface,omitempty"`
	UID       uint32 `json:"uid"`
	Inode     uint64 `json:"inode"`
	Processes []Proc `json:"processes"`
}

// MarshalJSON writes the socket as one object: netid, state, recv_q,
// send_q, local and peer (as ss shows them), local_addr, local_port,
// peer_addr, peer_port, v6only, iface (name, else index), uid, inode and
// processes (pid, comm, fd; [] when none). This is the form of
// `netobs sockets --json` and of serve's /api/sockets.
func (s Socket) MarshalJSON() ([]byte, error) {
	iface := s.IfName
	if iface == "" && s.Iface != 0 {
		iface = strconv.Itoa(int(s.Iface))
	}
	procs := s.Procs
	if procs == nil {
		procs = []Proc{}
	}
	return json.Marshal(socketJSON{
		Netid: s.Proto, State: s.State, RecvQ: s.RecvQ, SendQ: s.SendQ,
		Local: s.LocalString(), Peer: s.PeerString(),
		LocalAddr: s.Local.Addr().String(), LocalPort: s.Local.Port(),
		PeerAddr: s.Peer.Addr().String(), PeerPort: s.Peer.Port(),
		V6Only: s.V6Only, Iface: iface, UID: s.UID, Inode: s.Inode, Processes: procs,
	})
}
