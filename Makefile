# vmnetbar build, test and packaging.
SHELL := /bin/bash
GO ?= go
BIN := vmnetbar
VERSION := $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
TOOLS := $(CURDIR)/.tools/bin
GVPROXY_VERSION := v0.8.9
export PATH := $(TOOLS):$(PATH)

.PHONY: all build test test-portable bench fuzz check-darwin tools clean

all: build

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) .

# Test tools fetched through the Go module proxy (gvproxy: the Linux stand-in
# for socket_vmnet).
tools: $(TOOLS)/gvproxy

$(TOOLS)/gvproxy:
	GOBIN=$(TOOLS) $(GO) install github.com/containers/gvisor-tap-vsock/cmd/gvproxy@$(GVPROXY_VERSION)

test: tools
	$(GO) vet ./...
	$(GO) vet -tags portable ./netlink/
	$(GO) test -race -timeout 20m ./...
	$(GO) test -race -tags portable -timeout 10m ./netlink/

bench:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 2s ./netlink/
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 2s -tags portable ./netlink/

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzDecoder -fuzztime 60s ./netlink/

# Type-checks every package for darwin/arm64 and darwin/amd64 (macOS code
# cannot be compiled on Linux, but it can be type-checked).
check-darwin:
	$(GO) run ./tools/checkdarwin

clean:
	rm -f $(BIN)
	rm -rf .tools
