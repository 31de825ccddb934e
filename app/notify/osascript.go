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

// alertGiveUp is how long an alert waits for the user to dismiss it, and
// alertTimeout bounds the whole osascript run of one.
const (
	alertGiveUp  = 10 * time.Minute
	alertTimeout = alertGiveUp + 15*time.Second
)

// alertProgram shows argv's first item as an alert's title and its second
// as its message, until the user dismisses it or alertGiveUp passes. The
// text travels as arguments, as osascriptProgram's does.
var alertProgram = []string{
	"-e", "on run argv",
	"-e", fmt.Sprintf("display alert (item 1 of argv) message (item 2 of argv) as critical giving up after %d", int(alertGiveUp/time.Second)),
	"-e", "end run",
}

// Alert shows a critical alert with title and message (line breaks kept)
// and returns when the user has dismissed it, or after about ten minutes.
func (o *Osascript) Alert(title, message string) error {
	ctx, cancel := context.WithTimeout(context.Background(), alertTimeout)
	defer cancel()
	args := append(append([]string(nil), alertProgram...), plainText(title), alertText(message))
	if out, err := o.run(ctx, "osascript", args...); err != nil {
		return fmt.Errorf("osascript display alert: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// alertText is plainText that keeps line breaks, which an alert shows.
func alertText(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = plainText(l)
	}
	return strings.Join(lines, "\n")
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
