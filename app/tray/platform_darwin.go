package tray

import "context"

// daemonHelp: see daemonHelpFor.
func daemonHelp() DaemonHelp { return daemonHelpFor("darwin") }

// openCommand: see openCommandFor.
func openCommand(path string, text bool) []string { return openCommandFor("darwin", path, text) }

// probe: the macOS menu bar is always there.
func probe(context.Context) error { return nil }

// setAppTitle does nothing: on macOS a title is drawn next to the icon.
func setAppTitle() {}
