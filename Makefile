# lwm2m-agent — build, run, test, benchmark.
GO        ?= go
BIN       := bin/lwm2m-agent
PKG       := ./agent/cmd/lwm2m-agent
FUZZTIME  ?= 10s
BENCHTIME ?= 1s
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X github.com/lwm2m-agent/lwm2m-agent/agent/cli.Version=$(VERSION)

.PHONY: proto proto-check all build run simulate test test-short test-queue fuzz bench bench-go bench-load bench-reg bench-import bench-queue lint vet fmt clean

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
	$(MAKE) test-queue

# The awake-time queue at full size: 1,000 sleeping devices, 10 operations
# each (plain `go test` runs 200 of them).
test-queue:
	QUEUE_DEVICES=1000 $(GO) test -count=1 -timeout 10m -run '^TestQueueSleepingDevices$$' ./agent/e2e/

test-short:
	$(GO) test -short -count=1 ./...

# Each fuzz target of the decoders of network input, FUZZTIME each.
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
	  dir=$$($(GO) list -f '{{.Dir}}' $$pkg); \
	  for t in $$(grep -ho '^func Fuzz[A-Za-z0-9_]*' $$dir/*_test.go 2>/dev/null | sed 's/func //'); do \
	    echo "fuzz $$pkg $$t"; \
	    before=$$(ls $$dir/testdata/fuzz/$$t 2>/dev/null | wc -l); \
	    if ! $(GO) test -run='^$$' -fuzz="^$$t$$" -fuzztime=$(FUZZTIME) $$pkg; then \
	      after=$$(ls $$dir/testdata/fuzz/$$t 2>/dev/null | wc -l); \
	      if [ "$$after" != "$$before" ]; then echo "fuzz $$t found a failing input: $$dir/testdata/fuzz/$$t"; exit 1; fi; \
	      echo "fuzz $$t stopped without a failing input (the engine's deadline race); once more"; \
	      $(GO) test -run='^$$' -fuzz="^$$t$$" -fuzztime=$(FUZZTIME) $$pkg; \
	    fi; \
	  done; \
	done

bench: bench-go bench-load bench-reg bench-import bench-queue

bench-go:
	$(GO) test -run='^$$' -bench=. -benchmem -benchtime=$(BENCHTIME) ./...

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

lint: vet
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); exit 1)
	@if command -v staticcheck >/dev/null; then staticcheck ./...; else echo "staticcheck not installed: go install honnef.co/go/tools/cmd/staticcheck@v0.8.2"; fi

vet:
	$(GO) vet ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf bin

# Regenerates the gRPC contracts' Go code (committed, so builds need no
# protoc): apt-get install protobuf-compiler, then
# go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12 and
# google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2.
proto:
	protoc -I proto --go_out=proto --go_opt=paths=source_relative \
	  --go-grpc_out=proto --go-grpc_opt=paths=source_relative \
	  proto/lwm2m/plugin/v1/plugin.proto

# Fails when the committed generated code is not what `make proto` makes.
proto-check: proto
	git diff --exit-code -- proto
