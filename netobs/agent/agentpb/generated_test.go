package agentpb

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"strings"
	"testing"
)

// The committed generated code is agent.proto's: `make generate` records
// the hash of the .proto it generated from, and an edit of agent.proto
// without regenerating fails here (protoc is not needed to check it).
func TestGeneratedFromThisProto(t *testing.T) {
	src, err := os.ReadFile("agent.proto")
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile("agent.proto.sha256")
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(src)
	if got := hex.EncodeToString(sum[:]); got != strings.TrimSpace(string(want)) {
		t.Fatalf("agent.proto changed since the Go code was generated (sha256 %s, generated from %s): run make generate", got, strings.TrimSpace(string(want)))
	}
	// And the generated code carries the service as the .proto names it.
	if File_agent_proto.Services().ByName("Agent").Methods().ByName("Capture") == nil {
		t.Fatal("generated descriptor lacks Agent.Capture")
	}
}
