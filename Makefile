# netobs — see README.md. Every target that touches namespaces needs root.
GO      ?= go
BIN     := bin/netobs
GOFLAGS_TEST ?= -count=1 -p 1 -timeout 40m

.PHONY: all build deps test check fuzz demo bench clean generate kubeapi

all: build

build:
	$(GO) build -o $(BIN) ./cmd/netobs

# Installs the Debian packages the tests, demo and benchmarks use, when missing.
deps:
	bash scripts/deps.sh

# Static checks that need neither root nor namespaces.
check:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt would change: $$unformatted"; exit 1; fi
	$(GO) vet ./...
	GOOS=darwin CGO_ENABLED=0 $(GO) build ./...

# nstest serves other projects' parallel tests, so it also runs under the
# race detector (which needs cgo).
test: deps build check kubeapi
	$(GO) test $(GOFLAGS_TEST) ./...
	$(GO) test -race -count=1 ./nstest/...
	bash scripts/fuzz-smoke.sh

# Every fuzz target for FUZZTIME each (default 3s); `make fuzz FUZZTIME=5m` for a longer run.
fuzz:
	bash scripts/fuzz-smoke.sh

demo: deps build
	bash demo/demo.sh

bench: deps build
	bash bench/run.sh

# A real kube-apiserver and etcd for the Kubernetes tests (test/kube*_test.go),
# built from k8s.io/kubernetes's source in its own Go module (test/kubeapi) so
# that netobs's go.mod stays lean. Linux only. A cold build (empty Go build
# cache) takes about 5 minutes on 2 idle cores (12 on a busy machine), plus
# the module downloads; later ones take seconds.
kubeapi:
	cd test/kubeapi && $(GO) build -o ../../bin/kubeapi .

# Regenerates the agent's protobuf code (committed) from its .proto file.
generate:
	bash scripts/genproto.sh

clean:
	rm -rf bin

# Kubernetes (issue 13): the kubectl plugin, a fully static netobs and the
# FROM scratch image the agent DaemonSet runs (deploy/kubernetes).
.PHONY: plugin static image
IMAGE   ?= localhost/netobs:dev
PODMAN  ?= podman
STATIC_TAGS := netgo,osusergo,netobs_static
STATIC_DIR ?= bin/static

plugin:
	$(GO) build -o bin/kubectl-netobs ./cmd/kubectl-netobs

# cgo stays on (libpcap filters, the nsjoin exec hook); everything is linked
# statically. Needs libpcap-dev and libdbus-1-dev (make deps).
static:
	CGO_ENABLED=1 $(GO) build -tags $(STATIC_TAGS) \
	  -ldflags '-linkmode external -extldflags "-static"' -o $(STATIC_DIR)/netobs ./cmd/netobs

image: static
	$(PODMAN) build -f Containerfile -t $(IMAGE) $(STATIC_DIR)
