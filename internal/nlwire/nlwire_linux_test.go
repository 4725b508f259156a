package nlwire

import (
	"encoding/binary"
	"errors"
	"testing"

	"golang.org/x/sys/unix"
)

func attr(l, typ uint16, val ...byte) []byte {
	b := binary.NativeEndian.AppendUint16(nil, l)
	b = binary.NativeEndian.AppendUint16(b, typ)
	return append(b, val...)
}

func TestAttrs(t *testing.T) {
	cat := func(bs ...[]byte) []byte {
		var out []byte
		for _, b := range bs {
			out = append(out, b...)
		}
		return out
	}
	for _, tc := range []struct {
		name string
		in   []byte
		want []Attr
		err  bool
	}{
		{"empty", nil, nil, false},
		{"two", cat(attr(8, 1, 1, 2, 3, 4), attr(6, 2, 9, 9, 0, 0)), []Attr{{1, []byte{1, 2, 3, 4}}, {2, []byte{9, 9}}}, false},
		// The crasher of the netlink library: a last attribute of odd
		// length that ends the buffer exactly.
		{"odd last", cat(attr(8, 1, 1, 2, 3, 4), attr(5, 6, 7)), []Attr{{1, []byte{1, 2, 3, 4}}, {6, []byte{7}}}, false},
		{"flags masked", attr(4, 3|unix.NLA_F_NESTED), []Attr{{3, []byte{}}}, false},
		{"trailing bytes", append(attr(4, 3), 1, 2), []Attr{{3, []byte{}}}, false},
		{"too long", attr(9, 1, 1, 2, 3, 4), nil, true},
		{"too short", attr(3, 1, 1, 2, 3, 4), nil, true},
	} {
		got, err := Attrs(tc.in)
		if (err != nil) != tc.err || (err != nil && !errors.Is(err, ErrMalformed)) {
			t.Errorf("%s: error %v, want error %v (ErrMalformed)", tc.name, err, tc.err)
		}
		if tc.err {
			continue
		}
		if len(got) != len(tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
			continue
		}
		for i := range got {
			if got[i].Type != tc.want[i].Type || string(got[i].Value) != string(tc.want[i].Value) {
				t.Errorf("%s: attribute %d is %v, want %v", tc.name, i, got[i], tc.want[i])
			}
		}
	}
	if v, ok := (Attr{Value: []byte{1, 2, 3}}).Uint32(); ok || v != 0 {
		t.Errorf("Uint32 of 3 bytes: %d, %v", v, ok)
	}
	if s := (Attr{Value: []byte("eth0\x00junk")}).String(); s != "eth0" {
		t.Errorf("String: %q", s)
	}
}

func msg(l uint32, typ uint16, payload ...byte) []byte {
	b := binary.NativeEndian.AppendUint32(nil, l)
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, make([]byte, 10)...)
	return append(b, payload...)
}

func TestMessages(t *testing.T) {
	var types []uint16
	collect := func(h *unix.NlMsghdr, p []byte) error { types = append(types, h.Type); return nil }
	// An odd length on the last message, then one past the end.
	b := append(msg(20, 1, 1, 2, 3, 4), msg(17, 2, 9)...)
	if err := Messages(b, collect); err != nil || len(types) != 2 {
		t.Errorf("two messages: %v, %v", types, err)
	}
	types = nil
	b = append(msg(20, 1, 1, 2, 3, 4), msg(40, 2, 9)...)
	if err := Messages(b, collect); !errors.Is(err, ErrMalformed) || len(types) != 1 {
		t.Errorf("second message too long: %v, %v; want the first and ErrMalformed", types, err)
	}
	types = nil
	if err := Messages(msg(3, 1), collect); !errors.Is(err, ErrMalformed) || len(types) != 0 {
		t.Errorf("length below the header: %v, %v", types, err)
	}
}

// TestRecvSender: a datagram sent by another socket is told apart from
// the kernel's answer, and once connected to the kernel a socket refuses
// other senders.
func TestRecvSender(t *testing.T) {
	sock := func() (int, uint32) {
		fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unix.Close(fd) })
		if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
			t.Fatal(err)
		}
		sa, err := unix.Getsockname(fd)
		if err != nil {
			t.Fatal(err)
		}
		return fd, sa.(*unix.SockaddrNetlink).Pid
	}
	victim, port := sock()
	forger, _ := sock()
	forged := msg(20, unix.RTM_NEWADDR, 2, 24, 0, 0)
	if err := unix.Sendto(forger, forged, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Pid: port}); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1<<16)
	n, _, kernel, err := Recv(victim, buf, 0)
	if err != nil || kernel || n != len(forged) {
		t.Errorf("forged datagram: %d bytes, from the kernel %v, %v", n, kernel, err)
	}
	req := msg(unix.NLMSG_HDRLEN+unix.SizeofIfInfomsg, unix.RTM_GETLINK, make([]byte, unix.SizeofIfInfomsg)...)
	binary.NativeEndian.PutUint16(req[6:], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	if err := unix.Sendto(victim, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		t.Fatal(err)
	}
	if _, _, kernel, err := Recv(victim, buf, 0); err != nil || !kernel {
		t.Errorf("kernel's answer: from the kernel %v, %v", kernel, err)
	}
	if err := ConnectKernel(victim); err != nil {
		t.Fatal(err)
	}
	err = unix.Sendto(forger, forged, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Pid: port})
	if !errors.Is(err, unix.ECONNREFUSED) {
		t.Errorf("unicast to a socket connected to the kernel: %v, want ECONNREFUSED", err)
	}
}

// FuzzAttrs: no input makes Attrs panic or return a value outside b.
func FuzzAttrs(f *testing.F) {
	f.Add(append(attr(8, 1, 1, 2, 3, 4), attr(5, 6, 7)...))
	f.Add(attr(9, 1, 1, 2, 3, 4))
	f.Fuzz(func(t *testing.T, b []byte) {
		as, _ := Attrs(b)
		total := 0
		for _, a := range as {
			total += 4 + len(a.Value)
			a.Uint32()
			_ = a.String()
		}
		if total > len(b) {
			t.Fatalf("attributes cover %d bytes of %d", total, len(b))
		}
	})
}

// FuzzMessages: no input makes Messages panic or pass a payload outside b.
func FuzzMessages(f *testing.F) {
	f.Add(append(msg(20, 1, 1, 2, 3, 4), msg(17, 2, 9)...))
	f.Add(msg(40, 2, 9))
	f.Fuzz(func(t *testing.T, b []byte) {
		total := 0
		Messages(b, func(h *unix.NlMsghdr, p []byte) error {
			total += unix.NLMSG_HDRLEN + len(p)
			if int(h.Len) != unix.NLMSG_HDRLEN+len(p) {
				t.Fatalf("header says %d bytes, payload %d", h.Len, len(p))
			}
			return nil
		})
		if total > len(b) {
			t.Fatalf("messages cover %d bytes of %d", total, len(b))
		}
	})
}
