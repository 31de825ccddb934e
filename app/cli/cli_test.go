package cli

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// testTree is the command tree, built in the test process to look at.
func testTree() *cobra.Command {
	var code int
	root := newRootCmd(Env{Version: "test", Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: io.Discard}, &code)
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		c.InitDefaultHelpFlag()
		c.InitDefaultVersionFlag()
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(root)
	return root
}

// userCommands are the names of the commands a user runs (not help and
// completion).
func userCommands(root *cobra.Command) []string {
	var names []string
	for _, c := range root.Commands() {
		if c.IsAvailableCommand() && c.Name() != "help" && c.Name() != "completion" {
			names = append(names, c.Name())
		}
	}
	return names
}

func TestHelpListsCommands(t *testing.T) {
	names := userCommands(testTree())
	if len(names) < 10 {
		t.Fatalf("only %d commands: %v", len(names), names)
	}
	var first string
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}} {
		r := runCLI(t, args...)
		if r.code != ExitOK || r.stderr != "" {
			t.Errorf("vmnetbar %s: exit %d, stderr %q", args[0], r.code, r.stderr)
		}
		for _, n := range append(names, "help", "completion") {
			if !regexp.MustCompile(`(?m)^  ` + regexp.QuoteMeta(n) + ` +\S`).MatchString(r.stdout) {
				t.Errorf("vmnetbar %s does not list %q:\n%s", args[0], n, r.stdout)
			}
		}
		// The tray's flags, which plain vmnetbar takes, are there too.
		if !strings.Contains(r.stdout, "--headless") {
			t.Errorf("vmnetbar %s does not show --headless:\n%s", args[0], r.stdout)
		}
		if first == "" {
			first = r.stdout
		} else if r.stdout != first {
			t.Errorf("vmnetbar %s differs from vmnetbar --help:\n%s", args[0], r.stdout)
		}
	}
}

func TestCommandHelp(t *testing.T) {
	for _, name := range userCommands(testTree()) {
		a := runCLI(t, "help", name)
		b := runCLI(t, name, "--help")
		c := runCLI(t, name, "-h")
		if a.code != ExitOK || b.code != ExitOK || c.code != ExitOK {
			t.Errorf("%s: help exits %d, %d, %d; stderr %q %q %q", name, a.code, b.code, c.code, a.stderr, b.stderr, c.stderr)
		}
		if !strings.Contains(a.stdout, "vmnetbar "+name) || !strings.Contains(a.stdout, "--help") {
			t.Errorf("vmnetbar help %s:\n%s", name, a.stdout)
		}
		if a.stdout != b.stdout || b.stdout != c.stdout {
			t.Errorf("vmnetbar help %s, %s --help and %s -h differ:\n%s\n---\n%s\n---\n%s", name, name, name, a.stdout, b.stdout, c.stdout)
		}
	}
	r := runCLI(t, "help", "reset")
	for _, w := range []string{"NAME is required, even when the app runs one VM", "--yes", "destroys data"} {
		if !strings.Contains(r.stdout, w) {
			t.Errorf("vmnetbar help reset lacks %q:\n%s", w, r.stdout)
		}
	}
	r = runCLI(t, "help", "link")
	for _, w := range []string{"--fd N", "--socket PATH", "--control PATH", "--log-level LEVEL", "SOCK_DGRAM"} {
		if !strings.Contains(r.stdout, w) {
			t.Errorf("vmnetbar help link lacks %q:\n%s", w, r.stdout)
		}
	}
}

func TestVersionFlag(t *testing.T) {
	a, b := runCLI(t, "version"), runCLI(t, "--version")
	if a.code != ExitOK || b.code != ExitOK || !strings.HasPrefix(a.stdout, "vmnetbar ") || a.stdout != b.stdout {
		t.Errorf("version: exit %d %q; --version: exit %d %q", a.code, a.stdout, b.code, b.stdout)
	}
}

func TestBadUsage(t *testing.T) {
	for _, tc := range []struct {
		args  []string
		wants []string
	}{
		{[]string{"sttaus"}, []string{`vmnetbar: unknown command "sttaus"`, "did you mean status?", "run 'vmnetbar help'"}},
		{[]string{"help", "bogus"}, []string{`unknown command "bogus"`, "run 'vmnetbar help'"}},
		{[]string{"--bogus"}, []string{"vmnetbar: unknown flag: --bogus", "run 'vmnetbar --help'"}},
		{[]string{"run", "--bogus"}, []string{"vmnetbar run: unknown flag: --bogus", "run 'vmnetbar run --help'"}},
		{[]string{"status", "--json=maybe"}, []string{`invalid argument "maybe" for "--json"`, "run 'vmnetbar status --help'"}},
		{[]string{"watch", "--control"}, []string{"flag needs an argument: --control", "run 'vmnetbar watch --help'"}},
		{[]string{"version", "now"}, []string{`unexpected argument "now"`}},
		{[]string{"completion", "tcsh"}, []string{`"tcsh"`}},
	} {
		r := runCLI(t, tc.args...)
		if r.code != ExitUsage {
			t.Errorf("vmnetbar %s: exit %d, want %d; stderr %q", strings.Join(tc.args, " "), r.code, ExitUsage, r.stderr)
		}
		for _, w := range tc.wants {
			if !strings.Contains(r.stderr, w) {
				t.Errorf("vmnetbar %s: stderr lacks %q:\n%s", strings.Join(tc.args, " "), w, r.stderr)
			}
		}
	}
}

// TestLaunchServicesArgumentsIgnored: macOS adds -psn_0_NNN on the first
// launch of a quarantined copy; it is dropped wherever it is.
func TestLaunchServicesArgumentsIgnored(t *testing.T) {
	if got := dropPSN([]string{"-psn_0_12345", "run", "-psn_1_2", "--headless", "-psn_x", "-psn_0_"}); !slices.Equal(got, []string{"run", "--headless", "-psn_x", "-psn_0_"}) {
		t.Errorf("dropPSN = %q", got)
	}
	want := runCLI(t, "version")
	if r := runCLI(t, "-psn_0_4711", "version"); r.code != ExitOK || r.stdout != want.stdout {
		t.Errorf("-psn_0_4711 version: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	// Plain vmnetbar, as Finder starts it (headless here): refused because
	// no VM is configured yet, not for the argument.
	d := isolate(t)
	r := runCLI(t, "-psn_0_4711", "--headless")
	if r.code != ExitFailure || !strings.Contains(r.stderr, "no VM configured: edit "+d.configFile) || strings.Contains(r.stderr, "psn") {
		t.Errorf("-psn_0_4711: exit %d, stderr %q; want %d and no VM configured", r.code, r.stderr, ExitFailure)
	}
	missing := filepath.Join(shortTempDir(t), "control.sock")
	if r := runCLI(t, "status", "-psn_0_1", "--control", missing); r.code != ExitFailure || !strings.Contains(r.stderr, "not running") {
		t.Errorf("status -psn_0_1: exit %d, stderr %q", r.code, r.stderr)
	}
}

// TestAppFlagsWithoutCommand: plain vmnetbar takes the tray's flags.
func TestAppFlagsWithoutCommand(t *testing.T) {
	d := isolate(t)
	other := filepath.Join(d.root, "other.yaml")
	for _, args := range [][]string{
		{"--config", other, "--headless"},
		{"--headless", "--config=" + other, "--log-level", "debug"},
		{"tray", "--config", other},
		{"-config", other, "-headless"},
	} {
		r := runCLI(t, args...)
		if r.code != ExitUsage || !strings.Contains(r.stderr, other+": the file does not exist") {
			t.Errorf("vmnetbar %s: exit %d, stderr %q; want %d and the missing file", strings.Join(args, " "), r.code, r.stderr, ExitUsage)
		}
	}
}

func TestSingleDashLongFlags(t *testing.T) {
	m, path := serveVMs(t, "dev")
	running(m, "dev")
	for _, args := range [][]string{
		{"status", "-json", "-control", path},
		{"status", "-json", "-control=" + path},
		{"status", "--json", "--control=" + path},
	} {
		r := runCLI(t, args...)
		if r.code != ExitOK || !strings.Contains(r.stdout, `"state": "running"`) {
			t.Errorf("vmnetbar %s: exit %d\n%s%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
		}
	}
}

func TestNormalizeArgs(t *testing.T) {
	root := testTree()
	for _, tc := range []struct{ in, want []string }{
		{[]string{"-config", "c.yaml", "-headless"}, []string{"--config", "c.yaml", "--headless"}},
		{[]string{"status", "-json", "-control=/x"}, []string{"status", "--json", "--control=/x"}},
		// A value is never changed, even one that looks like a flag.
		{[]string{"run", "--config", "-json", "-log-level", "-headless"}, []string{"run", "--config", "-json", "--log-level", "-headless"}},
		{[]string{"link", "-fd", "-1", "-socket", "s"}, []string{"link", "--fd", "-1", "--socket", "s"}},
		// Unknown names, shorthands and everything after "--" stay.
		{[]string{"-bogus", "-h", "-", "--", "-json"}, []string{"-bogus", "-h", "-", "--", "-json"}},
		{[]string{"-help", "-version"}, []string{"--help", "--version"}},
	} {
		if got := normalizeArgs(root, tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("normalizeArgs(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestCompletion(t *testing.T) {
	for _, shell := range []string{"bash", "zsh", "fish"} {
		r := runCLI(t, "completion", shell)
		if r.code != ExitOK || !strings.Contains(r.stdout, "vmnetbar") || len(r.stdout) < 1000 {
			t.Errorf("completion %s: exit %d, %d bytes, stderr %q", shell, r.code, len(r.stdout), r.stderr)
		}
	}
	// What the scripts ask the binary for. No app runs at the default
	// control socket of an empty runtime directory.
	noApp := []string{"XDG_RUNTIME_DIR=" + shortTempDir(t)}
	complete := func(args ...string) []string {
		t.Helper()
		return completions(t, noApp, args...)
	}
	has := func(what string, got []string, want ...string) {
		t.Helper()
		for _, w := range want {
			if !slices.Contains(got, w) {
				t.Errorf("%s: completions %q lack %q", what, got, w)
			}
		}
	}
	has("commands", complete(""), append(userCommands(testTree()), "help", "completion")...)
	has("st", complete("st"), "status", "start", "stop")
	has("status flags", complete("status", "--"), "--json", "--control")
	has("run flags", complete("run", "--"), "--headless", "--config", "--control", "--log-level")
	has("link flags", complete("link", "--"), "--fd", "--socket", "--control", "--log-level")
	has("levels", complete("run", "--log-level", ""), logLevels...)
	has("login-item actions", complete("login-item", ""), "on", "off", "status")
	has("help topics", complete("help", ""), "status", "link")
}

// completions runs 'vmnetbar __complete ARGS' (what the shell completion
// scripts run) and returns the words offered. Its standard error must hold
// nothing but cobra's own last line.
func completions(t *testing.T, env []string, args ...string) []string {
	t.Helper()
	r := runCLIEnv(t, env, append([]string{"__complete"}, args...)...)
	if r.code != ExitOK {
		t.Fatalf("__complete %q: exit %d, stderr %q", args, r.code, r.stderr)
	}
	if !regexp.MustCompile(`^Completion ended with directive: \w+\n$`).MatchString(r.stderr) {
		t.Errorf("__complete %q said more than its directive on standard error: %q", args, r.stderr)
	}
	var words []string
	for _, l := range strings.Split(r.stdout, "\n") {
		if l != "" && !strings.HasPrefix(l, ":") {
			words = append(words, strings.SplitN(l, "\t", 2)[0])
		}
	}
	return words
}

// TestCompleteVMNames: every command that takes a NAME completes the
// names of the running app's VMs; without an app there is nothing to
// complete and nothing is said.
func TestCompleteVMNames(t *testing.T) {
	m, path := serveVMs(t, "build", "dev", "dev2")
	running(m, "dev")
	for _, cmd := range []string{"status", "start", "stop", "reconnect", "watch", "ip"} {
		if got := completions(t, nil, cmd, "--control", path, ""); !slices.Equal(got, []string{"build", "dev", "dev2"}) {
			t.Errorf("%s: completions %q, want the three VMs", cmd, got)
		}
		if got := completions(t, nil, cmd, "--control", path, "de"); !slices.Equal(got, []string{"dev", "dev2"}) {
			t.Errorf("%s de: completions %q, want dev and dev2", cmd, got)
		}
		if got := completions(t, nil, cmd, "--control", path, "dev", ""); len(got) != 0 {
			t.Errorf("%s dev: completions %q, want none (one NAME only)", cmd, got)
		}
		// No app: no names, no files, no message.
		missing := filepath.Join(shortTempDir(t), "control.sock")
		if got := completions(t, nil, cmd, "--control", missing, ""); len(got) != 0 {
			t.Errorf("%s without an app: completions %q, want none", cmd, got)
		}
	}
	// The description is the VM's state.
	r := runCLI(t, "__complete", "status", "--control", path, "dev")
	if !strings.Contains(r.stdout, "dev\trunning 2h14m\n") {
		t.Errorf("__complete status dev: %q lacks the state as a description", r.stdout)
	}
	// A command without NAME completes no names.
	if got := completions(t, nil, "list", "--control", path, ""); len(got) != 0 {
		t.Errorf("list: completions %q, want none", got)
	}
}

// flagRE finds the flags a message names.
var flagRE = regexp.MustCompile(`(^|[^\w-])--([a-z][a-z-]*[a-z])`)

// TestSuggestedFlagsExist runs every command into the errors that name
// flags and checks that each flag a message names (other than one the user
// typed) is a flag of the command that printed it.
func TestSuggestedFlagsExist(t *testing.T) {
	root := testTree()
	d := isolate(t)
	// XDG and temporary directories so long that no control socket path
	// fits: the app and the clients must say to pass --control.
	long := filepath.Join(d.root, strings.Repeat("x", 110))
	tooLong := []string{"XDG_RUNTIME_DIR=" + long, "XDG_STATE_HOME=" + long, "TMPDIR=" + long}
	noHome := []string{"HOME=", "XDG_RUNTIME_DIR=", "XDG_STATE_HOME=", "XDG_CONFIG_HOME="}
	type scenario struct {
		env  []string
		args []string
	}
	var scenarios []scenario
	for _, name := range append(userCommands(root), "") {
		args := []string{}
		if name != "" {
			args = append(args, name)
		}
		scenarios = append(scenarios,
			scenario{nil, append(slices.Clone(args), "--bogus-flag")},
			scenario{nil, append(slices.Clone(args), "extra-argument")},
			scenario{tooLong, slices.Clone(args)},
			scenario{noHome, slices.Clone(args)},
		)
	}
	for _, app := range [][]string{{"run", "--headless"}, {"tray", "--headless"}, {"--headless"}} {
		scenarios = append(scenarios,
			scenario{nil, app}, // no configuration file
			scenario{nil, append(slices.Clone(app), "--log-level", "loud")},
			scenario{nil, append(slices.Clone(app), "--control", long+"/control.sock")},
		)
	}
	scenarios = append(scenarios,
		scenario{nil, []string{"login-item", "--config", "x.yaml", "off"}},
		scenario{nil, []string{"link", "--fd", "x"}},
	)

	checked := 0
	for _, sc := range scenarios {
		if slices.Equal(sc.args, []string{"tray"}) || slices.Equal(sc.args, []string{}) || slices.Equal(sc.args, []string{"run"}) {
			sc.args = append(sc.args, "--headless") // never the tray itself
		}
		if len(sc.args) > 0 && sc.args[0] == "watch" && len(sc.args) == 1 {
			continue // it would wait for a server
		}
		if sc.env == nil {
			d.writeConfig(t, "")
			os.Remove(d.configFile)
		} else {
			d.idleConfig(t) // the app gets as far as the control socket
		}
		cmd, _, err := root.Find(sc.args)
		if err != nil {
			t.Fatalf("%q: %v", sc.args, err)
		}
		r := runCLIEnv(t, sc.env, sc.args...)
		if r.code == ExitOK {
			continue
		}
		for _, m := range flagRE.FindAllStringSubmatch(r.stderr, -1) {
			name := m[2]
			if slices.ContainsFunc(sc.args, func(a string) bool { return strings.HasPrefix(a, "--"+name) }) {
				continue // the user's own
			}
			checked++
			if cmd.Flags().Lookup(name) == nil {
				t.Errorf("vmnetbar %s (env %q) suggests --%s, which %q does not have:\n%s",
					strings.Join(sc.args, " "), sc.env, name, cmd.CommandPath(), r.stderr)
			}
		}
	}
	if checked < 20 {
		t.Errorf("only %d flags named in the messages: the scenarios do not reach them", checked)
	}
	t.Logf("%d flags checked", checked)
}

// TestClientBadControlPathIsUsage: a control socket path that cannot be
// used is bad usage (exit 2), not a failure.
func TestClientBadControlPathIsUsage(t *testing.T) {
	long := "/tmp/" + strings.Repeat("x", 110) + ".sock"
	r := runCLI(t, "status", "--control", long)
	if r.code != ExitUsage || !strings.Contains(r.stderr, "control socket path too long") {
		t.Errorf("too long: exit %d, stderr %q; want %d", r.code, r.stderr, ExitUsage)
	}
	// The per-user fallback directory in the temporary directory, made
	// by someone else (here: with the wrong mode).
	tmp := shortTempDir(t)
	dir := filepath.Join(tmp, fmt.Sprintf("vmnetbar-%d", os.Getuid()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	r = runCLIEnv(t, []string{"TMPDIR=" + tmp}, "status", "--control", filepath.Join(dir, "control.sock"))
	if r.code != ExitUsage || !strings.Contains(r.stderr, "not private") {
		t.Errorf("not private: exit %d, stderr %q; want %d", r.code, r.stderr, ExitUsage)
	}
}
