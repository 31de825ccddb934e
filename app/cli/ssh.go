package cli

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/vmnetbar/vmnetbar/app/control"
	"github.com/vmnetbar/vmnetbar/app/model"
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
		Short: "log in to a VM's guest with ssh, as its ssh_user, at the address its link learned",
		Long: `Runs the system ssh to USER@ADDRESS: ADDRESS is the guest's IPv4 address
as the VM's link learned it from the guest's own frames ('vmnetbar ip'),
USER the VM's ssh_user (default: your login name). Everything after '--'
goes to ssh: options, and a command to run instead of a login shell.
vmnetbar exits with ssh's exit status. While the address is unknown it
exits 1 saying why, or with --wait waits for it. $` + sshEnv + ` names another
ssh program.

` + nameHelp,
		Example: `  vmnetbar ssh
  vmnetbar ssh dev
  vmnetbar ssh dev -- uname -a
  vmnetbar ssh dev --wait 2m -- -L 8080:localhost:80`,
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
			return c.ssh(cl, name, rest, wait)
		}),
	}
	addControlFlag(cmd, &c.control, controlFlagHelp)
	cmd.Flags().DurationVar(&wait, "wait", 0, "wait up to `DURATION` for the guest's address (e.g. 2m) instead of failing at once")
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

// ssh runs ssh to the guest of the VM that name means and returns its exit
// status (or vmnetbar's, when ssh could not run).
func (c *clientCmd) ssh(cl *control.Client, name string, args []string, wait time.Duration) int {
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
	if !v.Link.Guest.IPv4.IsValid() && wait > 0 {
		ctx, stop := signalContext(wait)
		errFound := errors.New("found")
		err := cl.Watch(ctx, func(o model.Overview) error {
			nv, ok := o.Lookup(v.Name)
			if !ok {
				return &errVMGone{v.Name}
			}
			if v = nv; v.Link.Guest.IPv4.IsValid() {
				return errFound
			}
			return nil
		})
		stop()
		if err != nil && !errors.Is(err, errFound) && ctx.Err() == nil {
			return c.fail(err)
		}
	}
	if !v.Link.Guest.IPv4.IsValid() {
		fmt.Fprintf(c.env.Stderr, "vmnetbar ssh: %s\n", noAddrReason(v, false, false))
		return ExitFailure
	}
	if v.VM.SSHUser == "" {
		fmt.Fprintf(c.env.Stderr, "vmnetbar ssh: no user to log in as: set ssh_user for VM %s in vmnetbar's configuration file\n", v.Name)
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
	return runSSH(path, sshCommand(v), args, c.env)
}

// sshCommand is the ssh destination for v: USER@ADDRESS.
func sshCommand(v model.VMStatus) string {
	return v.VM.SSHUser + "@" + v.Link.Guest.IPv4.String()
}

// runSSH runs ssh to dest with args, on vmnetbar's own terminal, and
// returns its exit status. A terminal's Ctrl-C reaches ssh (and through it
// the remote command); vmnetbar waits for ssh instead of dying of it, and
// passes a SIGTERM on.
func runSSH(path, dest string, args []string, env Env) int {
	cmd := exec.Command(path, append([]string{dest}, args...)...)
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
