#!/bin/bash
# Regenerates netobs/agent/agentpb from agent.proto with pinned generators:
# protoc from Debian's protobuf-compiler, protoc-gen-go at go.mod's
# google.golang.org/protobuf version, protoc-gen-go-grpc at a release whose
# output needs no newer grpc than go.mod's.
set -euo pipefail
cd "$(dirname "$0")/.."
PROTOC_GEN_GO_GRPC_VERSION=v1.6.2
command -v protoc >/dev/null || { echo "genproto: protoc missing: apt-get install protobuf-compiler" >&2; exit 1; }
pbver=$(go list -m -f '{{.Version}}' google.golang.org/protobuf)
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
GOBIN=$bin go install "google.golang.org/protobuf/cmd/protoc-gen-go@$pbver"
GOBIN=$bin go install "google.golang.org/grpc/cmd/protoc-gen-go-grpc@$PROTOC_GEN_GO_GRPC_VERSION"
PATH=$bin:$PATH protoc -I netobs/agent/agentpb \
  --go_out=netobs/agent/agentpb --go_opt=paths=source_relative \
  --go-grpc_out=netobs/agent/agentpb --go-grpc_opt=paths=source_relative \
  netobs/agent/agentpb/agent.proto
# What the generated code was made from: agentpb's test fails when
# agent.proto changes without `make generate`.
sha256sum netobs/agent/agentpb/agent.proto | cut -d' ' -f1 > netobs/agent/agentpb/agent.proto.sha256
