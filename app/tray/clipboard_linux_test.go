package tray

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// fakeProgram writes an executable script called name into dir that
// records its arguments in out/name.args and its standard input in
// out/name, then runs extra (shell code; "" for nothing more).
func fakeProgram(t *testing.T, dir, out, name, extra string) {
	t.Helper()
	script := "#!/bin/sh\n" +
		"printf '%s' \"$*\" > '" + filepath.Join(out, name+".args") + "'\n" +
		"/bin/cat > '" + filepath.Join(out, name) + "'\n" + extra + "\n"
	if err := os.WriteFile(filepath.Join(dir, name), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
}

// copied returns what the fake program name received and its arguments,
// or ok false when it never ran.
func copied(t *testing.T, out, name string) (text, args string, ok bool) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(out, name))
	if os.IsNotExist(err) {
		return "", "", false
	}
	if err != nil {
		t.Fatal(err)
	}
	a, err := os.ReadFile(filepath.Join(out, name+".args"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b), string(a), true
}

// TestLinuxClipboardChooser runs the platform clipboard with fake
// clipboard programs on PATH: wl-copy under Wayland, else xclip, else
// xsel; a program that fails hands over to the next.
func TestLinuxClipboardChooser(t *testing.T) {
	const text = "ssh alice@192.168.105.3"
	tests := []struct {
		name     string
		programs map[string]string // name: extra shell code
		wayland  bool
		want     string // the program that gets the text
		args     string
	}{
		{"wayland", map[string]string{"wl-copy": "", "xclip": "", "xsel": ""}, true, "wl-copy", ""},
		{"X11 with wl-copy installed", map[string]string{"wl-copy": "", "xclip": "", "xsel": ""}, false, "xclip", "-selection clipboard"},
		{"xsel only", map[string]string{"xsel": ""}, false, "xsel", "--clipboard --input"},
		{"wayland without wl-copy", map[string]string{"xsel": ""}, true, "xsel", "--clipboard --input"},
		{"wl-copy fails", map[string]string{"wl-copy": "echo 'Failed to connect to a Wayland server' >&2; exit 1", "xclip": ""}, true, "xclip", "-selection clipboard"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bin, out := t.TempDir(), t.TempDir()
			for name, extra := range tc.programs {
				fakeProgram(t, bin, out, name, extra)
			}
			t.Setenv("PATH", bin)
			if tc.wayland {
				t.Setenv("WAYLAND_DISPLAY", "wayland-0")
			} else {
				t.Setenv("WAYLAND_DISPLAY", "")
			}
			if err := newClipboard().Copy(context.Background(), text); err != nil {
				t.Fatalf("Copy: %v", err)
			}
			got, args, ok := copied(t, out, tc.want)
			if !ok || got != text || args != tc.args {
				t.Errorf("%s got %q with arguments %q (ran: %v), want %q with %q", tc.want, got, args, ok, text, tc.args)
			}
			for name := range tc.programs {
				if _, _, ran := copied(t, out, name); ran && name != tc.want && !strings.Contains(tc.programs[name], "exit 1") {
					t.Errorf("%s ran too", name)
				}
			}
		})
	}
}

// TestLinuxClipboardFails: without a clipboard program the error says
// what to install; when every program fails, it names each and its error.
func TestLinuxClipboardFails(t *testing.T) {
	bin, out := t.TempDir(), t.TempDir()
	t.Setenv("PATH", bin)
	t.Setenv("WAYLAND_DISPLAY", "")
	err := newClipboard().Copy(context.Background(), "x")
	if err == nil || !strings.Contains(err.Error(), "looked for xclip, xsel") || !strings.Contains(err.Error(), "install wl-clipboard (Wayland), xclip or xsel") {
		t.Errorf("no program: %v, want the programs looked for and what to install", err)
	}
	fakeProgram(t, bin, out, "xclip", "echo 'Error: Can'\\''t open display: (null)' >&2; exit 1")
	err = newClipboard().Copy(context.Background(), "x")
	if err == nil || !strings.Contains(err.Error(), "xclip -selection clipboard: exit status 1: Error: Can't open display: (null)") {
		t.Errorf("failing xclip: %v, want its error output", err)
	}
}

// TestClipboardDoesNotWaitForItsServer: xclip, xsel and wl-copy leave a
// child serving the clipboard, which keeps their outputs open; Copy
// returns when the program itself has exited.
func TestClipboardDoesNotWaitForItsServer(t *testing.T) {
	bin, out := t.TempDir(), t.TempDir()
	pidFile := filepath.Join(out, "server.pid")
	// The child holds standard output and error, as xclip's does, until
	// the test kills it.
	fakeProgram(t, bin, out, "xclip", "/bin/sleep 3600 & echo $! > '"+pidFile+"'")
	t.Cleanup(func() {
		if b, err := os.ReadFile(pidFile); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	t.Setenv("PATH", bin)
	t.Setenv("WAYLAND_DISPLAY", "")
	if err := newClipboard().Copy(context.Background(), "192.168.127.3"); err != nil {
		t.Fatalf("Copy: %v", err)
	}
	if got, _, _ := copied(t, out, "xclip"); got != "192.168.127.3" {
		t.Errorf("xclip got %q", got)
	}
}
