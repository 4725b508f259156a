package sockdiag

import (
	"encoding/binary"
	"testing"

	"golang.org/x/sys/unix"
)

// diagMsg encodes one SOCK_DIAG_BY_FAMILY answer for a TCP listener on
// 127.0.0.1:port, with an INET_DIAG_SKV6ONLY attribute.
func diagMsg(seq uint32, port uint16) []byte {
	body := make([]byte, sizeofMsg)
	body[0], body[1] = unix.AF_INET, stateListen
	binary.BigEndian.PutUint16(body[4:], port)
	copy(body[8:], []byte{127, 0, 0, 1})
	binary.NativeEndian.PutUint32(body[72-4:], 4242) // inode
	attr := []byte{5, 0, attrV6Only, 0, 1, 0, 0, 0}
	b := make([]byte, unix.NLMSG_HDRLEN)
	binary.NativeEndian.PutUint32(b[0:], uint32(unix.NLMSG_HDRLEN+len(body)+5))
	binary.NativeEndian.PutUint16(b[4:], unix.SOCK_DIAG_BY_FAMILY)
	binary.NativeEndian.PutUint32(b[8:], seq)
	return append(append(b, body...), attr...)
}

func doneMsg(seq uint32) []byte {
	b := make([]byte, unix.NLMSG_HDRLEN+4)
	binary.NativeEndian.PutUint32(b[0:], uint32(len(b)))
	binary.NativeEndian.PutUint16(b[4:], unix.NLMSG_DONE)
	binary.NativeEndian.PutUint32(b[8:], seq)
	return b
}

func TestParseDatagram(t *testing.T) {
	b := append(append(diagMsg(3, 8080), diagMsg(2, 1)...), doneMsg(3)...)
	socks, done, err := parseDatagram(b, 3, unix.AF_INET, nil)
	if err != nil || !done || len(socks) != 1 {
		t.Fatalf("%+v, done %v, %v; want one socket and the end", socks, done, err)
	}
	s := socks[0]
	if s.State != "LISTEN" || s.LocalString() != "127.0.0.1:8080" || s.Inode != 4242 || !s.V6Only {
		t.Errorf("socket %+v (%s)", s, s.LocalString())
	}
	// A message running past the end is an error, not a panic.
	bad := diagMsg(3, 1)
	binary.NativeEndian.PutUint32(bad[0:], uint32(len(bad)+8))
	if _, _, err := parseDatagram(bad, 3, unix.AF_INET, nil); err == nil {
		t.Error("message past the end of the datagram parsed")
	}
}

// FuzzParseDatagram feeds arbitrary bytes, as one datagram of a
// sock_diag answer, through the parser List uses. Nothing may panic.
func FuzzParseDatagram(f *testing.F) {
	f.Add(append(diagMsg(1, 80), doneMsg(1)...), uint32(1))
	f.Add(diagMsg(1, 80)[:40], uint32(1))
	f.Fuzz(func(t *testing.T, b []byte, seq uint32) {
		socks, _, _ := parseDatagram(b, seq, unix.AF_INET6, nil)
		for _, s := range socks {
			_ = s.LocalString() + s.PeerString()
		}
	})
}
