package tapdev

import (
	"bytes"
	"os"
	"strconv"
	"testing"
)

// FuzzParseFilter feeds tc filter messages, as a namespace's kernel (or
// anything pretending to be it) might send, to the dump parser and the
// cookie reader. The corpus holds a real dump of a mirrored interface
// with a user filter.
func FuzzParseFilter(f *testing.F) {
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		flt, err := parseFilter(b)
		if err != nil {
			return
		}
		for _, c := range flt.cookies {
			if o, ok := parseCookie(c); ok && !bytes.Equal(o.cookie(), c) {
				t.Errorf("cookie %x reads as %+v, which writes as %x", c, o, o.cookie())
			}
		}
	})
}

// FuzzProcStart: /proc/PID/stat holds the command name a process chose,
// which may contain spaces and parentheses.
func FuzzProcStart(f *testing.F) {
	if b, err := os.ReadFile("/proc/self/stat"); err == nil {
		f.Add(b)
	}
	f.Add([]byte("42 (a) b) c) S 1 1 1 0 -1 4194304 0 0 0 0 0 0 0 0 20 0 1 0 98765 0 0"))
	f.Fuzz(func(t *testing.T, b []byte) {
		procStart(b)
	})
}

func TestParseFilterKernelDump(t *testing.T) {
	// The kernel's dump of ingress of a mirrored interface with a user
	// filter at pref 50000 (testdata/fuzz/FuzzParseFilter/kernel-*):
	// per priority an entry, the u32 root hash table and the node. The
	// user made the clsact qdisc, so the cookie does not claim it.
	var got []tcFilter
	for i := 0; i < 6; i++ {
		b := corpusBytes(t, "testdata/fuzz/FuzzParseFilter/kernel-"+string(rune('0'+i)))
		f, err := parseFilter(b)
		if err != nil {
			t.Fatalf("kernel-%d: %v", i, err)
		}
		got = append(got, f)
	}
	var nodes, mine int
	for _, f := range got {
		if f.kind != "u32" || f.parent != 0xfffffff2 || f.proto == 0 {
			t.Errorf("%+v: want u32 on ingress with a protocol", f)
		}
		if f.isNode() {
			nodes++
		}
		if o, ok := f.netobsOwner(); ok {
			mine++
			if !f.isNode() || o.pid == 0 || o.qdisc {
				t.Errorf("netobs filter %+v, owner %+v", f, o)
			}
		}
	}
	if nodes != 2 || mine != 1 {
		t.Errorf("%d nodes, %d of netobs; want 2 and 1", nodes, mine)
	}
}

// corpusBytes reads the one []byte value of a corpus file.
func corpusBytes(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.SplitN(b, []byte("\n"), 2)
	s := string(bytes.TrimSpace(lines[1]))
	s = s[len("[]byte(") : len(s)-1]
	v, err := strconv.Unquote(s)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return []byte(v)
}

func TestMirrorPrio(t *testing.T) {
	fs := func(prios ...uint16) []tcFilter {
		var r []tcFilter
		for _, p := range prios {
			r = append(r, tcFilter{prio: p})
		}
		return r
	}
	for _, c := range []struct {
		this, other []tcFilter
		want        uint16
	}{
		{nil, nil, 0xc000},
		{fs(50000), nil, 0xc000},
		{fs(100), nil, 99},
		{fs(100), fs(99), 98},
		{fs(1, 5), nil, 0xffff},
		{fs(1, 0xffff), fs(0xfffe), 0xfffd},
		{fs(0xc000), fs(0xbfff), 0xbffe},
	} {
		if got, err := mirrorPrio(c.this, c.other); err != nil || got != c.want {
			t.Errorf("mirrorPrio(%v, %v) = %d, %v; want %d", c.this, c.other, got, err, c.want)
		}
	}
}
