// Package testguest builds and describes the vmnetbar test guest: a Debian
// cloud kernel with a busybox initramfs whose /init brings up eth0 with DHCP
// (or a static address), pings its gateway as the kernel command line asks
// and powers off on the ACPI power button or when told to.
//
// The guest is built by build.sh (embedded here, also runnable on its own),
// which caches the result under ${XDG_CACHE_HOME:-$HOME/.cache}/vmnetbar/testguest.
// The package also parses the guest's console markers (VMNETBAR-...) and
// starts the guest under QEMU for tests that do not go through vmhost.
//
// It may import only the standard library and golang.org/x/sys; it is test
// infrastructure and never part of the vmnetbar binary.
package testguest

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

//go:embed build.sh rootfs
var files embed.FS

// Guest is a built test guest.
type Guest struct {
	Kernel string // path to the kernel image (bzImage)
	Initrd string // path to the gzip-compressed cpio initramfs
}

// ErrMissingDependency is wrapped by Build's error when a tool or package the
// build needs is not installed; the message says which and how to install it.
var ErrMissingDependency = errors.New("test guest dependency missing")

// Build runs the build script (or finds its cached result) and returns the
// guest. The first build downloads the kernel package with apt-get and takes
// a few seconds; later builds only hash the script.
func Build(ctx context.Context) (Guest, error) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		return Guest{}, fmt.Errorf("%w: bash is not installed", ErrMissingDependency)
	}
	dir, err := os.MkdirTemp("", "vmnetbar-testguest-")
	if err != nil {
		return Guest{}, fmt.Errorf("test guest: %w", err)
	}
	defer os.RemoveAll(dir)
	if err := writeFiles(dir); err != nil {
		return Guest{}, fmt.Errorf("test guest: writing the build script: %w", err)
	}

	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bash, filepath.Join(dir, "build.sh"))
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	err = cmd.Run()
	msg := strings.TrimSpace(stderr.String())
	var exitErr *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exitErr) && exitErr.ExitCode() == 2:
		return Guest{}, fmt.Errorf("%w: %s", ErrMissingDependency, strings.TrimPrefix(lastLine(msg), "testguest: missing dependency: "))
	case ctx.Err() != nil:
		return Guest{}, fmt.Errorf("test guest build: %w", ctx.Err())
	default:
		return Guest{}, fmt.Errorf("test guest build failed (%v): %s", err, msg)
	}

	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if len(lines) != 2 {
		return Guest{}, fmt.Errorf("test guest build printed %q, want the kernel and initrd paths", stdout.String())
	}
	g := Guest{Kernel: lines[0], Initrd: lines[1]}
	for _, p := range []string{g.Kernel, g.Initrd} {
		if st, err := os.Stat(p); err != nil || st.Size() == 0 {
			return Guest{}, fmt.Errorf("test guest build printed %s, which is missing or empty", p)
		}
	}
	return g, nil
}

func writeFiles(dir string) error {
	return fs.WalkDir(files, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		dst := filepath.Join(dir, filepath.FromSlash(p))
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		b, err := files.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o755)
	})
}

func lastLine(s string) string {
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

var (
	once     sync.Once
	built    Guest
	buildErr error
)

// Ensure builds the guest once per process and returns it. When a dependency
// is missing the test is skipped with the reason, or fails when the
// environment variable CI is "true". Any other build failure fails the test.
func Ensure(t testing.TB) Guest {
	t.Helper()
	once.Do(func() {
		built, buildErr = Build(context.Background())
	})
	if buildErr != nil {
		SkipOrFatal(t, buildErr)
	}
	return built
}

// SkipOrFatal ends the test because of err: a skip when err wraps
// ErrMissingDependency and CI is not "true", a failure otherwise.
func SkipOrFatal(t testing.TB, err error) {
	t.Helper()
	if errors.Is(err, ErrMissingDependency) && os.Getenv("CI") != "true" {
		t.Skip(err)
	}
	t.Fatal(err)
}
