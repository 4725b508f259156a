//go:build !linux

package forward

import "net"

// copyStream copies src to dst until src ends (nil) or fails, calling
// progress after each chunk written.
func copyStream(dst, src net.Conn, progress func(int)) error {
	return copyBuffered(dst, src, progress)
}
