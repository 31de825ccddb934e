package loginitem

import (
	"path/filepath"
	"testing"
)

func TestNewUsesXDGConfigHome(t *testing.T) {
	conf := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", conf)
	m, err := New("/usr/local/bin/vmnetbar", nil)
	if err != nil {
		t.Fatal(err)
	}
	a, ok := m.(*Autostart)
	if !ok {
		t.Fatalf("New returned %T, want *Autostart", m)
	}
	if want := filepath.Join(conf, "autostart", "vmnetbar.desktop"); a.Path() != want {
		t.Errorf("Path() = %s, want %s", a.Path(), want)
	}
	if err := m.Enable(); err != nil {
		t.Fatal(err)
	}
	if on, err := m.Enabled(); err != nil || !on {
		t.Errorf("Enabled() = %v, %v", on, err)
	}
	if err := m.Disable(); err != nil {
		t.Fatal(err)
	}
}

func TestNewRejectsRelativeProgram(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	if _, err := New("vmnetbar", nil); err == nil {
		t.Fatal("New accepted a relative program path")
	}
}
