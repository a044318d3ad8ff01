# lwm2m-agent — build, run, test, benchmark.
GO        ?= go
BIN       := bin/lwm2m-agent
PKG       := ./agent/cmd/lwm2m-agent
FUZZTIME  ?= 10s
BENCHTIME ?= 1s
# The agent's own tags are v*; the SDK's (sdk/v*) version another module.
VERSION   ?= $(shell git describe --tags --match 'v[0-9]*' --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X github.com/lwm2m-agent/lwm2m-agent/agent/cli.Version=$(VERSION)
# The plugin SDK and its example plugin are Go modules of their own, which
# `go ... ./...` at the root does not descend into.
SDK_MODULE     := github.com/lwm2m-agent/lwm2m-agent/sdk
SDK_EXAMPLE    := sdk/examples/tempframe

.PHONY: proto proto-check all build run simulate test test-short test-queue test-sdk sdk-deps sdk-get fuzz bench bench-go bench-load bench-reg bench-import bench-queue bench-realtime bench-campaign bench-dtls lint vet fmt clean test-deploy

all: build

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) $(PKG)

# The development setup: every port on loopback only, the admin password
# admin-dev-password and auto-registration (serve --dev); data in ./data.
run: build
	./$(BIN) serve --dev

simulate: build
	./$(BIN) simulate --count $${COUNT:-3}

# Every test: unit, end to end on loopback against the embedded store, and
# interop with libcoap's coap-client and an mbedTLS client where installed
# (.ci/run installs them).
test:
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 20m ./...
	$(MAKE) test-sdk
	$(MAKE) test-queue
	$(MAKE) test-deploy

# The deployment files: the Kubernetes manifests built with kustomize and
# decoded strictly into the Kubernetes API types, the compose file checked
# against the compose specification's schema, their invariants (ports,
# probes, balancing, secrets) and the Dockerfile's build line. A module of
# its own (deploy/validate), so that its dependencies stay out of the
# agent; it needs nothing but the Go module proxy.
test-deploy:
	cd deploy/validate && $(GO) vet ./... && $(GO) test -count=1 ./...

# The SDK module's tests, then the SDK used as an author outside this
# repository uses it: it depends on nothing of the agent, and the example
# plugin is vetted, tested and built from its own module directory, and
# again from a copy outside the repository.
test-sdk: sdk-deps sdk-get
	cd sdk && $(GO) vet ./... && $(GO) test -count=1 ./...
	cd $(SDK_EXAMPLE) && GOWORK=off $(GO) vet ./... && GOWORK=off $(GO) test -count=1 ./... && GOWORK=off $(GO) build -o /dev/null .
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && cp -R $(SDK_EXAMPLE)/. "$$tmp" && cd "$$tmp" && \
	  GOWORK=off $(GO) mod edit -replace=$(SDK_MODULE)=$(CURDIR)/sdk && \
	  GOWORK=off $(GO) test -count=1 ./... && GOWORK=off $(GO) build -o /dev/null . && \
	  echo "the example plugin builds and passes its tests as a module outside the repository"

# The SDK fetched with `go get` through git as an author outside this
# repository fetches it: the checked-out commit (a pseudo-version) and the
# newest sdk/vX.Y.Z tag (.ci/sdk-get).
sdk-get:
	GO=$(GO) .ci/sdk-get

# Fails when the SDK module (its packages and tests, or its module graph)
# or the example plugin's module graph reaches the agent module.
sdk-deps:
	@deps=$$(cd sdk && $(GO) list -deps -test ./...) || exit 1; \
	  bad=$$(echo "$$deps" | grep '^github.com/lwm2m-agent/lwm2m-agent/' | grep -Ev '^$(SDK_MODULE)([/._ ]|$$)'); \
	  if [ -n "$$bad" ]; then echo "the sdk module imports packages of the agent:"; echo "$$bad"; exit 1; fi
	@for m in sdk $(SDK_EXAMPLE); do \
	  mods=$$(cd $$m && GOWORK=off $(GO) list -m all) || exit 1; \
	  if echo "$$mods" | grep -Eq '^github.com/lwm2m-agent/lwm2m-agent( |$$)'; then \
	    echo "$$m: the module graph holds the agent module github.com/lwm2m-agent/lwm2m-agent"; exit 1; fi; \
	done
	@echo "the sdk module and its example depend on nothing of the agent"

# The awake-time queue at full size: 1,000 sleeping devices, 10 operations
# each (plain `go test` runs 200 of them).
test-queue:
	QUEUE_DEVICES=1000 $(GO) test -count=1 -timeout 10m -run '^TestQueueSleepingDevices$$' ./agent/e2e/

test-short:
	$(GO) test -short -count=1 ./...
	cd sdk && $(GO) test -short -count=1 ./...

# Each fuzz target of the decoders of network input, FUZZTIME each, in the
# agent's module, the SDK's and the example plugin's.
fuzz:
	@set -e; for mod in . sdk $(SDK_EXAMPLE); do for pkg in $$(cd $$mod && $(GO) list ./...); do \
	  dir=$$(cd $$mod && $(GO) list -f '{{.Dir}}' $$pkg); \
	  for t in $$(grep -ho '^func Fuzz[A-Za-z0-9_]*' $$dir/*_test.go 2>/dev/null | sed 's/func //'); do \
	    echo "fuzz $$pkg $$t"; \
	    before=$$(ls $$dir/testdata/fuzz/$$t 2>/dev/null | wc -l); \
	    if ! (cd $$mod && $(GO) test -run='^$$' -fuzz="^$$t$$" -fuzztime=$(FUZZTIME) $$pkg); then \
	      after=$$(ls $$dir/testdata/fuzz/$$t 2>/dev/null | wc -l); \
	      if [ "$$after" != "$$before" ]; then echo "fuzz $$t found a failing input: $$dir/testdata/fuzz/$$t"; exit 1; fi; \
	      echo "fuzz $$t stopped without a failing input (the engine's deadline race); once more"; \
	      (cd $$mod && $(GO) test -run='^$$' -fuzz="^$$t$$" -fuzztime=$(FUZZTIME) $$pkg); \
	    fi; \
	  done; \
	done; done

bench: bench-go bench-load bench-reg bench-import bench-queue bench-realtime bench-campaign bench-dtls

bench-go:
	$(GO) test -run='^$$' -bench=. -benchmem -benchtime=$(BENCHTIME) ./...
	cd sdk && $(GO) test -run='^$$' -bench=. -benchmem -benchtime=$(BENCHTIME) ./...

# Load runs with the simulator against a real agent (see README, Performance).
# The load commands build the agent themselves when run alone; here `build`
# did, with the version stamped.
bench-load: build
	$(GO) run ./agent/bench/cmd/loadbench -build=false

# Registrations per second, closed loop with 16 device sockets, new and
# known endpoints, the agent beside libcoap's coap-rd-notls (apt-get
# install libcoap3-bin) in the same run (see docs/performance.md).
bench-reg: build
	$(GO) run ./agent/bench/cmd/regbench -build=false

# The operation queue of the real agent: operations per second from the
# API's POST to SUCCESSFUL on 1,000 always-online simulated devices,
# 100,000 pending operations for unregistered devices (time to create,
# resident memory, store size), and a restart with 100,000 registrations
# and 100,000 pending operations (time to serve; see docs/performance.md).
bench-queue: build
	$(GO) run ./agent/bench/cmd/queuebench -build=false

# A 100,000-line bulk registration file (half NO_SEC, half PSK) imported
# through the API of the real agent (see README, Performance).
bench-import: build
	$(GO) run ./agent/bench/cmd/importbench -build=false

# 1,000 realtime subscribers (WebSocket and long-polling) of the real
# agent receiving measurements written through its API: latency from the
# write to each receipt (see docs/performance.md).
bench-realtime: build
	$(GO) run ./agent/bench/cmd/realtimebench -build=false

# A firmware campaign: one bulk operation with a c8y_Firmware prototype
# over a group of 10,000 simulated devices, half of them sleeping (awake
# 5 s every 60 s), followed to COMPLETED; wall time, outcomes, resident
# memory, CPU, store growth (see docs/performance.md). METHOD is the
# delivery: url (HTTP pull of an external URL), push, coap, coaps, http,
# https or both.
METHOD ?= url
bench-campaign: build
	$(GO) run ./agent/bench/cmd/campaignbench -build=false -method $(METHOD)

# Full DTLS-PSK handshakes per second (cookie exchange, one GET, close),
# closed loop from 16 clients in another process, the agent beside
# libcoap's coap-server-openssl (apt-get install libcoap3-bin) in the same
# run (see docs/performance.md).
bench-dtls: build
	$(GO) run ./agent/bench/cmd/dtlsbench -build=false

lint: vet
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); exit 1)
	@if command -v staticcheck >/dev/null; then staticcheck ./... && (cd sdk && staticcheck ./...) && (cd deploy/validate && staticcheck ./...) && (cd $(SDK_EXAMPLE) && GOWORK=off staticcheck ./...); else echo "staticcheck not installed: go install honnef.co/go/tools/cmd/staticcheck@v0.8.2"; fi

vet:
	$(GO) vet ./...
	cd sdk && $(GO) vet ./...
	cd $(SDK_EXAMPLE) && GOWORK=off $(GO) vet ./...
	cd deploy/validate && $(GO) vet ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf bin

# Regenerates the gRPC contracts' Go code (committed, so builds need no
# protoc); the contracts are part of the SDK module, in sdk/proto.
# apt-get install protobuf-compiler, then
# go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12 and
# google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2.
proto:
	protoc -I sdk/proto --go_out=sdk/proto --go_opt=paths=source_relative \
	  --go-grpc_out=sdk/proto --go-grpc_opt=paths=source_relative \
	  sdk/proto/lwm2m/plugin/v1/plugin.proto

# Fails when the committed generated code is not what `make proto` makes.
proto-check: proto
	git diff --exit-code -- sdk/proto
