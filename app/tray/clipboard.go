package tray

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Clipboard puts text on the system clipboard. newClipboard returns the
// platform's: pbcopy on macOS; wl-copy, xclip or xsel on Linux.
type Clipboard interface {
	Copy(ctx context.Context, text string) error
}

// copyTimeout bounds one clipboard program.
const copyTimeout = 5 * time.Second

// commandClipboard copies with the first of its programs that is on PATH
// and works.
type commandClipboard struct {
	// programs are the commands to try, in order: a program's name and
	// its arguments. It is called at each Copy (the environment may
	// change).
	programs func() [][]string
	// lookPath finds a program (exec.LookPath).
	lookPath func(string) (string, error)
	// install says what to do when none of the programs is on PATH.
	install string
}

// Copy runs each program on PATH in turn, the text on its standard input,
// until one succeeds. It fails naming every program tried and why, or,
// when none is on PATH, what to install.
func (c commandClipboard) Copy(ctx context.Context, text string) error {
	var names, failed []string
	for _, p := range c.programs() {
		names = append(names, p[0])
		path, err := c.lookPath(p[0])
		if err != nil {
			continue
		}
		if err := runCopy(ctx, path, p[1:], text); err != nil {
			failed = append(failed, err.Error())
			if ctx.Err() != nil {
				break
			}
			continue
		}
		return nil
	}
	if len(failed) == 0 {
		return fmt.Errorf("no clipboard program on PATH (looked for %s): %s", strings.Join(names, ", "), c.install)
	}
	return fmt.Errorf("copying to the clipboard failed: %s", strings.Join(failed, "; "))
}

// runCopy runs one clipboard program with text on its standard input.
//
// Its error output goes to an unlinked temporary file, not a pipe, and its
// standard output to /dev/null: xclip, xsel and wl-copy leave a child
// process serving the clipboard, which keeps the outputs open, and
// waiting for a pipe to close would wait for that child.
func runCopy(ctx context.Context, path string, args []string, text string) error {
	ctx, cancel := context.WithTimeout(ctx, copyTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Stdin = strings.NewReader(text)
	cmd.WaitDelay = time.Second // bounds the copy to its standard input
	errOut, ferr := os.CreateTemp("", "vmnetbar-clipboard-*")
	if ferr == nil {
		os.Remove(errOut.Name()) // the open file stays readable
		defer errOut.Close()
		cmd.Stderr = errOut
	}
	err := cmd.Run()
	if err == nil {
		return nil
	}
	what := strings.TrimSpace(filepath.Base(path) + " " + strings.Join(args, " "))
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("%s did not finish within %v", what, copyTimeout)
	}
	msg := ""
	if ferr == nil {
		b := make([]byte, 512)
		n, _ := errOut.ReadAt(b, 0) // io.EOF after a short message
		msg = strings.TrimSpace(firstLine(b[:n]))
	}
	if msg != "" {
		return fmt.Errorf("%s: %w: %s", what, err, msg)
	}
	return fmt.Errorf("%s: %w", what, err)
}
