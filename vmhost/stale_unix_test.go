//go:build linux || darwin

package vmhost

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Directories that earlier versions left for QEMU's QMP socket are removed
// when they are ours and no QEMU answers in them; everything else stays.
func TestRemoveStaleRuntime(t *testing.T) {
	tmp := t.TempDir()
	now := time.Now()
	old := now.Add(-time.Hour)
	mkdir := func(name string, mtime time.Time) string {
		p := filepath.Join(tmp, name)
		if err := os.Mkdir(p, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
		return p
	}

	// A live QEMU answers on its socket.
	live := mkdir("vmnetbar-qemu-live", old)
	ln, err := net.Listen("unix", filepath.Join(live, "qmp.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	os.Chtimes(live, old, old)
	// A dead QEMU left its socket: nobody listens.
	dead := mkdir("vmnetbar-qemu-dead", old)
	dln, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(dead, "qmp.sock"), Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	dln.SetUnlinkOnClose(false)
	dln.Close()
	writeFile(t, dead, "other")
	os.Chtimes(dead, old, old)
	// Left before QEMU made its socket.
	empty := mkdir("vmnetbar-qemu-empty", old)
	// Being set up right now by an older vmnetbar.
	fresh := mkdir("vmnetbar-qemu-fresh", now)
	// Not a directory of ours.
	target := mkdir("target", old)
	writeFile(t, target, "keep")
	link := filepath.Join(tmp, "vmnetbar-qemu-link")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	file := writeFile(t, tmp, "vmnetbar-qemu-file")
	other := mkdir("other-dir", old)

	if err := removeStaleRuntime(testLogger(t), tmp, now); err != nil {
		t.Fatal(err)
	}
	for _, gone := range []string{dead, empty} {
		if _, err := os.Lstat(gone); !os.IsNotExist(err) {
			t.Errorf("%s is still there (%v)", gone, err)
		}
	}
	for _, kept := range []string{live, filepath.Join(live, "qmp.sock"), fresh, target, filepath.Join(target, "keep"), link, file, other} {
		if _, err := os.Lstat(kept); err != nil {
			t.Errorf("%s was removed (%v)", kept, err)
		}
	}
	// The live VM's socket still works.
	c, err := net.Dial("unix", filepath.Join(live, "qmp.sock"))
	if err != nil {
		t.Fatalf("the live socket: %v", err)
	}
	c.Close()
}

// Someone else's directory is never touched, even when it looks stale.
func TestRemoveStaleRuntimeKeepsOthers(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to give a directory to another user")
	}
	tmp := t.TempDir()
	p := filepath.Join(tmp, "vmnetbar-qemu-theirs")
	if err := os.Mkdir(p, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(p, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour)
	os.Chtimes(p, old, old)
	if err := removeStaleRuntime(testLogger(t), tmp, time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(p); err != nil {
		t.Errorf("another user's directory was removed (%v)", err)
	}
}

func TestRemoveStaleRuntimeMissingDir(t *testing.T) {
	err := removeStaleRuntime(testLogger(t), filepath.Join(t.TempDir(), "nope"), time.Now())
	if err == nil || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("a missing directory: %v", err)
	}
	// The exported entry point looks in os.TempDir().
	t.Setenv("TMPDIR", t.TempDir())
	if err := RemoveStaleRuntime(testLogger(t)); err != nil {
		t.Fatal(err)
	}
}
