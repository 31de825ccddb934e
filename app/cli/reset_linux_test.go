package cli

import (
	"slices"
	"strings"
	"testing"
)

// TestResetAsksOnTheTerminal: without --yes, 'vmnetbar reset' asks on the
// terminal; typing the VM's name resets it, anything else does not.
func TestResetAsksOnTheTerminal(t *testing.T) {
	m, sock := imageVMs(t)
	const prompt = "Reset dev? This deletes its disk (everything written in the VM since its first start) and makes it again from " + testImage + " at its next start. Type the VM's name to confirm: "

	for _, tc := range []struct {
		typed string
		code  int
	}{
		{"yes\n", ExitFailure},
		{"\x04", ExitFailure}, // Ctrl-D: the input ends
		{"dev\n", ExitOK},
	} {
		p := openTerminal(t)
		// What is typed before the prompt waits in the terminal, as a
		// user's typing ahead does.
		p.typeIn(t, tc.typed)
		r := runCLIStdio(t, p.tty, nil, nil, "reset", "dev", "--control", sock)
		if r.code != tc.code || !strings.HasPrefix(r.stderr, prompt) {
			t.Errorf("typed %q: exit %d, stderr %q; want %d after the prompt", tc.typed, r.code, r.stderr, tc.code)
		}
		if tc.code == ExitFailure && !strings.Contains(r.stderr, "vmnetbar reset: not reset") {
			t.Errorf("typed %q: stderr %q, want 'not reset'", tc.typed, r.stderr)
		}
	}
	if calls := m.Calls(); !slices.Equal(calls, []string{"reset dev"}) {
		t.Errorf("calls %q, want one reset of dev (after its name was typed)", calls)
	}
}
