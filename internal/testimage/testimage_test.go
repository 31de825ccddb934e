package testimage_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/vmnetbar/vmnetbar/internal/testimage"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// The build script's missing-dependency exit (2) becomes
// ErrMissingDependency, which skips a test unless CI=true.
func TestBuildReportsMissingDependency(t *testing.T) {
	// A PATH with bash alone: the script misses coreutils' tools among
	// others, and names them all with their packages.
	bin := t.TempDir()
	if err := os.Symlink(mustLookPath(t, "bash"), filepath.Join(bin, "bash")); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin)
	_, err := testimage.Build(context.Background(), nil)
	if err == nil || !strings.Contains(err.Error(), "sha256sum") || !strings.Contains(err.Error(), "apt-get install coreutils") {
		t.Fatalf("error %q does not say what to install", err)
	}
	if !errors.Is(err, testimage.ErrMissingDependency) {
		t.Fatalf("error %q does not wrap ErrMissingDependency", err)
	}
}

func mustLookPath(t *testing.T, bin string) string {
	t.Helper()
	p, err := exec.LookPath(bin)
	if err != nil {
		t.Skip(err)
	}
	return p
}
