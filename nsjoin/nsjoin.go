package nsjoin

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/netobs/netobs/internal/termsafe"
)

// Type is a kind of Linux namespace. The zero value is invalid on purpose,
// so that a forgotten field is caught instead of meaning "network".
type Type int

// The namespace types, in the order nsenter joins them.
const (
	_ Type = iota
	User
	Cgroup
	IPC
	UTS
	Net
	PID
	Mnt
	Time
)

// AllTypes lists every namespace type in the order Command joins them.
var AllTypes = []Type{User, Cgroup, IPC, UTS, Net, PID, Mnt, Time}

var typeNames = map[Type]string{
	User: "user", Cgroup: "cgroup", IPC: "ipc", UTS: "uts",
	Net: "net", PID: "pid", Mnt: "mnt", Time: "time",
}

// String returns the name the kernel uses in /proc/PID/ns (net, uts, ...).
func (t Type) String() string {
	if s, ok := typeNames[t]; ok {
		return s
	}
	return fmt.Sprintf("Type(%d)", int(t))
}

// Valid reports whether t is one of the namespace types.
func (t Type) Valid() bool {
	_, ok := typeNames[t]
	return ok
}

// ParseType parses a namespace type name as /proc/PID/ns, lsns and nsenter
// spell them ("net", "mnt", ...); "network" and "mount" are accepted too.
func ParseType(s string) (Type, error) {
	switch strings.ToLower(s) {
	case "network":
		return Net, nil
	case "mount":
		return Mnt, nil
	}
	for t, name := range typeNames {
		if strings.EqualFold(s, name) {
			return t, nil
		}
	}
	return 0, fmt.Errorf("unknown namespace type %q (want one of user, cgroup, ipc, uts, net, pid, mnt, time)", s)
}

// ID identifies a namespace: the device and inode of its nsfs file, which is
// what `readlink /proc/PID/ns/TYPE` prints as TYPE:[INODE], and the kernel's
// 64-bit namespace ID where the kernel has NS_GET_ID (Linux 6.18 and later;
// zero otherwise). Two handles refer to the same namespace exactly when
// their IDs are equal.
type ID struct {
	Dev   uint64
	Inode uint64
	NSID  uint64
}

// String formats the ID as the kernel's symlink text for type t.
func (id ID) Format(t Type) string { return fmt.Sprintf("%s:[%d]", t, id.Inode) }

// Sentinel errors, usable with errors.Is on every error nsjoin returns.
var (
	// ErrNotNamespace: the reference names a file that is not an nsfs file.
	ErrNotNamespace = errors.New("is not a namespace file")
	// ErrWrongType: the namespace is of another type than the caller wants.
	ErrWrongType = errors.New("wrong namespace type")
	// ErrNoProcess: a PID reference names no live process.
	ErrNoProcess = errors.New("no such process")
	// ErrNotFound: no named network namespace of that name exists.
	ErrNotFound = errors.New("no such named network namespace")
	// ErrExists: a named network namespace of that name exists already.
	ErrExists = errors.New("named network namespace exists")
	// ErrInvalidName: the name cannot be a file name under /run/netns.
	ErrInvalidName = errors.New("invalid namespace name")
	// ErrClosed: the handle was closed.
	ErrClosed = errors.New("namespace handle closed")
	// ErrUnsupported: the operation cannot be done for this namespace type
	// (Do on a mnt, pid, user, cgroup or time namespace) or on this system.
	ErrUnsupported = errors.New("not supported")
	// ErrThreadDiscarded: Do could not return its thread to the original
	// namespace; the thread was left locked so the runtime terminates it.
	ErrThreadDiscarded = errors.New("thread discarded after failed restore")
	// ErrHookNotLinked: Command and Unshare need the exec hook, which a
	// program links in by importing nsjoin/exechook (and which needs cgo).
	ErrHookNotLinked = errors.New(`the exec hook is not linked in: import _ "github.com/netobs/netobs/nsjoin/exechook" in package main`)
)

// ExecError says that the command Start was asked to run could not be
// executed inside the namespaces: Err is the errno of execvp, ENOENT when
// no such program was found (errors.Is(err, fs.ErrNotExist)), EACCES and
// others when it could not be executed. Shells and nsenter exit 127 and
// 126 for these; ExitCode says which.
type ExecError struct {
	Name string // the command as given
	Err  error
}

func (e *ExecError) Error() string { return "exec " + e.Name + ": " + e.Err.Error() }
func (e *ExecError) Unwrap() error { return e.Err }

// ExitCode returns 127 when the program was not found, else 126, the
// statuses of sh, env and nsenter.
func (e *ExecError) ExitCode() int {
	if errors.Is(e.Err, fs.ErrNotExist) {
		return 127
	}
	return 126
}

// WrongTypeError says which type a namespace is and which was wanted.
type WrongTypeError struct {
	Got, Want Type
}

func (e *WrongTypeError) Error() string {
	return fmt.Sprintf("is a %s namespace, not %s", e.Got, e.Want)
}

// Is makes errors.Is(err, ErrWrongType) true.
func (e *WrongTypeError) Is(target error) bool { return target == ErrWrongType }

// Error is the error every public nsjoin call returns: the operation, the
// namespace reference it was about, and the cause.
type Error struct {
	Op  string // "open", "do", "exec", "add", ...
	Ref string // the reference as the caller gave it, or a path
	Err error
}

func (e *Error) Error() string {
	if e.Ref == "" {
		return e.Op + ": " + e.Err.Error()
	}
	// The reference is user input, or a name found on the system: quoted
	// when it holds anything that would not print as itself.
	return e.Op + " " + termsafe.Quote(e.Ref) + ": " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// wrap returns nil for a nil err, so call sites can wrap unconditionally.
func wrap(op, ref string, err error) error {
	if err == nil {
		return nil
	}
	return &Error{Op: op, Ref: ref, Err: err}
}

// Info describes one namespace found by List.
type Info struct {
	Type Type
	ID   ID
	// NProcs counts the processes (not threads) in the namespace; zero for
	// a namespace only a bind mount such as /run/netns/NAME keeps alive.
	NProcs int
	// PID is the lowest PID in the namespace, Command its command line and
	// UID its owner; zero values when no process is in it.
	PID     int
	Command string
	UID     int
	// Names are the `ip netns` names bound to a network namespace.
	Names []string
	// UserNS is the inode of the owning user namespace, 0 if it cannot be
	// seen from here.
	UserNS uint64
}
