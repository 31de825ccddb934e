//go:build !linux && !darwin

package tray

import (
	"context"
	"errors"
)

// newClipboard returns a clipboard that always fails: there is no known
// clipboard program here, so the tray shows the text instead.
func newClipboard() Clipboard { return noClipboard{} }

type noClipboard struct{}

func (noClipboard) Copy(context.Context, string) error {
	return errors.New("no clipboard program is known on this system")
}
