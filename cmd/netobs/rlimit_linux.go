package main

import "syscall"

// raiseFDLimit raises the soft RLIMIT_NOFILE to the hard limit, as many
// servers do: events --all holds an fd per namespace (its netlink socket),
// so 10,000 namespaces need more than the usual 1,024.
// Go's own start-up raise stops one short of the hard limit. Best effort:
// a limit that cannot be raised leaves the one there is, and a namespace
// that then cannot be opened is reported like any other failure.
func raiseFDLimit() {
	var lim syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim) != nil || lim.Cur >= lim.Max {
		return
	}
	lim.Cur = lim.Max
	_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
}
