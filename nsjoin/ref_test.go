package nsjoin

import (
	"errors"
	"strconv"
	"strings"
	"testing"
)

func TestParseRef(t *testing.T) {
	for _, c := range []struct {
		ref  string
		kind refKind
		pid  int
	}{
		{"/proc/1/ns/net", refPath, 0},
		{"a/b", refPath, 0},
		{"self", refSelf, 0},
		{"1", refPID, 1},
		{"0042", refPID, 42},
		{"lab1", refName, 0},
		{"self2", refName, 0},
		{"-1", refName, 0},
		{"12a", refName, 0},
	} {
		kind, pid, err := parseRef(c.ref)
		if err != nil || kind != c.kind || pid != c.pid {
			t.Errorf("parseRef(%q) = %v %d %v, want %v %d", c.ref, kind, pid, err, c.kind, c.pid)
		}
	}
	for _, bad := range []string{"", "0", "000", "99999999999999999999", ".", ".."} {
		if kind, pid, err := parseRef(bad); err == nil {
			t.Errorf("parseRef(%q) = %v %d, want an error", bad, kind, pid)
		}
	}
}

// FuzzParseRef: every string is classified exactly as the NSREF grammar
// says, or refused, and nothing panics.
func FuzzParseRef(f *testing.F) {
	for _, s := range []string{"/proc/1/ns/net", "self", "1234", "lab1", "", "0", "..", "a\x00b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ref string) {
		kind, pid, err := parseRef(ref)
		if err != nil {
			if kind != 0 || pid != 0 {
				t.Fatalf("%q: error %v with kind %v pid %d", ref, err, kind, pid)
			}
			return
		}
		switch kind {
		case refPath:
			if !strings.Contains(ref, "/") {
				t.Fatalf("%q read as a path", ref)
			}
		case refSelf:
			if ref != "self" {
				t.Fatalf("%q read as self", ref)
			}
		case refPID:
			if !isDigits(ref) || pid <= 0 || strconv.Itoa(pid) != strings.TrimLeft(ref, "0") {
				t.Fatalf("%q read as PID %d", ref, pid)
			}
		case refName:
			if strings.ContainsAny(ref, "/\x00") || isDigits(ref) || ref == "self" || ValidateName(ref) != nil {
				t.Fatalf("%q read as a name", ref)
			}
			// A name fit for a new namespace is always reached as a name.
		default:
			t.Fatalf("%q: kind %v", ref, kind)
		}
		if ValidateNewName(ref) == nil && kind != refName {
			t.Fatalf("%q is a valid new name but an NSREF reads it as %v", ref, kind)
		}
	})
}

func TestValidateNewName(t *testing.T) {
	for _, bad := range []string{"12345", "self", "a/b", "a\nb", "a b", "a\x1b[31m", "\u202eevil", "a\x7f", string([]byte{0xff}), "", ".", ".."} {
		if err := ValidateNewName(bad); !errors.Is(err, ErrInvalidName) {
			t.Errorf("ValidateNewName(%q) = %v, want ErrInvalidName", bad, err)
		}
	}
	for _, good := range []string{"lab1", "ns-1.a_b", "1a", "straße"} {
		if err := ValidateNewName(good); err != nil {
			t.Errorf("ValidateNewName(%q) = %v", good, err)
		}
	}
}
