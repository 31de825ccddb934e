package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/vmnetbar/vmnetbar/app/control"
	"github.com/vmnetbar/vmnetbar/app/internal/human"
)

// Timeouts of the control API's clients. Starting and stopping a VM wait
// for the guest, so they get longer.
const (
	queryTimeout    = 10 * time.Second
	vmOpTimeout     = 3 * time.Minute
	controlFlagHelp = "control socket of the vmnetbar to talk to (default: the app's)"
)

func init() {
	register(command{name: "status", summary: "show the VM and link status (--json for the raw API answer)", run: runStatus})
	register(command{name: "reconnect", summary: "drop the socket_vmnet connection and redial", run: runReconnect})
	register(command{name: "watch", summary: "print the status as one JSON line per change until interrupted", run: runWatch})
	register(command{name: "start", summary: "start the VM of the running app", run: runStartVM})
	register(command{name: "stop", summary: "stop the VM of the running app", run: runStopVM})
}

// clientCmd is the shared part of the control API's client commands.
type clientCmd struct {
	name    string
	fs      *flag.FlagSet
	control *string
	env     Env
}

func newClientCmd(name, usage string, env Env) *clientCmd {
	c := &clientCmd{name: name, env: env, fs: flag.NewFlagSet(name, flag.ContinueOnError)}
	c.fs.SetOutput(env.Stderr)
	c.fs.Usage = func() {
		fmt.Fprintf(c.fs.Output(), "usage: vmnetbar %s\n\nflags:\n", usage)
		c.fs.PrintDefaults()
	}
	c.control = c.fs.String("control", "", controlFlagHelp)
	return c
}

// parse parses args and returns a client, or the exit code to return.
func (c *clientCmd) parse(args []string) (*control.Client, int) {
	if err := c.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, ExitOK
		}
		return nil, ExitUsage
	}
	if c.fs.NArg() > 0 {
		fmt.Fprintf(c.env.Stderr, "vmnetbar %s: unexpected argument %q; run 'vmnetbar %s -h'\n", c.name, c.fs.Arg(0), c.name)
		return nil, ExitUsage
	}
	path := *c.control
	if path == "" {
		p, err := control.DefaultSocketPath()
		if err != nil {
			fmt.Fprintf(c.env.Stderr, "vmnetbar %s: %v\n", c.name, err)
			return nil, ExitUsage
		}
		path = p
	}
	return control.NewClient(path), -1
}

// fail reports err and returns the exit code.
func (c *clientCmd) fail(err error) int {
	msg := err.Error()
	if errors.Is(err, control.ErrNotRunning) {
		msg += "; start vmnetbar, or pass --control PATH for another instance"
	}
	fmt.Fprintf(c.env.Stderr, "vmnetbar %s: %s\n", c.name, msg)
	return ExitFailure
}

// signalContext ends on SIGINT or SIGTERM, and after timeout if it is not 0.
func signalContext(timeout time.Duration) (context.Context, func()) {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	if timeout == 0 {
		return ctx, stop
	}
	tctx, cancel := context.WithTimeout(ctx, timeout)
	return tctx, func() { cancel(); stop() }
}

func runStatus(args []string, env Env) int {
	c := newClientCmd("status", "status [--json] [--control PATH]", env)
	asJSON := c.fs.Bool("json", false, "print the control API's JSON instead of the summary")
	cl, code := c.parse(args)
	if cl == nil {
		return code
	}
	ctx, stop := signalContext(queryTimeout)
	defer stop()
	st, err := cl.Status(ctx)
	if err != nil {
		return c.fail(err)
	}
	if *asJSON {
		b, err := json.MarshalIndent(st, "", "  ")
		if err != nil {
			return c.fail(err)
		}
		fmt.Fprintf(env.Stdout, "%s\n", b)
		return ExitOK
	}
	writeStatus(env.Stdout, st, time.Now())
	return ExitOK
}

func runReconnect(args []string, env Env) int {
	c := newClientCmd("reconnect", "reconnect [--control PATH]", env)
	cl, code := c.parse(args)
	if cl == nil {
		return code
	}
	ctx, stop := signalContext(queryTimeout)
	defer stop()
	if err := cl.Reconnect(ctx); err != nil {
		return c.fail(err)
	}
	fmt.Fprintln(env.Stdout, "reconnect requested")
	return ExitOK
}

func runWatch(args []string, env Env) int {
	c := newClientCmd("watch", "watch [--control PATH]", env)
	cl, code := c.parse(args)
	if cl == nil {
		return code
	}
	ctx, stop := signalContext(0)
	defer stop()
	err := cl.Watch(ctx, func(st control.Status) error {
		b, err := json.Marshal(st)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(env.Stdout, "%s\n", b)
		return err
	})
	if ctx.Err() != nil {
		return ExitOK // interrupted
	}
	return c.fail(err)
}

func runStartVM(args []string, env Env) int {
	return runVMAction("start", "started", (*control.Client).StartVM, args, env)
}

func runStopVM(args []string, env Env) int {
	return runVMAction("stop", "stopped", (*control.Client).StopVM, args, env)
}

func runVMAction(name, done string, action func(*control.Client, context.Context) error, args []string, env Env) int {
	c := newClientCmd(name, name+" [--control PATH]", env)
	cl, code := c.parse(args)
	if cl == nil {
		return code
	}
	ctx, stop := signalContext(vmOpTimeout)
	defer stop()
	if err := action(cl, ctx); err != nil {
		return c.fail(err)
	}
	st, err := cl.Status(ctx)
	if err != nil || st.VM == nil {
		fmt.Fprintf(env.Stdout, "VM %s\n", done)
		return ExitOK
	}
	fmt.Fprintf(env.Stdout, "VM is %s\n", st.VM.State)
	return ExitOK
}

// writeStatus prints the one-screen summary of st.
func writeStatus(w io.Writer, st control.Status, now time.Time) {
	line := func(label, format string, a ...any) {
		fmt.Fprintf(w, "%-12s %s\n", label+":", fmt.Sprintf(format, a...))
	}
	if st.VM != nil {
		v := fmt.Sprintf("%s%s", st.VM.State, since(st.VM.Since, now))
		if st.VM.Error != "" {
			v += ": " + st.VM.Error
		}
		line("VM", "%s", v)
	}
	l := st.Link
	line("Link", "%s%s", l.State, since(l.Since, now))
	line("Reconnects", "%d", l.Reconnects)
	lastErr := l.LastError
	if lastErr == "" {
		lastErr = "none"
	}
	line("Last error", "%s", lastErr)
	line("Traffic", "VM to daemon %s, daemon to VM %s", traffic(l.TxFrames, l.TxBytes), traffic(l.RxFrames, l.RxBytes))
	d := l.Dropped
	line("Drops", "%d (oversize %d, VM busy %d, partial read %d)", d.Total(), d.Oversize, d.VMBusy, d.PartialRead)
	line("Downtime", "%s", human.Duration(l.Downtime))
}

// since renders " since 15:04:05 (3m12s ago)", or "" for a zero time.
func since(t, now time.Time) string {
	if t.IsZero() {
		return ""
	}
	local := t.Local()
	stamp := local.Format("15:04:05")
	y, m, d := local.Date()
	if ny, nm, nd := now.Local().Date(); ny != y || nm != m || nd != d {
		stamp = local.Format("2006-01-02 15:04:05")
	}
	ago := now.Sub(t)
	if ago < 0 {
		ago = 0
	}
	return fmt.Sprintf(" since %s (%s ago)", stamp, human.Duration(ago))
}

func traffic(frames, bytes uint64) string {
	unit := "frames"
	if frames == 1 {
		unit = "frame"
	}
	return fmt.Sprintf("%d %s (%s)", frames, unit, human.Bytes(bytes))
}
