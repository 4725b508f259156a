package events

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/netobs/netobs/netobs/pktout"
)

// TestNamespaceLabel: a caller's label names the namespace in text, ahead
// of the name, escaped (container names come from the runtime); the
// owner's fields are the namespace's in JSON, as capture's --json has them.
func TestNamespaceLabel(t *testing.T) {
	ns := Namespace{Inode: 4026532281, Name: "lab1", PID: 42, Label: "docker:we\x1b[2Jb",
		Owner: &pktout.Owner{Runtime: "docker", ContainerID: "0123abcd", Container: "we\x1b[2Jb"}}
	if got, want := ns.String(), `net:[4026532281] docker:we\x1b[2Jb`; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	var b bytes.Buffer
	if err := WriteText(&b, Event{Time: time.Unix(0, 0), NS: ns, Kind: "addr", Action: Added, Text: "1: lo inet 10.0.0.1/32"}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), ` net:[4026532281] docker:we\x1b[2Jb [ADDR] 1: lo inet 10.0.0.1/32`) {
		t.Errorf("WriteText: %q", b.String())
	}
	js, err := json.Marshal(ns)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(js, &got); err != nil {
		t.Fatal(err)
	}
	if got["runtime"] != "docker" || got["container_id"] != "0123abcd" || got["container"] != "we\x1b[2Jb" ||
		got["label"] != "docker:we\x1b[2Jb" || got["name"] != "lab1" || got["pod"] != nil {
		t.Errorf("JSON %s: want runtime, container_id, container and label beside name, no empty pod", js)
	}
	// Without an owner, nothing of it.
	if js, _ := json.Marshal(Namespace{Inode: 1}); string(js) != `{"dev":0,"inode":1}` {
		t.Errorf("JSON without owner: %s", js)
	}
}
