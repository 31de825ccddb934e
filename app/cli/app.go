package cli

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/sirupsen/logrus"

	"github.com/vmnetbar/vmnetbar/app/loginitem"
	"github.com/vmnetbar/vmnetbar/app/model"
	"github.com/vmnetbar/vmnetbar/app/notify"
)

// startNotifier shows desktop notifications when a VM's link is lost for
// a while and when it comes back, fed by b's status updates: one Notifier
// per VM (naming the VM when there are several), made when the VM appears
// and closed when a reload removes it. Without a notification service it
// says so once and the app runs on. stop ends it; the feed also ends when
// b shuts down.
func startNotifier(b model.Machines, enabled bool, log logrus.FieldLogger) (stop func()) {
	if !enabled {
		log.Debug("desktop notifications are off (notifications: false)")
		return func() {}
	}
	sender, err := notify.NewSender(log)
	if err != nil {
		log.WithError(err).Warn("desktop notifications unavailable")
		return func() {}
	}
	sub, cancel := b.Subscribe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		byVM := map[string]*notify.Notifier{}
		defer func() {
			for _, n := range byVM {
				n.Close()
			}
		}()
		update := func(o model.Overview) {
			seen := map[string]bool{}
			for _, v := range o.VMs {
				seen[v.Name] = true
				n := byVM[v.Name]
				if n == nil {
					cfg := notify.Config{Sender: sender, Log: log.WithField("vm", v.Name)}
					if len(o.VMs) > 1 {
						cfg.VM = v.Name
					}
					var err error
					if n, err = notify.New(cfg); err != nil {
						log.WithError(err).Warn("desktop notifications unavailable")
						continue
					}
					byVM[v.Name] = n
				}
				n.Update(v.Link)
			}
			for name, n := range byVM {
				if !seen[name] {
					n.Close()
					delete(byVM, name)
				}
			}
		}
		update(b.Status())
		for o := range sub {
			update(o)
		}
	}()
	return func() {
		cancel()
		<-done
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
