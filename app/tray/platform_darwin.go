package tray

import "context"

// openCommand opens a file in the user's default application.
const openCommand = "open"

// probe: the macOS menu bar is always there.
func probe(context.Context) error { return nil }

// setAppTitle does nothing: on macOS a title is drawn next to the icon.
func setAppTitle() {}
