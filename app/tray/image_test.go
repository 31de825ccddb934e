package tray

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vmnetbar/vmnetbar/app/model"
	"github.com/vmnetbar/vmnetbar/internal/testwait"
	"github.com/vmnetbar/vmnetbar/netlink"
	"github.com/vmnetbar/vmnetbar/vmhost"
)

// imageVM is a VM made from an image, with its address learned, its own
// key and known_hosts file, and its SSH state ssh.
func imageVM(name string, s vmhost.State, ssh model.SSHState) model.VMStatus {
	v := withGuest(vmStatus(name, s, netlink.StateUp, 0), "192.168.105.3", "debian")
	v.VM.Image = "/images/debian-12-genericcloud-amd64.qcow2"
	v.VM.SSHKey = "/state/vms/" + name + "/ssh/id_ed25519"
	v.VM.KnownHosts = "/state/vms/" + name + "/ssh/known_hosts"
	v.VM.SSH = ssh
	return v
}

// imageSSH is what imageVM's SSH command is, quoted for a shell.
func imageSSH(name string) string {
	return "ssh -i /state/vms/" + name + "/ssh/id_ed25519 -o IdentitiesOnly=yes -o UserKnownHostsFile=/state/vms/" + name +
		"/ssh/known_hosts -o StrictHostKeyChecking=accept-new debian@192.168.105.3"
}

// TestModelProgress: while a start makes the VM's disk, the VM line says
// so with how far it is: the one-VM layout's VM line and tooltip, and in
// the several-VM layout the VM's line and its submenu's VM line.
func TestModelProgress(t *testing.T) {
	v := vmStatus("dev", vmhost.StateStarting, netlink.StateStopped, 0)
	v.VM.Image = "/images/debian.qcow2"
	v.VM.Progress = &model.Progress{Task: "preparing disk", Percent: 42}

	m := BuildModel(overview(v), allUI, now)
	if got := m.Items[ItemVM].Label; got != "VM: preparing disk 42 %" {
		t.Errorf("one VM: VM line %q", got)
	}
	if !strings.HasPrefix(m.Tooltip, "vmnetbar: VM preparing disk 42 % · ") {
		t.Errorf("one VM: tooltip %q", m.Tooltip)
	}
	m = BuildModel(overview(v, vmStatus("other", vmhost.StateStopped, netlink.StateStopped, 0)), allUI, now)
	if got := m.VMs[0].Line.Label; got != "dev · preparing disk 42 %" {
		t.Errorf("several VMs: the VM's line %q", got)
	}
	if got := m.VMs[0].Sub[SubVM].Label; got != "VM: preparing disk 42 %" {
		t.Errorf("several VMs: the submenu's VM line %q", got)
	}

	// Out of range percentages are clamped; without progress the state
	// shows again.
	v.VM.Progress = &model.Progress{Task: "preparing disk", Percent: 140}
	if got := BuildModel(overview(v), allUI, now).Items[ItemVM].Label; got != "VM: preparing disk 100 %" {
		t.Errorf("140 %%: %q", got)
	}
	v.VM.Progress = nil
	if got := BuildModel(overview(v), allUI, now).Items[ItemVM].Label; !strings.HasPrefix(got, "VM: starting") {
		t.Errorf("no progress: %q", got)
	}
}

// TestModelImageVMSSH: for a VM made from an image, Copy SSH command and
// Open Terminal are enabled once its SSH server accepts, not when its
// address is known; the command logs in with the VM's key and known_hosts.
func TestModelImageVMSSH(t *testing.T) {
	copySSH := func(on bool, cmd string) Item {
		return Item{Label: "Copy SSH command", Visible: true, Enabled: on, Copy: cmd}
	}
	terminal := func(on bool) Item { return Item{Label: "Open Terminal", Visible: true, Enabled: on} }
	tests := []struct {
		name string
		v    model.VMStatus
		ssh  Item
		term Item
	}{
		{"booting: ssh waiting, address known", imageVM("dev", vmhost.StateRunning, model.SSHWaiting), copySSH(false, ""), terminal(false)},
		{"ssh ready", imageVM("dev", vmhost.StateRunning, model.SSHReady), copySSH(true, imageSSH("dev")), terminal(true)},
		{"stopped", imageVM("dev", vmhost.StateStopped, model.SSHUnknown), copySSH(false, ""), terminal(false)},
		{"kernel VM with its address", withGuest(vmStatus("dev", vmhost.StateRunning, netlink.StateUp, 0), "192.168.105.3", "alice"),
			copySSH(true, "ssh alice@192.168.105.3"), terminal(true)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := BuildModel(overview(tc.v), allUI, now)
			if got := m.Items[ItemSSH]; got != tc.ssh {
				t.Errorf("one VM: Copy SSH command %+v, want %+v", got, tc.ssh)
			}
			if got := m.Items[ItemTerminal]; got != tc.term {
				t.Errorf("one VM: Open Terminal %+v, want %+v", got, tc.term)
			}
			m = BuildModel(overview(vmStatus("build", vmhost.StateStopped, netlink.StateStopped, 0), tc.v), allUI, now)
			if got := m.VMs[1].Sub[SubSSH]; got != tc.ssh {
				t.Errorf("several VMs: Copy SSH command %+v, want %+v", got, tc.ssh)
			}
			if got := m.VMs[1].Sub[SubTerminal]; got != tc.term {
				t.Errorf("several VMs: Open Terminal %+v, want %+v", got, tc.term)
			}
			if m.Items[ItemTerminal].Visible {
				t.Error("several VMs: the one-VM Open Terminal is shown at the top level")
			}
		})
	}
}

// TestReadies: a VM is ready once per boot: when its SSH first accepts;
// not again while it runs (SSH lost and back), again after it stopped (or
// failed) and started; a removed VM is forgotten.
func TestReadies(t *testing.T) {
	var r readies
	step := func(what string, want []string, vms ...model.VMStatus) {
		t.Helper()
		var got []string
		for _, v := range r.update(overview(vms...)) {
			got = append(got, v.Name)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: ready %v, want %v", what, got, want)
		}
	}
	step("booting", nil, imageVM("dev", vmhost.StateStarting, model.SSHWaiting))
	step("ssh ready", []string{"dev"}, imageVM("dev", vmhost.StateRunning, model.SSHReady))
	step("still ready", nil, imageVM("dev", vmhost.StateRunning, model.SSHReady))
	step("sshd restarted in the guest", nil, imageVM("dev", vmhost.StateRunning, model.SSHWaiting))
	step("back", nil, imageVM("dev", vmhost.StateRunning, model.SSHReady))
	step("stopping", nil, imageVM("dev", vmhost.StateStopping, model.SSHReady))
	step("stopped", nil, imageVM("dev", vmhost.StateStopped, model.SSHUnknown))
	step("the next boot", []string{"dev"}, imageVM("dev", vmhost.StateRunning, model.SSHReady))
	step("failed", nil, imageVM("dev", vmhost.StateError, model.SSHUnknown))
	step("started again, and build ready", []string{"build", "dev"},
		imageVM("build", vmhost.StateRunning, model.SSHReady), imageVM("dev", vmhost.StateRunning, model.SSHReady))
	step("dev removed", nil, imageVM("build", vmhost.StateRunning, model.SSHReady))
	step("dev added back, running", []string{"dev"},
		imageVM("build", vmhost.StateRunning, model.SSHReady), imageVM("dev", vmhost.StateRunning, model.SSHReady))
}

// TestTrayReadyNotifiesOncePerBoot runs the tray: "dev is ready" with the
// SSH command when dev's SSH server first accepts, not again in the same
// boot, again after a stop and a start.
func TestTrayReadyNotifiesOncePerBoot(t *testing.T) {
	f := newTestMachines("dev")
	set := func(s vmhost.State, ssh model.SSHState) {
		v := imageVM("dev", s, ssh)
		v.VM.Since = time.Now()
		f.put(v)
	}
	set(vmhost.StateStarting, model.SSHWaiting)
	n := &recordSender{}
	tr, sh := startFakeTray(t, f, Options{Notifier: n}, false)
	menu := func(what, vmLine string, enabled bool) {
		t.Helper()
		testwait.For(t, what, func() bool {
			l, _, _, _ := sh.item("VM: ")
			_, term, vis, _ := sh.item("Open Terminal")
			return strings.HasPrefix(l, vmLine) && vis && term == enabled
		})
	}
	menu("the booting VM", "VM: starting", false)
	set(vmhost.StateRunning, model.SSHReady)
	menu("the ready VM", "VM: running", true)
	testwait.For(t, "the notification", func() bool { return len(n.all()) == 1 })
	if got, want := n.all()[0], "dev is ready: "+imageSSH("dev"); got != want {
		t.Errorf("notification %q, want %q", got, want)
	}
	set(vmhost.StateRunning, model.SSHWaiting)
	menu("SSH gone in the same boot", "VM: running", false)
	set(vmhost.StateRunning, model.SSHReady)
	menu("SSH back", "VM: running", true)
	set(vmhost.StateStopped, model.SSHUnknown)
	menu("the stopped VM", "VM: stopped", false)
	set(vmhost.StateRunning, model.SSHReady)
	testwait.For(t, "the next boot's notification", func() bool { return len(n.all()) >= 2 })

	// Quit: the tray waits for every notification under way, so the count
	// is final.
	sh.click(t, "Quit")
	testwait.For(t, "the tray to end", func() bool { return returned(tr.finished) })
	if got := n.all(); len(got) != 2 {
		t.Errorf("notifications %q, want one per boot (2)", got)
	}
}

// fakeTerminal records the commands it opens, or fails.
type fakeTerminal struct {
	mu     sync.Mutex
	opened []string
	err    error
}

func (f *fakeTerminal) Open(_ context.Context, argv []string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	f.opened = append(f.opened, strings.Join(argv, "\x00"))
	return nil
}

func (f *fakeTerminal) all() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.opened...)
}

// TestTrayOpenTerminal: Open Terminal opens a terminal running the VM's
// SSH command (argv, unquoted), from the top level with one VM and from
// the VM's submenu with several. Nothing is copied.
func TestTrayOpenTerminal(t *testing.T) {
	f := newTestMachines("dev")
	f.put(imageVM("dev", vmhost.StateRunning, model.SSHReady))
	term := &fakeTerminal{}
	clip := &fakeClipboard{}
	_, sh := startFakeTray(t, f, Options{Terminal: term, Clipboard: clip}, false)
	testwait.For(t, "Open Terminal enabled", func() bool { _, en, vis, _ := sh.item("Open Terminal"); return en && vis })
	sh.click(t, "Open Terminal")
	testwait.For(t, "the terminal", func() bool { return len(term.all()) == 1 })
	want := strings.Join([]string{"ssh", "-i", "/state/vms/dev/ssh/id_ed25519", "-o", "IdentitiesOnly=yes",
		"-o", "UserKnownHostsFile=/state/vms/dev/ssh/known_hosts", "-o", "StrictHostKeyChecking=accept-new", "debian@192.168.105.3"}, "\x00")
	if got := term.all()[0]; got != want {
		t.Errorf("terminal ran %q, want %q", got, want)
	}

	f.put(imageVM("build", vmhost.StateRunning, model.SSHWaiting))
	testwait.For(t, "dev's Open Terminal, build's disabled", func() bool {
		_, dev, devVis := sh.sub("dev ·", "Open Terminal")
		_, build, buildVis := sh.sub("build ·", "Open Terminal")
		return dev && devVis && !build && buildVis
	})
	sh.clickIn(t, "build ·", "Open Terminal") // disabled: ignored
	sh.clickIn(t, "dev ·", "Open Terminal")
	testwait.For(t, "the second terminal", func() bool { return len(term.all()) == 2 })
	if got := term.all()[1]; got != want {
		t.Errorf("terminal ran %q, want %q", got, want)
	}
	if len(clip.all()) != 0 || len(f.Calls()) != 0 {
		t.Errorf("Open Terminal copied %q or acted on the VMs: %q", clip.all(), f.Calls())
	}
}

// TestTrayOpenTerminalFails: when no terminal opens, a notification says
// why with the command to run by hand; without a notifier, the menu's
// problem line says why.
func TestTrayOpenTerminalFails(t *testing.T) {
	const why = "no terminal program on PATH (looked for x-terminal-emulator, gnome-terminal, konsole, xfce4-terminal, xterm): install a terminal emulator"
	for _, withNotifier := range []bool{true, false} {
		t.Run(fmt.Sprint("notifier ", withNotifier), func(t *testing.T) {
			f := newUp("dev")
			f.fixture(f.Change("dev", func(v *model.VMStatus) { *v = withGuest(*v, "192.168.105.3", "alice") }))
			opts := Options{Terminal: &fakeTerminal{err: errors.New(why)}}
			n := &recordSender{}
			if withNotifier {
				opts.Notifier = n
			}
			_, sh := startFakeTray(t, f, opts, false)
			testwait.For(t, "Open Terminal enabled", func() bool { _, en, vis, _ := sh.item("Open Terminal"); return en && vis })
			sh.click(t, "Open Terminal")
			if withNotifier {
				testwait.For(t, "the notification", func() bool { return len(n.all()) == 1 })
				if got, want := n.all()[0], "vmnetbar: cannot open a terminal: "+why+"\nRun it yourself: ssh alice@192.168.105.3"; got != want {
					t.Errorf("notification %q, want %q", got, want)
				}
				return
			}
			testwait.For(t, "the problem line", func() bool {
				l, _, vis, _ := sh.item("⚠")
				return vis && strings.HasPrefix(l, "⚠ Open Terminal failed: no terminal program on PATH")
			})
		})
	}
}

// TestTerminalAppCommand: macOS's Terminal gets the shell command line as
// an AppleScript string, quotes and backslashes escaped.
func TestTerminalAppCommand(t *testing.T) {
	line := model.ShellJoin([]string{"ssh", "-o", `UserKnownHostsFile="/Users/a/Application Support/kh"`, `a\b`})
	got := terminalAppCommand(line)
	want := []string{"osascript",
		"-e", `tell application "Terminal" to do script "ssh -o 'UserKnownHostsFile=\"/Users/a/Application Support/kh\"' 'a\\b'"`,
		"-e", `tell application "Terminal" to activate`}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("terminalAppCommand = %q\nwant %q", got, want)
	}
}
