package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/vmnetbar/vmnetbar/app/control"
	"github.com/vmnetbar/vmnetbar/app/internal/human"
	"github.com/vmnetbar/vmnetbar/app/model"
	"github.com/vmnetbar/vmnetbar/vmhost"
)

// newListCmd is 'vmnetbar list': one line per VM, as 'limactl list' does.
func newListCmd(env Env, code *int) *cobra.Command {
	var asJSON bool
	cmd, _ := newClientCommand(clientSpec{
		name:  "list",
		use:   "[--json] [--control PATH]",
		short: "list the VMs: one line each with its state, link, reconnects, traffic, address, SSH and image",
		long: `Lists the VMs of the running app, one line each: NAME, the VM's state
(with the time in it while it runs, starts or stops), the LINK's state, its
RECONNECTS, the traffic from the VM to socket_vmnet (TX) and back (RX), the
guest's IPv4 address, whether its SSH is ready or waiting, and the IMAGE
its disk was made from (a VM that boots a kernel has none); "-" for what is
not known. While a start makes the VM's disk from its image, the VM column
says how far it is ("starting 12s (preparing disk 42%)"). --json prints
the control API's answer to GET /v1/status: {"vms": [VMSTATUS, ...]}.`,
		example: `  vmnetbar list
  vmnetbar list --json | jq -r '.vms[].name'`,
	}, env, code,
		func(c *clientCmd, cl *control.Client, _ string) int {
			ctx, stop := signalContext(queryTimeout)
			defer stop()
			o, err := cl.Overview(ctx)
			if err != nil {
				return c.fail(err)
			}
			if asJSON {
				if o.VMs == nil {
					o.VMs = []model.VMStatus{} // [], not null
				}
				b, err := json.MarshalIndent(o, "", "  ")
				if err != nil {
					return c.fail(err)
				}
				fmt.Fprintf(env.Stdout, "%s\n", b)
				return ExitOK
			}
			if err := writeList(env.Stdout, o, time.Now()); err != nil {
				return c.fail(err)
			}
			if o.ConfigError != "" {
				fmt.Fprintf(env.Stderr, "vmnetbar list: the last reload of the configuration changed nothing: %s\n", o.ConfigError)
			}
			return ExitOK
		})
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the control API's JSON ({\"vms\": [VMSTATUS, ...]}) instead of the table")
	return cmd
}

// writeList prints o as a table with a header line, columns aligned.
func writeList(w io.Writer, o model.Overview, now time.Time) error {
	if len(o.VMs) == 0 {
		_, err := fmt.Fprintln(w, "no VMs configured")
		return err
	}
	tw := tabwriter.NewWriter(w, 4, 8, 3, ' ', 0)
	fmt.Fprintln(tw, "NAME\tVM\tLINK\tRECONNECTS\tTX\tRX\tIP\tSSH\tIMAGE")
	link := isLink(o)
	for _, v := range o.VMs {
		name, vm := v.Name, vmCell(v, now)
		if link {
			name, vm = "-", "-"
		}
		ip := "-"
		if a := v.Status().LiveGuest().IPv4; a.IsValid() {
			ip = a.String()
		}
		ssh, image := "-", "-"
		if v.VM.SSH == model.SSHReady || v.VM.SSH == model.SSHWaiting {
			ssh = string(v.VM.SSH)
		}
		if v.VM.Image != "" {
			image = filepath.Base(v.VM.Image)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", name, vm, v.Link.State,
			strconv.FormatUint(v.Link.Reconnects, 10),
			human.CompactBytes(v.Link.TxBytes), human.CompactBytes(v.Link.RxBytes), ip, ssh, image)
	}
	return tw.Flush()
}

// vmCell is a VM's state as the list shows it: "running 2h14m" (the time
// in a state that ends by itself or by a stop), "stopped", "error",
// "not-configured", and the step a start is busy with: "starting 12s
// (preparing disk 42%)".
func vmCell(v model.VMStatus, now time.Time) string {
	if v.VM.NotConfigured {
		return "not-configured"
	}
	s := v.VM.State.String()
	switch v.VM.State {
	case vmhost.StateRunning, vmhost.StateStarting, vmhost.StateStopping:
		if !v.VM.Since.IsZero() {
			s += " " + compactDuration(now.Sub(v.VM.Since))
		}
	}
	if p := v.VM.Progress; p != nil {
		s += fmt.Sprintf(" (%s %d%%)", p.Task, min(max(p.Percent, 0), 100))
	}
	return s
}

// compactDuration is human.Duration without spaces ("2h14m"), for a table
// cell.
func compactDuration(d time.Duration) string {
	return strings.ReplaceAll(human.Duration(d), " ", "")
}
