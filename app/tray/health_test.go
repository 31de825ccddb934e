package tray

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vmnetbar/vmnetbar/app/model"
	"github.com/vmnetbar/vmnetbar/assets"
	"github.com/vmnetbar/vmnetbar/internal/testwait"
	"github.com/vmnetbar/vmnetbar/netlink"
	"github.com/vmnetbar/vmnetbar/vmhost"
)

var (
	macHelp   = daemonHelpFor("darwin")
	linuxHelp = daemonHelpFor("linux")
)

// withGuest is v with the guest's address learned and the VM's SSH user.
func withGuest(v model.VMStatus, ip, user string) model.VMStatus {
	if ip != "" {
		v.Link.Guest.IPv4 = netip.MustParseAddr(ip)
		v.Link.Guest.Source = netlink.GuestSourceDHCP
	}
	v.VM.SSHUser = user
	return v
}

// silentFrom is v with its link silent since the last frame at lastRx.
func silentFrom(v model.VMStatus, lastRx time.Time) model.VMStatus {
	v.Link.Health = netlink.HealthSilent
	v.Link.LastRx = lastRx
	return v
}

// TestModelGuestAddress: the IP line shows while the address is known
// and the VM runs, a click copies the address; "Copy SSH command" is
// enabled only with the address and a user, and copies `ssh USER@IP`.
func TestModelGuestAddress(t *testing.T) {
	running := vmStatus("default", vmhost.StateRunning, netlink.StateUp, 0)
	tests := []struct {
		name string
		v    model.VMStatus
		ip   Item
		ssh  Item
	}{
		{"address unknown", withGuest(running, "", "alice"), Item{},
			Item{Label: "Copy SSH command", Visible: true}},
		{"address and user", withGuest(running, "192.168.105.3", "alice"),
			Item{Label: "IP: 192.168.105.3", Visible: true, Enabled: true, Copy: "192.168.105.3"},
			Item{Label: "Copy SSH command", Visible: true, Enabled: true, Copy: "ssh alice@192.168.105.3"}},
		{"address, no user", withGuest(running, "192.168.105.3", ""),
			Item{Label: "IP: 192.168.105.3", Visible: true, Enabled: true, Copy: "192.168.105.3"},
			Item{Label: "Copy SSH command", Visible: true}},
		{"reconnecting keeps the address", withGuest(vmStatus("default", vmhost.StateRunning, netlink.StateReconnecting, 1), "10.0.0.7", "bob"),
			Item{Label: "IP: 10.0.0.7", Visible: true, Enabled: true, Copy: "10.0.0.7"},
			Item{Label: "Copy SSH command", Visible: true, Enabled: true, Copy: "ssh bob@10.0.0.7"}},
		{"stopped VM: the last address is stale", withGuest(vmStatus("default", vmhost.StateStopped, netlink.StateStopped, 0), "192.168.105.3", "alice"),
			Item{}, Item{Label: "Copy SSH command", Visible: true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := BuildModel(overview(tc.v), allUI, now)
			if got := m.Items[ItemIP]; got != tc.ip {
				t.Errorf("IP line %+v, want %+v", got, tc.ip)
			}
			if got := m.Items[ItemSSH]; got != tc.ssh {
				t.Errorf("SSH item %+v, want %+v", got, tc.ssh)
			}
			// Open Terminal follows the same rule.
			if got, want := m.Items[ItemTerminal], (Item{Label: "Open Terminal", Visible: true, Enabled: tc.ssh.Enabled}); got != want {
				t.Errorf("Open Terminal %+v, want %+v", got, want)
			}
			// The several-VM layout: the same items in the VM's submenu.
			other := vmStatus("other", vmhost.StateStopped, netlink.StateStopped, 0)
			m = BuildModel(overview(other, tc.v), allUI, now)
			if got := m.VMs[1].Sub[SubIP]; got != tc.ip {
				t.Errorf("several VMs: IP line %+v, want %+v", got, tc.ip)
			}
			if got := m.VMs[1].Sub[SubSSH]; got != tc.ssh {
				t.Errorf("several VMs: SSH item %+v, want %+v", got, tc.ssh)
			}
			if m.Items[ItemIP].Visible || m.Items[ItemSSH].Visible {
				t.Error("several VMs: the one-VM IP or SSH item is shown at the top level")
			}
		})
	}
}

// TestSSHCommandRule: the one rule for "Copy SSH command" and "Open
// Terminal". A VM that boots a kernel: while the guest's address is known
// and the VM names a user. A VM made from an image: once its SSH server
// accepts (VM.SSH ready), with the VM's own key, known_hosts file and
// ssh_address.
func TestSSHCommandRule(t *testing.T) {
	v := withGuest(vmStatus("dev", vmhost.StateStarting, netlink.StateUp, 0), "192.168.105.3", "alice")
	if cmd, ok := sshCommand(v); !ok || model.ShellJoin(cmd) != "ssh alice@192.168.105.3" {
		t.Errorf("sshCommand = %q, %v", cmd, ok)
	}
	v.VM.SSHUser = ""
	if _, ok := sshCommand(v); ok {
		t.Error("enabled without a user")
	}

	img := withGuest(vmStatus("dev", vmhost.StateRunning, netlink.StateUp, 0), "192.168.105.3", "debian")
	img.VM.Image = "/images/debian-12-genericcloud-arm64.qcow2"
	img.VM.SSHKey = "/Users/alice/Library/Application Support/vmnetbar/vms/dev/id_ed25519"
	img.VM.KnownHosts = "/Users/alice/Library/Application Support/vmnetbar/vms/dev/known_hosts"
	for _, ssh := range []model.SSHState{"", model.SSHUnknown, model.SSHWaiting} {
		img.VM.SSH = ssh
		if cmd, ok := sshCommand(img); ok {
			t.Errorf("image VM with ssh %q: enabled (%q)", ssh, cmd)
		}
	}
	img.VM.SSH = model.SSHReady
	cmd, ok := sshCommand(img)
	const want = "ssh -i '/Users/alice/Library/Application Support/vmnetbar/vms/dev/id_ed25519' -o IdentitiesOnly=yes " +
		`-o 'UserKnownHostsFile="/Users/alice/Library/Application Support/vmnetbar/vms/dev/known_hosts"' ` +
		"-o StrictHostKeyChecking=accept-new debian@192.168.105.3"
	if !ok || model.ShellJoin(cmd) != want {
		t.Errorf("image VM, ssh ready: %q, %v; want %q", model.ShellJoin(cmd), ok, want)
	}
	img.VM.SSHAddress = "127.0.0.1:2222"
	if cmd, ok := sshCommand(img); !ok || !strings.HasSuffix(model.ShellJoin(cmd), " -p 2222 debian@127.0.0.1") {
		t.Errorf("image VM with ssh_address: %q, %v", model.ShellJoin(cmd), ok)
	}
	img.VM.State = vmhost.StateStopped
	if _, ok := sshCommand(img); ok {
		t.Error("enabled for a stopped VM")
	}
}

// TestModelSilentLink: a link that is up but silent reads "not
// forwarding" with how long nothing came back, shows the hint for the
// platform, and the icon goes amber.
func TestModelSilentLink(t *testing.T) {
	base := vmStatus("default", vmhost.StateRunning, netlink.StateUp, 3)
	tests := []struct {
		name string
		v    model.VMStatus
		help DaemonHelp
		link string
		hint Item
		tip  string
	}{
		{"macOS, 30 s", silentFrom(base, now.Add(-30*time.Second-400*time.Millisecond)), macHelp,
			"Link: up · not forwarding (no reply from the gateway for 30 s)",
			Item{Label: "Restart socket_vmnet: sudo brew services restart socket_vmnet", Visible: true, Enabled: true,
				Copy: "sudo brew services restart socket_vmnet"},
			"vmnetbar: VM running 1h 0m · link not forwarding"},
		{"Linux, 2 min", silentFrom(base, now.Add(-2*time.Minute-10*time.Second)), linuxHelp,
			"Link: up · not forwarding (no reply from the gateway for 2 min)",
			Item{Label: "Restart the network daemon", Visible: true},
			"vmnetbar: VM running 1h 0m · link not forwarding"},
		{"nothing ever came: since the link went up", silentFrom(base, time.Time{}), macHelp,
			"Link: up · not forwarding (no reply from the gateway for 1 min)",
			Item{Label: "Restart socket_vmnet: sudo brew services restart socket_vmnet", Visible: true, Enabled: true,
				Copy: "sudo brew services restart socket_vmnet"},
			"vmnetbar: VM running 1h 0m · link not forwarding"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ui := allUI
			ui.Daemon = tc.help
			m := BuildModel(overview(tc.v), ui, now)
			if got := m.Items[ItemLink].Label; got != tc.link {
				t.Errorf("link line %q, want %q", got, tc.link)
			}
			if got := m.Items[ItemLinkHint]; got != tc.hint {
				t.Errorf("hint %+v, want %+v", got, tc.hint)
			}
			if m.Icon != assets.IconReconnecting {
				t.Errorf("icon %q, want the amber %q", m.Icon, assets.IconReconnecting)
			}
			if m.Tooltip != tc.tip {
				t.Errorf("tooltip %q, want %q", m.Tooltip, tc.tip)
			}
		})
	}

	// ok and unknown health: the usual line, no hint, the green icon.
	for _, h := range []netlink.Health{netlink.HealthOK, netlink.HealthUnknown} {
		v := base
		v.Link.Health = h
		ui := allUI
		ui.Daemon = macHelp
		m := BuildModel(overview(v), ui, now)
		if m.Items[ItemLink].Label != "Link: up · 3 reconnects · last 1m ago" || m.Items[ItemLinkHint].Visible || m.Icon != assets.IconUp {
			t.Errorf("health %v: link %q, hint %+v, icon %q", h, m.Items[ItemLink].Label, m.Items[ItemLinkHint], m.Icon)
		}
	}
	// A silent health while reconnecting is not "not forwarding": the
	// link is down.
	v := silentFrom(vmStatus("default", vmhost.StateRunning, netlink.StateReconnecting, 3), now.Add(-time.Minute))
	if m := BuildModel(overview(v), allUI, now); strings.Contains(m.Items[ItemLink].Label, "not forwarding") || m.Items[ItemLinkHint].Visible {
		t.Errorf("reconnecting link: %q, hint %+v", m.Items[ItemLink].Label, m.Items[ItemLinkHint])
	}
}

// TestModelSilentSeveralVMs: with several VMs the silent VM's line says
// "not forwarding", its submenu has the link line and the hint, the other
// VM's none, and the icon is the amber one (ranked with reconnecting, above
// a VM that is starting).
func TestModelSilentSeveralVMs(t *testing.T) {
	build := vmStatus("build", vmhost.StateStarting, netlink.StateConnecting, 0)
	dev := silentFrom(vmStatus("dev", vmhost.StateRunning, netlink.StateUp, 2), now.Add(-45*time.Second))
	ui := allUI
	ui.Daemon = macHelp
	m := BuildModel(overview(build, dev), ui, now)
	if got := m.VMs[1].Line.Label; got != "dev · running · not forwarding · 2 reconnects" {
		t.Errorf("dev's line %q", got)
	}
	if got := m.VMs[1].Sub[SubLink].Label; got != "Link: up · not forwarding (no reply from the gateway for 45 s)" {
		t.Errorf("dev's link line %q", got)
	}
	if got := m.VMs[1].Sub[SubLinkHint]; !got.Visible || !got.Enabled || got.Copy != "sudo brew services restart socket_vmnet" {
		t.Errorf("dev's hint %+v", got)
	}
	if m.VMs[0].Sub[SubLinkHint].Visible || strings.Contains(m.VMs[0].Line.Label, "not forwarding") {
		t.Errorf("build shows a silent link: %q %+v", m.VMs[0].Line.Label, m.VMs[0].Sub[SubLinkHint])
	}
	if m.Items[ItemLinkHint].Visible {
		t.Error("the one-VM hint is shown at the top level")
	}
	if m.Icon != assets.IconReconnecting {
		t.Errorf("icon %q, want %q", m.Icon, assets.IconReconnecting)
	}
	if !strings.HasSuffix(m.Tooltip, "; dev not forwarding") {
		t.Errorf("tooltip %q", m.Tooltip)
	}
	// A failed link is still worse.
	build.Link.State = netlink.StateFailed
	if m := BuildModel(overview(build, dev), ui, now); m.Icon != assets.IconError {
		t.Errorf("icon %q, want %q", m.Icon, assets.IconError)
	}
}

func TestSpell(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{0, "0 s"}, {30*time.Second + 900*time.Millisecond, "30 s"}, {59 * time.Second, "59 s"},
		{2*time.Minute + 59*time.Second, "2 min"}, {time.Hour, "1 h"}, {time.Hour + 5*time.Minute, "1 h 5 min"},
	} {
		if got := spell(tc.d); got != tc.want {
			t.Errorf("spell(%v) = %q, want %q", tc.d, got, tc.want)
		}
	}
}

// TestSpells: one notification per silent spell; ok ends the spell, a
// reconnect (unknown health) does not; a stopped VM ends it; a removed
// VM forgets it.
func TestSpells(t *testing.T) {
	up := vmStatus("dev", vmhost.StateRunning, netlink.StateUp, 0)
	silent := silentFrom(up, now.Add(-30*time.Second))
	ok := up
	ok.Link.Health = netlink.HealthOK
	reconnecting := vmStatus("dev", vmhost.StateRunning, netlink.StateReconnecting, 1)
	stopped := vmStatus("dev", vmhost.StateStopped, netlink.StateStopped, 0)
	other := vmStatus("build", vmhost.StateRunning, netlink.StateUp, 0)
	other.Link.Health = netlink.HealthOK

	var s spells
	steps := []struct {
		what string
		o    model.Overview
		want []string
	}{
		{"ok", overview(other, ok), nil},
		{"dev goes silent", overview(other, silent), []string{"dev"}},
		{"still silent", overview(other, silent), nil},
		{"reconnecting", overview(other, reconnecting), nil},
		{"silent again after the reconnect: the same spell", overview(other, silent), nil},
		{"ok ends the spell", overview(other, ok), nil},
		{"a new spell", overview(other, silent), []string{"dev"}},
		{"the VM stops", overview(other, stopped), nil},
		{"silent after a restart", overview(other, silent), []string{"dev"}},
		{"dev removed", overview(other), nil},
		{"dev added back, silent", overview(other, silent), []string{"dev"}},
		{"both silent", overview(silentFrom(other, now), silent), []string{"build"}},
	}
	for _, st := range steps {
		var got []string
		for _, v := range s.update(st.o) {
			got = append(got, v.Name)
		}
		if fmt.Sprint(got) != fmt.Sprint(st.want) {
			t.Errorf("%s: notified %v, want %v", st.what, got, st.want)
		}
	}
	s.update(overview())
	if len(s.in) != 0 {
		t.Errorf("spells of removed VMs kept: %v", s.in)
	}
}

func TestSilentBody(t *testing.T) {
	v := silentFrom(vmStatus("dev", vmhost.StateRunning, netlink.StateUp, 0), now.Add(-30*time.Second))
	if got, want := silentBody(v, true, macHelp, now), "dev: socket_vmnet is connected but nothing has come back for 30 s. Restart it: sudo brew services restart socket_vmnet"; got != want {
		t.Errorf("macOS body %q, want %q", got, want)
	}
	if got, want := silentBody(v, false, linuxHelp, now), "the network daemon is connected but nothing has come back for 30 s. Restart it."; got != want {
		t.Errorf("Linux body %q, want %q", got, want)
	}
}

// TestTraySilentNotifiesOncePerSpell runs the tray: a VM whose link goes
// silent is notified once, whatever updates follow, until it is ok again;
// the next spell is notified again.
func TestTraySilentNotifiesOncePerSpell(t *testing.T) {
	f := newUp("dev")
	n := &recordSender{}
	tr, sh := startFakeTray(t, f, Options{Notifier: n}, false)
	tr.mu.Lock()
	tr.ui.Daemon = macHelp
	tr.mu.Unlock()
	setLink := func(h netlink.Health, lastRx time.Time) {
		f.fixture(f.Change("dev", func(v *model.VMStatus) { v.Link.Health, v.Link.LastRx = h, lastRx }))
	}
	linkLine := func(what, prefix string) {
		t.Helper()
		testwait.For(t, what, func() bool { l, _, vis, _ := sh.item("Link: "); return vis && strings.HasPrefix(l, prefix) })
	}
	setLink(netlink.HealthOK, time.Now())
	linkLine("the link up", "Link: up · 0 reconnects")
	setLink(netlink.HealthSilent, time.Now().Add(-30*time.Second))
	linkLine("the silent link", "Link: up · not forwarding (no reply from the gateway for 3")
	testwait.For(t, "the notification", func() bool { return len(n.all()) == 1 })
	const want = "vmnetbar: network not answering: socket_vmnet is connected but nothing has come back for 30 s. Restart it: sudo brew services restart socket_vmnet"
	if got := n.all()[0]; got != want {
		t.Errorf("notification %q, want %q", got, want)
	}
	testwait.For(t, "the hint line", func() bool { l, en, vis, _ := sh.item("Restart socket_vmnet"); return vis && en && l != "" })
	setLink(netlink.HealthSilent, time.Now().Add(-5*time.Minute))
	linkLine("the longer silence", "Link: up · not forwarding (no reply from the gateway for 5 min)")
	setLink(netlink.HealthOK, time.Now())
	linkLine("the link ok again", "Link: up · 0 reconnects")
	setLink(netlink.HealthSilent, time.Now().Add(-40*time.Second))
	testwait.For(t, "the second spell's notification", func() bool { return len(n.all()) >= 2 })

	// Quit: the tray waits for every notification under way, so the count
	// is final.
	sh.click(t, "Quit")
	testwait.For(t, "the tray to end", func() bool { return returned(tr.finished) })
	if got := n.all(); len(got) != 2 {
		t.Errorf("notifications %q, want one per spell (2)", got)
	}
}

// fakeClipboard records what is copied, or fails.
type fakeClipboard struct {
	mu     sync.Mutex
	copied []string
	err    error
}

func (c *fakeClipboard) Copy(_ context.Context, text string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return c.err
	}
	c.copied = append(c.copied, text)
	return nil
}

func (c *fakeClipboard) all() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.copied...)
}

// TestTrayCopies: the IP line, Copy SSH command and the hint copy their
// text; with several VMs, from the VM's submenu.
func TestTrayCopies(t *testing.T) {
	f := newUp("dev")
	f.fixture(f.Change("dev", func(v *model.VMStatus) {
		*v = withGuest(*v, "192.168.105.3", "alice")
		v.Link.Health, v.Link.LastRx = netlink.HealthSilent, time.Now().Add(-time.Minute)
	}))
	clip := &fakeClipboard{}
	tr, sh := startFakeTray(t, f, Options{Clipboard: clip}, false)
	tr.mu.Lock()
	tr.ui.Daemon = macHelp
	tr.mu.Unlock()
	testwait.For(t, "the IP line, the SSH command and the hint", func() bool {
		_, ipOK, ip, _ := sh.item("IP: 192.168.105.3")
		_, sshOK, _, _ := sh.item("Copy SSH command")
		_, hint, _, _ := sh.item("Restart socket_vmnet")
		return ip && ipOK && sshOK && hint
	})
	sh.click(t, "IP: ")
	testwait.For(t, "the address copied", func() bool { return len(clip.all()) == 1 })
	sh.click(t, "Copy SSH command")
	testwait.For(t, "the SSH command copied", func() bool { return len(clip.all()) == 2 })
	sh.click(t, "Restart socket_vmnet")
	testwait.For(t, "the restart command copied", func() bool { return len(clip.all()) == 3 })
	if got, want := fmt.Sprint(clip.all()), "[192.168.105.3 ssh alice@192.168.105.3 sudo brew services restart socket_vmnet]"; got != want {
		t.Errorf("copied %s, want %s", got, want)
	}

	f.setVM("build", vmhost.StateStopped, 0)
	lineShown(t, sh, "dev · running", true)
	testwait.For(t, "dev's IP line", func() bool { _, en, vis := sh.sub("dev ·", "IP: 192.168.105.3"); return en && vis })
	sh.clickIn(t, "dev ·", "IP: ")
	testwait.For(t, "dev's address copied", func() bool { return len(clip.all()) == 4 })
	if got := clip.all()[3]; got != "192.168.105.3" {
		t.Errorf("copied %q", got)
	}
	if len(f.Calls()) != 0 {
		t.Errorf("a copy acted on the VMs: %q", f.Calls())
	}
}

// TestTrayCopyFails: when the clipboard fails the text goes to a
// notification, else to the menu's problem line.
func TestTrayCopyFails(t *testing.T) {
	for _, withNotifier := range []bool{true, false} {
		t.Run(fmt.Sprint("notifier ", withNotifier), func(t *testing.T) {
			f := newUp("dev")
			f.fixture(f.Change("dev", func(v *model.VMStatus) { *v = withGuest(*v, "192.168.105.3", "alice") }))
			clip := &fakeClipboard{err: errors.New("no clipboard program on PATH (looked for xclip, xsel): install xclip or xsel")}
			opts := Options{Clipboard: clip}
			n := &recordSender{}
			if withNotifier {
				opts.Notifier = n
			}
			_, sh := startFakeTray(t, f, opts, false)
			testwait.For(t, "Copy SSH command enabled", func() bool { _, en, vis, _ := sh.item("Copy SSH command"); return en && vis })
			sh.click(t, "Copy SSH command")
			if withNotifier {
				testwait.For(t, "the notification", func() bool { return len(n.all()) == 1 })
				if got := n.all()[0]; !strings.HasPrefix(got, "vmnetbar: copy this by hand: ssh alice@192.168.105.3\n(no clipboard program") {
					t.Errorf("notification %q", got)
				}
				return
			}
			testwait.For(t, "the problem line", func() bool {
				l, _, vis, _ := sh.item("⚠")
				return vis && l == "⚠ Copy by hand: ssh alice@192.168.105.3"
			})
		})
	}
}
