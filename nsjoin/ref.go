package nsjoin

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// refKind is what a reference names, by the NSREF grammar.
type refKind int

const (
	_       refKind = iota
	refPath         // contains a '/': an nsfs file
	refSelf         // "self": the calling process's own namespace
	refPID          // decimal digits: the namespace of that process
	refName         // anything else: /run/netns/NAME
)

// parseRef classifies ref as the NSREF grammar says: a path if it contains
// '/', "self", a PID if it is all decimal digits, else an `ip netns` name.
// For a PID it returns the number (> 0); a name must pass ValidateName.
func parseRef(ref string) (refKind, int, error) {
	switch {
	case ref == "":
		return 0, 0, fmt.Errorf("%w: empty namespace reference", ErrInvalidName)
	case strings.ContainsRune(ref, '/'):
		return refPath, 0, nil
	case ref == "self":
		return refSelf, 0, nil
	case isDigits(ref):
		pid, err := strconv.Atoi(ref)
		if err != nil || pid <= 0 {
			return 0, 0, fmt.Errorf("%w: %q is not a valid PID", ErrNoProcess, ref)
		}
		return refPID, pid, nil
	}
	if err := ValidateName(ref); err != nil {
		return 0, 0, err
	}
	return refName, 0, nil
}

func isDigits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != ""
}

// ValidateName checks that name can be an existing `ip netns` name: a
// single file name under /run/netns, not "." or "..", at most 255 bytes.
func ValidateName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: empty name", ErrInvalidName)
	case name == "." || name == "..":
		return fmt.Errorf("%w %q", ErrInvalidName, name)
	case strings.ContainsAny(name, "/\x00"):
		return fmt.Errorf("%w %q: a name cannot contain '/'", ErrInvalidName, name)
	case len(name) > 255:
		return fmt.Errorf("%w: %d bytes, the limit is 255", ErrInvalidName, len(name))
	}
	return nil
}

// ValidateNewName checks that name is fit for a new named network
// namespace: it passes ValidateName, and an NSREF can reach it by name, so
// it is neither all digits (a PID) nor "self", and it has no control
// characters, spaces, format characters (bidi overrides) or invalid UTF-8
// that would garble listings.
func ValidateNewName(name string) error {
	if err := ValidateName(name); err != nil {
		return err
	}
	switch {
	case isDigits(name):
		return fmt.Errorf("%w %q: a name of digits only would be read as a PID", ErrInvalidName, name)
	case name == "self":
		return fmt.Errorf("%w %q: \"self\" means netobs's own namespace", ErrInvalidName, name)
	case !utf8.ValidString(name):
		return fmt.Errorf("%w %q: not valid UTF-8", ErrInvalidName, name)
	}
	for _, r := range name {
		if unicode.IsControl(r) || unicode.IsSpace(r) || unicode.Is(unicode.Cf, r) {
			return fmt.Errorf("%w %q: no spaces or control characters", ErrInvalidName, name)
		}
	}
	return nil
}
