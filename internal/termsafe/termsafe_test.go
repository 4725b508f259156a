package termsafe

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestQuote(t *testing.T) {
	for in, want := range map[string]string{
		"lab1":               "lab1",
		"/proc/42/ns/net":    "/proc/42/ns/net",
		"user=self net=x":    "user=self net=x",
		"":                   `""`,
		"\x1b[31mred\n":      `"\x1b[31mred\n"`,
		"a\u202eb":           `"a\u202eb"`,
		"bad\xffutf8":        `"bad\xffutf8"`,
		`quote"d back\slash`: `quote"d back\slash`,
	} {
		if got := Quote(in); got != want {
			t.Errorf("Quote(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestEscape(t *testing.T) {
	for in, want := range map[string]string{
		"sleep 600":          "sleep 600",
		"":                   "",
		"eth0\x1b[2J":        `eth0\x1b[2J`,
		"two\nlines\r":       `two\nlines\r`,
		"tab\there":          `tab\there`,
		"rtl\u202eoverride":  `rtl\u202eoverride`,
		"bad\xff\xfe":        `bad\xff\xfe`,
		"café ünïcode":       "café ünïcode",
		"del\x7f nul\x00":    `del\x7f nul\x00`,
		"c1 control \u009b[": `c1 control \u009b[`,
	} {
		if got := Escape(in); got != want {
			t.Errorf("Escape(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzEscape: whatever the input, the output is valid UTF-8 without a
// single control or format character, and Quote's output is one line too.
func FuzzEscape(f *testing.F) {
	for _, s := range []string{"eth0", "\x1b[31m\n", "a\u202eb", "\xff", "sleep 600", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, out := range []string{Escape(s), Quote(s)} {
			if !utf8.ValidString(out) {
				t.Fatalf("%q: output %q is not valid UTF-8", s, out)
			}
			if strings.ContainsAny(out, "\n\r\x1b") {
				t.Fatalf("%q: output %q has a raw control character", s, out)
			}
			if !Safe(out) && out != "" {
				t.Fatalf("%q: output %q is not safe", s, out)
			}
		}
		if Safe(s) && Escape(s) != s {
			t.Fatalf("safe %q changed to %q", s, Escape(s))
		}
	})
}
