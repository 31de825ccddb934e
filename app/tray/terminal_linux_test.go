package tray

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmnetbar/vmnetbar/internal/testwait"
)

// fakeTerminalProgram writes an executable script called name into dir
// that acts as a terminal emulator: it records its arguments, one a line,
// in out/name.args, and runs the command after its first argument (the
// option that names the command), as a terminal runs it in its window.
func fakeTerminalProgram(t *testing.T, dir, out, name string) {
	t.Helper()
	script := "#!/bin/sh\n" +
		"printf '%s\\n' \"$@\" > '" + filepath.Join(out, name+".args") + "'\n" +
		"shift\nexec \"$@\"\n"
	if err := os.WriteFile(filepath.Join(dir, name), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
}

// fakeSSH writes an ssh into dir that records its arguments, one a line,
// in out/ssh.args and exits with status code.
func fakeSSH(t *testing.T, dir, out, code string) {
	t.Helper()
	script := "#!/bin/sh\nprintf '%s\\n' \"$@\" > '" + filepath.Join(out, "ssh.args.tmp") + "'\n" +
		"/bin/mv '" + filepath.Join(out, "ssh.args.tmp") + "' '" + filepath.Join(out, "ssh.args") + "'\nexit " + code + "\n"
	if err := os.WriteFile(filepath.Join(dir, "ssh"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
}

// readLines returns the lines of file, or ok false while it does not
// exist.
func readLines(t *testing.T, file string) (lines []string, ok bool) {
	t.Helper()
	b, err := os.ReadFile(file)
	if os.IsNotExist(err) {
		return nil, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n"), true
}

// TestLinuxTerminalChooser runs the platform's Terminal with fake terminal
// programs on PATH (real processes): the first of x-terminal-emulator,
// gnome-terminal, konsole, xfce4-terminal and xterm is started with its
// option for the command, and runs ssh with the arguments as given, also
// ones with blanks and quotes.
func TestLinuxTerminalChooser(t *testing.T) {
	argv := []string{"ssh", "-i", "/home/a/my keys/id_ed25519", "-o", `UserKnownHostsFile="/home/a/x y/kh"`, "debian@192.168.105.3"}
	tests := []struct {
		installed []string
		want      string // the program started
		option    string
	}{
		{[]string{"x-terminal-emulator", "gnome-terminal", "konsole", "xfce4-terminal", "xterm"}, "x-terminal-emulator", "-e"},
		{[]string{"gnome-terminal", "konsole", "xterm"}, "gnome-terminal", "--"},
		{[]string{"konsole", "xfce4-terminal", "xterm"}, "konsole", "-e"},
		{[]string{"xfce4-terminal", "xterm"}, "xfce4-terminal", "-x"},
		{[]string{"xterm"}, "xterm", "-e"},
	}
	for _, tc := range tests {
		t.Run(tc.want, func(t *testing.T) {
			bin, out := t.TempDir(), t.TempDir()
			for _, name := range tc.installed {
				fakeTerminalProgram(t, bin, out, name)
			}
			fakeSSH(t, bin, out, "0")
			t.Setenv("PATH", bin)
			if err := newTerminal().Open(context.Background(), argv); err != nil {
				t.Fatalf("Open: %v", err)
			}
			// The terminal runs on its own: wait for the ssh it ran.
			var ssh []string
			testwait.For(t, "ssh to run in the terminal", func() bool {
				var ok bool
				ssh, ok = readLines(t, filepath.Join(out, "ssh.args"))
				return ok
			})
			if got, want := strings.Join(ssh, "|"), strings.Join(argv[1:], "|"); got != want {
				t.Errorf("ssh ran with %q, want %q", ssh, argv[1:])
			}
			args, ok := readLines(t, filepath.Join(out, tc.want+".args"))
			if !ok || args[0] != tc.option {
				t.Errorf("%s started with %q, want %s first", tc.want, args, tc.option)
			}
			for _, name := range tc.installed {
				if _, ran := readLines(t, filepath.Join(out, name+".args")); ran && name != tc.want {
					t.Errorf("%s started too", name)
				}
			}
		})
	}
}

// TestLinuxTerminalNone: without a terminal program, Open fails naming
// the programs it looked for and what to install.
func TestLinuxTerminalNone(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	err := newTerminal().Open(context.Background(), []string{"ssh", "alice@192.168.105.3"})
	if err == nil || !strings.Contains(err.Error(), "looked for x-terminal-emulator, gnome-terminal, konsole, xfce4-terminal, xterm") ||
		!strings.Contains(err.Error(), "install a terminal emulator, e.g. xterm") {
		t.Errorf("Open: %v, want the programs looked for and what to install", err)
	}
}
