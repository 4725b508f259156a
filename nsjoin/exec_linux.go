package nsjoin

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"strings"
	"syscall"

	"github.com/netobs/netobs/nsjoin/internal/hookproto"
	"golang.org/x/sys/unix"
)

// Command returns a command that runs argv inside the namespaces nss, of
// any types, at most one per type, like nsenter. The binary re-executes
// itself with a hook (compiled in with cgo) that joins the namespaces
// before the Go runtime starts, in nsenter's order (user namespace first
// or last, whichever the kernel allows), becomes root in a joined user
// namespace, forks when a PID namespace is joined so that the command is
// inside it, and execs argv. The command's exit status is passed through
// (Wait, ExitCode). Joining needs CAP_SYS_ADMIN over each namespace.
//
// The program must link the hook by importing nsjoin/exechook; without it
// Command fails with ErrHookNotLinked. The handles may be closed once
// Command has returned (it holds its own descriptors until Start).
func Command(nss []*NS, argv ...string) (*Cmd, error) {
	c, err := command(nss, argv)
	return c, wrap("exec", nsRefs(nss), err)
}

func command(nss []*NS, argv []string) (*Cmd, error) {
	if len(argv) == 0 || argv[0] == "" {
		return nil, errors.New("no command to run")
	}
	if len(nss) == 0 {
		return nil, errors.New("no namespace to enter")
	}
	if err := hookAvailable(); err != nil {
		return nil, err
	}
	sorted := append([]*NS(nil), nss...)
	sort.SliceStable(sorted, func(i, j int) bool { return typeOrder(sorted[i].typ) < typeOrder(sorted[j].typ) })
	c := newCmd(argv, nsRefs(nss))
	for i, ns := range sorted {
		if i > 0 && sorted[i-1].typ == ns.typ {
			c.closeFiles()
			return nil, fmt.Errorf("two %s namespaces given; give at most one of each type", ns.typ)
		}
		f, err := ns.dupFile()
		if err != nil {
			c.closeFiles()
			return nil, err
		}
		c.files = append(c.files, f)
		// Start numbers the descriptors, after the caller's ExtraFiles.
		c.spec.Joins = append(c.spec.Joins, hookproto.Join{Flag: uint32(ns.typ.CloneFlag())})
		c.spec.Fork = c.spec.Fork || ns.typ == PID
	}
	return c, nil
}

// Unshare returns a command that runs argv in new namespaces of the types
// in opts, like unshare(1). A new PID or time namespace holds only the
// children of the process that made it, so the hook forks and waits, as
// unshare --fork does; a new mount namespace gets private propagation for
// /, as unshare(1) does by default. Needs CAP_SYS_ADMIN, except for a new
// user namespace with MapRootUser, which an unprivileged user may make.
func Unshare(opts UnshareOptions, argv ...string) (*Cmd, error) {
	c, err := unshareCmd(opts, argv)
	return c, wrap("unshare", typeList(opts.Types), err)
}

func unshareCmd(opts UnshareOptions, argv []string) (*Cmd, error) {
	if len(argv) == 0 || argv[0] == "" {
		return nil, errors.New("no command to run")
	}
	if err := hookAvailable(); err != nil {
		return nil, err
	}
	want := map[Type]bool{}
	flags := 0
	for _, t := range opts.Types {
		if !t.Valid() {
			return nil, fmt.Errorf("invalid namespace type %v", t)
		}
		want[t] = true
		flags |= t.CloneFlag()
	}
	if opts.MountProc && !want[Mnt] {
		want[Mnt] = true
		flags |= Mnt.CloneFlag()
	}
	if flags == 0 {
		return nil, errors.New("no namespace type to unshare")
	}
	if opts.Hostname != "" && !want[UTS] {
		return nil, errors.New("a hostname needs a new UTS namespace (--uts)")
	}
	if opts.MapRootUser && !want[User] {
		return nil, errors.New("mapping the root user needs a new user namespace (--user)")
	}
	if err := validHostname(opts.Hostname); err != nil {
		return nil, err
	}
	c := newCmd(argv, typeList(opts.Types))
	c.spec = hookproto.Spec{
		Unshare:   uint32(flags),
		MapRoot:   opts.MapRootUser,
		Hostname:  opts.Hostname,
		MountProc: opts.MountProc,
		Fork:      opts.Fork || want[PID] || want[Time],
	}
	if opts.MapRootUser {
		c.spec.UID, c.spec.GID = uint32(os.Getuid()), uint32(os.Getgid())
	}
	return c, nil
}

// validHostname accepts what sethostname does (at most 64 bytes) limited
// to the characters of RFC 1123 names, which also keeps the hook's
// comma-separated instructions unambiguous (the hook checks it again).
func validHostname(h string) error {
	if len(h) > 64 {
		return fmt.Errorf("hostname %q is %d bytes, the limit is 64", h, len(h))
	}
	for _, r := range h {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.') {
			return fmt.Errorf("hostname %q: use letters, digits, '-' and '.' only", h)
		}
	}
	return nil
}

func newCmd(argv []string, ref string) *Cmd {
	cmd := exec.Command("/proc/self/exe")
	cmd.Args = append([]string{"nsjoin-exec"}, argv...)
	return &Cmd{Cmd: cmd, ref: ref}
}

// Start starts the command. It returns once the command runs inside the
// namespaces, or with the reason it could not get there: a failed setns or
// unshare, or an *ExecError when the program could not be executed.
//
// The instructions reach the hook through a socket pair made here, never
// through the environment alone (see package nsjoin/exechook). The caller's
// ExtraFiles keep descriptors 3, 4, ...; the namespace files and the socket
// follow them and are closed before the command runs.
func (c *Cmd) Start() error {
	err := c.start()
	return wrap("exec", c.ref, err)
}

func (c *Cmd) start() error {
	defer c.closeFiles()
	if err := hookAvailable(); err != nil {
		return err
	}
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return os.NewSyscallError("socketpair", err)
	}
	ours := os.NewFile(uintptr(pair[0]), "nsjoin-hook")
	theirs := os.NewFile(uintptr(pair[1]), "nsjoin-hook")
	defer ours.Close()
	defer theirs.Close()
	var nonce [hookproto.NonceLen]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return err
	}
	callerFiles, callerEnv := c.Cmd.ExtraFiles, c.Cmd.Env
	base := 3 + len(callerFiles)
	spec := c.spec
	spec.Joins = append([]hookproto.Join(nil), c.spec.Joins...)
	for i := range spec.Joins {
		spec.Joins[i].FD = base + i
	}
	// The message waits in the socket for the hook, which reads it without
	// blocking: it is there before the child exists.
	if _, err := ours.Write(spec.Message(nonce)); err != nil {
		return err
	}
	env := callerEnv
	if env == nil {
		env = os.Environ()
	}
	c.Cmd.Env = append(withoutVar(env, hookproto.Env), hookproto.Env+"="+hookproto.EnvValue(base+len(c.files), nonce))
	c.Cmd.ExtraFiles = append(append(append([]*os.File(nil), callerFiles...), c.files...), theirs)
	err = c.Cmd.Start()
	c.Cmd.ExtraFiles, c.Cmd.Env = callerFiles, callerEnv
	theirs.Close()
	if err != nil {
		return err
	}
	// The hook acknowledges the instructions, then execs (which closes the
	// socket) or reports why it could not and exits.
	st, err := readStatus(ours)
	if err == nil && st.Kind == hookproto.KindAck {
		st, err = readStatus(ours)
		if err == io.EOF {
			return nil
		}
	} else if err == io.EOF {
		err = errors.New("the exec hook did not run in the re-executed binary")
	}
	if err == nil {
		err = st.err()
	}
	c.Cmd.Wait()
	return err
}

// readStatus reads one status message; io.EOF when the socket closed.
func readStatus(f *os.File) (status, error) {
	buf := make([]byte, hookproto.MaxMessage)
	n, err := f.Read(buf)
	if err != nil {
		return status{}, err
	}
	st, err := hookproto.ParseStatus(buf[:n])
	return status(st), err
}

type status hookproto.Status

func (st status) err() error {
	switch st.Kind {
	case hookproto.KindExec:
		return &ExecError{Name: st.Text, Err: st.Errno}
	case hookproto.KindSetup:
		return &hookError{text: st.Text, errno: st.Errno}
	}
	return hookproto.ErrBadStatus
}

// hookError is a failure the hook reported, with its errno for errors.Is.
type hookError struct {
	text  string
	errno syscall.Errno
}

func (e *hookError) Error() string { return e.text }
func (e *hookError) Unwrap() error { return e.errno }

// Wait waits for the command to exit. A non-zero exit is an *exec.ExitError,
// as with os/exec; ExitCode(c.Cmd.ProcessState) gives the status.
func (c *Cmd) Wait() error { return c.Cmd.Wait() }

// Run starts the command and waits for it.
func (c *Cmd) Run() error {
	if err := c.Start(); err != nil {
		return err
	}
	return c.Wait()
}

func (c *Cmd) closeFiles() {
	for _, f := range c.files {
		f.Close()
	}
	c.files = nil
}

func (ns *NS) dupFile() (*os.File, error) {
	ns.mu.RLock()
	defer ns.mu.RUnlock()
	if ns.closed {
		return nil, ErrClosed
	}
	fd, err := dupCloexec(ns.fd)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), ns.path), nil
}

func typeOrder(t Type) int {
	for i, x := range AllTypes {
		if x == t {
			return i
		}
	}
	return len(AllTypes)
}

// SecureExec reports whether the kernel started this process in
// secure-execution mode (AT_SECURE): setuid, setgid or with file
// capabilities. Command and Unshare refuse to work then, and the exec hook
// never acts: such a binary would let any user enter any namespace.
func SecureExec() bool {
	auxv, err := unix.Auxv()
	if err != nil {
		return false
	}
	for _, kv := range auxv {
		if kv[0] == atSecure {
			return kv[1] != 0
		}
	}
	return false
}

// atSecure is AT_SECURE from linux/auxvec.h (x/sys/unix lacks it).
const atSecure = 23

// hookAvailable says why Command and Unshare cannot work in this program.
func hookAvailable() error {
	if SecureExec() {
		return fmt.Errorf("%w: refusing to run commands in namespaces from a setuid, setgid or file-capability binary (AT_SECURE)", ErrUnsupported)
	}
	if hookproto.Linked() {
		return nil
	}
	if !cgoEnabled {
		return fmt.Errorf("%w (the hook needs cgo, and this binary was built with CGO_ENABLED=0)", ErrHookNotLinked)
	}
	return ErrHookNotLinked
}

func withoutVar(env []string, name string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, name+"=") {
			out = append(out, kv)
		}
	}
	return out
}

func nsRefs(nss []*NS) string {
	var refs []string
	for _, ns := range nss {
		refs = append(refs, ns.typ.String()+"="+ns.ref)
	}
	return strings.Join(refs, " ")
}

func typeList(ts []Type) string {
	var names []string
	for _, t := range ts {
		names = append(names, t.String())
	}
	return strings.Join(names, ",")
}

func signalOf(ps *os.ProcessState) int {
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return int(ws.Signal())
	}
	return 0
}
