package tray

import "context"

// openCommand opens path in the user's default application, or with text
// in their default text editor: a stock Mac has no application for .yaml,
// and open fails for it without -t.
func openCommand(path string, text bool) []string {
	if text {
		return []string{"open", "-t", path}
	}
	return []string{"open", path}
}

// probe: the macOS menu bar is always there.
func probe(context.Context) error { return nil }

// setAppTitle does nothing: on macOS a title is drawn next to the icon.
func setAppTitle() {}
