package notify

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// Runner runs a command and returns its combined output; tests pass a fake.
type Runner func(ctx context.Context, name string, args ...string) ([]byte, error)

// ExecRunner runs the command with os/exec.
func ExecRunner(ctx context.Context, name string, args ...string) ([]byte, error) {
	return exec.CommandContext(ctx, name, args...).CombinedOutput()
}

// sendTimeout bounds one notification.
const sendTimeout = 5 * time.Second

// osascriptProgram shows argv's first item as the title and its second as
// the text. Title and text travel as arguments, never inside the script,
// so no quoting of theirs can change what runs.
var osascriptProgram = []string{
	"-e", "on run argv",
	"-e", "display notification (item 2 of argv) with title (item 1 of argv)",
	"-e", "end run",
}

// Osascript shows notifications on macOS with
// `osascript -e 'display notification TEXT with title TITLE'`.
type Osascript struct {
	run Runner
}

var _ Sender = (*Osascript)(nil)

// NewOsascript returns a Sender that runs osascript with run (nil:
// ExecRunner).
func NewOsascript(run Runner) *Osascript {
	if run == nil {
		run = ExecRunner
	}
	return &Osascript{run: run}
}

// Send shows one notification.
func (o *Osascript) Send(title, body string) error {
	ctx, cancel := context.WithTimeout(context.Background(), sendTimeout)
	defer cancel()
	args := append(append([]string(nil), osascriptProgram...), plainText(title), plainText(body))
	if out, err := o.run(ctx, "osascript", args...); err != nil {
		return fmt.Errorf("osascript display notification: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// plainText replaces control characters (line breaks included) by spaces
// and drops NUL bytes, which cannot be passed as arguments.
func plainText(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == 0:
			return -1
		case r < 0x20 || r == 0x7f:
			return ' '
		}
		return r
	}, s)
}
