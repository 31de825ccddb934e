//go:build !linux && !darwin

package tray

import "context"

// daemonHelp: see daemonHelpFor.
func daemonHelp() DaemonHelp { return daemonHelpFor("") }

// openCommand: no known file opener.
func openCommand(string, bool) []string { return nil }

// probe assumes the system's notification area is there.
func probe(context.Context) error { return nil }

// setAppTitle does nothing.
func setAppTitle() {}
