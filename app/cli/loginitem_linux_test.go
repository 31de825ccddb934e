package cli

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmnetbar/vmnetbar/internal/testbin"
)

// TestLoginItem drives `vmnetbar login-item` against a throwaway
// XDG_CONFIG_HOME and checks the autostart entry it writes.
func TestLoginItem(t *testing.T) {
	home := t.TempDir()
	conf := filepath.Join(home, "xdg")
	env := []string{"HOME=" + home, "XDG_CONFIG_HOME=" + conf}
	entry := filepath.Join(conf, "autostart", "vmnetbar.desktop")
	exe, err := filepath.EvalSymlinks(testbin.Path(t))
	if err != nil {
		t.Fatal(err)
	}

	r := runCLIEnv(t, env, "login-item", "status")
	if r.code != ExitOK || r.stdout != "launch at login: off\n" {
		t.Fatalf("status before on: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}

	r = runCLIEnv(t, env, "login-item", "on")
	if r.code != ExitOK || r.stdout != "launch at login: on ("+entry+")\n" {
		t.Fatalf("on: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stderr, "is in the temporary directory") {
		t.Errorf("on with a binary in the temporary directory did not warn: %q", r.stderr)
	}
	data, err := os.ReadFile(entry)
	if err != nil {
		t.Fatal(err)
	}
	if want := "\nExec=" + exe + " tray\n"; !strings.Contains(string(data), want) {
		t.Errorf("desktop entry lacks %q:\n%s", want, data)
	}

	r = runCLIEnv(t, env, "login-item", "status")
	if r.code != ExitOK || r.stdout != "launch at login: on ("+entry+")\n" {
		t.Errorf("status after on: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}

	// --config is stored as an absolute path, before or after the action.
	cfg := filepath.Join(home, "my config.yaml")
	if err := os.WriteFile(cfg, []byte("{}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r = runCLIEnv(t, env, "login-item", "on", "--config", cfg)
	if r.code != ExitOK {
		t.Fatalf("on --config: exit %d, stderr %q", r.code, r.stderr)
	}
	data, err = os.ReadFile(entry)
	if err != nil {
		t.Fatal(err)
	}
	if want := "\nExec=" + exe + ` tray --config "` + cfg + "\"\n"; !strings.Contains(string(data), want) {
		t.Errorf("desktop entry lacks %q:\n%s", want, data)
	}

	r = runCLIEnv(t, env, "login-item", "off")
	if r.code != ExitOK || r.stdout != "launch at login: off\n" {
		t.Errorf("off: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if _, err := os.Stat(entry); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("desktop entry still there after off: %v", err)
	}
	r = runCLIEnv(t, env, "login-item", "off")
	if r.code != ExitOK {
		t.Errorf("second off: exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestLoginItemBadUsage(t *testing.T) {
	home := t.TempDir()
	env := []string{"HOME=" + home, "XDG_CONFIG_HOME=" + filepath.Join(home, "xdg")}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"login-item"}, ExitUsage, "missing action: use on, off or status"},
		{[]string{"login-item", "maybe"}, ExitUsage, `unknown action "maybe"`},
		{[]string{"login-item", "on", "extra"}, ExitUsage, `unexpected argument "extra" after on`},
		{[]string{"login-item", "--config", "x.yaml", "off"}, ExitUsage, "--config goes with on only"},
		{[]string{"login-item", "on", "--config", filepath.Join(home, "absent.yaml")}, ExitFailure, "pass an existing configuration file"},
		{[]string{"login-item", "--bogus"}, ExitUsage, "unknown flag: --bogus"},
	} {
		r := runCLIEnv(t, env, tc.args...)
		if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%q: exit %d, stderr %q; want exit %d and %q", tc.args, r.code, r.stderr, tc.code, tc.want)
		}
	}
	if _, err := os.Stat(filepath.Join(home, "xdg")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a failed login-item wrote to the config directory: %v", err)
	}
}

// TestAppLoginItemKeepsFlags: the tray's "Launch at login" starts the app
// with the --config and --control it was started with, made absolute.
func TestAppLoginItemKeepsFlags(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(home, "xdg"))
	t.Chdir(home)
	m, _, err := trayLoginItem("c.yaml", "ctl.sock")
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Enable(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(home, "xdg", "autostart", "vmnetbar.desktop"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{" tray --config ", filepath.Join(home, "c.yaml"), " --control ", filepath.Join(home, "ctl.sock")} {
		if !strings.Contains(string(data), want) {
			t.Errorf("desktop entry lacks %q:\n%s", want, data)
		}
	}
}
