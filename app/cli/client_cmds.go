package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/vmnetbar/vmnetbar/app/control"
	"github.com/vmnetbar/vmnetbar/app/internal/human"
	"github.com/vmnetbar/vmnetbar/app/model"
	"github.com/vmnetbar/vmnetbar/netlink"
)

// Timeouts of the control API's clients. Starting and stopping a VM wait
// for the guest, so they get longer. Completion asks the app for its VMs'
// names while the user waits at the prompt, so it gives up quickly.
const (
	queryTimeout      = 10 * time.Second
	vmOpTimeout       = 3 * time.Minute
	completionTimeout = time.Second
	controlFlagHelp   = "control socket of the vmnetbar to talk to, at `PATH` (default: the app's)"
)

// nameHelp is the part of a client command's help about its NAME argument.
const nameHelp = `NAME is the VM's name, as 'vmnetbar list' shows it. It may be left out
when the app runs one VM; with several, leaving it out is bad usage (exit 2)
and the message lists the names. Against a standalone 'vmnetbar link', which
serves no VM, leave NAME out.`

// clientCmd is the shared part of the control API's client commands.
type clientCmd struct {
	name    string
	control string
	env     Env
}

// clientSpec describes a client command.
type clientSpec struct {
	name    string // the command's name
	use     string // its usage line after the name, e.g. "[NAME] [--json]"
	short   string
	long    string
	example string
	// takesName: the command takes an optional VM NAME (and completes
	// it); otherwise it takes only flags.
	takesName bool
}

// newClientCommand makes a client command whose body gets a client of the
// control socket (--control or the app's) and the NAME argument ("" when
// left out).
func newClientCommand(spec clientSpec, env Env, code *int, body func(c *clientCmd, cl *control.Client, name string) int) (*cobra.Command, *clientCmd) {
	c := &clientCmd{name: spec.name, env: env}
	cmd := &cobra.Command{
		Use:                   spec.name + " " + spec.use,
		Short:                 spec.short,
		Long:                  spec.long,
		Example:               spec.example,
		Args:                  noArgs,
		ValidArgsFunction:     cobra.NoFileCompletions,
		DisableFlagsInUseLine: true,
		RunE: runs(code, func(_ *cobra.Command, args []string) int {
			cl, code := c.client()
			if cl == nil {
				return code
			}
			name := ""
			if len(args) > 0 {
				name = args[0]
			}
			return body(c, cl, name)
		}),
	}
	if spec.takesName {
		cmd.Args = nameArg
		cmd.ValidArgsFunction = c.completeVMNames
	}
	addControlFlag(cmd, &c.control, controlFlagHelp)
	return cmd, c
}

// nameArg is the Args check of a command that takes an optional VM NAME.
func nameArg(cmd *cobra.Command, args []string) error {
	if len(args) > 1 {
		return fmt.Errorf("unexpected argument %q: 'vmnetbar %s' takes at most one VM NAME", args[1], cmd.Name())
	}
	if len(args) == 1 && args[0] == "" {
		return fmt.Errorf("the VM NAME is empty: give a name as 'vmnetbar list' shows it, or leave it out when the app runs one VM")
	}
	return nil
}

// client returns a client of the control socket, or the exit code to return.
func (c *clientCmd) client() (*control.Client, int) {
	cl, err := c.newClient()
	if err != nil {
		fmt.Fprintf(c.env.Stderr, "vmnetbar %s: %v\n", c.name, err)
		return nil, ExitUsage
	}
	return cl, -1
}

// newClient returns a client of --control, or of the app's socket.
func (c *clientCmd) newClient() (*control.Client, error) {
	path := c.control
	if path == "" {
		p, err := control.DefaultSocketPath()
		if err != nil {
			return nil, err
		}
		path = p
	}
	return control.NewClient(path), nil
}

// completeVMNames completes a command's NAME with the names of the running
// app's VMs (described by their state). Without an app to ask (or one that
// does not answer within completionTimeout) there is nothing to complete,
// and nothing is said: a completion must never print on the user's
// prompt.
func (c *clientCmd) completeVMNames(_ *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	cl, err := c.newClient()
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	ctx, cancel := context.WithTimeout(context.Background(), completionTimeout)
	defer cancel()
	o, err := cl.Overview(ctx)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var out []cobra.Completion
	for _, v := range o.VMs {
		if v.Name != "" && strings.HasPrefix(v.Name, toComplete) {
			out = append(out, cobra.CompletionWithDesc(v.Name, vmCell(v, time.Now())))
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp
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

// isLink reports whether o is the answer of a standalone 'vmnetbar link':
// one link, no name, no VM.
func isLink(o model.Overview) bool {
	return len(o.VMs) == 1 && control.IsStandaloneLink(o.VMs[0])
}

// pick returns the VM of o that NAME (name; "" when left out) means, or
// the exit code to return, having said why: bad usage (2) for an unknown
// name, for no name while there are several VMs and for a name given to
// a server whose one VM has no name (a standalone link, or a vmnetbar from
// before named VMs); a failure (1) when there is no VM at all.
func (c *clientCmd) pick(o model.Overview, name string) (model.VMStatus, int) {
	if len(o.VMs) == 1 && o.VMs[0].Name == "" {
		if name == "" {
			return o.VMs[0], -1
		}
		what := "a vmnetbar from before named VMs, which runs one VM"
		if isLink(o) {
			what = "a standalone link ('vmnetbar link'), which serves no VM"
		}
		fmt.Fprintf(c.env.Stderr, "vmnetbar %s: this vmnetbar is %s: leave out NAME (%q)\n", c.name, what, name)
		return model.VMStatus{}, ExitUsage
	}
	v, err := o.Resolve(name)
	if err == nil {
		return v, -1
	}
	if name == "" && len(o.VMs) == 0 {
		fmt.Fprintf(c.env.Stderr, "vmnetbar %s: no VMs configured: add one under vms: in vmnetbar's configuration file, then reload it\n", c.name)
		return model.VMStatus{}, ExitFailure
	}
	hint := "'vmnetbar list' shows them"
	if name == "" {
		hint = fmt.Sprintf("e.g. 'vmnetbar %s %s'", c.name, o.VMs[0].Name)
	}
	fmt.Fprintf(c.env.Stderr, "vmnetbar %s: %v (%s)\n", c.name, err, hint)
	return model.VMStatus{}, ExitUsage
}

// resolve fetches the app's VMs and picks the one NAME means (see pick).
func (c *clientCmd) resolve(ctx context.Context, cl *control.Client, name string) (model.Overview, model.VMStatus, int) {
	o, err := cl.Overview(ctx)
	if err != nil {
		return o, model.VMStatus{}, c.fail(err)
	}
	v, code := c.pick(o, name)
	return o, v, code
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

// statusJSON is what 'status --json' and 'watch' print for v: its VMSTATUS,
// or for a standalone link today's {"link": ..., "actions": ...}.
func statusJSON(v model.VMStatus, link bool) any {
	if link {
		return model.Status{Link: v.Link, Actions: v.Actions}
	}
	return v
}

func newStatusCmd(env Env, code *int) *cobra.Command {
	var asJSON bool
	cmd, _ := newClientCommand(clientSpec{
		name:  "status",
		use:   "[NAME] [--json] [--control PATH]",
		short: "show a VM and its link: state, address, SSH, reconnects, traffic (--json: its VMSTATUS)",
		long: `Shows a VM of the running app and its link: their states, the guest's
address, the reconnects, the last error, the traffic and the drops, and
whether the configuration changed or failed to load. For a VM made from an
image also the image, how far the start is in preparing its disk, and
whether its SSH is ready (with the ssh command that logs in) or what it
waits for.

` + nameHelp + `

--json prints the VM's VMSTATUS as the control API gives it
(GET /v1/vms/NAME). Without NAME while the app runs several VMs, --json is
bad usage too: a script always gets one VM's VMSTATUS, never another shape.
'vmnetbar list --json' prints every VM. A standalone link's --json is its
{"link": ..., "actions": ...}.`,
		example: `  vmnetbar status
  vmnetbar status dev
  vmnetbar status dev --json`,
		takesName: true,
	}, env, code,
		func(c *clientCmd, cl *control.Client, name string) int {
			ctx, stop := signalContext(queryTimeout)
			defer stop()
			o, v, code := c.resolve(ctx, cl, name)
			if code >= 0 {
				return code
			}
			if asJSON {
				b, err := json.MarshalIndent(statusJSON(v, isLink(o)), "", "  ")
				if err != nil {
					return c.fail(err)
				}
				fmt.Fprintf(env.Stdout, "%s\n", b)
				return ExitOK
			}
			writeStatus(env.Stdout, v, isLink(o), o.ConfigError, time.Now())
			return ExitOK
		})
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the control API's JSON (the VM's VMSTATUS) instead of the summary")
	return cmd
}

func newReconnectCmd(env Env, code *int) *cobra.Command {
	cmd, _ := newClientCommand(clientSpec{
		name:  "reconnect",
		use:   "[NAME] [--control PATH]",
		short: "drop a VM's socket_vmnet connection and redial",
		long: `Drops the socket_vmnet connection of a VM's link and dials again now.

` + nameHelp,
		example: `  vmnetbar reconnect
  vmnetbar reconnect dev`,
		takesName: true,
	}, env, code,
		func(c *clientCmd, cl *control.Client, name string) int {
			ctx, stop := signalContext(queryTimeout)
			defer stop()
			_, v, code := c.resolve(ctx, cl, name)
			if code >= 0 {
				return code
			}
			if err := cl.Reconnect(ctx, v.Name); err != nil {
				return c.fail(err)
			}
			if v.Name == "" {
				fmt.Fprintln(env.Stdout, "reconnect requested")
			} else {
				fmt.Fprintf(env.Stdout, "reconnect of %s requested\n", v.Name)
			}
			return ExitOK
		})
	return cmd
}

// errVMGone ends a watch whose VM was removed from the configuration.
type errVMGone struct{ name string }

func (e *errVMGone) Error() string {
	return fmt.Sprintf("VM %s was removed from the configuration", e.name)
}

func newWatchCmd(env Env, code *int) *cobra.Command {
	cmd, _ := newClientCommand(clientSpec{
		name:  "watch",
		use:   "[NAME] [--control PATH]",
		short: "print a VM's status as one JSON line (its VMSTATUS) per change, until interrupted",
		long: `Prints a VM's status as one JSON line (its VMSTATUS, as 'status NAME
--json' shows it) now and at each change, until interrupted (exit 0) or
until the app stops or the VM is removed from the configuration (exit 1).

` + nameHelp + ` Every line is about the one VM, so a
script reading them never meets another VM's status when a VM is added.`,
		example: `  vmnetbar watch
  vmnetbar watch dev | jq -r .link.state`,
		takesName: true,
	}, env, code,
		func(c *clientCmd, cl *control.Client, name string) int {
			ctx, stop := signalContext(0)
			defer stop()
			code := -1
			resolved := false
			var last []byte
			err := cl.Watch(ctx, func(o model.Overview) error {
				link := isLink(o)
				var v model.VMStatus
				if !resolved {
					// The stream's first overview resolves NAME: the
					// same answer a GET would give, without a race.
					if v, code = c.pick(o, name); code >= 0 {
						return errPicked
					}
					resolved, name = true, v.Name
				} else if link {
					v = o.VMs[0]
				} else {
					var ok bool
					if v, ok = o.Lookup(name); !ok {
						return &errVMGone{name}
					}
				}
				b, err := json.Marshal(statusJSON(v, link))
				if err != nil {
					return err
				}
				if string(b) == string(last) {
					return nil // another VM changed
				}
				last = b
				_, err = fmt.Fprintf(env.Stdout, "%s\n", b)
				return err
			})
			switch {
			case errors.Is(err, errPicked):
				return code
			case ctx.Err() != nil:
				return ExitOK // interrupted
			}
			return c.fail(err)
		})
	return cmd
}

// errPicked ends a watch whose NAME could not be resolved (pick said why).
var errPicked = errors.New("NAME not resolved")

// newVMActionCmd is 'vmnetbar start' or 'vmnetbar stop'.
func newVMActionCmd(name string, env Env, code *int) *cobra.Command {
	action := (*control.Client).Start
	long := `Starts a VM of the running app (reading its configuration again) and
waits until it runs or fails. The first start of a VM made from an image
makes its disk from the image first: on a terminal a progress bar on
standard error shows how far that is ("preparing disk [####    ] 42 %");
elsewhere nothing is shown until the VM runs.`
	if name == "stop" {
		action = (*control.Client).Stop
		long = "Stops a VM of the running app gracefully (forced off after its\nstop timeout) and waits until it has stopped."
	}
	cmd, _ := newClientCommand(clientSpec{
		name:      name,
		use:       "[NAME] [--control PATH]",
		short:     name + " a VM of the running app",
		long:      long + "\n\n" + nameHelp,
		example:   fmt.Sprintf("  vmnetbar %s\n  vmnetbar %s dev", name, name),
		takesName: true,
	}, env, code,
		func(c *clientCmd, cl *control.Client, cmdName string) int {
			ctx, stop := signalContext(vmOpTimeout)
			defer stop()
			_, v, code := c.resolve(ctx, cl, cmdName)
			if code >= 0 {
				return code
			}
			var err error
			if name == "start" {
				err = startShowingProgress(ctx, cl, v, newLiveLine(env.Stderr))
			} else {
				err = action(cl, ctx, v.Name)
			}
			if err != nil {
				return c.fail(err)
			}
			now, err := cl.VM(ctx, v.Name)
			if err != nil {
				return c.fail(err)
			}
			if now.Name == "" { // a vmnetbar from before named VMs
				fmt.Fprintf(env.Stdout, "VM is %s\n", now.VM.State)
			} else {
				fmt.Fprintf(env.Stdout, "VM %s is %s\n", now.Name, now.VM.State)
			}
			return ExitOK
		})
	return cmd
}

// startShowingProgress starts the VM v and, while the start lasts, shows
// on line the progress of its long steps (the disk being made from the
// image) as a progress bar. On anything but a terminal it only starts the
// VM. It returns the start's error once the line is cleared.
func startShowingProgress(ctx context.Context, cl *control.Client, v model.VMStatus, line *liveLine) error {
	if !line.tty {
		return cl.Start(ctx, v.Name)
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	started := make(chan error, 1)
	go func() {
		started <- cl.Start(ctx, v.Name)
		cancel()
	}()
	// The status is followed until the start has returned; how the
	// following ends does not matter.
	_, _ = followVM(wctx, cl, v, nil,
		func(model.VMStatus) bool { return false },
		func(v model.VMStatus) {
			if p := v.VM.Progress; p != nil {
				line.show(progressBar(*p))
			} else {
				line.clear()
			}
		})
	err := <-started
	line.clear()
	return err
}

// writeStatus prints the one-screen summary of v (link: a standalone
// link's, which has no VM) and of the overview's configError.
func writeStatus(w io.Writer, v model.VMStatus, link bool, configError string, now time.Time) {
	line := func(label, format string, a ...any) {
		fmt.Fprintf(w, "%-12s %s\n", label+":", fmt.Sprintf(format, a...))
	}
	if !link {
		line("Name", "%s", v.Name)
		vm := v.VM
		s := fmt.Sprintf("%s%s", vm.State, since(vm.Since, now))
		if vm.NotConfigured {
			s = "not configured"
		}
		if vm.Error != "" {
			s += ": " + vm.Error
		}
		line("VM", "%s", s)
		if vm.Note != "" {
			line("Note", "%s", vm.Note)
		}
		if vm.ConfigChanged {
			line("Note", "configuration changed: applies at the next start")
		}
		if vm.Image != "" {
			line("Image", "%s", vm.Image)
		}
		if p := vm.Progress; p != nil {
			line("Progress", "%s %d %%", p.Task, min(max(p.Percent, 0), 100))
		}
	}
	l := v.Link
	line("Link", "%s%s", l.State, since(l.Since, now))
	if h := health(l, now); h != "" {
		line("Health", "%s", h)
	}
	if g := v.Status().LiveGuest(); g.IPv4.IsValid() {
		s := fmt.Sprintf("%s (%s", g.IPv4, g.Source)
		if g.Gateway.IsValid() {
			s += ", gateway " + g.Gateway.String()
		}
		if !g.LeaseExpires.IsZero() {
			s += ", lease until " + g.LeaseExpires.Local().Format("15:04:05")
		}
		line("Guest IP", "%s)", s)
	}
	if !link {
		switch v.VM.SSH {
		case model.SSHReady:
			line("SSH", "ready (%s)", model.ShellJoin(append([]string{"ssh"}, v.SSHArgs()...)))
		case model.SSHWaiting:
			line("SSH", "waiting (%s)", sshWaitReason(v))
		}
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
	if configError != "" {
		line("Config", "the last reload changed nothing: %s", configError)
	}
}

// health says whether the network behind the daemon answers, while the
// link is up or something is known; "" otherwise.
func health(l netlink.Status, now time.Time) string {
	switch {
	case l.Health == netlink.HealthOK && l.GatewayRTT > 0:
		return fmt.Sprintf("ok (the gateway answers in %s)", l.GatewayRTT.Round(10*time.Microsecond))
	case l.Health == netlink.HealthSilent:
		s := "silent: nothing comes from the network behind the daemon"
		if !l.LastRx.IsZero() {
			s += "; the last frame came at " + at(l.LastRx, now)
		}
		return s
	case l.Health != netlink.HealthUnknown || l.State == netlink.StateUp:
		return l.Health.String()
	}
	return ""
}

// since renders " since 15:04:05 (3m12s ago)", or "" for a zero time.
func since(t, now time.Time) string {
	if t.IsZero() {
		return ""
	}
	return " since " + at(t, now)
}

// at renders "15:04:05 (3m12s ago)", with the date when t is not today.
func at(t, now time.Time) string {
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
	return fmt.Sprintf("%s (%s ago)", stamp, human.Duration(ago))
}

func traffic(frames, bytes uint64) string {
	unit := "frames"
	if frames == 1 {
		unit = "frame"
	}
	return fmt.Sprintf("%d %s (%s)", frames, unit, human.Bytes(bytes))
}
