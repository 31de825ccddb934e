package loginitem

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// parseDesktop reads the [Desktop Entry] group of a desktop file.
func parseDesktop(t *testing.T, data string) map[string]string {
	t.Helper()
	if !strings.HasPrefix(data, "[Desktop Entry]\n") {
		t.Fatalf("desktop file does not start with [Desktop Entry]:\n%s", data)
	}
	m := map[string]string{}
	for _, line := range strings.Split(strings.TrimSuffix(data, "\n"), "\n")[1:] {
		k, v, ok := strings.Cut(line, "=")
		if !ok || strings.HasPrefix(line, "[") {
			t.Fatalf("unexpected line %q", line)
		}
		if _, dup := m[k]; dup {
			t.Fatalf("duplicate key %q", k)
		}
		m[k] = v
	}
	return m
}

// splitExec undoes an Exec value as a desktop environment does (Desktop
// Entry Specification, "The Exec key"): string escapes first, then quoting,
// then field codes (only %% may appear here).
func splitExec(v string) ([]string, error) {
	var s strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] != '\\' {
			s.WriteByte(v[i])
			continue
		}
		i++
		if i == len(v) {
			return nil, errors.New("trailing backslash")
		}
		switch v[i] {
		case 's':
			s.WriteByte(' ')
		case 'n':
			s.WriteByte('\n')
		case 't':
			s.WriteByte('\t')
		case 'r':
			s.WriteByte('\r')
		case '\\':
			s.WriteByte('\\')
		default:
			return nil, fmt.Errorf("bad string escape \\%c", v[i])
		}
	}
	line := []rune(s.String())
	var args []string
	for i := 0; i < len(line); {
		if line[i] == ' ' {
			i++
			continue
		}
		var arg strings.Builder
		if line[i] == '"' {
			i++
			for ; i < len(line) && line[i] != '"'; i++ {
				if line[i] == '\\' {
					i++
					if i == len(line) || !strings.ContainsRune("\"`$\\", line[i]) {
						return nil, errors.New("bad escape in a quoted argument")
					}
				}
				arg.WriteRune(line[i])
			}
			if i == len(line) {
				return nil, errors.New("unterminated quote")
			}
			i++
			if i < len(line) && line[i] != ' ' {
				return nil, errors.New("quote not followed by a space")
			}
		} else {
			for ; i < len(line) && line[i] != ' '; i++ {
				if strings.ContainsRune(execReservedForTest, line[i]) {
					return nil, fmt.Errorf("reserved character %q outside quotes", line[i])
				}
				arg.WriteRune(line[i])
			}
		}
		a := arg.String()
		for j := 0; j < len(a); j++ {
			if a[j] == '%' && (j+1 == len(a) || a[j+1] != '%') {
				return nil, fmt.Errorf("field code or lone %% in %q", a)
			}
			if a[j] == '%' {
				j++
			}
		}
		args = append(args, strings.ReplaceAll(a, "%%", "%"))
	}
	return args, nil
}

// execReservedForTest is the spec's list of reserved characters, kept
// apart from the package's own copy.
const execReservedForTest = " \t\n\"'\\><~|&;$*?#()`"

func TestAutostartRoundTrip(t *testing.T) {
	conf := t.TempDir()
	exe := "/opt/vm net/bin/vmnetbar"
	a, err := NewAutostart(conf, exe, nastyArgs)
	if err != nil {
		t.Fatal(err)
	}
	if on, err := a.Enabled(); err != nil || on {
		t.Fatalf("Enabled() before Enable = %v, %v; want false", on, err)
	}
	if err := a.Enable(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(conf, "autostart", "vmnetbar.desktop")
	if a.Path() != path {
		t.Errorf("Path() = %s, want %s", a.Path(), path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(string(data), "\n") != 8 {
		t.Errorf("an argument's line break leaked into the file:\n%s", data)
	}
	entry := parseDesktop(t, string(data))
	for k, v := range map[string]string{
		"Type":                      "Application",
		"Name":                      "vmnetbar",
		"X-GNOME-Autostart-enabled": "true",
		"Hidden":                    "false",
		"Terminal":                  "false",
	} {
		if entry[k] != v {
			t.Errorf("%s=%q, want %q", k, entry[k], v)
		}
	}
	got, err := splitExec(entry["Exec"])
	if err != nil {
		t.Fatalf("Exec=%s: %v", entry["Exec"], err)
	}
	if want := append([]string{exe}, nastyArgs...); !reflect.DeepEqual(got, want) {
		t.Errorf("Exec=%s\nsplits into %q\nwant %q", entry["Exec"], got, want)
	}
	if on, err := a.Enabled(); err != nil || !on {
		t.Errorf("Enabled() after Enable = %v, %v; want true", on, err)
	}

	if err := a.Disable(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("desktop file still there after Disable: %v", err)
	}
	if on, err := a.Enabled(); err != nil || on {
		t.Errorf("Enabled() after Disable = %v, %v; want false", on, err)
	}
	if err := a.Disable(); err != nil {
		t.Errorf("second Disable: %v", err)
	}
}

func TestAutostartPlainArgsStayUnquoted(t *testing.T) {
	a, err := NewAutostart(t.TempDir(), "/usr/bin/vmnetbar", []string{"--log-level=debug", "tray"})
	if err != nil {
		t.Fatal(err)
	}
	if want := "Exec=/usr/bin/vmnetbar --log-level=debug tray\n"; !strings.Contains(string(a.Desktop()), want) {
		t.Errorf("desktop entry lacks %q:\n%s", want, a.Desktop())
	}
}

func TestAutostartSwitchedOffBySettings(t *testing.T) {
	for _, line := range []string{"Hidden=true", "X-GNOME-Autostart-enabled=false"} {
		a, err := NewAutostart(t.TempDir(), "/usr/bin/vmnetbar", nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Enable(); err != nil {
			t.Fatal(err)
		}
		key, _, _ := strings.Cut(line, "=")
		var kept []string
		for _, l := range strings.Split(string(mustRead(t, a.Path())), "\n") {
			if !strings.HasPrefix(l, key+"=") {
				kept = append(kept, l)
			}
		}
		edited := strings.Replace(strings.Join(kept, "\n"), "[Desktop Entry]\n", "[Desktop Entry]\n"+line+"\n", 1)
		if err := os.WriteFile(a.Path(), []byte(edited), 0o644); err != nil {
			t.Fatal(err)
		}
		if on, err := a.Enabled(); err != nil || on {
			t.Errorf("with %s: Enabled() = %v, %v; want false", line, on, err)
		}
		if err := a.Enable(); err != nil {
			t.Fatal(err)
		}
		if on, err := a.Enabled(); err != nil || !on {
			t.Errorf("Enable after %s: Enabled() = %v, %v; want true", line, on, err)
		}
	}
}

func TestNewAutostartRejectsBadInput(t *testing.T) {
	for _, tc := range []struct {
		conf, exe string
		want      string
	}{
		{"/c", "vmnetbar", "is not absolute"},
		{"c", "/usr/bin/vmnetbar", "set XDG_CONFIG_HOME or HOME"},
		{"/c", "/opt/a=b/vmnetbar", "contains '='"},
	} {
		if _, err := NewAutostart(tc.conf, tc.exe, nil); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewAutostart(%q, %q) = %v, want an error with %q", tc.conf, tc.exe, err, tc.want)
		}
	}
}

func TestXDGConfigHome(t *testing.T) {
	env := map[string]string{}
	getenv := func(k string) string { return env[k] }
	if got := XDGConfigHome(getenv, "/home/u"); got != "/home/u/.config" {
		t.Errorf("unset: %s", got)
	}
	env["XDG_CONFIG_HOME"] = "relative/dir"
	if got := XDGConfigHome(getenv, "/home/u"); got != "/home/u/.config" {
		t.Errorf("relative (must be ignored): %s", got)
	}
	env["XDG_CONFIG_HOME"] = "/xdg"
	if got := XDGConfigHome(getenv, "/home/u"); got != "/xdg" {
		t.Errorf("set: %s", got)
	}
}
