// Package buildinfo says which build a netobs binary is, for --version.
package buildinfo

import "runtime/debug"

// Version is what --version prints: the module version (a tag, or
// "(devel)" for a build from a checkout), the VCS revision the binary was
// built from (with "(modified)" if the checkout had changes), and the Go
// version.
func Version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "(unknown: built without module information)"
	}
	v := bi.Main.Version
	if v == "" {
		v = "(devel)"
	}
	var rev, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	if rev != "" {
		v += " revision " + rev
		if modified == "true" {
			v += " (modified)"
		}
	}
	return v + " " + bi.GoVersion
}
