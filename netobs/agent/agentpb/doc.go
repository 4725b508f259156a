// Package agentpb is the node agent's gRPC API, generated from agent.proto
// by `make generate` (scripts/genproto.sh). Only agent.proto and this file
// are written by hand; the package netobs/agent serves and calls it.
package agentpb
