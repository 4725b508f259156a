//go:build linux && cgo && netobs_static

package capture

// A fully static netobs (make static, for the FROM scratch image) links
// Debian's libpcap.a, whose D-Bus capture module needs libdbus-1.a, which in
// turn calls two functions of libsystemd, of which Debian ships no static
// library. pcap_static_linux.c defines those two as systemd does when no
// sockets were passed to the process; libdbus calls them only to pick up
// sockets passed by systemd socket activation, which never happens to
// netobs.

// #cgo LDFLAGS: -ldbus-1
import "C"
