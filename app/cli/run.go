package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"

	"github.com/vmnetbar/vmnetbar/app/cloudinit"
	"github.com/vmnetbar/vmnetbar/app/config"
	"github.com/vmnetbar/vmnetbar/app/control"
	"github.com/vmnetbar/vmnetbar/app/controller"
	"github.com/vmnetbar/vmnetbar/app/provision"
	"github.com/vmnetbar/vmnetbar/vmhost"
	"github.com/vmnetbar/vmnetbar/vmhost/disk"
)

// newAppCmd is 'vmnetbar run' or 'vmnetbar tray' (the app, with or
// without its menu-bar icon by default).
func newAppCmd(name string, env Env, code *int) *cobra.Command {
	var f appFlags
	cmd := &cobra.Command{
		Use:                   name + " [--headless] [--config FILE] [--control PATH] [--log-level LEVEL]",
		Short:                 "run the app: the VMs, their links and the control API (--headless: no menu-bar icon)",
		Long:                  runLong,
		Args:                  noArgs,
		ValidArgsFunction:     cobra.NoFileCompletions,
		DisableFlagsInUseLine: true,
		RunE:                  runs(code, func(*cobra.Command, []string) int { return runApp(name, f, env) }),
	}
	if name == "tray" {
		cmd.Short = "run the app with its menu-bar icon (what plain 'vmnetbar' does)"
	}
	addAppFlags(cmd, &f)
	return cmd
}

const runLong = `Runs the app: boots the VMs described by the configuration file (those with
autostart), forwards each VM's network to socket_vmnet, reconnecting whenever
the daemon restarts, and serves the control API that 'vmnetbar list',
'status', 'ip', 'ssh', 'watch', 'start', 'stop' and 'reconnect' talk to. Only
one instance runs per user.

With the menu-bar icon unavailable (or with --headless) it prints one status
line per change to standard output instead. SIGHUP reloads the configuration
file. SIGINT, SIGTERM or the menu's Quit stop the VMs gracefully and exit 0.`

// appFlags are the flags of the app (plain vmnetbar, run and tray).
type appFlags struct {
	headless bool
	config   string
	control  string
	logLevel string
}

func addAppFlags(cmd *cobra.Command, f *appFlags) {
	fs := cmd.Flags()
	fs.BoolVar(&f.headless, "headless", false, "run without the menu-bar icon, printing status lines to standard output")
	addConfigFlag(cmd, &f.config, "configuration `FILE` (default: the per-user one, see the README)")
	addControlFlag(cmd, &f.control, "serve the control API on the UNIX socket at `PATH` (default: the per-user one, see the README)")
	addLogLevelFlag(cmd, &f.logLevel, "", "log `LEVEL`: error, warn, info, debug or trace (default: log_level from the configuration)")
}

// alertTitle heads the alert or notification of a launch that failed.
const alertTitle = "vmnetbar did not start"

// runApp runs the app in the foreground until a signal or the tray's Quit.
// When it exits early and standard error is not a terminal (started from
// Finder, open or at login), it also shows why with env's Alerter, once
// everything it held (the instance lock, the log) is released.
func runApp(name string, f appFlags, env Env) int {
	code, early := launchApp(name, f, env)
	if early != "" && !isTerminal(env.Stderr) {
		a := env.Alerter
		if a == nil {
			a = newAlerter()
		}
		if a != nil {
			if err := a.Alert(alertTitle, early); err != nil {
				fmt.Fprintf(env.Stderr, "vmnetbar: cannot show an alert: %v\n", err)
			}
		}
	}
	return code
}

// launchApp is runApp without the alert. early is the message of an exit
// before the app ran ("" once it ran).
func launchApp(name string, f appFlags, env Env) (code int, early string) {
	fail := func(code int, format string, a ...any) (int, string) {
		msg := fmt.Sprintf(format, a...)
		fmt.Fprintf(env.Stderr, "vmnetbar: %s\n", msg)
		return code, msg
	}
	lvl := logrus.InfoLevel
	if f.logLevel != "" {
		l, err := parseLevel(f.logLevel)
		if err != nil {
			return fail(ExitUsage, "%v", err)
		}
		lvl = l
	}

	paths, err := config.DefaultPaths()
	if err != nil {
		return fail(ExitUsage, "%v", err)
	}
	// The log opens first, so that everything after it is in the file too.
	log, out := newAppLogger(env.Stderr, paths.LogFile(), lvl)
	defer out.close()
	fail = func(code int, format string, a ...any) (int, string) {
		msg := fmt.Sprintf(format, a...)
		out.toStderrOnly([]byte("vmnetbar: " + msg + "\n"))
		var b strings.Builder
		fmt.Fprintf(&b, "time=%q level=error msg=%q\n", time.Now().Format(time.RFC3339), "vmnetbar did not start: "+msg)
		out.toFileOnly([]byte(b.String()))
		return code, msg
	}

	// Signals are caught from here on, before anyone can reach the app;
	// the first SIGINT, SIGTERM or SIGQUIT starts the shutdown (see
	// catchSignals).
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	bySystem := make(chan struct{}) // closed when launchd ends the app
	// SIGHUP reloads the configuration once the controller is there.
	var reloader atomic.Pointer[controller.Controller]
	stopSignals := catchSignals(log, func(sig os.Signal) {
		if endedBySystem(sig, os.Getenv) {
			close(bySystem)
		}
		cancel()
	}, func() {
		if c := reloader.Load(); c != nil {
			_ = c.Reload() // it logs what it did, or the file's error
		} else {
			log.Info("SIGHUP: vmnetbar is still starting; nothing to reload yet")
		}
	})
	defer stopSignals()

	// One app per user: the lock is in the state directory, so it does not
	// depend on where the control socket is.
	release, err := takeInstanceLock(paths.StateDir, control.PrivateTempDir, flockFile, log)
	var running *errAlreadyRunning
	if errors.As(err, &running) {
		// No alert: launchd starts a second instance whenever launch at
		// login is turned on, and a user who opens the app again sees
		// the running one in the menu bar.
		code, _ := fail(ExitFailure, "%v", err)
		return code, ""
	}
	if err != nil {
		return fail(ExitFailure, "%v", err)
	}
	defer release()

	cfgFile := f.config
	if cfgFile == "" {
		cfgFile = paths.ConfigFile
		// The first launch: a commented starter file with every key. A
		// --config path that does not exist is a typo, not a first launch.
		created, err := config.WriteStarter(cfgFile, paths)
		if err != nil {
			return fail(ExitFailure, "no configuration file yet, and %v", err)
		}
		if created {
			log.WithField("config", cfgFile).Warn("wrote a starter configuration: set vm.image (a distro cloud image) in it, then start the VM")
		}
	}
	opts := config.DefaultOptions(paths)
	opts.AllowNoVM = true
	cfg, err := config.Load(cfgFile, opts)
	if err != nil {
		return fail(ExitUsage, "%v", err)
	}
	if f.logLevel == "" {
		log.SetLevel(cfg.LogLevel)
	}
	configured := cfg.VMConfigured()
	if !configured && f.headless {
		return fail(ExitFailure, "no VM configured: edit %s (set vm.image to a distro cloud image), then run vmnetbar again", cfg.File)
	}
	// Everything that can be checked before anything starts is checked
	// now (the host's CPUs and memory, the files, KVM): a VM that cannot
	// start is refused at launch, naming the line to fix.
	if configured {
		if err := checkVMs(cfg); err != nil {
			return fail(ExitUsage, "%v", err)
		}
	} else {
		log.WithField("config", cfg.File).Warn("no VM configured: set vm.image in the configuration file (the menu's Open config), then start the VM")
	}
	// QEMU directories that older versions left behind when they ended
	// abnormally (this instance holds the lock: none is in use by it).
	if err := vmhost.RemoveStaleRuntime(log); err != nil {
		log.WithError(err).Warn("cannot remove a stale VM runtime directory")
	}
	logGeneratedMACs(cfg, log)

	sockPath := f.control
	if sockPath == "" {
		if sockPath, err = control.DefaultSocketPath(); err != nil {
			return fail(ExitUsage, "%v", err)
		}
	}
	listener, err := control.Listen(sockPath)
	if errors.Is(err, control.ErrInUse) {
		return fail(ExitFailure, "already running: another vmnetbar serves the control socket %s", sockPath)
	}
	if err != nil {
		return fail(ExitFailure, "%v", err)
	}

	defer holdActivity("vmnetbar forwards the VM's network")()

	ctrl, err := controller.New(controller.Options{
		Specs:      specs(cfg, log),
		Logger:     log.WithField("component", "controller"),
		ConfigFile: cfg.File,
		// Reload config (menu, SIGHUP) applies the file; every start also
		// reads it again and takes its VM's part, so "fix it, then start
		// the VM" works without a reload (also the first time, once
		// vm.kernel is set in the starter file).
		Load: func() ([]controller.Spec, error) {
			c, err := config.Load(cfgFile, opts)
			if err == nil && c.VMConfigured() {
				err = checkVMs(c)
			}
			if err != nil {
				return nil, err
			}
			logGeneratedMACs(c, log)
			return specs(c, log), nil
		},
	})
	if err != nil {
		listener.Close()
		return fail(ExitFailure, "%v", err)
	}

	reloader.Store(ctrl)

	// The control API runs until the controller has shut down, so clients
	// can follow the VM stopping.
	serveCtx, stopServe := context.WithCancel(context.Background())
	defer stopServe()
	serveDone := make(chan error, 1)
	srv := control.NewServer(ctrl, log.WithField("component", "control"))
	go func() { serveDone <- srv.Serve(serveCtx, listener) }()
	log.WithFields(logrus.Fields{"control": sockPath, "config": cfg.File, "vms": strings.Join(cfg.Names(), ",")}).Info("vmnetbar running")
	for _, v := range cfg.VMs {
		if _, err := os.Stat(v.Network.Socket); err != nil {
			log.WithFields(logrus.Fields{"vm": v.Name, "daemon": v.Network.Socket}).Warn("waiting for socket_vmnet: its socket is not there yet; the link connects as soon as it is (is socket_vmnet installed and started?)")
		}
	}

	stopNotifier := startNotifier(ctrl, cfg.Notifications, log.WithField("component", "notify"))

	var bg sync.WaitGroup
	if configured && ctx.Err() == nil {
		bg.Add(1)
		go func() {
			defer bg.Done()
			if err := ctrl.Autostart(ctx); err != nil {
				log.WithError(err).Error("starting a VM failed; fix the cause, then start it from the menu or with 'vmnetbar start NAME' (a start reads the configuration file again)")
			}
		}()
	}

	// launchd ending the login item (logout, shutdown) bounds the VM's
	// graceful stop by logout_stop_timeout, also while the menu's Quit or
	// the shutdown below stops it with the full stop timeout.
	appDone := make(chan struct{})
	var ending sync.WaitGroup
	ending.Add(1)
	go func() {
		defer ending.Done()
		select {
		case <-bySystem:
			log.WithField("timeout", cfg.LogoutStopTimeout).Warn("the system is ending vmnetbar: stopping the VM, forced off after the timeout")
			if err := ctrl.CloseWithin(cfg.LogoutStopTimeout); err != nil {
				log.WithError(err).Error("stopping the VM as the system ends the app failed")
			}
		case <-appDone:
		}
	}()
	defer func() {
		close(appDone)
		ending.Wait()
	}()

	runErr := error(nil)
	if f.headless {
		log.Info("running headless")
		printStatusLines(ctx, env.Stdout, ctrl, time.Now, statusRefresh, log)
	} else {
		runErr = runTray(ctx, ctrl, cfg, f, log)
		if isTrayUnavailable(runErr) {
			log.Warnf("no tray available (%s); running headless", trayReason(runErr))
			runErr = nil
			printStatusLines(ctx, env.Stdout, ctrl, time.Now, statusRefresh, log)
		} else if errors.Is(runErr, context.Canceled) {
			runErr = nil
		}
	}

	log.Info("stopping vmnetbar: shutting the VM down if it runs")
	bg.Wait()
	code = ExitOK
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
	return code, ""
}

// newAppLogger logs to w and appends to the log file (created with its
// directory when missing; rotated at maxLogSize). Without a usable log file
// it logs to w only and says so. A failing w (a closed pipe) is dropped
// and the log goes on in the file.
func newAppLogger(w io.Writer, file string, lvl logrus.Level) (*logrus.Logger, *logOutput) {
	log := logrus.New()
	log.SetLevel(lvl)
	out := newLogOutput(w)
	log.SetOutput(out)
	f, err := openLogFile(file, maxLogSize)
	if err != nil {
		log.WithError(err).Warn("logging to standard error only")
		return log, out
	}
	out.mu.Lock()
	out.file = f
	out.mu.Unlock()
	log.WithField("file", file).Debug("logging to file")
	return log, out
}

// specs are cfg's VMs for the controller. A VM with an image gets its
// disk and cloud-init seed made before each start (provision.Prepare: the
// disk only the first time) and can be reset.
func specs(cfg *config.Config, log logrus.FieldLogger) []controller.Spec {
	home, _ := os.UserHomeDir()
	out := make([]controller.Spec, len(cfg.VMs))
	for i := range cfg.VMs {
		v := &cfg.VMs[i]
		user := sshUser(v.SSHUser)
		s := controller.Spec{Name: v.Name, VM: v.VMConfig(), Link: v.LinkConfig(), Autostart: v.Autostart,
			SSHUser: user, SSHAddress: v.SSHAddress}
		if v.Image != "" {
			pv := v.Provision(home, user)
			vlog := log.WithField("vm", v.Name)
			s.Image = v.Image
			s.Settings = pv // a reload that changes them changes the VM
			s.KnownHosts = pv.KnownHostsPath()
			if v.CloudInit {
				s.SSHKey = filepath.Join(pv.SSHDir(), cloudinit.KeyName)
			}
			s.Prepare = func(ctx context.Context, c vmhost.Config, progress func(done, total int64)) (vmhost.Config, error) {
				res, err := provision.Prepare(ctx, pv, progress)
				if err != nil {
					return c, v.Locate(err)
				}
				for _, sk := range res.Skipped {
					vlog.WithField("skipped", sk).Warn("a public key in ~/.ssh was not put into the guest")
				}
				if res.Created {
					vlog.WithFields(logrus.Fields{"disk": res.Disk, "image": v.Image}).Info("made the VM's disk from its image")
				}
				if res.Note != "" {
					vlog.Warn(res.Note)
				}
				return c, nil
			}
			s.Reset = func() error { return provision.Reset(pv) }
		}
		out[i] = s
	}
	return out
}

// sshUser is the user name SSH logs in to a guest as: the configured
// one, else the host user's login name ("" when that is unknown).
func sshUser(configured string) string {
	if configured != "" {
		return configured
	}
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return os.Getenv("USER")
}

// checkVMs checks each of cfg's VMs against the host (everything but its
// network socketpair), naming the file and line of each problem. The files
// an image VM's first start makes (its disk and seed) are no problem while
// they do not exist yet; its image is checked instead.
func checkVMs(cfg *config.Config) error {
	var errs []error
	for i := range cfg.VMs {
		v := &cfg.VMs[i]
		c := v.VMConfig()
		if v.Image != "" {
			if _, err := disk.Inspect(v.Image); err != nil {
				if _, err := os.Stat(c.Disk); err != nil { // the image matters only until the disk is made
					errs = append(errs, v.Locate(&provision.Error{Key: "image", Path: v.Image, Msg: err.Error(), Err: err}))
					continue
				}
			}
		}
		err := c.Check()
		if v.Image != "" {
			err = dropMissing(err, map[string]string{"Disk": c.Disk, "Seed": c.Seed})
		}
		if err := v.Locate(err); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// dropMissing removes from err (an errors.Join of them) the errors about
// the given fields (vmhost.FieldError.Field) whose files do not exist yet.
func dropMissing(err error, files map[string]string) error {
	if err == nil {
		return nil
	}
	var all []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		all = j.Unwrap()
	} else {
		all = []error{err}
	}
	var keep []error
	for _, e := range all {
		var fe *vmhost.FieldError
		if errors.As(e, &fe) {
			if path, ok := files[fe.Field]; ok {
				if _, serr := os.Stat(path); errors.Is(serr, os.ErrNotExist) || path == "" {
					continue
				}
			}
		}
		keep = append(keep, e)
	}
	return errors.Join(keep...)
}

// logGeneratedMACs says which VMs got a MAC address written into the file.
func logGeneratedMACs(cfg *config.Config, log logrus.FieldLogger) {
	for _, v := range cfg.VMs {
		if v.MACGenerated {
			log.WithFields(logrus.Fields{"vm": v.Name, "mac": v.Machine.MAC.String(), "config": cfg.File}).
				Info("generated the VM's MAC address and saved it in the configuration")
		}
	}
}
