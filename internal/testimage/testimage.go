// Package testimage builds (once, cached) a Debian 12 cloud image for
// vmnetbar's tests and `make run`: an EFI-bootable GPT disk with GRUB at the
// fallback path, the Debian cloud kernel, systemd-networkd, openssh-server
// and cloud-init with the NoCloud datasource only, shipped as a compressed
// qcow2.
//
// The image is built by build.sh (embedded here, also runnable on its own:
// it prints the image's path), which caches the result under
// ${XDG_CACHE_HOME:-$HOME/.cache}/vmnetbar/testimage/<hash of build.sh>/.
// The first build takes several minutes (it downloads and installs about 250
// Debian packages); CI builds it before the tests, as it does the test
// guest. Never modify the cached image: boot a copy or a qcow2 overlay.
//
// It imports the standard library and internal/testguest (whose
// skip-or-fail rule it shares); it is test infrastructure and never part of
// the vmnetbar binary.
package testimage

import (
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/vmnetbar/vmnetbar/internal/testguest"
)

//go:embed build.sh
var script []byte

// ErrMissingDependency is wrapped by Build's error when a tool or package
// the build needs is not installed, or the build is not run as root; the
// message says what and how to fix it.
var ErrMissingDependency = testguest.ErrMissingDependency

// Build runs the build script (or finds its cached result) and returns the
// qcow2 image's path. Progress lines go to progress when it is not nil.
func Build(ctx context.Context, progress func(line string)) (string, error) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		return "", fmt.Errorf("%w: bash is not installed", ErrMissingDependency)
	}
	dir, err := os.MkdirTemp("", "vmnetbar-testimage-")
	if err != nil {
		return "", fmt.Errorf("test image: %w", err)
	}
	defer os.RemoveAll(dir)
	// The cache key is the hash of build.sh, so it keeps its name.
	sh := filepath.Join(dir, "build.sh")
	if err := os.WriteFile(sh, script, 0o755); err != nil {
		return "", fmt.Errorf("test image: writing the build script: %w", err)
	}

	var stdout bytes.Buffer
	stderr := &lineWriter{progress: progress}
	cmd := exec.CommandContext(ctx, bash, sh)
	cmd.Stdout = &stdout
	cmd.Stderr = stderr
	err = cmd.Run()
	stderr.flush()
	var exitErr *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exitErr) && exitErr.ExitCode() == 2:
		return "", fmt.Errorf("%w: %s", ErrMissingDependency, strings.TrimPrefix(stderr.last, "testimage: missing dependency: "))
	case ctx.Err() != nil:
		return "", fmt.Errorf("test image build: %w", ctx.Err())
	default:
		return "", fmt.Errorf("test image build failed (%v): %s", err, stderr.tail())
	}
	path := strings.TrimSpace(stdout.String())
	if strings.Contains(path, "\n") || path == "" {
		return "", fmt.Errorf("test image build printed %q, want the image path", stdout.String())
	}
	if st, err := os.Stat(path); err != nil || st.Size() == 0 {
		return "", fmt.Errorf("test image build printed %s, which is missing or empty", path)
	}
	return path, nil
}

// lineWriter passes whole lines to progress and keeps the last ones for
// error messages.
type lineWriter struct {
	progress func(string)
	buf      []byte
	lines    []string
	last     string
}

func (w *lineWriter) Write(b []byte) (int, error) {
	w.buf = append(w.buf, b...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			return len(b), nil
		}
		w.line(string(w.buf[:i]))
		w.buf = w.buf[i+1:]
	}
}

func (w *lineWriter) flush() {
	if len(w.buf) > 0 {
		w.line(string(w.buf))
		w.buf = nil
	}
}

func (w *lineWriter) line(s string) {
	if w.progress != nil {
		w.progress(s)
	}
	if strings.TrimSpace(s) == "" {
		return
	}
	w.last = s
	w.lines = append(w.lines, s)
	if len(w.lines) > 30 {
		w.lines = w.lines[len(w.lines)-30:]
	}
}

func (w *lineWriter) tail() string { return strings.Join(w.lines, "\n") }

var (
	once     sync.Once
	built    string
	buildErr error
)

// Path builds the image once per process (or finds it in the cache) and
// returns the qcow2's path. When a dependency is missing the test is
// skipped with the reason, or fails when the environment variable CI is
// "true". Any other build failure fails the test.
func Path(t testing.TB) string {
	t.Helper()
	once.Do(func() {
		built, buildErr = Build(context.Background(), func(line string) { t.Log(line) })
	})
	if buildErr != nil {
		SkipOrFatal(t, buildErr)
	}
	return built
}

// SkipOrFatal ends the test because of err, as testguest.SkipOrFatal
// does: a skip when err wraps ErrMissingDependency and CI is not "true", a
// failure otherwise.
func SkipOrFatal(t testing.TB, err error) {
	t.Helper()
	testguest.SkipOrFatal(t, err)
}

// OVMF is the x86_64 UEFI firmware for QEMU (Debian's ovmf package): Code is
// mapped read-only; each VM gets its own copy of Vars.
type OVMF struct {
	Code, Vars string
}

// FindOVMF returns the 4 MiB OVMF build; the error wraps
// ErrMissingDependency.
func FindOVMF() (OVMF, error) {
	o := OVMF{Code: "/usr/share/OVMF/OVMF_CODE_4M.fd", Vars: "/usr/share/OVMF/OVMF_VARS_4M.fd"}
	for _, p := range []string{o.Code, o.Vars} {
		if _, err := os.Stat(p); err != nil {
			return OVMF{}, fmt.Errorf("%w: %s not found (apt-get install ovmf)", ErrMissingDependency, p)
		}
	}
	return o, nil
}
