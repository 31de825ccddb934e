package cli

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/sirupsen/logrus"

	"github.com/vmnetbar/vmnetbar/app/control"
	"github.com/vmnetbar/vmnetbar/app/loginitem"
	"github.com/vmnetbar/vmnetbar/app/notify"
)

// startNotifier shows desktop notifications when the link is lost for a
// while and when it comes back, fed by b's status updates. Without a
// notification service it says so once and the app runs on. stop ends it;
// the feed also ends when b shuts down.
func startNotifier(b control.Backend, enabled bool, log logrus.FieldLogger) (stop func()) {
	if !enabled {
		log.Debug("desktop notifications are off (notifications: false)")
		return func() {}
	}
	sender, err := notify.NewSender(log)
	if err != nil {
		log.WithError(err).Warn("desktop notifications unavailable")
		return func() {}
	}
	n, err := notify.New(notify.Config{Sender: sender, Log: log})
	if err != nil {
		log.WithError(err).Warn("desktop notifications unavailable")
		return func() {}
	}
	sub, cancel := b.Subscribe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for st := range sub {
			n.Update(st.Link)
		}
	}()
	return func() {
		cancel()
		<-done
		n.Close()
	}
}

// appLoginItem is the launch-at-login entry that starts this executable's
// tray with the configuration file and control socket the app was started
// with (--config and --control, when given). It is nil, and the menu hides
// the item, when the entry cannot be made.
func appLoginItem(cfgFlag, controlFlag string, log logrus.FieldLogger) loginitem.Manager {
	m, _, err := trayLoginItem(cfgFlag, controlFlag)
	if err != nil {
		log.WithError(err).Warn("launch at login unavailable")
		return nil
	}
	return m
}

// trayLoginItem returns the launch-at-login entry that starts this
// executable's tray, with --config cfgFile unless cfgFile is "" and
// --control controlPath unless controlPath is "" (both made absolute), and
// the executable's path.
func trayLoginItem(cfgFile, controlPath string) (loginitem.Manager, string, error) {
	exe, err := os.Executable()
	if err == nil {
		exe, err = filepath.EvalSymlinks(exe)
	}
	if err != nil {
		return nil, "", fmt.Errorf("finding this executable: %w", err)
	}
	args := []string{"tray"}
	if cfgFile != "" {
		abs, err := filepath.Abs(cfgFile)
		if err != nil {
			return nil, exe, fmt.Errorf("--config %q: %w", cfgFile, err)
		}
		args = append(args, "--config", abs)
	}
	if controlPath != "" {
		abs, err := filepath.Abs(controlPath)
		if err != nil {
			return nil, exe, fmt.Errorf("--control %q: %w", controlPath, err)
		}
		args = append(args, "--control", abs)
	}
	m, err := loginitem.New(exe, args)
	if err != nil {
		return nil, exe, err
	}
	return m, exe, nil
}
