//go:build !linux && !darwin

package tray

import (
	"context"
	"errors"
)

// newTerminal returns a Terminal that always fails: no terminal program
// is known on this system.
func newTerminal() Terminal { return noTerminal{} }

type noTerminal struct{}

func (noTerminal) Open(context.Context, []string) error {
	return errors.New("no terminal program is known on this system: run the command in a terminal yourself")
}
