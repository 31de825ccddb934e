// Package cli is vmnetbar's command line: it parses arguments and runs the
// tray app, the headless app, the standalone link or one of the control
// API's clients. Every command returns an exit code; none calls os.Exit.
package cli

import (
	"fmt"
	"io"
	"sort"
	"strings"
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
}

// command is one subcommand.
type command struct {
	name    string
	summary string
	run     func(args []string, env Env) int
}

// commands is the table of subcommands; each lives in its own file.
var commands = map[string]command{}

func register(c command) { commands[c.name] = c }

// Main runs the command line args (without the program name) and returns
// the process exit code. With no subcommand it runs the tray app.
func Main(args []string, env Env) int {
	name := "tray"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		name, args = args[0], args[1:]
	}
	switch name {
	case "help", "-h", "--help":
		usage(env.Stdout)
		return ExitOK
	}
	c, ok := commands[name]
	if !ok {
		fmt.Fprintf(env.Stderr, "vmnetbar: unknown command %q; run 'vmnetbar help' for the list\n", name)
		return ExitUsage
	}
	return c.run(args, env)
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: vmnetbar [command] [flags]")
	fmt.Fprintln(w, "\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-12s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'vmnetbar COMMAND -h' for a command's flags.")
}

func init() {
	register(command{name: "version", summary: "print the version", run: func(_ []string, env Env) int {
		fmt.Fprintf(env.Stdout, "vmnetbar %s\n", env.Version)
		return ExitOK
	}})
}
