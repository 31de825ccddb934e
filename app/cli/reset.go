package cli

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/vmnetbar/vmnetbar/app/control"
	"github.com/vmnetbar/vmnetbar/app/model"
)

// newResetCmd is 'vmnetbar reset NAME [--yes]': delete the disk of a VM
// made from an image, so that its next start makes it again.
func newResetCmd(env Env, code *int) *cobra.Command {
	var yes bool
	cmd, _ := newClientCommand(clientSpec{
		name:  "reset",
		use:   "NAME [--yes] [--control PATH]",
		short: "delete a stopped VM's disk, so that its next start makes it again from its image",
		long: `Resets a VM made from an image: deletes its disk (everything written in
the VM since its first start), its EFI variables and its cloud-init
instance, so that its next start makes the disk again from the image and
cloud-init sets the guest up as on a first boot. The image itself is never
changed. The VM must be stopped ('vmnetbar stop NAME'); a VM that boots a
kernel has nothing to reset.

NAME is required, even when the app runs one VM: a reset destroys data, so
it never guesses which VM you mean. vmnetbar asks you to confirm by typing
the VM's name; anything else leaves the VM as it is (exit 1). --yes resets
without asking, and is needed when standard input is not a terminal (a
script): without it vmnetbar refuses (exit 2) rather than guess.`,
		example: `  vmnetbar reset dev
  vmnetbar stop dev && vmnetbar reset dev --yes && vmnetbar start dev`,
		takesName: true,
	}, env, code,
		func(c *clientCmd, cl *control.Client, name string) int {
			return c.reset(cl, name, yes)
		})
	cmd.Args = func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 {
			return &usageError{
				msg:  "reset needs the VM's NAME, also when the app runs one VM: it deletes the VM's disk",
				hint: "e.g. 'vmnetbar reset dev'; 'vmnetbar list' shows the names",
			}
		}
		return nameArg(cmd, args)
	}
	cmd.Flags().BoolVar(&yes, "yes", false, "reset without asking to confirm (needed when standard input is not a terminal)")
	return cmd
}

// reset resets the VM called name, after the user confirms unless yes,
// and returns the exit code.
func (c *clientCmd) reset(cl *control.Client, name string, yes bool) int {
	ctx, stop := signalContext(queryTimeout)
	_, v, code := c.resolve(ctx, cl, name)
	stop()
	if code >= 0 {
		return code
	}
	if !yes {
		// Asking about a VM the app would refuse to reset wastes the
		// user's typing: say why at once. With --yes the app decides.
		if why := cannotReset(v); why != "" {
			fmt.Fprintf(c.env.Stderr, "vmnetbar reset: %s\n", why)
			return ExitFailure
		}
		if !readerIsTerminal(c.env.Stdin) {
			fmt.Fprintf(c.env.Stderr, "vmnetbar reset: standard input is not a terminal, so vmnetbar cannot ask you to confirm: pass --yes to reset %s without asking\n", v.Name)
			return ExitUsage
		}
		// No signal handler while the user types: Ctrl-C ends vmnetbar,
		// and nothing is reset.
		if !confirmReset(c.env.Stdin, c.env.Stderr, v) {
			fmt.Fprintf(c.env.Stderr, "vmnetbar reset: not reset: the answer was not %s's name\n", v.Name)
			return ExitFailure
		}
	}
	ctx, stop = signalContext(vmOpTimeout)
	defer stop()
	if err := cl.Reset(ctx, v.Name); err != nil {
		return c.fail(err)
	}
	fmt.Fprintf(c.env.Stdout, "%s is reset: its next start makes its disk again from %s\n", v.Name, imageOf(v))
	return ExitOK
}

// cannotReset says why the app would refuse to reset v now, as the
// control API would; "" when it may.
func cannotReset(v model.VMStatus) string {
	switch {
	case v.VM.Image == "":
		return fmt.Sprintf("cannot reset %s: it boots a kernel, not an image, so it has no disk made from an image", v.Name)
	case !v.Actions.Reset: // starting, running or stopping (model.Allowed)
		return fmt.Sprintf("cannot reset %s: it is %s: stop it first (vmnetbar stop %s)", v.Name, v.VM.State, v.Name)
	}
	return ""
}

// imageOf names v's image, for a message.
func imageOf(v model.VMStatus) string {
	if v.VM.Image == "" {
		return "its image"
	}
	return v.VM.Image
}

// confirmReset asks on out whether to reset v and reads the answer, one
// line, from in: only the VM's name confirms. The end of the input (or a
// read error) is a no.
func confirmReset(in io.Reader, out io.Writer, v model.VMStatus) bool {
	fmt.Fprintf(out, "Reset %s? This deletes its disk (everything written in the VM since its first start) and makes it again from %s at its next start. Type the VM's name to confirm: ", v.Name, imageOf(v))
	// One byte at a time: nothing after the line is taken from in.
	var line strings.Builder
	b := make([]byte, 1)
	for reads := 0; line.Len() < 1024 && reads < 4096; reads++ {
		n, err := in.Read(b)
		if n == 1 && b[0] == '\n' {
			break
		}
		if n == 1 {
			line.WriteByte(b[0])
		}
		if err != nil {
			fmt.Fprintln(out)
			return false
		}
	}
	if line.Len() >= 1024 {
		return false
	}
	return strings.TrimSpace(line.String()) == v.Name
}
