// Package cli is vmnetbar's command line: it parses arguments and runs the
// tray app, the headless app, the standalone link or one of the control
// API's clients. Every command returns an exit code; none calls os.Exit.
//
// The command line is built with spf13/cobra, which gives the help, the
// shell completion and the flag errors. Each command lives in its own file
// and is made by a newXxxCmd function that newRootCmd lists.
package cli

import (
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Exit codes.
const (
	ExitOK      = 0 // success
	ExitFailure = 1 // the command ran and failed
	ExitUsage   = 2 // bad arguments or bad input
)

// Env is what a command may touch of the process.
type Env struct {
	Version string
	Stdin   io.Reader
	Stdout  io.Writer
	Stderr  io.Writer
	// Alerter shows why the app did not start to a user who cannot see
	// standard error (an app started from Finder or at login). nil: the
	// platform's (an alert on macOS, a desktop notification on Linux).
	Alerter Alerter
}

// Main runs the command line args (without the program name) and returns
// the process exit code. With no command it runs the tray app.
func Main(args []string, env Env) int {
	code := ExitOK
	root := newRootCmd(env, &code)
	// A nil slice would make cobra read os.Args.
	root.SetArgs(append([]string{}, normalizeArgs(root, dropPSN(args))...))
	cmd, err := root.ExecuteC()
	if err != nil {
		if cmd == nil {
			cmd = root
		}
		hint := fmt.Sprintf("run '%s --help' for its usage", cmd.CommandPath())
		var ue *usageError
		if errors.As(err, &ue) && ue.hint != "" {
			hint = ue.hint
		}
		fmt.Fprintf(env.Stderr, "%s: %v; %s\n", cmd.CommandPath(), err, hint)
		return ExitUsage
	}
	return code
}

// newRootCmd makes the command tree. A command's body stores its exit
// code in *code; an error returned to cobra is bad usage.
func newRootCmd(env Env, code *int) *cobra.Command {
	version := env.Version
	if version == "" {
		version = "unknown"
	}
	var app appFlags
	root := &cobra.Command{
		Use:   "vmnetbar",
		Short: "a menu-bar app that runs Linux VMs and keeps their links to socket_vmnet up",
		Long: `vmnetbar boots Linux VMs and forwards each one's network to socket_vmnet,
reconnecting whenever the daemon restarts. Without a command it runs the app
with its menu-bar icon (the same as 'vmnetbar tray'); the flags below are
that command's.`,
		Args:          rootArgs,
		Version:       version,
		SilenceErrors: true,
		SilenceUsage:  true,
		RunE:          runs(code, func(_ *cobra.Command, _ []string) int { return runApp("tray", app, env) }),
	}
	root.SuggestionsMinimumDistance = 2
	root.SetIn(env.Stdin)
	root.SetOut(env.Stdout)
	root.SetErr(env.Stderr)
	root.SetVersionTemplate("vmnetbar {{.Version}}\n")
	root.SetHelpCommand(newHelpCmd())
	addAppFlags(root, &app)
	root.AddCommand(
		newAppCmd("run", env, code),
		newAppCmd("tray", env, code),
		newListCmd(env, code),
		newStatusCmd(env, code),
		newIPCmd(env, code),
		newSSHCmd(env, code),
		newWatchCmd(env, code),
		newVMActionCmd("start", env, code),
		newVMActionCmd("stop", env, code),
		newReconnectCmd(env, code),
		newResetCmd(env, code),
		newLoginItemCmd(env, code),
		newLinkCmd(env, code),
		&cobra.Command{
			Use:               "version",
			Short:             "print the version (the same as --version)",
			Args:              noArgs,
			ValidArgsFunction: cobra.NoFileCompletions,
			RunE: runs(code, func(*cobra.Command, []string) int {
				fmt.Fprintf(env.Stdout, "vmnetbar %s\n", version)
				return ExitOK
			}),
		},
	)
	setUpCompletion(root)
	return root
}

// setUpCompletion adds cobra's 'vmnetbar completion bash|zsh|fish|powershell'
// now, to make an unknown shell bad usage (cobra shows the help and exits
// 0).
func setUpCompletion(root *cobra.Command) {
	root.InitDefaultCompletionCmd()
	for _, c := range root.Commands() {
		if c.Name() != "completion" {
			continue
		}
		var shells []string
		for _, s := range c.Commands() {
			shells = append(shells, s.Name())
		}
		c.Short = "print the shell completion script: " + strings.Join(shells, ", ")
		c.Args = func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return fmt.Errorf("unknown shell %q: use one of %s", args[0], strings.Join(shells, ", "))
			}
			return nil
		}
		c.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
	}
}

// runs adapts a command body that returns an exit code to cobra.
func runs(code *int, f func(cmd *cobra.Command, args []string) int) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		*code = f(cmd, args)
		return nil
	}
}

// usageError is bad usage found by an Args check, with what to do about it
// (default: look at the command's help).
type usageError struct {
	msg  string
	hint string
}

func (e *usageError) Error() string { return e.msg }

// rootArgs refuses an argument of plain 'vmnetbar': it is a mistyped command.
func rootArgs(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	msg := fmt.Sprintf("unknown command %q", args[0])
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		msg += fmt.Sprintf(" (did you mean %s?)", strings.Join(s, " or "))
	}
	return &usageError{msg: msg, hint: "run 'vmnetbar help' for the list of commands"}
}

// noArgs is the Args check of a command that takes only flags.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return fmt.Errorf("unexpected argument %q: 'vmnetbar %s' takes only flags", args[0], cmd.Name())
	}
	return nil
}

// newHelpCmd is 'vmnetbar help [command]'. Unlike cobra's own, an unknown
// topic is bad usage (exit 2).
func newHelpCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "help [command]",
		Short: "show the list of commands, or a command's help",
		Args:  cobra.ArbitraryArgs,
		ValidArgsFunction: func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
			target := findCommand(cmd.Root(), args)
			if target == nil {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			var out []cobra.Completion
			for _, c := range target.Commands() {
				if (c.IsAvailableCommand() || c.Name() == "help") && strings.HasPrefix(c.Name(), toComplete) {
					out = append(out, cobra.CompletionWithDesc(c.Name(), c.Short))
				}
			}
			return out, cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			target := findCommand(cmd.Root(), args)
			if target == nil {
				return &usageError{
					msg:  fmt.Sprintf("unknown command %q", strings.Join(args, " ")),
					hint: "run 'vmnetbar help' for the list of commands",
				}
			}
			target.InitDefaultHelpFlag()
			target.InitDefaultVersionFlag()
			return target.Help()
		},
	}
}

// findCommand follows the command names in path from root, or returns nil.
func findCommand(root *cobra.Command, path []string) *cobra.Command {
	c := root
next:
	for _, name := range path {
		for _, sub := range c.Commands() {
			if sub.Name() == name || sub.HasAlias(name) {
				c = sub
				continue next
			}
		}
		return nil
	}
	return c
}

// psnArg is the process serial number argument macOS LaunchServices adds
// on the first launch of a quarantined copy (-psn_0_1234567).
var psnArg = regexp.MustCompile(`^-psn_\d+_\d+$`)

// dropPSN removes LaunchServices' -psn_ arguments from args.
func dropPSN(args []string) []string {
	out := make([]string, 0, len(args))
	for _, a := range args {
		if !psnArg.MatchString(a) {
			out = append(out, a)
		}
	}
	return out
}

// normalizeArgs turns single-dash long flags (-config FILE, -json), which
// vmnetbar accepted before it used cobra, into the double-dash ones cobra
// parses. Only names of vmnetbar's long flags are changed, never a flag's
// value, and nothing after "--".
func normalizeArgs(root *cobra.Command, args []string) []string {
	takesValue := map[string]bool{"help": false, "version": false}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		c.LocalFlags().VisitAll(func(f *pflag.Flag) { takesValue[f.Name] = f.NoOptDefVal == "" })
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	out := make([]string, 0, len(args))
	value := false // the previous argument is a flag waiting for its value
	for i, a := range args {
		if a == "--" {
			return append(out, args[i:]...)
		}
		if value {
			value = false
			out = append(out, a)
			continue
		}
		name, hasValue := a, false
		if strings.HasPrefix(a, "--") {
			name = a[2:]
		} else if strings.HasPrefix(a, "-") && len(a) > 2 {
			name = a[1:]
		} else {
			out = append(out, a)
			continue
		}
		if i := strings.IndexByte(name, '='); i >= 0 {
			name, hasValue = name[:i], true
		}
		tv, known := takesValue[name]
		if known && !strings.HasPrefix(a, "--") {
			a = "-" + a
		}
		value = known && tv && !hasValue
		out = append(out, a)
	}
	return out
}
