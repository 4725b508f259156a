package nlwire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ErrMalformed: a message or attribute length does not fit the bytes
// that carry it.
var ErrMalformed = errors.New("malformed netlink message")

// Recv reads one datagram from fd into buf with recvmsg(2) and flags.
// fromKernel is true only when the sender's port id is 0, which no user
// space socket can have: the kernel's answers and notifications. A
// datagram from anyone else must be dropped unread.
func Recv(fd int, buf []byte, flags int) (n, rflags int, fromKernel bool, err error) {
	n, _, rflags, from, err := unix.Recvmsg(fd, buf, nil, flags)
	if err != nil {
		return 0, 0, false, err
	}
	sa, ok := from.(*unix.SockaddrNetlink)
	return n, rflags, ok && sa.Pid == 0, nil
}

// ConnectKernel connects fd to the kernel (port id 0). The kernel then
// refuses unicast messages from any other socket to fd (the sender gets
// ECONNREFUSED); multicast still arrives, so Recv's check stays needed.
// Replies to requests sent on fd and subscribed groups are unaffected.
func ConnectKernel(fd int) error {
	return os.NewSyscallError("connect", unix.Connect(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}))
}

// Messages calls fn for each netlink message in the datagram b, with its
// header and payload. A length that runs past the end ends the walk with
// an error wrapping ErrMalformed; the messages before it have been passed
// to fn. An error from fn ends the walk and is returned as is.
func Messages(b []byte, fn func(h *unix.NlMsghdr, payload []byte) error) error {
	for len(b) >= unix.NLMSG_HDRLEN {
		// Copied out: b need not be aligned for an NlMsghdr.
		var h unix.NlMsghdr
		copy(unsafe.Slice((*byte)(unsafe.Pointer(&h)), unix.NLMSG_HDRLEN), b)
		l := int(h.Len)
		if l < unix.NLMSG_HDRLEN || l > len(b) {
			return fmt.Errorf("%w: length %d of %d bytes", ErrMalformed, l, len(b))
		}
		if err := fn(&h, b[unix.NLMSG_HDRLEN:l:l]); err != nil {
			return err
		}
		al := (l + unix.NLMSG_ALIGNTO - 1) &^ (unix.NLMSG_ALIGNTO - 1)
		if al >= len(b) {
			return nil
		}
		b = b[al:]
	}
	return nil
}

// Attr is one route attribute (struct rtattr, struct nlattr).
type Attr struct {
	// Type without the NLA_F_NESTED and NLA_F_NET_BYTEORDER flags.
	Type  uint16
	Value []byte
}

// Attrs parses the attributes in b. The last attribute's length need not
// be a multiple of 4. A length shorter than an attribute header or longer
// than what is left is an error wrapping ErrMalformed; trailing bytes too
// few for a header are ignored, as the kernel does.
func Attrs(b []byte) ([]Attr, error) {
	var as []Attr
	for len(b) >= unix.SizeofRtAttr {
		l := int(native16(b[0:2]))
		if l < unix.SizeofRtAttr || l > len(b) {
			return as, fmt.Errorf("%w: attribute length %d of %d bytes", ErrMalformed, l, len(b))
		}
		as = append(as, Attr{Type: native16(b[2:4]) &^ (unix.NLA_F_NESTED | unix.NLA_F_NET_BYTEORDER), Value: b[unix.SizeofRtAttr:l:l]})
		al := (l + unix.RTA_ALIGNTO - 1) &^ (unix.RTA_ALIGNTO - 1)
		if al >= len(b) {
			break
		}
		b = b[al:]
	}
	return as, nil
}

func native16(b []byte) uint16 { return binary.NativeEndian.Uint16(b) }

// Uint32 returns the attribute's value as a native-endian uint32, or 0
// and false if it is shorter than 4 bytes.
func (a Attr) Uint32() (uint32, bool) {
	if len(a.Value) < 4 {
		return 0, false
	}
	return binary.NativeEndian.Uint32(a.Value), true
}

// String returns the attribute's value up to its first NUL.
func (a Attr) String() string {
	for i, c := range a.Value {
		if c == 0 {
			return string(a.Value[:i])
		}
	}
	return string(a.Value)
}
