//go:build !linux

package termsafe

import (
	"io"
	"os"
)

// IsTerminal reports whether w is an *os.File open on a character device,
// taken for a terminal off Linux.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
