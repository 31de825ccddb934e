package cli

import (
	"strings"

	"github.com/spf13/cobra"
)

// The flags several commands share are made here, so that each has one
// name, one syntax (--flag VALUE or --flag=VALUE) and one completion
// everywhere; only the help text says what the flag means to the command.
// A word in backquotes in the help text names the value in the help
// (--config FILE).

// addConfigFlag adds --config FILE (completes YAML files).
func addConfigFlag(cmd *cobra.Command, p *string, usage string) {
	cmd.Flags().StringVar(p, "config", "", usage)
	_ = cmd.RegisterFlagCompletionFunc("config", func(*cobra.Command, []string, string) ([]cobra.Completion, cobra.ShellCompDirective) {
		return []cobra.Completion{"yaml", "yml"}, cobra.ShellCompDirectiveFilterFileExt
	})
}

// addControlFlag adds --control PATH (completes file names).
func addControlFlag(cmd *cobra.Command, p *string, usage string) {
	cmd.Flags().StringVar(p, "control", "", usage)
	_ = cmd.RegisterFlagCompletionFunc("control", func(*cobra.Command, []string, string) ([]cobra.Completion, cobra.ShellCompDirective) {
		return nil, cobra.ShellCompDirectiveDefault
	})
}

// addLogLevelFlag adds --log-level LEVEL (completes the levels).
func addLogLevelFlag(cmd *cobra.Command, p *string, def, usage string) {
	cmd.Flags().StringVar(p, "log-level", def, usage)
	_ = cmd.RegisterFlagCompletionFunc("log-level", func(_ *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		var out []cobra.Completion
		for _, l := range logLevels {
			if strings.HasPrefix(l, strings.ToLower(toComplete)) {
				out = append(out, l)
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	})
}
