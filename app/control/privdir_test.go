package control

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
)

// attackEnv makes the test binary play another user's fake server (see
// TestMain and runAttacker).
const attackEnv = "VMNETBAR_CONTROL_TEST_ATTACK_DIR"

// nobody is the uid the tests give to "another user".
const nobody = 65534

// fallbackSocket points TMPDIR at a fresh short directory and returns this
// user's fallback directory and socket path in it.
func fallbackSocket(t *testing.T) (dir, sock string) {
	t.Helper()
	tmp := shortTempDir(t)
	t.Setenv("TMPDIR", tmp)
	dir = fallbackDir(tmp, os.Getuid())
	return dir, filepath.Join(dir, socketName)
}

// fakeServer answers every request at path with a made-up status and
// counts the requests.
func fakeServer(t *testing.T, path string) *atomic.Int64 {
	t.Helper()
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int64
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		n.Add(1)
		w.Write([]byte(`{"link":{"state":"up","last_error":"FAKE"}}`))
	})}
	done := make(chan struct{})
	go func() { srv.Serve(l); close(done) }()
	t.Cleanup(func() { srv.Close(); <-done })
	return &n
}

func TestListenMakesFallbackDirPrivate(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	dir, sock := fallbackSocket(t)
	if !needsPrivateDir(sock) {
		t.Fatalf("%s is not taken for the fallback", sock)
	}
	l, err := Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(dir)
	if err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 {
		t.Fatalf("fallback directory: %v %v, want a 0700 directory", fi.Mode(), err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- NewServer(twoVMs(t), testLogger(t)).Serve(ctx, l)
	}()
	defer func() { cancel(); <-done }()
	if _, err := NewClient(sock).Overview(ctxT(t)); err != nil {
		t.Errorf("client through the private fallback directory: %v", err)
	}
	// A second instance gets the usual "in use", not a directory error.
	if _, err := Listen(sock); !errors.Is(err, ErrInUse) {
		t.Errorf("second Listen = %v, want ErrInUse", err)
	}
}

func TestFallbackDirMustBePrivate(t *testing.T) {
	for _, tc := range []struct {
		name  string
		root  bool // needs root to set up
		setup func(t *testing.T, dir string) (sockDir string)
		what  string
	}{
		{"mode 0777", false, func(t *testing.T, dir string) string {
			mkdirMode(t, dir, 0o777)
			return dir
		}, "has mode 0777"},
		{"mode 0755", false, func(t *testing.T, dir string) string {
			mkdirMode(t, dir, 0o755)
			return dir
		}, "has mode 0755"},
		{"another owner", true, func(t *testing.T, dir string) string {
			mkdirMode(t, dir, 0o700)
			if err := os.Lchown(dir, nobody, nobody); err != nil {
				t.Fatal(err)
			}
			return dir
		}, "it belongs to " + describeUID(nobody, true)},
		{"symbolic link", false, func(t *testing.T, dir string) string {
			real := filepath.Join(filepath.Dir(dir), "elsewhere")
			mkdirMode(t, real, 0o700)
			if err := os.Symlink(real, dir); err != nil {
				t.Fatal(err)
			}
			return real
		}, "it is a symbolic link (to "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.root && os.Getuid() != 0 {
				t.Skip("needs root to give a directory to another user")
			}
			dir, sock := fallbackSocket(t)
			sockDir := tc.setup(t, dir)
			requests := fakeServer(t, filepath.Join(sockDir, socketName))
			checkRefused(t, dir, sock, tc.what)
			if n := requests.Load(); n != 0 {
				t.Errorf("the fake server got %d requests", n)
			}
		})
	}
	t.Run("regular file", func(t *testing.T) {
		dir, sock := fallbackSocket(t)
		if err := os.WriteFile(dir, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		checkRefused(t, dir, sock, "it is a regular file")
	})
}

// checkRefused checks that both Listen and the client refuse sock because
// of its directory.
func checkRefused(t *testing.T, dir, sock, what string) {
	t.Helper()
	l, err := Listen(sock)
	if err == nil {
		l.Close()
	}
	checkNotPrivateErr(t, "Listen", err, dir, what)
	_, err = NewClient(sock).Overview(ctxT(t))
	checkNotPrivateErr(t, "the client", err, dir, what)
}

func checkNotPrivateErr(t *testing.T, who string, err error, dir, what string) {
	t.Helper()
	if !errors.Is(err, ErrNotPrivate) {
		t.Fatalf("%s: %v, want an error wrapping ErrNotPrivate", who, err)
	}
	for _, frag := range []string{dir + " must be a directory owned by you, ", "with mode 0700", what, "Remove it (rm -r " + dir + ")", "--control PATH"} {
		if !strings.Contains(err.Error(), frag) {
			t.Errorf("%s: error %q lacks %q", who, err, frag)
		}
	}
}

func mkdirMode(t *testing.T, dir string, mode os.FileMode) {
	t.Helper()
	if err := os.Mkdir(dir, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, mode); err != nil {
		t.Fatal(err)
	}
}

// The attack as it happened: another user makes the victim's fallback
// directory first, mode 0777, and serves a fake API in it.
func TestFallbackDirMadeByAnotherUser(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to run a process as another user")
	}
	// The attacker runs a copy of this test binary that it can read.
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	binDir := shortTempDir(t)
	os.Chmod(binDir, 0o755)
	bin := filepath.Join(binDir, "attacker")
	copyFile(t, exe, bin, 0o755)

	dir, sock := fallbackSocket(t)
	os.Chmod(filepath.Dir(dir), 0o1777) // a shared temporary directory
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), attackEnv+"="+dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stdin.Close() // the attacker leaves when its stdin closes
		if err := cmd.Wait(); err != nil {
			t.Errorf("attacker: %v", err)
		}
	}()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if line != "ready\n" {
		t.Fatalf("attacker did not start: %q %v", line, err)
	}
	checkRefused(t, dir, sock, "it belongs to "+describeUID(nobody, true)+" and has mode 0777")
}

// runAttacker makes dir with mode 0777 and serves a fake control API in it
// until stdin closes. It returns the exit code.
func runAttacker(dir string) int {
	syscall.Umask(0)
	if err := os.Mkdir(dir, 0o777); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	l, err := net.Listen("unix", filepath.Join(dir, socketName))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	go http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte(`{"link":{"state":"up","last_error":"FAKE"}}`))
	}))
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin)
	l.Close()
	os.RemoveAll(dir)
	return 0
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, mode); err != nil {
		t.Fatal(err)
	}
}

// TestPrivateTempDir: the directory is made 0700 in the temporary
// directory, reused, and refused once it is not private.
func TestPrivateTempDir(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	dir, err := PrivateTempDir()
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(dir); err != nil || filepath.Dir(dir) != tmp || fi.Mode().Perm() != 0o700 || !fi.IsDir() {
		t.Fatalf("%s: %v, %v; want a 0700 directory in %s", dir, fi.Mode(), err, tmp)
	}
	if again, err := PrivateTempDir(); err != nil || again != dir {
		t.Fatalf("again: %s, %v", again, err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := PrivateTempDir(); !errors.Is(err, ErrNotPrivate) {
		t.Fatalf("a 0755 directory: %v, want ErrNotPrivate", err)
	}
}
