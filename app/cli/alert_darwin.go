package cli

import (
	"os"

	"github.com/vmnetbar/vmnetbar/app/notify"
)

// newAlerter returns macOS's alerter: an alert shown with osascript,
// which waits (a bounded time) for the user to dismiss it. It is nil when
// $VMNETBAR_NO_ALERT is set.
func newAlerter() Alerter {
	if os.Getenv(noAlertEnv) != "" {
		return nil
	}
	return notify.NewOsascript(notify.ExecRunner)
}
