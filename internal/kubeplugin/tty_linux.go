package kubeplugin

import (
	"os"

	"golang.org/x/sys/unix"
)

// isTerminal asks through the descriptor without f.Fd, which would make f
// blocking.
func isTerminal(f *os.File) bool {
	sc, err := f.SyscallConn()
	if err != nil {
		return false
	}
	tty := false
	sc.Control(func(fd uintptr) {
		_, err := unix.IoctlGetTermios(int(fd), unix.TCGETS)
		tty = err == nil
	})
	return tty
}
