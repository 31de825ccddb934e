package cli

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/vmnetbar/vmnetbar/app/model"
	"github.com/vmnetbar/vmnetbar/internal/fakeapp"
	"github.com/vmnetbar/vmnetbar/vmhost"
)

// runCLIStdio runs vmnetbar with args to completion with the given
// standard input and, unless nil, standard error.
func runCLIStdio(t *testing.T, stdin, stderr *os.File, env []string, args ...string) result {
	t.Helper()
	return runCLIOpts(t, cliOpts{env: env, stdin: stdin, stderr: stderr}, args...)
}

const testImage = "/images/debian-12-genericcloud-amd64.qcow2"

// imageVMs serves "dev" (stopped, made from testImage), "up" (running,
// made from testImage) and "kern" (stopped, booting a kernel).
func imageVMs(t *testing.T) (*fakeapp.Machines, string) {
	m, sock := serveVMs(t, "dev", "up", "kern")
	m.Set("dev", func(v *model.VMStatus) { v.VM.Image = testImage })
	m.Set("up", func(v *model.VMStatus) { v.VM.Image = testImage })
	running(m, "up")
	return m, sock
}

// TestResetCommand: 'vmnetbar reset' needs a NAME, refuses to guess
// without a terminal, and with --yes lets the app decide (a running VM
// and a kernel VM are refused with the app's message).
func TestResetCommand(t *testing.T) {
	m, sock := imageVMs(t)

	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		// NAME is required, even with one VM; an unknown one is usage.
		{[]string{"reset"}, ExitUsage, "reset needs the VM's NAME, also when the app runs one VM"},
		{[]string{"reset", "nope", "--yes"}, ExitUsage, `no VM named "nope"`},
		{[]string{"reset", "dev", "up"}, ExitUsage, `unexpected argument "up"`},
		// No terminal to ask on, no --yes: refuse, naming --yes.
		{[]string{"reset", "dev"}, ExitUsage, "standard input is not a terminal, so vmnetbar cannot ask you to confirm: pass --yes to reset dev"},
		// Not asked about what the app would refuse.
		{[]string{"reset", "up"}, ExitFailure, "cannot reset up: it is running: stop it first (vmnetbar stop up)"},
		{[]string{"reset", "kern"}, ExitFailure, "cannot reset kern: it boots a kernel"},
		// With --yes the app refuses (409).
		{[]string{"reset", "up", "--yes"}, ExitFailure, "stop it first"},
		{[]string{"reset", "kern", "--yes"}, ExitFailure, "cannot reset kern: it boots a kernel, not an image"},
	} {
		r := runCLI(t, append(tc.args, "--control", sock)...)
		if r.code != tc.code || !strings.Contains(r.stderr, tc.want) || r.stdout != "" {
			t.Errorf("vmnetbar %s: exit %d, stdout %q, stderr %q; want %d and %q", strings.Join(tc.args, " "), r.code, r.stdout, r.stderr, tc.code, tc.want)
		}
	}
	// Only the --yes of a known VM reached the app.
	if calls := m.Calls(); !slices.Equal(calls, []string{"reset up", "reset kern"}) {
		t.Errorf("calls %q, want only the resets with --yes", calls)
	}

	r := runCLI(t, "reset", "dev", "--yes", "--control", sock)
	if r.code != ExitOK || r.stdout != "dev is reset: its next start makes its disk again from "+testImage+"\n" {
		t.Errorf("reset dev --yes: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if calls := m.Calls(); calls[len(calls)-1] != "reset dev" {
		t.Errorf("calls %q, want the reset of dev last", calls)
	}
	// A failed VM may be reset, as it may be started.
	m.Set("dev", func(v *model.VMStatus) { v.VM.State, v.VM.Error = vmhost.StateError, "QEMU exited" })
	if r := runCLI(t, "reset", "dev", "--yes", "--control", sock); r.code != ExitOK {
		t.Errorf("reset of a failed VM: exit %d, %q", r.code, r.stderr)
	}
}

// TestConfirmReset: only the VM's name, on one line, confirms.
func TestConfirmReset(t *testing.T) {
	v := model.VMStatus{Name: "dev", VM: model.VM{Image: testImage}}
	for _, tc := range []struct {
		in   string
		want bool
	}{
		{"dev\n", true},
		{"  dev \r\n", true},
		{"dev\nmore", true},
		{"y\n", false},
		{"yes\n", false},
		{"Dev\n", false},
		{"\n", false},
		{"dev", false}, // the input ended before the line did
		{"", false},
		{strings.Repeat("d", 5000) + "\n", false},
	} {
		var out strings.Builder
		in := strings.NewReader(tc.in)
		if got := confirmReset(in, &out, v); got != tc.want {
			t.Errorf("answer %.20q: confirmed %v, want %v", tc.in, got, tc.want)
		}
		want := "Reset dev? This deletes its disk (everything written in the VM since its first start) and makes it again from " + testImage + " at its next start. Type the VM's name to confirm: "
		if !strings.HasPrefix(out.String(), want) {
			t.Errorf("prompt %q, want %q", out.String(), want)
		}
		if tc.in == "dev\nmore" && in.Len() != len("more") {
			t.Errorf("the prompt read past its line: %d bytes left, want 4", in.Len())
		}
	}
}
