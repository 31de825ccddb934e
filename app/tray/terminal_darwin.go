package tray

import (
	"context"
	"errors"
	"fmt"
	"github.com/vmnetbar/vmnetbar/app/model"
	"os/exec"
	"strings"
	"time"
)

// newTerminal returns macOS's Terminal: Terminal.app through osascript.
func newTerminal() Terminal { return appleTerminal{} }

// osascriptTimeout bounds osascript: the first time, macOS asks the user
// whether vmnetbar may control Terminal, and osascript waits for the
// answer.
const osascriptTimeout = 2 * time.Minute

// appleTerminal is macOS's Terminal: Terminal.app through osascript.
type appleTerminal struct{}

func (appleTerminal) Open(ctx context.Context, argv []string) error {
	if len(argv) == 0 {
		return errors.New("no command to run in the terminal")
	}
	ctx, cancel := context.WithTimeout(ctx, osascriptTimeout)
	defer cancel()
	args := terminalAppCommand(model.ShellJoin(argv))
	out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput()
	if err == nil {
		return nil
	}
	msg := strings.TrimSpace(string(out))
	if strings.Contains(msg, "-1743") {
		// errAEEventNotPermitted: the user said no, or has not been asked.
		return fmt.Errorf("macOS does not let vmnetbar control Terminal: allow it in System Settings > Privacy & Security > Automation (%s)", msg)
	}
	if ctx.Err() != nil {
		return fmt.Errorf("osascript did not finish within %v: %w", osascriptTimeout, ctx.Err())
	}
	return fmt.Errorf("osascript: %w: %s", err, firstLine(out))
}
