package topo

import "bytes"

// tunIff returns the device name of a TUN/TAP file descriptor from the
// text of its /proc/PID/fdinfo/FD ("iff:\tNAME" line), and false when the
// descriptor is attached to no device. The text comes from the kernel,
// but the name in it was chosen by whoever made the device.
func tunIff(fdinfo []byte) (string, bool) {
	for len(fdinfo) > 0 {
		line := fdinfo
		if i := bytes.IndexByte(fdinfo, '\n'); i >= 0 {
			line, fdinfo = fdinfo[:i], fdinfo[i+1:]
		} else {
			fdinfo = nil
		}
		if v, ok := bytes.CutPrefix(line, []byte("iff:")); ok {
			name := bytes.TrimLeft(v, "\t ")
			// The kernel prints the name with %s: everything up to the
			// newline is the name, spaces would be too (Linux forbids
			// them in interface names, so they cannot be there).
			if len(name) == 0 || len(name) >= 16 {
				return "", false
			}
			return string(name), true
		}
	}
	return "", false
}
