# vmnetbar build, test and packaging.
SHELL := /bin/bash
GO ?= go
BIN := vmnetbar
VERSION := $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
TOOLS := $(CURDIR)/.tools/bin
GVPROXY_VERSION := v0.8.9
ACTIONLINT_VERSION := v1.7.12
export PATH := $(TOOLS):$(PATH)

# macOS: the oldest release vmnetbar runs on (Info.plist's
# LSMinimumSystemVersion says the same). The binary is built for it: clang
# reads MACOSX_DEPLOYMENT_TARGET, and the flags make cgo's compile and link
# steps say it too.
MACOS_MIN := 13.0
DARWIN_GO := MACOSX_DEPLOYMENT_TARGET=$(MACOS_MIN) CGO_ENABLED=1 \
	CGO_CFLAGS='-O2 -g -mmacosx-version-min=$(MACOS_MIN)' \
	CGO_LDFLAGS='-O2 -g -mmacosx-version-min=$(MACOS_MIN)' $(GO)

# $(call adhoc-sign,PATH) signs PATH ad hoc with the virtualization
# entitlement (without it VZ refuses to start a VM) and checks that the
# signature carries it.
adhoc-sign = codesign --force --sign - --entitlements vmnetbar.entitlements $(1) && \
	{ codesign -d --entitlements - $(1) 2>&1 | grep -q com.apple.security.virtualization || \
	{ echo "make: $(1) lacks the com.apple.security.virtualization entitlement" >&2; exit 1; }; }

# How long make test and make fuzz run each fuzz target.
FUZZTIME_TEST := 5s
FUZZTIME := 60s

.PHONY: all build run test bench fuzz check-darwin lint-ci tools clean

all: build

# ./vmnetbar. On macOS it is built for macOS $(MACOS_MIN) and signed ad hoc
# with the virtualization entitlement, so `./vmnetbar run` can start the VM
# from Terminal (a rebuild drops the signature; make build signs again).
ifeq ($(shell uname -s),Darwin)
build:
	$(DARWIN_GO) build -ldflags '$(LDFLAGS)' -o $(BIN) .
	$(call adhoc-sign,./$(BIN))
else
build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) .
endif

# macOS: build, sign and open the app. Linux: the newcomer path (install what
# is missing, build the test guest, keep gvproxy running, start vmnetbar).
run:
	@if [ "$$(uname -s)" = Darwin ]; then \
		$(MAKE) sign && open $(APP); \
	else \
		scripts/run-linux.sh; \
	fi

# Test tools fetched through the Go module proxy (gvproxy: the Linux stand-in
# for socket_vmnet; actionlint: checks the GitHub Actions workflow).
tools: gvproxy actionlint

.PHONY: gvproxy actionlint
gvproxy: $(TOOLS)/gvproxy
actionlint: $(TOOLS)/actionlint

$(TOOLS)/gvproxy:
	GOBIN=$(TOOLS) $(GO) install github.com/containers/gvisor-tap-vsock/cmd/gvproxy@$(GVPROXY_VERSION)

$(TOOLS)/actionlint:
	GOBIN=$(TOOLS) $(GO) install github.com/rhysd/actionlint/cmd/actionlint@$(ACTIONLINT_VERSION)

# Every fuzz target runs for $(FUZZTIME_TEST) (scripts/fuzz.sh finds them).
test: tools
	$(GO) vet ./...
	$(GO) vet -tags portable ./netlink/
	$(MAKE) --no-print-directory lint-ci
	$(GO) test -race -count=1 -timeout 30m ./...
	$(GO) test -race -count=1 -tags portable -timeout 10m ./netlink/
	FUZZTIME=$(FUZZTIME_TEST) GO=$(GO) scripts/fuzz.sh

# The GitHub Actions workflows, checked with actionlint (shellcheck and
# pyflakes off: they are not installed everywhere, and the check must give
# the same answer on every machine).
lint-ci: $(TOOLS)/actionlint
	$(TOOLS)/actionlint -shellcheck= -pyflakes= .github/workflows/*.yml

bench:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 2s ./netlink/
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 2s -tags portable ./netlink/
	$(GO) test -run '^$$' -bench . -benchtime 5x ./vmhost/disk/

# Every fuzz target of the module, $(FUZZTIME) each (make fuzz FUZZTIME=10m).
fuzz:
	FUZZTIME=$(FUZZTIME) GO=$(GO) scripts/fuzz.sh

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

# build/vmnetbar.app: the binary (cgo, for macOS $(MACOS_MIN)), Info.plist with
# the version, the icon.
app:
	$(call need-macos,app,the Virtualization framework and iconutil)
	$(MAKE) icns
	rm -rf $(APP)
	mkdir -p $(APP)/Contents/MacOS $(APP)/Contents/Resources
	$(DARWIN_GO) build -ldflags '$(LDFLAGS)' -o $(APP)/Contents/MacOS/vmnetbar .
	sed -e 's/@VERSION@/$(APP_VERSION)/' -e 's/@BUILD@/$(APP_BUILD)/' Info.plist > $(APP)/Contents/Info.plist
	plutil -lint $(APP)/Contents/Info.plist
	cp build/vmnetbar.icns $(APP)/Contents/Resources/vmnetbar.icns
	@echo "built $(APP) $(APP_VERSION) ($(APP_BUILD)); run make sign before starting it"

# Ad hoc signature with the virtualization entitlement (signed last: any
# change to the bundle drops it).
sign: app
	$(call need-macos,sign,codesign)
	$(call adhoc-sign,$(APP))
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
