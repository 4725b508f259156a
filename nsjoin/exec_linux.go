package nsjoin

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"syscall"
)

const execEnv = "_NSJOIN_EXEC"

// Command returns a command that runs argv inside the namespaces nss, of
// any types, at most one per type, like nsenter. The binary re-executes
// itself with a hook (compiled in with cgo) that joins the namespaces
// before the Go runtime starts, in nsenter's order (user namespace first
// or last, whichever the kernel allows), becomes root in a joined user
// namespace, forks when a PID namespace is joined so that the command is
// inside it, and execs argv. The command's exit status is passed through
// (Wait, ExitCode). Joining needs CAP_SYS_ADMIN over each namespace.
//
// The handles may be closed once Start has returned.
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
	var tokens []string
	fork := false
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
		// ExtraFiles[i] becomes fd 3+i; the status pipe goes last.
		tokens = append(tokens, fmt.Sprintf("j%x:%d", ns.typ.CloneFlag(), 3+i))
		fork = fork || ns.typ == PID
	}
	if fork {
		tokens = append(tokens, "f")
	}
	c.spec = strings.Join(tokens, ",")
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
	tokens := []string{fmt.Sprintf("n%x", flags)}
	if opts.MapRootUser {
		tokens = append(tokens, fmt.Sprintf("m%d:%d", os.Getuid(), os.Getgid()))
	}
	if opts.Fork || want[PID] || want[Time] {
		tokens = append(tokens, "f")
	}
	if opts.MountProc {
		tokens = append(tokens, "p")
	}
	if opts.Hostname != "" {
		tokens = append(tokens, "h"+opts.Hostname)
	}
	c := newCmd(argv, typeList(opts.Types))
	c.spec = strings.Join(tokens, ",")
	return c, nil
}

// validHostname accepts what sethostname does (at most 64 bytes) limited
// to the characters of RFC 1123 names, which also keeps the hook's
// comma-separated instructions unambiguous.
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
// namespaces, or with the reason it could not get there (a failed setns or
// unshare, a missing program).
func (c *Cmd) Start() error {
	err := c.start()
	return wrap("exec", c.ref, err)
}

func (c *Cmd) start() error {
	defer c.closeFiles()
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	defer r.Close()
	extra := append(append([]*os.File(nil), c.files...), w)
	spec := c.spec
	if spec != "" {
		spec += ","
	}
	spec += "s" + strconv.Itoa(3+len(extra)-1)
	c.Cmd.ExtraFiles = extra
	env := c.Cmd.Env
	if env == nil {
		env = os.Environ()
	}
	c.Cmd.Env = append(withoutVar(env, execEnv), execEnv+"="+spec)
	err = c.Cmd.Start()
	w.Close()
	if err != nil {
		return err
	}
	// The hook writes a reason and exits, or execs, which closes the pipe.
	msg, _ := io.ReadAll(r)
	if len(msg) > 0 {
		c.Cmd.Wait()
		return errors.New(string(msg))
	}
	return nil
}

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
