package cli

import (
	"io"

	"golang.org/x/sys/unix"
)

// Alerter shows a message to a user who may not see standard error.
type Alerter interface {
	Alert(title, message string) error
}

// noAlertEnv, when set to anything but "", turns the alert of a failed
// launch off (for scripts, and for tests that run the app as a
// subprocess: on macOS the alert waits for a click).
const noAlertEnv = "VMNETBAR_NO_ALERT"

// isTerminal reports whether w is a terminal. Anything that is not an open
// file (a buffer) is not one.
func isTerminal(w io.Writer) bool {
	f, ok := w.(interface{ Fd() uintptr })
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), ioctlReadTermios)
	return err == nil
}
