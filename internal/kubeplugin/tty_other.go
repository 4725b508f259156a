//go:build !linux

package kubeplugin

import "os"

// isTerminal: a character device is taken for a terminal off Linux.
func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
