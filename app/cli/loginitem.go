package cli

import (
	"errors"
	"fmt"
	"os"
	"slices"

	"github.com/spf13/cobra"

	"github.com/vmnetbar/vmnetbar/app/loginitem"
)

// loginItemActions are the arguments of 'vmnetbar login-item'.
var loginItemActions = []string{"on", "off", "status"}

// newLoginItemCmd is 'vmnetbar login-item'.
func newLoginItemCmd(env Env, code *int) *cobra.Command {
	var cfgFlag string
	cmd := &cobra.Command{
		Use:                   "login-item [--config FILE] on|off|status",
		Short:                 "start vmnetbar at login: on, off or status",
		Long:                  loginItemLong,
		Args:                  loginItemArgs,
		ValidArgs:             loginItemActions,
		DisableFlagsInUseLine: true,
		RunE: runs(code, func(_ *cobra.Command, args []string) int {
			return runLoginItem(args[0], cfgFlag, env)
		}),
	}
	addConfigFlag(cmd, &cfgFlag, "with on: the configuration `FILE` the app started at login uses (default: the per-user one)")
	return cmd
}

const loginItemLong = `Makes this vmnetbar executable start with its menu-bar icon whenever you log
in (on), stops that (off) or tells whether it is set (status). On macOS it
is a LaunchAgent, ~/Library/LaunchAgents/io.github.vmnetbar.plist, whose
output goes to ~/Library/Logs/vmnetbar/launchd.log; 'on' also loads it,
which starts vmnetbar now unless it already runs. On Linux it is an XDG
autostart entry, $XDG_CONFIG_HOME/autostart/vmnetbar.desktop.`

// loginItemArgs checks the action (flags may come before or after it).
func loginItemArgs(_ *cobra.Command, args []string) error {
	switch {
	case len(args) == 0:
		return errors.New("missing action: use on, off or status")
	case !slices.Contains(loginItemActions, args[0]):
		return fmt.Errorf("unknown action %q: use on, off or status", args[0])
	case len(args) > 1:
		return fmt.Errorf("unexpected argument %q after %s", args[1], args[0])
	}
	return nil
}

// runLoginItem runs 'vmnetbar login-item ACTION'.
func runLoginItem(action, cfgFlag string, env Env) int {
	if cfgFlag != "" && action != "on" {
		fmt.Fprintf(env.Stderr, "vmnetbar login-item: --config goes with on only\n")
		return ExitUsage
	}

	fail := func(err error) int {
		fmt.Fprintf(env.Stderr, "vmnetbar login-item %s: %v\n", action, err)
		return ExitFailure
	}
	if cfgFlag != "" {
		if _, err := os.Stat(cfgFlag); err != nil {
			return fail(fmt.Errorf("--config: %w; pass an existing configuration file", err))
		}
	}
	m, exe, err := trayLoginItem(cfgFlag, "")
	if err != nil {
		return fail(err)
	}
	where := ""
	if p, ok := m.(interface{ Path() string }); ok {
		where = " (" + p.Path() + ")"
	}

	switch action {
	case "on":
		// The same check as the tray's checkbox (which refuses a
		// temporary place); asked for by name here, it only warns.
		if p := loginitem.CheckLocation(exe); p != nil {
			fmt.Fprintf(env.Stderr, "vmnetbar login-item: warning: %v\n", p)
		}
		if err := m.Enable(); err != nil {
			return fail(err)
		}
		fmt.Fprintf(env.Stdout, "launch at login: on%s\n", where)
	case "off":
		if err := m.Disable(); err != nil {
			return fail(err)
		}
		fmt.Fprintln(env.Stdout, "launch at login: off")
	case "status":
		on, err := m.Enabled()
		if err != nil {
			return fail(err)
		}
		if on {
			fmt.Fprintf(env.Stdout, "launch at login: on%s\n", where)
		} else {
			fmt.Fprintln(env.Stdout, "launch at login: off")
		}
	}
	return ExitOK
}
