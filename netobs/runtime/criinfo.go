package runtime

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
)

// verboseInfo is what netobs reads from a CRI runtime's verbose status
// (the "info" JSON of PodSandboxStatus and ContainerStatus): containerd
// and CRI-O both give the process and the OCI runtime spec.
type verboseInfo struct {
	// PID is the sandbox's or container's process, 0 if none.
	PID int
	// Netns is the network namespace path in the runtime spec
	// (linux.namespaces[type=network].path), "" if none (host network).
	Netns string
	// SandboxID is the pod sandbox of a container (containerd).
	SandboxID string
}

// maxPID is the kernel's limit (PID_MAX_LIMIT).
const maxPID = 1 << 22

// parseVerboseInfo reads the verbose info JSON; "" (a runtime that gives
// none) is no information, not an error. The runtime is trusted no
// further than its socket: a PID out of range or a netns path that is not
// a clean absolute path is refused.
func parseVerboseInfo(s string) (verboseInfo, error) {
	var v verboseInfo
	if s == "" {
		return v, nil
	}
	var raw struct {
		PID         int    `json:"pid"`
		SandboxID   string `json:"sandboxID"`
		RuntimeSpec *struct {
			Linux *struct {
				Namespaces []struct {
					Type string `json:"type"`
					Path string `json:"path"`
				} `json:"namespaces"`
			} `json:"linux"`
		} `json:"runtimeSpec"`
	}
	if err := json.Unmarshal([]byte(s), &raw); err != nil {
		return v, fmt.Errorf("%w: verbose info: %v", errBadInfo, err)
	}
	if raw.PID < 0 || raw.PID >= maxPID {
		return v, fmt.Errorf("%w: pid %d out of range", errBadInfo, raw.PID)
	}
	v.PID = raw.PID
	if len(raw.SandboxID) > 255 || strings.ContainsFunc(raw.SandboxID, func(r rune) bool { return !isHex(r) }) {
		return v, fmt.Errorf("%w: sandbox ID %q is not hexadecimal", errBadInfo, raw.SandboxID)
	}
	v.SandboxID = raw.SandboxID
	if raw.RuntimeSpec != nil && raw.RuntimeSpec.Linux != nil {
		for _, ns := range raw.RuntimeSpec.Linux.Namespaces {
			if ns.Type != "network" || ns.Path == "" {
				continue
			}
			if !filepath.IsAbs(ns.Path) || filepath.Clean(ns.Path) != ns.Path || strings.ContainsRune(ns.Path, 0) || len(ns.Path) > 4096 {
				return v, fmt.Errorf("%w: network namespace path %q is not a clean absolute path", errBadInfo, ns.Path)
			}
			v.Netns = ns.Path
		}
	}
	return v, nil
}

// errBadInfo: a runtime's verbose info netobs cannot use.
var errBadInfo = errors.New("runtime gave malformed information")

func isHex(r rune) bool {
	return ('0' <= r && r <= '9') || ('a' <= r && r <= 'f') || ('A' <= r && r <= 'F')
}
