//go:build !darwin && !linux

package notify

import (
	"fmt"
	"runtime"

	"github.com/sirupsen/logrus"
)

// NewSender fails: notifications are supported on macOS and Linux only.
func NewSender(log logrus.FieldLogger) (Sender, error) {
	return nil, fmt.Errorf("notify: desktop notifications are not supported on %s", runtime.GOOS)
}
