package nsjoin

import (
	"os"
	"os/exec"

	"github.com/netobs/netobs/nsjoin/internal/hookproto"
)

// Cmd is a command to be started inside namespaces by Command or Unshare.
// Set Stdin, Stdout, Stderr, Env, ExtraFiles (and Dir, applied before any
// namespace is joined) on Cmd.Cmd, then call this type's Start, Wait or
// Run; calling the embedded exec.Cmd's own Start would not run the hook.
// ExtraFiles keep their descriptor numbers (3, 4, ...) in the command.
type Cmd struct {
	// Cmd re-executes this binary; its Args[1:] are the command.
	Cmd *exec.Cmd

	spec  hookproto.Spec // the hook's instructions; Joins' FDs set by Start
	files []*os.File     // namespace files handed to the child, as spec.Joins
	ref   string         // for error messages
}

// UnshareOptions selects the new namespaces Unshare creates and how it sets
// them up, as the flags of unshare(1) do.
type UnshareOptions struct {
	// Types are the namespace types to create anew.
	Types []Type
	// Hostname sets the hostname in the new UTS namespace (needs UTS).
	Hostname string
	// MapRootUser maps root in the new user namespace to the caller's UID
	// and GID (needs User), as unshare --map-root-user.
	MapRootUser bool
	// MountProc mounts a new /proc, so that ps sees the new PID namespace;
	// implies Mnt, as unshare --mount-proc.
	MountProc bool
	// Fork runs the command as a child of the process that made the
	// namespaces, as unshare --fork; always so for new PID and time
	// namespaces, which hold only children.
	Fork bool
}

// ExitCode returns the exit status a shell would report for a finished
// process: its code, or 128 plus the signal that killed it.
func ExitCode(ps *os.ProcessState) int {
	if ps == nil {
		return -1
	}
	if code := ps.ExitCode(); code >= 0 {
		return code
	}
	return 128 + signalOf(ps)
}
