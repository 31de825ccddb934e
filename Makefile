# vmnetbar build, test and packaging.
SHELL := /bin/bash
GO ?= go
BIN := vmnetbar
VERSION := $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
TOOLS := $(CURDIR)/.tools/bin
GVPROXY_VERSION := v0.8.9
export PATH := $(TOOLS):$(PATH)

.PHONY: all build run test bench fuzz check-darwin tools clean

all: build

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) .

# macOS: build, sign and open the app. Linux: the newcomer path (install what
# is missing, build the test guest, keep gvproxy running, start vmnetbar).
run:
	@if [ "$$(uname -s)" = Darwin ]; then \
		$(MAKE) sign && open $(APP); \
	else \
		scripts/run-linux.sh; \
	fi

# Test tools fetched through the Go module proxy (gvproxy: the Linux stand-in
# for socket_vmnet).
tools: $(TOOLS)/gvproxy

$(TOOLS)/gvproxy:
	GOBIN=$(TOOLS) $(GO) install github.com/containers/gvisor-tap-vsock/cmd/gvproxy@$(GVPROXY_VERSION)

test: tools
	$(GO) vet ./...
	$(GO) vet -tags portable ./netlink/
	$(GO) test -race -count=1 -timeout 20m ./...
	$(GO) test -race -count=1 -tags portable -timeout 10m ./netlink/

bench:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 2s ./netlink/
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 2s -tags portable ./netlink/

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzDecoder -fuzztime 60s ./netlink/

# Type-checks every package for darwin/arm64 and darwin/amd64 (macOS code
# cannot be compiled on Linux, but it can be type-checked).
check-darwin:
	$(GO) run ./tools/checkdarwin

# macOS app bundle. CFBundleShortVersionString is the newest vX.Y.Z tag
# (0.0.0 without one), CFBundleVersion the number of commits.
APP := build/vmnetbar.app
ICONSET := build/vmnetbar.iconset
APP_VERSION = $(shell v=$$(git describe --tags --abbrev=0 --match 'v[0-9]*' 2>/dev/null); v=$${v#v}; v=$${v%%[!0-9.]*}; echo $${v:-0.0.0})
APP_BUILD = $(shell git rev-list --count HEAD 2>/dev/null || echo 1)
# $(call need-macos,TARGET,WHAT) stops the recipe at once off macOS.
need-macos = @if [ "$$(uname -s)" != Darwin ]; then echo "make $(1) needs macOS ($(2)); on Linux use make run / make build" >&2; exit 1; fi

.PHONY: app sign icns

# build/vmnetbar.app: the binary (cgo), Info.plist with the version, the icon.
app:
	$(call need-macos,app,the Virtualization framework and iconutil)
	$(MAKE) icns
	rm -rf $(APP)
	mkdir -p $(APP)/Contents/MacOS $(APP)/Contents/Resources
	CGO_ENABLED=1 $(GO) build -ldflags '$(LDFLAGS)' -o $(APP)/Contents/MacOS/vmnetbar .
	sed -e 's/@VERSION@/$(APP_VERSION)/' -e 's/@BUILD@/$(APP_BUILD)/' Info.plist > $(APP)/Contents/Info.plist
	plutil -lint $(APP)/Contents/Info.plist
	cp build/vmnetbar.icns $(APP)/Contents/Resources/vmnetbar.icns
	@echo "built $(APP) $(APP_VERSION) ($(APP_BUILD)); run make sign before starting it"

# Ad hoc signature with the virtualization entitlement (signed last: any
# change to the bundle drops it).
sign: app
	$(call need-macos,sign,codesign)
	codesign --force --sign - --entitlements vmnetbar.entitlements $(APP)
	codesign -d --entitlements - $(APP) 2>&1 | grep -q com.apple.security.virtualization || \
		{ echo "make sign: $(APP) lacks the com.apple.security.virtualization entitlement" >&2; exit 1; }
	@echo "signed $(APP)"

# build/vmnetbar.icns from assets/appicon.png (1024x1024) through an .iconset.
icns: build/vmnetbar.icns

build/vmnetbar.icns: assets/appicon.png
	$(call need-macos,icns,sips and iconutil)
	rm -rf $(ICONSET)
	mkdir -p $(ICONSET)
	for s in 16 32 128 256 512; do \
		sips -z $$s $$s $< --out $(ICONSET)/icon_$${s}x$${s}.png >/dev/null && \
		sips -z $$((s*2)) $$((s*2)) $< --out $(ICONSET)/icon_$${s}x$${s}@2x.png >/dev/null || exit 1; \
	done
	iconutil -c icns -o $@ $(ICONSET)

clean:
	rm -rf build
	rm -f $(BIN)
	rm -rf .tools
