// Package termsafe makes text that came from outside netobs (command-line
// input, names read from inside a namespace: interface names, process names,
// ip-netns names) safe to print on a terminal: no control characters, escape
// sequences, bidirectional overrides or invalid UTF-8 reach the terminal raw,
// so such text can neither garble the screen nor fake extra lines.
//
// Quote is for error messages, which echo what the user gave; Escape is for
// text output, where names are shown as they are unless they hold such
// characters. Both are pure functions, safe for concurrent use.
package termsafe

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// Safe reports whether s prints as itself: valid UTF-8 of printable runes
// (strconv.IsPrint: letters, marks, numbers, punctuation, symbols and the
// ASCII space), and not empty.
func Safe(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		if r == utf8.RuneError {
			if _, n := utf8.DecodeRuneInString(s[i:]); n == 1 {
				return false
			}
		}
		if !strconv.IsPrint(r) {
			return false
		}
	}
	return true
}

// Quote returns s as it is when Safe(s), and strconv.Quote(s) otherwise, so
// an error names ordinary input plainly ("open lab1: ...") and anything odd
// in Go syntax ("open \"\\x1b[31m\\n\": ..."), always on one line.
func Quote(s string) string {
	if Safe(s) {
		return s
	}
	return strconv.Quote(s)
}

// Escape returns s with every rune that is not printable (control
// characters, escape sequences, format characters such as U+202E, invalid
// UTF-8 bytes) replaced by its Go escape (\x1b, \n, \u202e); printable text,
// spaces included, is kept, so "sleep 600" stays "sleep 600". A backslash
// is kept as it is: the result can be ambiguous, never harmful.
func Escape(s string) string {
	if s == "" || Safe(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			b.WriteString(`\x`)
			b.WriteString(strconv.FormatUint(uint64(s[i])|0x100, 16)[1:])
		case strconv.IsPrint(r):
			b.WriteString(s[i : i+n])
		default:
			q := strconv.QuoteRune(r) // 'x' with r escaped
			b.WriteString(q[1 : len(q)-1])
		}
		i += n
	}
	return b.String()
}
