package runtime

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
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
		PID         int      `json:"pid"`
		SandboxID   string   `json:"sandboxID"`
		RuntimeSpec *ociSpec `json:"runtimeSpec"`
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
	if raw.RuntimeSpec != nil {
		n, err := raw.RuntimeSpec.netns()
		if err != nil {
			return v, err
		}
		v.Netns = n.Path
	}
	return v, nil
}

// ociSpec is the part of an OCI runtime spec (config.json) netobs reads:
// the namespaces of the container.
type ociSpec struct {
	Linux *struct {
		Namespaces []struct {
			Type string `json:"type"`
			Path string `json:"path"`
		} `json:"namespaces"`
	} `json:"linux"`
}

// specNetns is where an OCI runtime spec puts the network namespace.
type specNetns struct {
	// Own is true if the spec has a network namespace entry: the
	// container is not in its runtime's (the host's) network namespace.
	Own bool
	// Path is the namespace file the entry joins (a pinned netns, as
	// Kubernetes' pod sandboxes have), "" if the container made its own.
	Path string
	// JoinsPID is PID when Path is /proc/PID/ns/net: the namespace of
	// another process (a pod's sandbox, for its containers), not a pin.
	JoinsPID int
}

// netns reads the network namespace entry of the spec. A path that is not
// a clean absolute path is refused: the runtime is trusted no further than
// its socket.
func (s *ociSpec) netns() (specNetns, error) {
	var n specNetns
	if s == nil || s.Linux == nil {
		return n, nil
	}
	for _, ns := range s.Linux.Namespaces {
		if ns.Type != "network" {
			continue
		}
		n.Own = true
		if ns.Path == "" {
			continue
		}
		if !filepath.IsAbs(ns.Path) || filepath.Clean(ns.Path) != ns.Path || strings.ContainsRune(ns.Path, 0) || len(ns.Path) > 4096 {
			return specNetns{}, fmt.Errorf("%w: network namespace path %q is not a clean absolute path", errBadInfo, ns.Path)
		}
		n.Path = ns.Path
		n.JoinsPID = procNetns(ns.Path)
	}
	return n, nil
}

// procNetns returns PID if path is /proc/PID/ns/net, else 0.
func procNetns(path string) int {
	rest, ok := strings.CutPrefix(path, "/proc/")
	if !ok {
		return 0
	}
	digits, ok := strings.CutSuffix(rest, "/ns/net")
	pid, err := strconv.Atoi(digits)
	if !ok || err != nil || pid <= 0 || pid >= maxPID || strconv.Itoa(pid) != digits {
		return 0
	}
	return pid
}

// parseSpec reads the network namespace of an OCI runtime spec in JSON,
// as containerd keeps it with each container; an empty spec has none.
func parseSpec(b []byte) (specNetns, error) {
	if len(b) == 0 {
		return specNetns{}, nil
	}
	var s ociSpec
	if err := json.Unmarshal(b, &s); err != nil {
		return specNetns{}, fmt.Errorf("%w: runtime spec: %v", errBadInfo, err)
	}
	return s.netns()
}

// errBadInfo: a runtime's verbose info netobs cannot use.
var errBadInfo = errors.New("runtime gave malformed information")

func isHex(r rune) bool {
	return ('0' <= r && r <= '9') || ('a' <= r && r <= 'f') || ('A' <= r && r <= 'F')
}
