package loginitem

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Autostart is launch at login on Linux desktops: an XDG autostart entry
// (Desktop Application Autostart Specification),
// CONFIG/autostart/vmnetbar.desktop where CONFIG is $XDG_CONFIG_HOME or
// ~/.config.
type Autostart struct {
	path string
	exe  string
	args []string
}

var _ Manager = (*Autostart)(nil)

// NewAutostart returns the autostart entry under configHome (the user's
// XDG config directory) that runs exe with args.
func NewAutostart(configHome, exe string, args []string) (*Autostart, error) {
	if err := checkProgram(exe, args); err != nil {
		return nil, err
	}
	if strings.ContainsRune(exe, '=') {
		return nil, fmt.Errorf("login item: program path %q contains '=', which a desktop entry cannot run; move or link the executable elsewhere", exe)
	}
	if !filepath.IsAbs(configHome) {
		return nil, fmt.Errorf("login item: config directory %q is not absolute; set XDG_CONFIG_HOME or HOME", configHome)
	}
	return &Autostart{
		path: filepath.Join(configHome, "autostart", "vmnetbar.desktop"),
		exe:  exe,
		args: append([]string(nil), args...),
	}, nil
}

// XDGConfigHome returns $XDG_CONFIG_HOME, or home/.config when it is unset
// or relative (the XDG Base Directory rule).
func XDGConfigHome(getenv func(string) string, home string) string {
	if d := getenv("XDG_CONFIG_HOME"); filepath.IsAbs(d) {
		return d
	}
	return filepath.Join(home, ".config")
}

// Path is the desktop entry's file.
func (a *Autostart) Path() string { return a.path }

// Enable writes the desktop entry.
func (a *Autostart) Enable() error {
	if err := writeFileAtomic(a.path, a.Desktop(), 0o644); err != nil {
		return fmt.Errorf("login item: writing %s: %w", a.path, err)
	}
	return nil
}

// Disable removes the desktop entry.
func (a *Autostart) Disable() error {
	if err := removeIfExists(a.path); err != nil {
		return fmt.Errorf("login item: removing %s: %w", a.path, err)
	}
	return nil
}

// Enabled reports whether the entry exists and is not switched off
// (Hidden=true, or X-GNOME-Autostart-enabled=false as desktop settings
// tools write).
func (a *Autostart) Enabled() (bool, error) {
	data, err := os.ReadFile(a.path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("login item: %w", err)
	}
	inEntry := false
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "[") {
			inEntry = line == "[Desktop Entry]"
			continue
		}
		key, val, ok := strings.Cut(line, "=")
		if !inEntry || !ok {
			continue
		}
		key, val = strings.TrimSpace(key), strings.TrimSpace(val)
		if (key == "Hidden" && val == "true") || (key == "X-GNOME-Autostart-enabled" && val == "false") {
			return false, nil
		}
	}
	return true, sc.Err()
}

// Desktop is the desktop entry.
func (a *Autostart) Desktop() []byte {
	var b bytes.Buffer
	b.WriteString("[Desktop Entry]\n")
	b.WriteString("Type=Application\n")
	b.WriteString("Name=vmnetbar\n")
	b.WriteString("Comment=Linux VM with a self-healing socket_vmnet link\n")
	b.WriteString("Exec=" + execLine(a.exe, a.args) + "\n")
	b.WriteString("Terminal=false\n")
	b.WriteString("X-GNOME-Autostart-enabled=true\n")
	b.WriteString("Hidden=false\n")
	return b.Bytes()
}

// execLine builds an Exec value from a program and its arguments, quoted
// as the Desktop Entry Specification asks: an argument with a reserved
// character is double-quoted with ", `, $ and \ backslash-escaped inside;
// % is doubled (field codes); then the whole value gets the string escapes
// (\\, \n, \t, \r), which readers undo first.
func execLine(exe string, args []string) string {
	parts := make([]string, 0, 1+len(args))
	for _, a := range append([]string{exe}, args...) {
		parts = append(parts, quoteExecArg(a))
	}
	return escapeDesktopString(strings.Join(parts, " "))
}

// execReserved are the characters that force an Exec argument into quotes.
const execReserved = " \t\n\"'\\><~|&;$*?#()`"

func quoteExecArg(a string) string {
	a = strings.ReplaceAll(a, "%", "%%")
	if a != "" && !strings.ContainsAny(a, execReserved) {
		return a
	}
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range a {
		switch r {
		case '"', '`', '$', '\\':
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	b.WriteByte('"')
	return b.String()
}

func escapeDesktopString(s string) string {
	return strings.NewReplacer(`\`, `\\`, "\n", `\n`, "\t", `\t`, "\r", `\r`).Replace(s)
}
