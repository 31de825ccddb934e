package notify

import "github.com/sirupsen/logrus"

// NewSender returns the macOS Sender (osascript).
func NewSender(log logrus.FieldLogger) (Sender, error) {
	return NewOsascript(ExecRunner), nil
}
