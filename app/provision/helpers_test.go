package provision

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/crypto/ssh"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const imageSize = 3 << 20

// rawImage writes a raw disk image of n bytes to path: a partition table
// (an MBR boot signature and a GPT header, as cloud images have) and data
// at a few places.
func rawImage(t testing.TB, path string, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	b[510], b[511] = 0x55, 0xaa
	copy(b[512:], "EFI PART")
	copy(b[1<<20:], "data at 1 MiB")
	copy(b[n-16:], "the end")
	writeFile(t, path, b, 0o644)
	return b
}

func writeFile(t testing.TB, path string, b []byte, perm os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, perm); err != nil {
		t.Fatal(err)
	}
}

// pubKey returns a new ed25519 public key as an authorized_keys line.
func pubKey(t testing.TB, comment string) string {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sp))) + " " + comment
}

// fixture is a VM in a temporary directory: a raw image, a home with one
// public key in ~/.ssh, cloud-init on.
type fixture struct {
	VM
	dir     string
	image   []byte // the image's bytes
	homeKey string // the key in HOME/.ssh/id_ed25519.pub
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	f := &fixture{dir: dir}
	f.VM = VM{
		Name:      "dev",
		StateDir:  filepath.Join(dir, "state", "vms", "dev"),
		Image:     filepath.Join(dir, "images", "debian.raw"),
		DiskSize:  4 << 20,
		CloudInit: true,
		SSHUser:   "alice",
		MAC:       net.HardwareAddr{0x52, 0x54, 0x00, 0x12, 0x34, 0x56},
		Home:      filepath.Join(dir, "home"),
	}
	f.image = rawImage(t, f.Image, imageSize)
	f.homeKey = pubKey(t, "alice@laptop")
	writeFile(t, filepath.Join(f.Home, ".ssh", "id_ed25519.pub"), []byte(f.homeKey+"\n"), 0o644)
	return f
}

// path is a file in the fixture's directory.
func (f *fixture) path(name string) string { return filepath.Join(f.dir, name) }

// entries lists the names in dir, sorted ("" for a missing dir).
func entries(t testing.TB, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	slices.Sort(names)
	return names
}

// assertOnly checks that dir holds exactly names (no disk, no temporary
// file besides).
func assertOnly(t testing.TB, dir string, names ...string) {
	t.Helper()
	slices.Sort(names)
	if got := entries(t, dir); !slices.Equal(got, names) {
		t.Errorf("%s holds %q, want %q", dir, got, names)
	}
}

func exists(t testing.TB, path string) bool {
	t.Helper()
	_, err := os.Lstat(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return err == nil
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// seedHolds checks whether the seed image holds s (the ISO stores its
// files as they are, so a key or the instance-id appears in its bytes).
func seedHolds(t testing.TB, seed, s string) bool {
	t.Helper()
	return bytes.Contains(readFile(t, seed), []byte(s))
}

// stamp is what tells a file rewritten from one left alone: a rewrite is
// a new file renamed into place.
type stamp struct {
	fi    os.FileInfo
	mtime time.Time
}

func stampOf(t testing.TB, path string) stamp {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return stamp{fi, fi.ModTime()}
}

func (s stamp) same(o stamp) bool { return os.SameFile(s.fi, o.fi) && s.mtime.Equal(o.mtime) }

// keyErrOf checks that err is an *Error for key and returns it.
func keyErrOf(t testing.TB, err error, key string) *Error {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not a *provision.Error", err, err)
	}
	if e.Key != key {
		t.Fatalf("error %q has Key %q, want %q", err, e.Key, key)
	}
	if !strings.HasPrefix(e.Error(), key+": ") {
		t.Errorf("error %q does not start with %q", e.Error(), key+": ")
	}
	return e
}
