package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/vmnetbar/vmnetbar/app/control"
	"github.com/vmnetbar/vmnetbar/app/model"
	"github.com/vmnetbar/vmnetbar/vmhost"
)

// sshEnv names the ssh program 'vmnetbar ssh' runs instead of the ssh on
// PATH (another build of OpenSSH, or a wrapper).
const sshEnv = "VMNETBAR_SSH"

// newSSHCmd is 'vmnetbar ssh [NAME] [-- ARGS...]': the system ssh to the
// guest's address, as the VM's SSH user.
func newSSHCmd(env Env, code *int) *cobra.Command {
	var wait time.Duration
	c := &clientCmd{name: "ssh", env: env}
	cmd := &cobra.Command{
		Use:   "ssh [NAME] [--wait DURATION] [--control PATH] [-- SSH ARGUMENTS...]",
		Short: "log in to a VM's guest with ssh, as its ssh_user, once its SSH is ready",
		Long: `Runs the system ssh to the guest of a VM, as the VM's ssh_user (default:
your login name), at the VM's ssh_address (HOST:PORT) when it has one, else
at port 22 of the guest's IPv4 address as the VM's link learned it from the
guest's own frames ('vmnetbar ip'). Everything after '--' goes to ssh:
options, and a command to run instead of a login shell. vmnetbar exits with
ssh's exit status. $` + sshEnv + ` names another ssh program.

For a VM made from an image, ssh logs in with vmnetbar's own key when the
VM has one (-i KEY -o IdentitiesOnly=yes: the key its cloud-init seed
authorized) and keeps the guest's host key in the VM's own known_hosts
file (StrictHostKeyChecking=accept-new: the first key is kept, a changed
one is refused; 'vmnetbar reset' starts a new file).

It first waits until the guest's SSH port accepts (the status's "ssh":
"ready"): up to 5m for a VM made from an image, with a spinner on a
terminal that says what it waits for (the disk being prepared, the boot,
the guest's address). --wait DURATION waits that long instead; --wait 0
does not wait (ssh runs at once if the address is known, else vmnetbar
exits 1 saying why). A VM that boots a kernel is not waited for unless
--wait is given, since its guest may run no SSH server. A VM that is
stopped, or stops or fails while waited for, exits 1 saying so ('vmnetbar
start NAME' starts it).

` + nameHelp,
		Example: `  vmnetbar ssh
  vmnetbar ssh dev
  vmnetbar ssh dev -- uname -a
  vmnetbar ssh dev --wait 10m -- cloud-init status --wait
  vmnetbar ssh dev --wait 0 -- -L 8080:localhost:80`,
		Args:                  sshArgs,
		ValidArgsFunction:     c.completeVMNames,
		DisableFlagsInUseLine: true,
		RunE: runs(code, func(cmd *cobra.Command, args []string) int {
			name, rest := splitAtDash(cmd, args)
			if wait < 0 {
				fmt.Fprintf(env.Stderr, "vmnetbar ssh: --wait %v is negative: give how long to wait, e.g. --wait 60s\n", wait)
				return ExitUsage
			}
			cl, code := c.client()
			if cl == nil {
				return code
			}
			return c.ssh(cl, name, rest, wait, cmd.Flags().Changed("wait"))
		}),
	}
	addControlFlag(cmd, &c.control, controlFlagHelp)
	cmd.Flags().DurationVar(&wait, "wait", 0, "wait up to `DURATION` for the guest's SSH to be ready (default: 5m for a VM made from an image, no wait for a VM that boots a kernel; 0: do not wait)")
	return cmd
}

// splitAtDash returns the NAME before '--' ("" when left out) and the
// arguments after it.
func splitAtDash(cmd *cobra.Command, args []string) (string, []string) {
	before, after := args, []string(nil)
	if dash := cmd.ArgsLenAtDash(); dash >= 0 {
		before, after = args[:dash], args[dash:]
	}
	if len(before) == 0 {
		return "", after
	}
	return before[0], after
}

// sshArgs checks the arguments of 'vmnetbar ssh': at most one NAME
// before '--'.
func sshArgs(cmd *cobra.Command, args []string) error {
	before := args
	if dash := cmd.ArgsLenAtDash(); dash >= 0 {
		before = args[:dash]
	}
	if len(before) > 1 {
		return fmt.Errorf("unexpected argument %q: give at most one VM NAME, and put ssh's own arguments after '--' (vmnetbar ssh NAME -- ARGS)", before[1])
	}
	return nameArg(cmd, before)
}

// defaultSSHWait is how long 'vmnetbar ssh' waits for the SSH of a VM
// made from an image to be ready, unless --wait says otherwise.
const defaultSSHWait = 5 * time.Minute

// sshWait is how long 'vmnetbar ssh' waits for v's SSH to be ready: the
// --wait given (set), else defaultSSHWait for a VM made from an image,
// else 0. A VM that boots a kernel is not waited for unless --wait says
// so: its guest may run no SSH server at all, and ssh says so at once.
func sshWait(v model.VMStatus, wait time.Duration, set bool) time.Duration {
	switch {
	case set:
		return wait
	case v.VM.Image != "":
		return defaultSSHWait
	}
	return 0
}

// vmDown says why a VM that neither starts nor runs has no guest to log
// in to, and what to do; "" while it starts or runs.
func vmDown(v model.VMStatus) string {
	switch v.VM.State {
	case vmhost.StateStarting, vmhost.StateRunning:
		return ""
	case vmhost.StateError:
		if v.VM.Error == "" {
			return fmt.Sprintf("%s failed: vmnetbar start %s", v.Name, v.Name)
		}
		return fmt.Sprintf("%s failed (%s): vmnetbar start %s", v.Name, v.VM.Error, v.Name)
	case vmhost.StateStopping:
		return fmt.Sprintf("%s is stopping: wait until it has stopped, then vmnetbar start %s", v.Name, v.Name)
	}
	return fmt.Sprintf("%s is stopped: vmnetbar start %s", v.Name, v.Name)
}

// ssh runs ssh to the guest of the VM that name means and returns its exit
// status (or vmnetbar's, when ssh could not run). It waits for the guest's
// SSH to be ready as sshWait says, with a spinner on a terminal.
func (c *clientCmd) ssh(cl *control.Client, name string, args []string, wait time.Duration, waitSet bool) int {
	ctx, stop := signalContext(queryTimeout)
	o, v, code := c.resolve(ctx, cl, name)
	stop()
	if code >= 0 {
		return code
	}
	if isLink(o) {
		fmt.Fprintln(c.env.Stderr, "vmnetbar ssh: this vmnetbar is a standalone link ('vmnetbar link'): it knows the guest's address ('vmnetbar ip') but not its user; run ssh USER@$(vmnetbar ip)")
		return ExitUsage
	}
	if v.VM.SSHUser == "" {
		fmt.Fprintf(c.env.Stderr, "vmnetbar ssh: no user to log in as: set ssh_user for VM %s in vmnetbar's configuration file\n", v.Name)
		return ExitFailure
	}
	if why := vmDown(v); why != "" {
		fmt.Fprintf(c.env.Stderr, "vmnetbar ssh: %s\n", why)
		return ExitFailure
	}
	if d := sshWait(v, wait, waitSet); d > 0 && !sshWaitOver(v) {
		var code int
		if v, code = c.waitForSSH(cl, v, d); code >= 0 {
			return code
		}
	}
	if _, ok := sshDestination(v); !ok {
		fmt.Fprintf(c.env.Stderr, "vmnetbar ssh: %s\n", noAddrReason(v, false, false))
		return ExitFailure
	}
	prog := os.Getenv(sshEnv)
	if prog == "" {
		prog = "ssh"
	}
	path, err := exec.LookPath(prog)
	if err != nil {
		fmt.Fprintf(c.env.Stderr, "vmnetbar ssh: cannot run %s: %v (install OpenSSH's client, or set $%s)\n", prog, err, sshEnv)
		return ExitFailure
	}
	return runSSH(path, v.SSHArgs(), args, c.env)
}

// waitForSSH waits up to d for v's SSH to be ready, turning a spinner on
// a terminal. It returns the VM's latest status, and an exit code (having
// said why) unless it became ready.
func (c *clientCmd) waitForSSH(cl *control.Client, v model.VMStatus, d time.Duration) (model.VMStatus, int) {
	ctx, stop := signalContext(d)
	defer stop()
	line := newLiveLine(c.env.Stderr)
	var tick <-chan time.Time
	if line.tty {
		t := time.NewTicker(spinEvery)
		defer t.Stop()
		tick = t.C
	}
	frame := 0
	v, err := followVM(ctx, cl, v, tick, sshWaitOver,
		func(v model.VMStatus) {
			line.show(spinFrames[frame%len(spinFrames)] + " " + sshWaitText(v))
			frame++
		})
	line.clear()
	var gone *errVMGone
	switch {
	case err == nil && vmDown(v) != "":
		fmt.Fprintf(c.env.Stderr, "vmnetbar ssh: %s\n", vmDown(v))
		return v, ExitFailure
	case err == nil:
		return v, -1
	case errors.Is(err, context.DeadlineExceeded):
		msg := fmt.Sprintf("%s's SSH is not ready after %v (%s)", v.Name, d, sshWaitReason(v))
		if v.VM.ConsoleLog != "" {
			msg += "; its console log is " + v.VM.ConsoleLog
		}
		fmt.Fprintf(c.env.Stderr, "vmnetbar ssh: %s; wait longer with --wait, or --wait 0 to try at once\n", msg)
		return v, ExitFailure
	case errors.Is(err, context.Canceled):
		return v, ExitFailure // interrupted
	case errors.As(err, &gone):
		fmt.Fprintf(c.env.Stderr, "vmnetbar ssh: %v\n", err)
		return v, ExitFailure
	}
	return v, c.fail(err)
}

// sshWaitOver reports whether a wait for v's SSH is over: it is ready, or
// the VM neither starts nor runs. A known address is not enough: the
// guest's SSH server starts later. A vmnetbar from before the SSH check,
// whose status has no "ssh", is waited for until the address is known.
func sshWaitOver(v model.VMStatus) bool {
	if v.VM.SSH == "" {
		_, known := sshDestination(v)
		return known || vmDown(v) != ""
	}
	return v.VM.SSH == model.SSHReady || vmDown(v) != ""
}

// sshDestination is where v's SSH server is: its ssh_address (HOST:PORT),
// else port 22 of the guest's IPv4 address; ok is false while neither is
// known.
func sshDestination(v model.VMStatus) (hostPort string, ok bool) {
	if v.VM.SSHAddress != "" {
		return v.VM.SSHAddress, true
	}
	if a := v.Status().LiveGuest().IPv4; a.IsValid() {
		return net.JoinHostPort(a.String(), "22"), true
	}
	return "", false
}

// runSSH runs ssh with argv (model.VMStatus.SSHArgs) and then the user's args, on
// vmnetbar's own terminal, and returns its exit status. A terminal's Ctrl-C reaches ssh (and through it
// the remote command); vmnetbar waits for ssh instead of dying of it, and
// passes a SIGTERM on.
func runSSH(path string, argv, args []string, env Env) int {
	cmd := exec.Command(path, append(slices.Clip(argv), args...)...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = env.Stdin, env.Stdout, env.Stderr
	if cmd.Stdin == nil {
		cmd.Stdin = os.Stdin
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(env.Stderr, "vmnetbar ssh: %v\n", err)
		return ExitFailure
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	for {
		select {
		case sig := <-sigs:
			if sig == syscall.SIGTERM || sig == syscall.SIGHUP {
				_ = cmd.Process.Signal(sig)
			}
			// SIGINT and SIGQUIT from a terminal reach ssh directly.
		case err := <-done:
			var ee *exec.ExitError
			switch {
			case err == nil:
				return ExitOK
			case errors.As(err, &ee) && ee.ExitCode() >= 0:
				return ee.ExitCode()
			default:
				fmt.Fprintf(env.Stderr, "vmnetbar ssh: ssh ended: %v\n", err)
				return ExitFailure
			}
		}
	}
}
