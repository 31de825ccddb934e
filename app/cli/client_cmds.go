package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/vmnetbar/vmnetbar/app/control"
	"github.com/vmnetbar/vmnetbar/app/internal/human"
)

// Timeouts of the control API's clients. Starting and stopping a VM wait
// for the guest, so they get longer.
const (
	queryTimeout    = 10 * time.Second
	vmOpTimeout     = 3 * time.Minute
	controlFlagHelp = "control socket of the vmnetbar to talk to, at `PATH` (default: the app's)"
)

// clientCmd is the shared part of the control API's client commands.
type clientCmd struct {
	name    string
	control string
	env     Env
}

// newClientCommand makes a client command whose body gets a client of the
// control socket (--control or the app's).
func newClientCommand(name, use, short string, env Env, code *int, body func(c *clientCmd, cl *control.Client) int) (*cobra.Command, *clientCmd) {
	c := &clientCmd{name: name, env: env}
	cmd := &cobra.Command{
		Use:                   use,
		Short:                 short,
		Args:                  noArgs,
		ValidArgsFunction:     completeVMNames,
		DisableFlagsInUseLine: true,
		RunE: runs(code, func(*cobra.Command, []string) int {
			cl, code := c.client()
			if cl == nil {
				return code
			}
			return body(c, cl)
		}),
	}
	addControlFlag(cmd, &c.control, controlFlagHelp)
	return cmd, c
}

// client returns a client of the control socket, or the exit code to return.
func (c *clientCmd) client() (*control.Client, int) {
	path := c.control
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

// fail reports err and returns the exit code: bad usage (2) for a control
// socket path that cannot be used (too long, or in a directory that is not
// private), else 1.
func (c *clientCmd) fail(err error) int {
	msg := err.Error()
	if errors.Is(err, control.ErrNotRunning) {
		msg += "; start vmnetbar, or pass --control PATH for another instance"
	}
	fmt.Fprintf(c.env.Stderr, "vmnetbar %s: %s\n", c.name, msg)
	if errors.Is(err, control.ErrNotPrivate) || errors.Is(err, control.ErrPathTooLong) {
		return ExitUsage
	}
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

func newStatusCmd(env Env, code *int) *cobra.Command {
	var asJSON bool
	cmd, _ := newClientCommand("status", "status [--json] [--control PATH]",
		"show the VM and link status (--json for the raw API answer)", env, code,
		func(c *clientCmd, cl *control.Client) int {
			ctx, stop := signalContext(queryTimeout)
			defer stop()
			st, err := cl.Status(ctx)
			if err != nil {
				return c.fail(err)
			}
			if asJSON {
				b, err := json.MarshalIndent(st, "", "  ")
				if err != nil {
					return c.fail(err)
				}
				fmt.Fprintf(env.Stdout, "%s\n", b)
				return ExitOK
			}
			writeStatus(env.Stdout, st, time.Now())
			return ExitOK
		})
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the control API's JSON instead of the summary")
	return cmd
}

func newReconnectCmd(env Env, code *int) *cobra.Command {
	cmd, _ := newClientCommand("reconnect", "reconnect [--control PATH]",
		"drop the socket_vmnet connection and redial", env, code,
		func(c *clientCmd, cl *control.Client) int {
			ctx, stop := signalContext(queryTimeout)
			defer stop()
			if err := cl.Reconnect(ctx); err != nil {
				return c.fail(err)
			}
			fmt.Fprintln(env.Stdout, "reconnect requested")
			return ExitOK
		})
	return cmd
}

func newWatchCmd(env Env, code *int) *cobra.Command {
	cmd, _ := newClientCommand("watch", "watch [--control PATH]",
		"print the status as one JSON line per change until interrupted", env, code,
		func(c *clientCmd, cl *control.Client) int {
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
		})
	return cmd
}

// newVMActionCmd is 'vmnetbar start' or 'vmnetbar stop'.
func newVMActionCmd(name, done string, env Env, code *int) *cobra.Command {
	action := (*control.Client).StartVM
	if name == "stop" {
		action = (*control.Client).StopVM
	}
	cmd, _ := newClientCommand(name, name+" [--control PATH]", name+" the VM of the running app", env, code,
		func(c *clientCmd, cl *control.Client) int {
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
		})
	return cmd
}

// writeStatus prints the one-screen summary of st.
func writeStatus(w io.Writer, st control.Status, now time.Time) {
	line := func(label, format string, a ...any) {
		fmt.Fprintf(w, "%-12s %s\n", label+":", fmt.Sprintf(format, a...))
	}
	if st.VM != nil {
		v := fmt.Sprintf("%s%s", st.VM.State, since(st.VM.Since, now))
		if st.VM.NotConfigured {
			v = "not configured"
		}
		if st.VM.Error != "" {
			v += ": " + st.VM.Error
		}
		line("VM", "%s", v)
		if st.VM.Note != "" {
			line("Note", "%s", st.VM.Note)
		}
	}
	l := st.Link
	line("Link", "%s%s", l.State, since(l.Since, now))
	if g := l.Guest; g.IPv4.IsValid() {
		v := fmt.Sprintf("%s (%s", g.IPv4, g.Source)
		if g.Gateway.IsValid() {
			v += ", gateway " + g.Gateway.String()
		}
		if !g.LeaseExpires.IsZero() {
			v += ", lease until " + g.LeaseExpires.Local().Format("15:04:05")
		}
		line("Guest IP", "%s)", v)
	}
	line("Reconnects", "%d", l.Reconnects)
	lastErr := l.LastError
	if path, ok := waitingForDaemon(l); ok {
		lastErr = "waiting for socket_vmnet at " + path + " (" + lastErr + ")"
	} else if lastErr == "" {
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
