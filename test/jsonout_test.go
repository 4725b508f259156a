package test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// The types here mirror what netobs prints with --json, one object a
// line, with the JSON names of its own types (evLine and evChange, for
// events, are in events_test.go; sockJSON in sockets_test.go). Tests decode
// netobs's output only into these, so a renamed field fails every test
// that reads it instead of leaving one zero field in a local struct.

// jsonLines decodes out, one JSON object a line; what names the command
// in a failure. Empty output is no lines.
func jsonLines[T any](t testing.TB, what, out string) []T {
	t.Helper()
	if strings.TrimSpace(out) == "" {
		return nil
	}
	var rows []T
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var r T
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("%s: line %q: %v", what, l, err)
		}
		rows = append(rows, r)
	}
	return rows
}

// jsonOwner mirrors pktout.Owner: the container fields netobs adds to the
// JSON of a container's namespace (events) and of its frames (capture,
// attach).
type jsonOwner struct {
	Runtime      string `json:"runtime"`
	ContainerID  string `json:"container_id"`
	Container    string `json:"container"`
	Pod          string `json:"pod"`
	PodNamespace string `json:"pod_namespace"`
}

// frameLine mirrors one JSON line of `netobs capture --json` and `netobs
// attach --json` (a pktout.PacketSummary): a frame, with the owner of the
// namespace it was captured in.
type frameLine struct {
	Time      time.Time `json:"time"`
	Interface string    `json:"interface"`
	Netns     string    `json:"netns"`
	jsonOwner
	Direction string `json:"direction"`
	Length    int    `json:"length"`
	CapLen    int    `json:"caplen"`
	Proto     string `json:"proto"`
	Src       string `json:"src"`
	Dst       string `json:"dst"`
	SrcPort   int    `json:"sport"`
	DstPort   int    `json:"dport"`
	Summary   string `json:"summary"`
}

// psRow mirrors one line of `netobs ps --json`: a runtime.Container and
// its namespace's name.
type psRow struct {
	Runtime             string `json:"runtime"`
	Kind                string `json:"kind"`
	Endpoint            string `json:"endpoint"`
	ID                  string `json:"container_id"`
	Container           string `json:"container"`
	ContainerdNamespace string `json:"containerd_namespace"`
	Pod                 string `json:"pod"`
	PodNamespace        string `json:"pod_namespace"`
	State               string `json:"state"`
	Running             bool   `json:"running"`
	Netns               string `json:"netns"`
	PID                 int    `json:"pid"`
	NetnsID             string `json:"netns_id"`
	Inode               uint64 `json:"inode"`
}

// nsLsRow mirrors one line of `netobs ns ls --json`: a namespace and the
// containers in it.
type nsLsRow struct {
	Type       string   `json:"type"`
	NS         uint64   `json:"ns"`
	Dev        uint64   `json:"dev"`
	NProcs     int      `json:"nprocs"`
	PID        int      `json:"pid"`
	Names      []string `json:"netns"`
	Containers []struct {
		Runtime      string `json:"runtime"`
		ID           string `json:"container_id"`
		Container    string `json:"container"`
		Pod          string `json:"pod"`
		PodNamespace string `json:"pod_namespace"`
	} `json:"containers"`
}
