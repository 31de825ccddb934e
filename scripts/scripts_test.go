// Package scripts tests the shell scripts in this directory (the package
// has no Go code of its own).
package scripts

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// writeExec writes an executable shell script.
func writeExec(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
}

// bashPath is the real bash, found before a test narrows PATH.
func bashPath(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("bash")
	if err != nil {
		t.Skipf("no bash: %v", err)
	}
	return p
}

// aptFakes is a PATH holding only fakes of what apt-install.sh runs: id
// (the uid is $FAKE_UID), dpkg-query (every package is missing but
// busybox-static), apt-get and, with sudo, sudo; each logs its call. grep
// and env are the real ones.
func aptFakes(t *testing.T, sudo bool) (bin, log string) {
	t.Helper()
	bin = t.TempDir()
	log = filepath.Join(bin, "calls.log")
	for _, tool := range []string{"grep", "env"} {
		p, err := exec.LookPath(tool)
		if err != nil {
			t.Skipf("no %s: %v", tool, err)
		}
		if err := os.Symlink(p, filepath.Join(bin, tool)); err != nil {
			t.Fatal(err)
		}
	}
	writeExec(t, filepath.Join(bin, "id"), `echo "$FAKE_UID"`+"\n")
	writeExec(t, filepath.Join(bin, "dpkg-query"), `for a; do p=$a; done
[ "$p" = busybox-static ] && printf 'install ok installed'
exit 0
`)
	writeExec(t, filepath.Join(bin, "apt-get"), `echo "apt-get $* DEBIAN_FRONTEND=$DEBIAN_FRONTEND" >>"$FAKE_LOG"`+"\n")
	if sudo {
		writeExec(t, filepath.Join(bin, "sudo"), `echo "sudo $*" >>"$FAKE_LOG"
[ "$1" = -n ] && shift
exec "$@"
`)
	}
	return bin, log
}

func runAptInstall(t *testing.T, bin, log, uid string, pkgs ...string) (out string, calls []string, code int) {
	t.Helper()
	cmd := exec.Command(bashPath(t), append([]string{"apt-install.sh"}, pkgs...)...)
	cmd.Env = []string{"PATH=" + bin, "FAKE_UID=" + uid, "FAKE_LOG=" + log, "APT_INSTALL_FOR=test"}
	cmd.Stdin = nil // not a terminal: sudo must not prompt
	b, err := cmd.CombinedOutput()
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatal(err)
		}
		code = ee.ExitCode()
	}
	if l, err := os.ReadFile(log); err == nil && len(l) > 0 {
		calls = strings.Split(strings.TrimSpace(string(l)), "\n")
	}
	return string(b), calls, code
}

// TestAptInstallSudo: not root, with sudo (GitHub's runners): apt-get runs
// through sudo, non-interactively, for the missing packages only.
func TestAptInstallSudo(t *testing.T) {
	bin, log := aptFakes(t, true)
	out, calls, code := runAptInstall(t, bin, log, "1001", "cpio", "busybox-static", "dbus")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	want := []string{
		"sudo -n env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=120 update -qq",
		"apt-get -o DPkg::Lock::Timeout=120 update -qq DEBIAN_FRONTEND=noninteractive",
		"sudo -n env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=120 install -y -qq --no-install-recommends cpio dbus",
		"apt-get -o DPkg::Lock::Timeout=120 install -y -qq --no-install-recommends cpio dbus DEBIAN_FRONTEND=noninteractive",
	}
	if strings.Join(calls, "\n") != strings.Join(want, "\n") {
		t.Errorf("calls:\n%s\nwant:\n%s\noutput:\n%s", strings.Join(calls, "\n"), strings.Join(want, "\n"), out)
	}
}

// TestAptInstallRoot: as root apt-get runs directly.
func TestAptInstallRoot(t *testing.T) {
	bin, log := aptFakes(t, true)
	out, calls, code := runAptInstall(t, bin, log, "0", "cpio")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	want := []string{
		"apt-get -o DPkg::Lock::Timeout=120 update -qq DEBIAN_FRONTEND=noninteractive",
		"apt-get -o DPkg::Lock::Timeout=120 install -y -qq --no-install-recommends cpio DEBIAN_FRONTEND=noninteractive",
	}
	if strings.Join(calls, "\n") != strings.Join(want, "\n") {
		t.Errorf("calls:\n%s\nwant:\n%s", strings.Join(calls, "\n"), strings.Join(want, "\n"))
	}
}

// TestAptInstallNothingMissing: nothing to do, no apt-get, even without
// root or sudo.
func TestAptInstallNothingMissing(t *testing.T) {
	bin, log := aptFakes(t, false)
	out, calls, code := runAptInstall(t, bin, log, "1001", "busybox-static")
	if code != 0 || len(calls) != 0 {
		t.Fatalf("exit %d, calls %q:\n%s", code, calls, out)
	}
}

// TestAptInstallNoSudo: not root and no sudo: exit 2 with what to do.
func TestAptInstallNoSudo(t *testing.T) {
	bin, log := aptFakes(t, false)
	out, calls, code := runAptInstall(t, bin, log, "1001", "cpio", "dbus")
	if code != 2 || len(calls) != 0 {
		t.Fatalf("exit %d, calls %q, want exit 2 and no apt-get:\n%s", code, calls, out)
	}
	if want := "test: cpio dbus missing: run as root, or install them first (apt-get install cpio dbus)"; !strings.Contains(out, want) {
		t.Errorf("output lacks %q:\n%s", want, out)
	}
}

// TestCIRunInstallsThroughAptInstall: .ci/run installs its packages with
// apt-install.sh (so it works as root and through sudo), including what
// go test -race and the Makefile need on a bare Debian image.
func TestCIRunInstallsThroughAptInstall(t *testing.T) {
	b, err := os.ReadFile("../.ci/run")
	if err != nil {
		t.Fatal(err)
	}
	s := strings.ReplaceAll(string(b), "\\\n", " ")
	var line string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, "scripts/apt-install.sh") {
			line = l
		}
	}
	if line == "" {
		t.Fatal(".ci/run does not run scripts/apt-install.sh")
	}
	for _, p := range []string{"qemu-system-x86", "busybox-static", "cpio", "dbus", "gcc", "libc6-dev", "make"} {
		if !strings.Contains(" "+strings.Join(strings.Fields(line), " ")+" ", " "+p+" ") {
			t.Errorf(".ci/run does not install %s: %s", p, line)
		}
	}
	if strings.Contains(s, "\napt-get") || strings.Contains(s, "\tapt-get") {
		t.Error(".ci/run runs apt-get itself, which fails when it is not root")
	}
}
