package disk

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// reflinkFS mounts a fresh XFS file system with reflink, made in a loop
// image file in a temporary directory, and returns its mount point. It
// skips the test where that cannot be done (not root, no mkfs.xfs, no loop
// devices).
func reflinkFS(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a loop file system needs root")
	}
	mkfs, err := exec.LookPath("mkfs.xfs")
	if err != nil {
		t.Skip("mkfs.xfs is not installed (apt-get install -y xfsprogs)")
	}
	dir := t.TempDir()
	img := filepath.Join(dir, "fs.img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(320 << 20)
	f.Close()
	if out, err := exec.Command(mkfs, "-q", "-m", "reflink=1", img).CombinedOutput(); err != nil {
		t.Skipf("mkfs.xfs: %v %s", err, out)
	}
	mnt := filepath.Join(dir, "mnt")
	os.Mkdir(mnt, 0o755)
	if out, err := exec.Command("mount", "-o", "loop", img, mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot loop-mount a file system here: %v %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", mnt, err, out)
		}
	})
	return mnt
}

func TestClone(t *testing.T) {
	mnt := reflinkFS(t)
	src := filepath.Join(mnt, "image.raw")
	const n = 16<<20 + 1000
	want := rawImage(t, src, n)
	dst := filepath.Join(mnt, "disk.raw")
	var last [2]int64
	res, err := Prepare(context.Background(), src, dst, 32<<20, func(done, total int64) { last = [2]int64{done, total} })
	if err != nil {
		t.Fatal(err)
	}
	if !res.Cloned || res.Size != 32<<20 {
		t.Fatalf("Prepare = %+v, want a clone of 32 MiB", res)
	}
	if last != [2]int64{n, n} {
		t.Errorf("last progress call %v, want [%d %d]", last, n, n)
	}
	got, _ := os.ReadFile(dst)
	if len(got) != 32<<20 || !bytes.Equal(got[:n], want) || !bytes.Equal(got[n:], make([]byte, len(got)-n)) {
		t.Fatal("the clone does not hold the image's bytes followed by zeros")
	}
	st, _ := os.Stat(dst)
	if st.Mode().Perm() != 0o600 {
		t.Errorf("disk mode %v, want 0600", st.Mode().Perm())
	}
	// Copy-on-write: writing the disk leaves the image alone.
	f, err := os.OpenFile(dst, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt(bytes.Repeat([]byte{0xee}, 4096), 0)
	f.Close()
	if got, _ := os.ReadFile(src); !bytes.Equal(got, want) {
		t.Error("writing the clone changed the image")
	}
	assertOnly(t, mnt, "image.raw", "disk.raw")
}

// Across file systems FICLONE fails with EXDEV: Prepare copies.
func TestCloneAcrossFileSystemsCopies(t *testing.T) {
	mnt := reflinkFS(t)
	src := filepath.Join(mnt, "image.raw")
	want := rawImage(t, src, 16<<20)
	dir := t.TempDir()
	dst := filepath.Join(dir, "disk.raw")
	res, err := Prepare(context.Background(), src, dst, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Cloned {
		t.Fatal("cloned across file systems?")
	}
	if got, _ := os.ReadFile(dst); !bytes.Equal(got, want) {
		t.Fatal("the copy differs from the image")
	}
	if a := allocated(t, dst); a > 2<<20+64<<10 {
		t.Errorf("the copy occupies %d bytes: holes were written", a)
	}
}
