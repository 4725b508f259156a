package hookproto

import (
	"strconv"
	"syscall"
	"testing"
)

func TestParseStatus(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Status
	}{
		{"a0 ", Status{Kind: KindAck}},
		{"x2 /nonexistent/prog", Status{Kind: KindExec, Errno: syscall.ENOENT, Text: "/nonexistent/prog"}},
		{"f1 setns net: Operation not permitted (needs CAP_SYS_ADMIN)", Status{Kind: KindSetup, Errno: syscall.EPERM, Text: "setns net: Operation not permitted (needs CAP_SYS_ADMIN)"}},
	} {
		got, err := ParseStatus([]byte(c.in))
		if err != nil || got != c.want {
			t.Errorf("ParseStatus(%q) = %+v, %v; want %+v", c.in, got, err, c.want)
		}
	}
	for _, bad := range []string{"", "a", "a0", "z0 x", "x-1 p", "x 1", "x12345 p", "xa p", "f1 line\nbreak", "f1 esc\x1b[31m"} {
		if st, err := ParseStatus([]byte(bad)); err == nil {
			t.Errorf("ParseStatus(%q) accepted: %+v", bad, st)
		}
	}
}

// FuzzParseStatus: no input crashes the parser; what it accepts has a
// known kind and no control characters, and reads back the same.
func FuzzParseStatus(f *testing.F) {
	f.Add([]byte("a0 "))
	f.Add([]byte("x2 /nonexistent/prog"))
	f.Add([]byte("f1 setns net: Operation not permitted"))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := ParseStatus(b)
		if err != nil {
			return
		}
		if st.Kind != KindAck && st.Kind != KindExec && st.Kind != KindSetup {
			t.Fatalf("kind %q", st.Kind)
		}
		for _, c := range []byte(st.Text) {
			if c < 0x20 || c == 0x7f {
				t.Fatalf("control character in %q", st.Text)
			}
		}
		again := append([]byte{st.Kind}, strconv.Itoa(int(st.Errno))+" "+st.Text...)
		if st2, err := ParseStatus(again); err != nil || st2 != st {
			t.Fatalf("%q parsed as %+v; its encoding %q as %+v %v", b, st, again, st2, err)
		}
	})
}
