package cli

import (
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/vmnetbar/vmnetbar/app/loginitem"
)

// Signals and the app. Nothing but SIGKILL may end the guest without its
// graceful stop:
//   - SIGINT, SIGTERM and SIGQUIT (and the crash signals another process
//     may send: SIGABRT, SIGSEGV, ...) start the shutdown: the VM is stopped
//     gracefully (forced off after vm.stop_timeout), then the app exits 0.
//     Further ones while it stops are logged and change nothing.
//   - SIGHUP (kill -HUP, or a terminal or ssh hangup) reloads the
//     configuration, as the menu's Reload config does: VMs are added,
//     removed (stopped first) or changed at their next start; a file with
//     errors changes nothing. Nothing stops because of a hangup.
//   - SIGPIPE (the reader of standard output or standard error went away)
//     is ignored: the write fails instead, and the app stops writing there.
//
// QEMU runs in a process group of its own, so a terminal's signals never
// reach it directly.
var (
	// The second line: signals that end a Go program with a stack dump
	// when another process sends them (kill -ABRT, -SEGV, ...). A real
	// fault in vmnetbar is still a crash: Go routes only signals sent by
	// another process to the channel.
	shutdownSignals = []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGQUIT,
		syscall.SIGABRT, syscall.SIGTRAP, syscall.SIGSYS, syscall.SIGBUS, syscall.SIGSEGV, syscall.SIGILL, syscall.SIGFPE}
	ignoredSignals = []os.Signal{syscall.SIGHUP, syscall.SIGPIPE}
	// reloadSignal is the one of ignoredSignals that reloads.
	reloadSignal = syscall.SIGHUP
)

// catchSignals handles the app's signals as described above until stop is
// called: the first shutdown signal calls shutdown once, with the signal;
// every SIGHUP calls reload (nil: SIGHUP is only logged) from the handler
// goroutine, which stays free for further signals while a reload runs: a
// SIGHUP during a reload is coalesced into one more reload after it. stop
// restores the default actions and waits for the handler goroutine and a
// reload under way, which it owns.
func catchSignals(log logrus.FieldLogger, shutdown func(os.Signal), reload func()) (stop func()) {
	ch := make(chan os.Signal, 8)
	signal.Notify(ch, append(append([]os.Signal{}, shutdownSignals...), ignoredSignals...)...)
	quit := make(chan struct{})
	done := make(chan struct{})
	reloads := make(chan struct{}, 1) // a pending reload, coalesced
	reloadDone := make(chan struct{})
	go func() {
		defer close(reloadDone)
		for {
			select {
			case <-quit:
				return
			case <-reloads:
				reload()
			}
		}
	}()
	go func() {
		defer close(done)
		stopping := false
		for {
			select {
			case <-quit:
				return
			case sig := <-ch:
				switch sig {
				case reloadSignal:
					if reload == nil || stopping {
						log.Info("SIGHUP: ignored, vmnetbar and the VMs keep running")
						continue
					}
					log.Info("SIGHUP: reloading the configuration (the VMs keep running)")
					select {
					case reloads <- struct{}{}:
					default: // one is pending already
					}
				case syscall.SIGPIPE:
					log.Debug("SIGPIPE: ignored (a reader of vmnetbar's output went away)")
				default:
					name := signalName(sig)
					if stopping {
						log.Warnf("%s: already stopping the VM gracefully (it is forced off after vm.stop_timeout); only SIGKILL ends vmnetbar at once, and it leaves the VM no graceful stop", name)
						continue
					}
					stopping = true
					// First: the log may block (a standard error whose
					// reader stalls), the shutdown must not wait for it.
					shutdown(sig)
					log.Infof("%s: stopping the VM gracefully, then exiting", name)
				}
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			signal.Stop(ch)
			close(quit)
			<-done
			<-reloadDone
		})
	}
}

// signalName is the signal's name as kill(1) spells it (SIGTERM), not its
// description ("terminated").
func signalName(sig os.Signal) string {
	if s, ok := sig.(syscall.Signal); ok {
		if name := unix.SignalName(s); name != "" {
			return name
		}
	}
	return sig.String()
}

// endedBySystem reports whether sig is launchd ending vmnetbar's login
// item (logout, shutdown, launchctl bootout): launchd sends SIGTERM and
// kills the job ExitTimeOut later, so the VM gets logout_stop_timeout, as
// when macOS ends the app, not its full stop timeout.
func endedBySystem(sig os.Signal, getenv func(string) string) bool {
	return sig == syscall.SIGTERM && getenv("XPC_SERVICE_NAME") == loginitem.Label
}
