// Package hookproto is the protocol between nsjoin's Cmd.Start and the
// pre-runtime exec hook in package nsjoin/exechook, and the record of
// whether that hook is linked into the program.
//
// Start makes a SOCK_SEQPACKET socket pair, writes one bootstrap message
// (Magic, the nonce, then the instructions) into it, hands the child's end
// to the re-executed binary as an inherited descriptor and names it in the
// environment as Env=FD:NONCE (decimal, then 32 lowercase hex digits). The
// hook acts only when that descriptor is an AF_UNIX SOCK_SEQPACKET socket
// made by its parent process (SO_PEERCRED) and the message carries the same
// nonce; anything else leaves the program to run its own main. The hook
// acknowledges the instructions with a status message of KindAck, then
// either reports a failure with one more status message and exits, or
// execs the command, which closes the socket: Start reads that as success.
package hookproto

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
)

// Env is the environment variable naming the bootstrap socket and nonce.
const Env = "_NSJOIN_EXEC"

// Magic starts every bootstrap message (protocol version 1).
const Magic = "NSJ1"

// NonceLen is the length of the nonce in bytes.
const NonceLen = 16

// MaxMessage bounds a bootstrap message; the hook refuses longer ones.
const MaxMessage = 4096

var linked atomic.Bool

// SetLinked records that the exec hook is linked in; package exechook
// calls it from init.
func SetLinked() { linked.Store(true) }

// Linked reports whether the exec hook is linked into this program.
func Linked() bool { return linked.Load() }

// Join is one namespace to join: its CLONE_NEW* flag and the descriptor
// number it has in the child.
type Join struct {
	Flag uint32
	FD   int
}

// Spec is what the hook does before it execs the command.
type Spec struct {
	Joins     []Join
	Unshare   uint32 // CLONE_NEW* flags to unshare
	MapRoot   bool   // map root to UID/GID in the new user namespace
	UID, GID  uint32
	Hostname  string // sethostname in the new UTS namespace
	MountProc bool   // mount a new /proc
	Fork      bool   // fork and wait, so the command is in new/joined pid namespaces
}

// Instructions returns the comma-separated tokens the hook parses:
//
//	j<flag>:<fd>  join the namespace open at fd (flag in hex)
//	n<flags>      unshare(flags) (hex)
//	m<uid>:<gid>  map root to uid/gid in a new user namespace
//	h<name>       set the hostname
//	p             mount a fresh /proc
//	f             fork and wait
func (s Spec) Instructions() string {
	var tokens []string
	for _, j := range s.Joins {
		tokens = append(tokens, fmt.Sprintf("j%x:%d", j.Flag, j.FD))
	}
	if s.Unshare != 0 {
		tokens = append(tokens, fmt.Sprintf("n%x", s.Unshare))
	}
	if s.MapRoot {
		tokens = append(tokens, fmt.Sprintf("m%d:%d", s.UID, s.GID))
	}
	if s.Hostname != "" {
		tokens = append(tokens, "h"+s.Hostname)
	}
	if s.MountProc {
		tokens = append(tokens, "p")
	}
	if s.Fork {
		tokens = append(tokens, "f")
	}
	return strings.Join(tokens, ",")
}

// Message returns the bootstrap message for s with nonce.
func (s Spec) Message(nonce [NonceLen]byte) []byte {
	var b bytes.Buffer
	b.WriteString(Magic)
	b.Write(nonce[:])
	b.WriteString(s.Instructions())
	return b.Bytes()
}

// EnvValue returns Env's value for the socket at fd and nonce.
func EnvValue(fd int, nonce [NonceLen]byte) string {
	return strconv.Itoa(fd) + ":" + hex.EncodeToString(nonce[:])
}

// Status kinds, the first byte of a status message.
const (
	KindAck   = 'a' // the instructions were accepted (errno 0, no text)
	KindSetup = 'f' // setting up the namespaces failed
	KindExec  = 'x' // execvp failed; Text is the command name
)

// Status is a failure the hook reported: its kind, the errno and a text
// (the message, or for KindExec the command name).
type Status struct {
	Kind  byte
	Errno syscall.Errno
	Text  string
}

// ErrBadStatus: a status message is not in the hook's format.
var ErrBadStatus = errors.New("malformed status from the exec hook")

// ParseStatus parses a status message: kind byte, errno in decimal, one
// space, text (no control characters; at most MaxMessage bytes in all).
func ParseStatus(b []byte) (Status, error) {
	if len(b) < 3 || len(b) > MaxMessage || (b[0] != KindAck && b[0] != KindSetup && b[0] != KindExec) {
		return Status{}, ErrBadStatus
	}
	num, text, ok := bytes.Cut(b[1:], []byte{' '})
	if !ok || len(num) == 0 || len(num) > 4 {
		return Status{}, ErrBadStatus
	}
	n := 0
	for _, c := range num {
		if c < '0' || c > '9' {
			return Status{}, ErrBadStatus
		}
		n = n*10 + int(c-'0')
	}
	for _, c := range text {
		if c < 0x20 || c == 0x7f {
			return Status{}, ErrBadStatus
		}
	}
	return Status{Kind: b[0], Errno: syscall.Errno(n), Text: string(text)}, nil
}
