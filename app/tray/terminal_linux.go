package tray

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// newTerminal: see newLinuxTerminal.
func newTerminal() Terminal { return newLinuxTerminal() }

// terminalProgram is a terminal emulator and the option after which the
// rest of its command line is the command to run in its window.
type terminalProgram struct {
	name string
	exec string
}

// linuxTerminals are the terminal emulators tried on Linux, in order: the
// desktop's default (Debian's x-terminal-emulator alternative), then
// GNOME's, KDE's, Xfce's and xterm.
var linuxTerminals = []terminalProgram{
	{"x-terminal-emulator", "-e"},
	{"gnome-terminal", "--"},
	{"konsole", "-e"},
	{"xfce4-terminal", "-x"},
	{"xterm", "-e"},
}

// holdScript runs its arguments and, when the command fails, keeps the
// window open until Enter, so that ssh's error can be read (a terminal
// closes its window when its command ends).
const holdScript = `"$@" || { s=$?; printf '\n%s ended with exit status %s. Press Enter to close this window.' "$1" "$s"; read -r _; }`

// commandTerminal opens a window with the first of its programs that is
// on PATH.
type commandTerminal struct {
	programs []terminalProgram
	lookPath func(string) (string, error) // exec.LookPath
	install  string                       // what to do when none is on PATH
}

// newLinuxTerminal is Linux's Terminal.
func newLinuxTerminal() Terminal {
	return commandTerminal{
		programs: linuxTerminals,
		lookPath: exec.LookPath,
		install:  "install a terminal emulator, e.g. xterm (sudo apt-get install xterm), or set the x-terminal-emulator alternative",
	}
}

// Open starts the first terminal program on PATH with argv (in holdScript)
// and leaves it to the user: it runs in a session of its own, outside
// vmnetbar's process group, and is not vmnetbar's child (a terminal's
// Ctrl-C or the end of vmnetbar does not end it).
func (c commandTerminal) Open(ctx context.Context, argv []string) error {
	if len(argv) == 0 {
		return errors.New("no command to run in the terminal")
	}
	var names []string
	for _, p := range c.programs {
		names = append(names, p.name)
		path, err := c.lookPath(p.name)
		if err != nil {
			continue
		}
		cmd := append([]string{path, p.exec, "/bin/sh", "-c", holdScript, "sh"}, argv...)
		if err := startDetached(ctx, cmd); err != nil {
			return fmt.Errorf("starting %s: %w", p.name, err)
		}
		return nil
	}
	return fmt.Errorf("no terminal program on PATH (looked for %s): %s", strings.Join(names, ", "), c.install)
}

// detachTimeout bounds the shell that starts a detached program.
const detachTimeout = 10 * time.Second

// startDetached starts argv through a shell that puts it in the
// background and exits at once, so that argv is the init process's
// child, not vmnetbar's, with no input and its output discarded. The
// shell runs in a new session (setsid), which argv keeps.
func startDetached(ctx context.Context, argv []string) error {
	ctx, cancel := context.WithTimeout(ctx, detachTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", append([]string{"-c", `"$@" </dev/null >/dev/null 2>&1 &`, "sh"}, argv...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%w: %s", err, firstLine(out))
	}
	return nil
}
