package control

import (
	"strings"
	"testing"
)

func TestXDGSocketPath(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	long := "/" + strings.Repeat("x", 100)
	for _, tc := range []struct {
		name string
		env  map[string]string
		home string
		want string
		err  string
	}{
		{"runtime dir", map[string]string{"XDG_RUNTIME_DIR": "/run/user/1000", "XDG_STATE_HOME": "/s"}, "/home/u", "/run/user/1000/vmnetbar/control.sock", ""},
		{"state home", map[string]string{"XDG_STATE_HOME": "/s"}, "/home/u", "/s/vmnetbar/control.sock", ""},
		{"home", nil, "/home/u", "/home/u/.local/state/vmnetbar/control.sock", ""},
		{"relative values ignored", map[string]string{"XDG_RUNTIME_DIR": "run", "XDG_STATE_HOME": "state"}, "/home/u", "/home/u/.local/state/vmnetbar/control.sock", ""},
		{"too long falls back", map[string]string{"XDG_RUNTIME_DIR": long}, "/home/u", "/tmp/vmnetbar-1000/control.sock", ""},
		{"nothing set", nil, "", "", "none of XDG_RUNTIME_DIR, XDG_STATE_HOME and HOME is set"},
	} {
		got, err := xdgSocketPath(env(tc.env), tc.home, "/tmp", 1000)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), "--control") {
				t.Errorf("%s: err %v, want one containing %q and --control", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s: %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
}

func TestMacSocketPath(t *testing.T) {
	got, err := macSocketPath("/Users/ann", "/var/folders/ab/cd/T", 501)
	if err != nil || got != "/Users/ann/Library/Application Support/vmnetbar/control.sock" {
		t.Errorf("got %q, %v", got, err)
	}
	home := "/Users/" + strings.Repeat("n", 60)
	got, err = macSocketPath(home, "/var/folders/ab/cd/T", 501)
	if err != nil || got != "/var/folders/ab/cd/T/vmnetbar-501/control.sock" {
		t.Errorf("long home: got %q, %v", got, err)
	}
	if _, err := macSocketPath(home, "/"+strings.Repeat("t", 100), 501); err == nil || !strings.Contains(err.Error(), "--control") {
		t.Errorf("both too long: %v", err)
	}
	if _, err := macSocketPath("", "/tmp", 501); err == nil {
		t.Error("empty HOME accepted")
	}
}

func TestDefaultSocketPathUsesRuntimeDir(t *testing.T) {
	t.Setenv("XDG_RUNTIME_DIR", "/run/user/4242")
	p, err := DefaultSocketPath()
	if err != nil || p != "/run/user/4242/vmnetbar/control.sock" {
		t.Errorf("DefaultSocketPath = %q, %v", p, err)
	}
}
