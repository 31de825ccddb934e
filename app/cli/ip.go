package cli

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/spf13/cobra"

	"github.com/vmnetbar/vmnetbar/app/control"
	"github.com/vmnetbar/vmnetbar/netlink"
	"github.com/vmnetbar/vmnetbar/vmhost"
)

// newIPCmd is 'vmnetbar ip': the guest's address, as the link learned it
// from the guest's own frames (DHCP, ARP, IPv6).
func newIPCmd(env Env, code *int) *cobra.Command {
	var v6 bool
	var wait time.Duration
	cmd, _ := newClientCommand("ip", "ip [--6] [--wait DURATION] [--control PATH]",
		"print the guest's IPv4 address (--6: IPv6), as the link learned it from the guest's frames", env, code,
		func(c *clientCmd, cl *control.Client) int {
			if wait < 0 {
				fmt.Fprintf(env.Stderr, "vmnetbar ip: --wait %v is negative: give how long to wait, e.g. --wait 60s\n", wait)
				return ExitUsage
			}
			addrs, why, err := guestAddrs(cl, v6, wait)
			if err != nil {
				return c.fail(err)
			}
			if len(addrs) == 0 {
				fmt.Fprintf(env.Stderr, "vmnetbar ip: %s\n", why)
				return ExitFailure
			}
			for _, a := range addrs {
				fmt.Fprintln(env.Stdout, a)
			}
			return ExitOK
		})
	cmd.Flags().BoolVarP(&v6, "6", "6", false, "print the guest's IPv6 addresses (global ones first), one per line")
	cmd.Flags().DurationVar(&wait, "wait", 0, "wait up to `DURATION` for the address (e.g. 60s) instead of failing at once")
	return cmd
}

// guestAddrs returns the guest's addresses (IPv4, or IPv6 with v6), waiting
// up to wait for one to be known; without one it says why.
func guestAddrs(cl *control.Client, v6 bool, wait time.Duration) ([]netip.Addr, string, error) {
	ctx, stop := signalContext(queryTimeout)
	st, err := cl.Status(ctx)
	stop()
	if err != nil {
		return nil, "", err
	}
	if addrs := pickAddrs(st.Link.Guest, v6); len(addrs) > 0 || wait == 0 {
		return addrs, noAddrReason(st, v6), nil
	}
	ctx, stop = signalContext(wait)
	defer stop()
	var addrs []netip.Addr
	errFound := errors.New("found")
	err = cl.Watch(ctx, func(s control.Status) error {
		st = s
		if addrs = pickAddrs(s.Link.Guest, v6); len(addrs) > 0 {
			return errFound
		}
		return nil
	})
	if errors.Is(err, errFound) {
		return addrs, "", nil
	}
	if ctx.Err() != nil || err == nil {
		return nil, fmt.Sprintf("%s (waited %v)", noAddrReason(st, v6), wait), nil
	}
	return nil, "", err
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

// noAddrReason says why the guest's address is not known.
func noAddrReason(st control.Status, v6 bool) string {
	switch {
	case st.VM != nil && st.VM.State != vmhost.StateRunning && st.VM.State != vmhost.StateStarting:
		return fmt.Sprintf("the VM is %s: start it first", st.VM.State)
	case v6:
		return "no IPv6 frame seen from the guest yet"
	default:
		return "no DHCP or ARP seen from the guest yet"
	}
}
