package nsjoin

import "sync"

// NS is an open handle on one namespace. It keeps the namespace alive while
// open, even after every process in it has exited. The zero value is not
// usable; get one from Open, OpenType, OpenFile or Self.
//
// An NS is safe for concurrent use. Close releases it; Close is idempotent,
// and a Do or Command started after Close fails with ErrClosed.
type NS struct {
	typ  Type
	id   ID
	ref  string // the reference as given, for messages
	path string // the file that was opened
	pid  int    // the process a PID reference named, else 0

	mu     sync.RWMutex // guards fd and pidfd against Close
	fd     int          // nsfs file descriptor, O_CLOEXEC; -1 once closed
	pidfd  int          // pidfd of pid, O_CLOEXEC; -1 if none or closed
	closed bool
}

// Type returns the namespace's type, read from the kernel when it was opened.
func (ns *NS) Type() Type { return ns.typ }

// ID returns the namespace's identity.
func (ns *NS) ID() ID { return ns.id }

// Ref returns the reference the handle was opened with.
func (ns *NS) Ref() string { return ns.ref }

// Path returns the nsfs file that was opened (/proc/PID/ns/net, ...).
func (ns *NS) Path() string { return ns.path }

// PID returns the process a PID reference named, or 0 for other references.
func (ns *NS) PID() int { return ns.pid }

// String returns the kernel's name for the namespace, like net:[4026531840].
func (ns *NS) String() string { return ns.id.Format(ns.typ) }

// Same reports whether a and b refer to the same namespace. Namespaces of
// different types are never the same.
func Same(a, b *NS) bool {
	if a == nil || b == nil {
		return false
	}
	return a.typ == b.typ && a.id.Dev == b.id.Dev && a.id.Inode == b.id.Inode
}
