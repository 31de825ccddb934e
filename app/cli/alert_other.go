//go:build !darwin

package cli

import (
	"io"
	"os"

	"github.com/sirupsen/logrus"

	"github.com/vmnetbar/vmnetbar/app/notify"
)

// newAlerter returns the alerter of Linux: a desktop notification on the
// D-Bus session bus, when there is one (without one it shows nothing). It
// is nil when $VMNETBAR_NO_ALERT is set.
func newAlerter() Alerter {
	if os.Getenv(noAlertEnv) != "" {
		return nil
	}
	return notificationAlerter{}
}

// notificationAlerter shows an alert as a desktop notification.
type notificationAlerter struct{}

func (notificationAlerter) Alert(title, message string) error {
	log := logrus.New()
	log.SetOutput(io.Discard)
	s, err := notify.NewSender(log)
	if err != nil {
		return nil // no session bus: nowhere to show it
	}
	return s.Send(title, message)
}
