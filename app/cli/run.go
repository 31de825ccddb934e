package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/vmnetbar/vmnetbar/app/config"
	"github.com/vmnetbar/vmnetbar/app/control"
	"github.com/vmnetbar/vmnetbar/app/controller"
	"github.com/vmnetbar/vmnetbar/app/internal/human"
	"github.com/vmnetbar/vmnetbar/netlink"
)

func init() {
	register(command{
		name:    "run",
		summary: "run the app: the VM, its link and the control API (--headless: no menu-bar icon)",
		run:     func(args []string, env Env) int { return runApp("run", args, env) },
	})
	register(command{
		name:    "tray",
		summary: "run the app with its menu-bar icon (what plain 'vmnetbar' does)",
		run:     func(args []string, env Env) int { return runApp("tray", args, env) },
	})
}

const runUsage = `usage: vmnetbar %s [--headless] [--config FILE] [--log-level LEVEL]

Runs the app: boots the VM described by the configuration file (when
autostart_vm is true), forwards its network to socket_vmnet, reconnecting
whenever the daemon restarts, and serves the control API that 'vmnetbar
status', 'watch', 'start', 'stop' and 'reconnect' talk to. Only one instance
runs per user.

With the menu-bar icon unavailable (or with --headless) it prints one status
line per change to standard output instead. SIGINT, SIGTERM or the menu's
Quit stop the VM gracefully and exit 0.

flags:
`

// runApp runs the app in the foreground until a signal or the tray's Quit.
func runApp(name string, args []string, env Env) int {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), runUsage, name)
		fs.PrintDefaults()
	}
	headless := fs.Bool("headless", false, "run without the menu-bar icon, printing status lines to standard output")
	cfgFlag := fs.String("config", "", "configuration file (default: the per-user one, see the README)")
	level := fs.String("log-level", "", "log level: error, warn, info, debug or trace (default: log_level from the configuration)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ExitOK
		}
		return ExitUsage
	}
	fail := func(code int, format string, a ...any) int {
		fmt.Fprintf(env.Stderr, "vmnetbar: "+format+"\n", a...)
		return code
	}
	if fs.NArg() > 0 {
		return fail(ExitUsage, "unexpected argument %q: vmnetbar %s takes only flags; run 'vmnetbar %s -h'", fs.Arg(0), name, name)
	}
	var lvl logrus.Level
	if *level != "" {
		l, err := parseLevel(*level)
		if err != nil {
			return fail(ExitUsage, "%v", err)
		}
		lvl = l
	}

	// Signals are caught from here on, before anyone can reach the app.
	// The first one starts the shutdown; a second one ends the process at
	// once (the default action), also while the tray stops the VM.
	ctx, stopSignals := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stopSignals()
	context.AfterFunc(ctx, stopSignals)

	paths, err := config.DefaultPaths()
	if err != nil {
		return fail(ExitUsage, "%v", err)
	}
	cfgFile := *cfgFlag
	if cfgFile == "" {
		cfgFile = paths.ConfigFile
	}
	cfg, err := config.Load(cfgFile, config.DefaultOptions(paths))
	if err != nil {
		return fail(ExitUsage, "%v", err)
	}
	if *level == "" {
		lvl = cfg.LogLevel
	}

	log, closeLog := newAppLogger(env.Stderr, paths.LogFile(), lvl)
	defer closeLog()
	if cfg.MACGenerated {
		log.WithFields(logrus.Fields{"mac": cfg.VM.MAC.String(), "config": cfg.File}).Info("generated the VM's MAC address and saved it in the configuration")
	}

	sockPath, err := control.DefaultSocketPath()
	if err != nil {
		return fail(ExitUsage, "%v", err)
	}
	listener, err := control.Listen(sockPath)
	if errors.Is(err, control.ErrInUse) {
		fmt.Fprintf(env.Stderr, "vmnetbar already runs: its control socket is %s\n", sockPath)
		return ExitFailure
	}
	if err != nil {
		return fail(ExitFailure, "%v", err)
	}

	defer holdActivity("vmnetbar forwards the VM's network")()

	ctrl, err := controller.New(controller.Options{
		VMConfig: cfg.VMConfig(),
		Link: netlink.Config{
			Socket:         cfg.Network.Socket,
			InitialBackoff: cfg.Reconnect.InitialBackoff,
			MaxBackoff:     cfg.Reconnect.MaxBackoff,
		},
		Logger: log.WithField("component", "controller"),
	})
	if err != nil {
		listener.Close()
		return fail(ExitFailure, "%v", err)
	}

	// The control API runs until the controller has shut down, so clients
	// can follow the VM stopping.
	serveCtx, stopServe := context.WithCancel(context.Background())
	defer stopServe()
	serveDone := make(chan error, 1)
	srv := control.NewServer(ctrl, log.WithField("component", "control"))
	go func() { serveDone <- srv.Serve(serveCtx, listener) }()
	log.WithFields(logrus.Fields{"control": sockPath, "config": cfg.File, "daemon": cfg.Network.Socket}).Info("vmnetbar running")

	stopNotifier := startNotifier(ctrl, cfg.Notifications, log.WithField("component", "notify"))

	var bg sync.WaitGroup
	if cfg.AutostartVM && ctx.Err() == nil {
		bg.Add(1)
		go func() {
			defer bg.Done()
			if err := ctrl.StartVM(ctx); err != nil {
				log.WithError(err).Error("starting the VM failed; fix the cause, then start it from the menu or with 'vmnetbar start'")
			}
		}()
	}

	runErr := error(nil)
	if *headless {
		log.Info("running headless")
		printStatusLines(ctx, env.Stdout, ctrl, time.Now, statusRefresh)
	} else {
		runErr = runTray(ctx, ctrl, cfg, *cfgFlag, log)
		if isTrayUnavailable(runErr) {
			log.Warnf("no tray available (%s); running headless", trayReason(runErr))
			runErr = nil
			printStatusLines(ctx, env.Stdout, ctrl, time.Now, statusRefresh)
		} else if errors.Is(runErr, context.Canceled) {
			runErr = nil
		}
	}

	// A second SIGINT or SIGTERM from here on ends the process at once.
	stopSignals()
	log.Info("stopping vmnetbar: shutting the VM down if it runs")
	bg.Wait()
	code := ExitOK
	if runErr != nil {
		log.WithError(runErr).Error("the menu-bar icon ended with an error")
		code = ExitFailure
	}
	if err := ctrl.Close(); err != nil {
		log.WithError(err).Error("the VM did not shut down cleanly")
		code = ExitFailure
	}
	stopNotifier()
	stopServe()
	if err := <-serveDone; err != nil {
		log.WithError(err).Warn("control API stopped with an error")
	}
	log.Info("vmnetbar stopped")
	return code
}

// newAppLogger logs to w and appends to the log file (created with its
// directory when missing). Without a usable log file it logs to w only and
// says so.
func newAppLogger(w io.Writer, file string, lvl logrus.Level) (*logrus.Logger, func()) {
	log := logrus.New()
	log.SetLevel(lvl)
	log.SetOutput(w)
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		log.WithError(err).Warn("cannot create the log directory: logging to standard error only")
		return log, func() {}
	}
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		log.WithError(err).Warn("cannot open the log file: logging to standard error only")
		return log, func() {}
	}
	log.SetOutput(io.MultiWriter(w, f))
	log.WithField("file", file).Debug("logging to file")
	return log, func() {
		log.SetOutput(w)
		f.Close()
	}
}

// statusRefresh is how often the headless printer looks at the traffic
// counters, which change without a status notification.
const statusRefresh = 10 * time.Second

// printStatusLines writes one line per status change of b to w until ctx
// ends or b shuts down:
//
//	2026-11-25T22:30:01Z vm=running link=up reconnects=2 tx=1.2MB rx=3.4MB drops=0
//
// Every refresh (0: never) it also prints the status if the line changed,
// so the traffic counters move while the states stay.
func printStatusLines(ctx context.Context, w io.Writer, b control.Backend, now func() time.Time, refresh time.Duration) {
	sub, cancel := b.Subscribe()
	defer cancel()
	var tick <-chan time.Time
	if refresh > 0 {
		t := time.NewTicker(refresh)
		defer t.Stop()
		tick = t.C
	}
	last := ""
	emit := func(st control.Status) {
		line := statusLine(st)
		if line == last {
			return
		}
		last = line
		fmt.Fprintf(w, "%s %s\n", now().UTC().Format(time.RFC3339), line)
	}
	emit(b.Status())
	for {
		select {
		case <-ctx.Done():
			return
		case st, ok := <-sub:
			if !ok {
				return
			}
			emit(st)
		case <-tick:
			emit(b.Status())
		}
	}
}

// statusLine is the headless form of a status.
func statusLine(st control.Status) string {
	var b strings.Builder
	if st.VM != nil {
		fmt.Fprintf(&b, "vm=%s ", st.VM.State)
	}
	l := st.Link
	fmt.Fprintf(&b, "link=%s reconnects=%d tx=%s rx=%s drops=%d",
		l.State, l.Reconnects, human.CompactBytes(l.TxBytes), human.CompactBytes(l.RxBytes), l.Dropped.Total())
	if st.VM != nil && st.VM.Error != "" {
		fmt.Fprintf(&b, " error=%q", st.VM.Error)
	}
	if l.LastError != "" && l.State != netlink.StateUp {
		fmt.Fprintf(&b, " link_error=%q", l.LastError)
	}
	return b.String()
}
