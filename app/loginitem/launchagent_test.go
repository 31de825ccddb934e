package loginitem

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// nastyArgs exercise the quoting of both file formats.
var nastyArgs = []string{
	"--config", "/Users/a b/vmnetbar's \"cfg\".yaml",
	`<tag attr="x">&amp;</tag>`,
	"line1\nline2\ttab\rcr",
	`back\slash \\ $HOME ` + "`cmd`" + ` 100% %u ~user | & ; * ? # ( )`,
	"",
	"--log-level=debug",
	"ünïcødé ✓",
}

// parsePlist decodes an XML property list: dict -> map[string]any,
// array -> []any, string -> string, integer -> int, true/false -> bool.
func parsePlist(data []byte) (map[string]any, error) {
	dec := xml.NewDecoder(bytes.NewReader(data))
	for {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("no <plist><dict>: %w", err)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "dict" {
			v, err := plistValue(dec, se)
			if err != nil {
				return nil, err
			}
			return v.(map[string]any), nil
		}
	}
}

func plistValue(dec *xml.Decoder, se xml.StartElement) (any, error) {
	switch se.Name.Local {
	case "true", "false":
		return se.Name.Local == "true", dec.Skip()
	case "string", "key":
		var s string
		err := dec.DecodeElement(&s, &se)
		return s, err
	case "integer":
		var n int
		err := dec.DecodeElement(&n, &se)
		return n, err
	case "array", "dict":
		var items []any
		for {
			tok, err := dec.Token()
			if err != nil {
				return nil, err
			}
			if t, ok := tok.(xml.StartElement); ok {
				v, err := plistValue(dec, t)
				if err != nil {
					return nil, err
				}
				items = append(items, v)
			}
			if _, ok := tok.(xml.EndElement); ok {
				break
			}
		}
		if se.Name.Local == "array" {
			return items, nil
		}
		if len(items)%2 != 0 {
			return nil, errors.New("dict with an odd number of elements")
		}
		m := map[string]any{}
		for i := 0; i < len(items); i += 2 {
			k, ok := items[i].(string)
			if !ok {
				return nil, fmt.Errorf("dict key %v is not a string", items[i])
			}
			if _, dup := m[k]; dup {
				return nil, fmt.Errorf("duplicate key %q", k)
			}
			m[k] = items[i+1]
		}
		return m, nil
	}
	return nil, fmt.Errorf("unexpected <%s>", se.Name.Local)
}

// exitError is a launchctl failure with an exit code, like *exec.ExitError.
type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", int(e)) }
func (e exitError) ExitCode() int { return int(e) }

// fakeLaunchd stands in for launchctl (which exists only on macOS) and
// injects its failures.
type fakeLaunchd struct {
	mu     sync.Mutex
	calls  []string
	loaded bool
	// bootstrapFail makes bootstrap exit with this code (0: succeed);
	// loadAnyway still loads the agent then, as launchctl does when it
	// reports "already loaded" as an I/O error.
	bootstrapFail int
	loadAnyway    bool
	bootoutFail   int
	missing       bool // launchctl cannot be run at all
	// budget is the time each subcommand's last call had until its
	// deadline.
	budget map[string]time.Duration
}

func (f *fakeLaunchd) run(ctx context.Context, name string, args ...string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	dl, ok := ctx.Deadline()
	if !ok {
		return nil, errors.New("launchctl run without a deadline")
	}
	f.calls = append(f.calls, strings.Join(append([]string{name}, args...), " "))
	if name != "launchctl" || len(args) == 0 {
		return nil, fmt.Errorf("unexpected command %s %q", name, args)
	}
	if f.budget == nil {
		f.budget = map[string]time.Duration{}
	}
	f.budget[args[0]] = time.Until(dl)
	if f.missing {
		return nil, &exec.Error{Name: name, Err: exec.ErrNotFound}
	}
	switch args[0] {
	case "print":
		if f.loaded {
			return []byte(args[1] + " = {\n\tstate = running\n}"), nil
		}
		return []byte("Could not find service \"io.github.vmnetbar\" in domain for user gui: 501"), exitError(113)
	case "bootstrap":
		if f.bootstrapFail != 0 {
			if f.loadAnyway {
				f.loaded = true
			}
			return []byte("Bootstrap failed: 5: Input/output error"), exitError(f.bootstrapFail)
		}
		if f.loaded {
			return []byte("Bootstrap failed: 37: Operation already in progress"), exitError(37)
		}
		f.loaded = true
		return nil, nil
	case "bootout":
		if f.bootoutFail != 0 {
			return []byte("Boot-out failed: 1: Operation not permitted"), exitError(f.bootoutFail)
		}
		if !f.loaded {
			return []byte("Boot-out failed: 3: No such process"), exitError(3)
		}
		f.loaded = false
		return nil, nil
	}
	return nil, fmt.Errorf("unexpected launchctl %q", args)
}

func (f *fakeLaunchd) takeCalls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.calls
	f.calls = nil
	return c
}

func newTestAgent(t *testing.T, home string, f *fakeLaunchd, args []string) *LaunchAgent {
	t.Helper()
	a, err := NewLaunchAgent(LaunchAgentConfig{
		Home: home,
		UID:  501,
		Exe:  "/Applications/vmnetbar.app/Contents/MacOS/vmnetbar",
		Args: args,
		Run:  f.run,
	})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestLaunchAgentPlist(t *testing.T) {
	home := t.TempDir()
	a := newTestAgent(t, home, &fakeLaunchd{}, nastyArgs)
	got, err := parsePlist(a.Plist())
	if err != nil {
		t.Fatalf("plist does not parse: %v\n%s", err, a.Plist())
	}
	logPath := filepath.Join(home, "Library", "Logs", "vmnetbar", "launchd.log")
	prog := []any{"/Applications/vmnetbar.app/Contents/MacOS/vmnetbar"}
	for _, s := range nastyArgs {
		prog = append(prog, s)
	}
	want := map[string]any{
		"Label":                       "io.github.vmnetbar",
		"AssociatedBundleIdentifiers": []any{"io.github.vmnetbar"},
		"ProgramArguments":            prog,
		"RunAtLoad":                   true,
		"KeepAlive":                   false,
		"ProcessType":                 "Interactive",
		"ExitTimeOut":                 60,
		"StandardOutPath":             logPath,
		"StandardErrorPath":           logPath,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("plist decodes to\n%#v\nwant\n%#v", got, want)
	}
	if a.Path() != filepath.Join(home, "Library", "LaunchAgents", "io.github.vmnetbar.plist") {
		t.Errorf("Path() = %s", a.Path())
	}
	if !bytes.HasPrefix(a.Plist(), []byte(`<?xml version="1.0" encoding="UTF-8"?>`+"\n<!DOCTYPE plist")) {
		t.Errorf("plist lacks the XML declaration and DOCTYPE:\n%s", a.Plist())
	}
}

func TestLaunchAgentEnableDisable(t *testing.T) {
	home := t.TempDir()
	f := &fakeLaunchd{}
	a := newTestAgent(t, home, f, []string{"--config", "/a.yaml"})

	if on, err := a.Enabled(); err != nil || on {
		t.Fatalf("Enabled() before Enable = %v, %v; want false", on, err)
	}
	if err := a.Enable(); err != nil {
		t.Fatal(err)
	}
	wantCalls := []string{
		"launchctl print gui/501/io.github.vmnetbar",
		"launchctl bootstrap gui/501 " + a.Path(),
	}
	if c := f.takeCalls(); !reflect.DeepEqual(c, wantCalls) {
		t.Errorf("Enable ran %q, want %q", c, wantCalls)
	}
	data, err := os.ReadFile(a.Path())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(data, a.Plist()) {
		t.Errorf("written plist differs from Plist()")
	}
	if st, err := os.Stat(a.Path()); err != nil || st.Mode().Perm() != 0o644 {
		t.Errorf("plist mode: %v, %v; want 0644 (launchd refuses group- or world-writable plists)", st.Mode(), err)
	}
	if st, err := os.Stat(filepath.Dir(a.LogPath())); err != nil || !st.IsDir() {
		t.Errorf("log directory not created: %v", err)
	}
	if on, err := a.Enabled(); err != nil || !on {
		t.Errorf("Enabled() after Enable = %v, %v; want true", on, err)
	}

	// Enabling again while loaded rewrites the plist and loads nothing.
	b := newTestAgent(t, home, f, []string{"--config", "/b.yaml"})
	if err := b.Enable(); err != nil {
		t.Fatal(err)
	}
	if c := f.takeCalls(); !reflect.DeepEqual(c, wantCalls[:1]) {
		t.Errorf("second Enable ran %q, want %q", c, wantCalls[:1])
	}
	if pl, err := parsePlist(mustRead(t, a.Path())); err != nil || !reflect.DeepEqual(pl["ProgramArguments"],
		[]any{"/Applications/vmnetbar.app/Contents/MacOS/vmnetbar", "--config", "/b.yaml"}) {
		t.Errorf("second Enable did not refresh the arguments: %v %v", pl["ProgramArguments"], err)
	}

	if err := a.Disable(); err != nil {
		t.Fatal(err)
	}
	wantCalls = []string{
		"launchctl print gui/501/io.github.vmnetbar",
		"launchctl bootout gui/501/io.github.vmnetbar",
	}
	if c := f.takeCalls(); !reflect.DeepEqual(c, wantCalls) {
		t.Errorf("Disable ran %q, want %q", c, wantCalls)
	}
	if _, err := os.Stat(a.Path()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("plist still there after Disable: %v", err)
	}
	// bootout waits for the job to exit, which launchd allows ExitTimeOut.
	f.mu.Lock()
	bootout, printBudget := f.budget["bootout"], f.budget["print"]
	f.mu.Unlock()
	if bootout <= 60*time.Second {
		t.Errorf("launchctl bootout may run %v, want more than the plist's ExitTimeOut (60s)", bootout)
	}
	if printBudget > launchctlTimeout {
		t.Errorf("launchctl print may run %v, want at most %v", printBudget, launchctlTimeout)
	}
	if on, err := a.Enabled(); err != nil || on {
		t.Errorf("Enabled() after Disable = %v, %v; want false", on, err)
	}

	// Disabling again is fine and boots nothing out.
	if err := a.Disable(); err != nil {
		t.Fatal(err)
	}
	if c := f.takeCalls(); !reflect.DeepEqual(c, wantCalls[:1]) {
		t.Errorf("second Disable ran %q, want %q", c, wantCalls[:1])
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestLaunchAgentBootstrapReportsAlreadyLoaded(t *testing.T) {
	f := &fakeLaunchd{bootstrapFail: 5, loadAnyway: true}
	a := newTestAgent(t, t.TempDir(), f, nil)
	if err := a.Enable(); err != nil {
		t.Fatalf("Enable with an agent that ends up loaded: %v", err)
	}
}

func TestLaunchAgentBootstrapFails(t *testing.T) {
	f := &fakeLaunchd{bootstrapFail: 5}
	a := newTestAgent(t, t.TempDir(), f, nil)
	err := a.Enable()
	if err == nil {
		t.Fatal("Enable succeeded though bootstrap failed")
	}
	for _, want := range []string{"launchctl bootstrap gui/501 " + a.Path(), "Input/output error"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if on, _ := a.Enabled(); on {
		t.Error("a failed Enable left the plist behind")
	}
}

func TestLaunchAgentFailedEnableKeepsThePreviousPlist(t *testing.T) {
	home := t.TempDir()
	f := &fakeLaunchd{}
	a := newTestAgent(t, home, f, []string{"--old"})
	if err := a.Enable(); err != nil {
		t.Fatal(err)
	}
	if err := a.Disable(); err != nil {
		t.Fatal(err)
	}
	// The user's earlier plist is put back when loading the new one fails.
	if err := os.WriteFile(a.Path(), a.Plist(), 0o644); err != nil {
		t.Fatal(err)
	}
	f.bootstrapFail = 5
	if err := newTestAgent(t, home, f, []string{"--new"}).Enable(); err == nil {
		t.Fatal("Enable succeeded though bootstrap failed")
	}
	if got := mustRead(t, a.Path()); !bytes.Equal(got, a.Plist()) {
		t.Errorf("plist after a failed Enable:\n%s\nwant the previous one:\n%s", got, a.Plist())
	}
}

func TestLaunchAgentBootoutFails(t *testing.T) {
	f := &fakeLaunchd{}
	a := newTestAgent(t, t.TempDir(), f, nil)
	if err := a.Enable(); err != nil {
		t.Fatal(err)
	}
	f.bootoutFail = 1
	err := a.Disable()
	if err == nil || !strings.Contains(err.Error(), "Operation not permitted") {
		t.Fatalf("Disable = %v, want the bootout failure", err)
	}
	if on, _ := a.Enabled(); !on {
		t.Error("a failed Disable removed the plist of a still loaded agent")
	}
}

func TestLaunchAgentDisableFromItsOwnJob(t *testing.T) {
	home := t.TempDir()
	f := &fakeLaunchd{}
	if err := newTestAgent(t, home, f, nil).Enable(); err != nil {
		t.Fatal(err)
	}
	f.takeCalls()
	self, err := NewLaunchAgent(LaunchAgentConfig{
		Home: home, UID: 501, Exe: "/Applications/vmnetbar.app/Contents/MacOS/vmnetbar",
		Run: f.run, IsJob: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := self.Disable(); err != nil {
		t.Fatal(err)
	}
	if c := f.takeCalls(); len(c) != 0 {
		t.Errorf("Disable from the agent's own job ran %q; booting out would stop it", c)
	}
	if on, _ := self.Enabled(); on {
		t.Error("plist still there")
	}
}

func TestLaunchAgentWithoutLaunchctl(t *testing.T) {
	f := &fakeLaunchd{missing: true}
	a := newTestAgent(t, t.TempDir(), f, nil)
	for name, op := range map[string]func() error{"Enable": a.Enable, "Disable": a.Disable} {
		if err := op(); err == nil || !strings.Contains(err.Error(), "launchctl print") ||
			!errors.Is(err, exec.ErrNotFound) {
			t.Errorf("%s without launchctl = %v, want an error naming launchctl", name, err)
		}
		if on, _ := a.Enabled(); on {
			t.Errorf("%s without launchctl left the plist behind", name)
		}
	}
}

func TestNewLaunchAgentRejectsBadInput(t *testing.T) {
	for _, tc := range []struct {
		cfg  LaunchAgentConfig
		want string
	}{
		{LaunchAgentConfig{Home: "/h", Exe: "vmnetbar"}, "is not absolute"},
		{LaunchAgentConfig{Home: "/h"}, "no program"},
		{LaunchAgentConfig{Home: "/h", Exe: "/x", Args: []string{"a", "b\x00"}}, "argument 2"},
		{LaunchAgentConfig{Home: "h", Exe: "/x"}, "set HOME"},
		{LaunchAgentConfig{Home: "/h", Exe: "/x", UID: -1}, "bad uid"},
	} {
		if _, err := NewLaunchAgent(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewLaunchAgent(%+v) = %v, want an error with %q", tc.cfg, err, tc.want)
		}
	}
}
