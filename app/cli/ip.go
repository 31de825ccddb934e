package cli

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/spf13/cobra"

	"github.com/vmnetbar/vmnetbar/app/control"
	"github.com/vmnetbar/vmnetbar/app/model"
	"github.com/vmnetbar/vmnetbar/netlink"
	"github.com/vmnetbar/vmnetbar/vmhost"
)

// newIPCmd is 'vmnetbar ip': the guest's address, as the link learned it
// from the guest's own frames (DHCP, ARP, IPv6).
func newIPCmd(env Env, code *int) *cobra.Command {
	var v6 bool
	var wait time.Duration
	cmd, _ := newClientCommand(clientSpec{
		name:  "ip",
		use:   "[NAME] [--6] [--wait DURATION] [--control PATH]",
		short: "print a guest's IPv4 address (--6: IPv6), as the link learned it from the guest's frames",
		long: `Prints the IPv4 address of a VM's guest (--6: its IPv6 addresses, global
ones first), as its link learned it from the guest's own frames (a DHCP
lease, ARP, IPv6). While it is unknown it exits 1 saying why, or with
--wait waits for it.

` + nameHelp,
		example: `  vmnetbar ip
  vmnetbar ip dev --wait 60s
  ssh user@$(vmnetbar ip dev)`,
		takesName: true,
	}, env, code,
		func(c *clientCmd, cl *control.Client, name string) int {
			if wait < 0 {
				fmt.Fprintf(env.Stderr, "vmnetbar ip: --wait %v is negative: give how long to wait, e.g. --wait 60s\n", wait)
				return ExitUsage
			}
			return c.printGuestAddrs(cl, name, v6, wait)
		})
	cmd.Flags().BoolVarP(&v6, "6", "6", false, "print the guest's IPv6 addresses (global ones first), one per line")
	cmd.Flags().DurationVar(&wait, "wait", 0, "wait up to `DURATION` for the address (e.g. 60s) instead of failing at once")
	return cmd
}

// printGuestAddrs prints the addresses of the guest of the VM that name
// means (IPv4, or IPv6 with v6), waiting up to wait for one to be known;
// without one it says why. It returns the exit code.
func (c *clientCmd) printGuestAddrs(cl *control.Client, name string, v6 bool, wait time.Duration) int {
	ctx, stop := signalContext(queryTimeout)
	o, v, code := c.resolve(ctx, cl, name)
	stop()
	if code >= 0 {
		return code
	}
	link := isLink(o)
	addrs := pickAddrs(v.Status().LiveGuest(), v6)
	why := noAddrReason(v, link, v6)
	if len(addrs) == 0 && wait > 0 {
		ctx, stop := signalContext(wait)
		defer stop()
		errFound := errors.New("found")
		err := cl.Watch(ctx, func(o model.Overview) error {
			if link {
				v = o.VMs[0]
			} else if nv, ok := o.Lookup(v.Name); ok {
				v = nv
			} else {
				return &errVMGone{v.Name}
			}
			if addrs = pickAddrs(v.Status().LiveGuest(), v6); len(addrs) > 0 {
				return errFound
			}
			return nil
		})
		switch {
		case errors.Is(err, errFound):
		case ctx.Err() != nil || err == nil:
			why = fmt.Sprintf("%s (waited %v)", noAddrReason(v, link, v6), wait)
		default:
			return c.fail(err)
		}
	}
	if len(addrs) == 0 {
		fmt.Fprintf(c.env.Stderr, "vmnetbar ip: %s\n", why)
		return ExitFailure
	}
	for _, a := range addrs {
		fmt.Fprintln(c.env.Stdout, a)
	}
	return ExitOK
}

// pickAddrs is the guest's IPv4 address, or its IPv6 addresses with v6
// (global ones before link-local ones).
func pickAddrs(g netlink.Guest, v6 bool) []netip.Addr {
	if !v6 {
		if g.IPv4.IsValid() {
			return []netip.Addr{g.IPv4}
		}
		return nil
	}
	var global, local []netip.Addr
	for _, a := range g.IPv6Addrs() {
		if a.IsLinkLocalUnicast() {
			local = append(local, a)
		} else {
			global = append(global, a)
		}
	}
	return append(global, local...)
}

// noAddrReason says why the address of v's guest (link: a standalone
// link's, which has no VM) is not known.
func noAddrReason(v model.VMStatus, link bool, v6 bool) string {
	switch {
	case !link && v.VM.State != vmhost.StateRunning && v.VM.State != vmhost.StateStarting:
		return fmt.Sprintf("the VM %s is %s: start it first", v.Name, v.VM.State)
	case v6:
		return "no IPv6 frame seen from the guest yet"
	default:
		return "no DHCP or ARP seen from the guest yet"
	}
}
