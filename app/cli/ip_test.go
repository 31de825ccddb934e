package cli

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vmnetbar/vmnetbar/app/model"
	"github.com/vmnetbar/vmnetbar/internal/testwait"
	"github.com/vmnetbar/vmnetbar/netlink"
	"github.com/vmnetbar/vmnetbar/vmhost"
)

func TestIPCommand(t *testing.T) {
	m, sock := serveVMs(t, "dev")
	running(m, "dev")

	// Nothing learned yet: exit 1 saying why, at once or after --wait.
	if r := runCLI(t, "ip", "--control", sock); r.code != ExitFailure || !strings.Contains(r.stderr, "no DHCP or ARP seen from the guest yet") {
		t.Fatalf("ip before any address: exit %d, stderr %q", r.code, r.stderr)
	}
	if r := runCLI(t, "ip", "--control", sock, "--wait", "200ms"); r.code != ExitFailure || !strings.Contains(r.stderr, "(waited 200ms)") {
		t.Fatalf("ip --wait with no address: exit %d, stderr %q", r.code, r.stderr)
	}
	if r := runCLI(t, "ip", "--control", sock, "--6"); r.code != ExitFailure || !strings.Contains(r.stderr, "no IPv6 frame seen") {
		t.Fatalf("ip --6 before any address: exit %d, stderr %q", r.code, r.stderr)
	}

	// --wait returns as soon as the address is learned.
	g := netlink.Guest{IPv4: netip.MustParseAddr("192.168.127.3"), Gateway: netip.MustParseAddr("192.168.127.1"), Source: "dhcp"}
	g.IPv6[0] = netip.MustParseAddr("fe80::5054:ff:fe12:3456")
	g.IPv6[1] = netip.MustParseAddr("fd00::3")
	p := startCLI(t, nil, true, "ip", "--control", sock, "--wait", "30s")
	testwait.For(t, "ip --wait to follow the status", func() bool { return m.Subscribers() > 0 })
	m.Set("dev", func(v *model.VMStatus) { v.Link.Guest = g })
	out := make([]byte, 64)
	n, _ := p.stdout.Read(out)
	if p.wait(t, 10*time.Second); p.code != ExitOK || string(out[:n]) != "192.168.127.3\n" {
		t.Fatalf("ip --wait: exit %d, stdout %q, stderr %q", p.code, out[:n], p.stderr.String())
	}

	if r := runCLI(t, "ip", "--control", sock); r.code != ExitOK || r.stdout != "192.168.127.3\n" {
		t.Fatalf("ip: exit %d, stdout %q", r.code, r.stdout)
	}
	if r := runCLI(t, "ip", "--6", "--control", sock); r.code != ExitOK || r.stdout != "fd00::3\nfe80::5054:ff:fe12:3456\n" {
		t.Fatalf("ip --6: exit %d, stdout %q (global first)", r.code, r.stdout)
	}
	if r := runCLI(t, "status", "--control", sock); !strings.Contains(r.stdout, "192.168.127.3 (dhcp, gateway 192.168.127.1)") {
		t.Fatalf("status: %q", r.stdout)
	}

	// A stopped or failed VM says so, even when its status still has the
	// last run's address (stale: the guest may come back with another).
	for _, st := range []vmhost.State{vmhost.StateStopped, vmhost.StateError} {
		m.Set("dev", func(v *model.VMStatus) {
			v.VM.State, v.Link.State = st, netlink.StateStopped
			v.Link.Guest = g
		})
		want := "the VM dev is " + st.String() + ": start it first"
		for _, args := range [][]string{{"ip"}, {"ip", "--6"}, {"ip", "--wait", "200ms"}} {
			r := runCLI(t, append(args, "--control", sock)...)
			if r.code != ExitFailure || r.stdout != "" || !strings.Contains(r.stderr, want) {
				t.Fatalf("%v with the VM %s and a stale address: exit %d, stdout %q, stderr %q", args, st, r.code, r.stdout, r.stderr)
			}
		}
	}

	// A stopping VM's link still runs: its address is the guest's.
	m.Set("dev", func(v *model.VMStatus) {
		v.VM.State, v.Link.State = vmhost.StateStopping, netlink.StateUp
		v.Link.Guest = g
	})
	if r := runCLI(t, "ip", "--control", sock); r.code != ExitOK || r.stdout != "192.168.127.3\n" {
		t.Fatalf("ip while stopping: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}
