package cli

import (
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/vmnetbar/vmnetbar/app/loginitem"
)

func init() {
	register(command{
		name:    "login-item",
		summary: "start vmnetbar at login: on, off or status",
		run:     runLoginItem,
	})
}

const loginItemUsage = `usage: vmnetbar login-item [--config FILE] on|off|status

Makes this vmnetbar executable start with its menu-bar icon whenever you log
in (on), stops that (off) or tells whether it is set (status). On macOS it
is a LaunchAgent, ~/Library/LaunchAgents/io.github.vmnetbar.plist, whose
output goes to ~/Library/Logs/vmnetbar/launchd.log; 'on' also loads it,
which starts vmnetbar now unless it already runs. On Linux it is an XDG
autostart entry, $XDG_CONFIG_HOME/autostart/vmnetbar.desktop.

flags:
`

// runLoginItem runs `vmnetbar login-item`.
func runLoginItem(args []string, env Env) int {
	fs := flag.NewFlagSet("login-item", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), loginItemUsage)
		fs.PrintDefaults()
	}
	cfgFlag := fs.String("config", "", "with on: the configuration file the app started at login uses (default: the per-user one)")
	usageErr := func(format string, a ...any) int {
		fmt.Fprintf(env.Stderr, "vmnetbar login-item: "+format+"\n", a...)
		return ExitUsage
	}
	// Flags may come before or after the action.
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ExitOK
		}
		return ExitUsage
	}
	if fs.NArg() == 0 {
		return usageErr("missing action: use on, off or status")
	}
	action := fs.Arg(0)
	if err := fs.Parse(fs.Args()[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ExitOK
		}
		return ExitUsage
	}
	if fs.NArg() > 0 {
		return usageErr("unexpected argument %q after %s", fs.Arg(0), action)
	}
	switch action {
	case "on", "off", "status":
	default:
		return usageErr("unknown action %q: use on, off or status", action)
	}
	if *cfgFlag != "" && action != "on" {
		return usageErr("--config goes with on only")
	}

	fail := func(err error) int {
		fmt.Fprintf(env.Stderr, "vmnetbar login-item %s: %v\n", action, err)
		return ExitFailure
	}
	if *cfgFlag != "" {
		if _, err := os.Stat(*cfgFlag); err != nil {
			return fail(fmt.Errorf("--config: %w; pass an existing configuration file", err))
		}
	}
	m, exe, err := trayLoginItem(*cfgFlag)
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
