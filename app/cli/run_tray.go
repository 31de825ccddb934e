package cli

import (
	"context"
	"errors"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/vmnetbar/vmnetbar/app/config"
	"github.com/vmnetbar/vmnetbar/app/controller"
	"github.com/vmnetbar/vmnetbar/app/notify"
	"github.com/vmnetbar/vmnetbar/app/tray"
)

// When the system ends the app (macOS), the tray closes the controller.
var _ tray.Closer = (*controller.Controller)(nil)

// runTray shows the menu-bar icon on the calling (main) goroutine until
// Quit (nil) or ctx ends (ctx.Err()).
func runTray(ctx context.Context, c *controller.Controller, cfg *config.Config, f appFlags, log logrus.FieldLogger) error {
	var notifier tray.Sender
	if cfg.Notifications {
		if s, err := notify.NewSender(log); err == nil {
			notifier = s // a failed Reload config shows a notification
		}
	}
	return tray.Run(ctx, c, tray.Options{
		ConfigFile: cfg.File,
		Notifier:   notifier,
		Logger:     log.WithField("component", "tray"),
		LoginItem:  appLoginItem(f.config, f.control, log),
		// When the system ends the app (logout), the VM gets this long to
		// stop gracefully before it is forced off.
		LogoutStopTimeout: cfg.LogoutStopTimeout,
	})
}

// isTrayUnavailable reports whether the system has no tray to show the icon in.
func isTrayUnavailable(err error) bool { return errors.Is(err, tray.ErrUnavailable) }

// trayReason is the part of a tray error after "tray unavailable: ".
func trayReason(err error) string {
	return strings.TrimPrefix(err.Error(), tray.ErrUnavailable.Error()+": ")
}
