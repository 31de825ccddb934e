package cli

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vmnetbar/vmnetbar/app/model"
	"github.com/vmnetbar/vmnetbar/netlink"
	"github.com/vmnetbar/vmnetbar/vmhost"
)

func TestProgressBar(t *testing.T) {
	for _, tc := range []struct {
		pct  int
		want string
	}{
		{0, "preparing disk [                              ] 0 %"},
		{42, "preparing disk [############                  ] 42 %"},
		{99, "preparing disk [############################# ] 99 %"},
		{100, "preparing disk [##############################] 100 %"},
		{-5, "preparing disk [                              ] 0 %"},
		{250, "preparing disk [##############################] 100 %"},
	} {
		if got := progressBar(model.Progress{Task: "preparing disk", Percent: tc.pct}); got != tc.want {
			t.Errorf("%d %%: %q, want %q", tc.pct, got, tc.want)
		}
	}
}

func TestSSHWaitText(t *testing.T) {
	base := model.VMStatus{Name: "dev", VM: model.VM{State: vmhost.StateRunning, SSH: model.SSHWaiting, Image: testImage}}
	for _, tc := range []struct {
		set  func(*model.VMStatus)
		want string
	}{
		{func(v *model.VMStatus) {
			v.VM.State, v.VM.Progress = vmhost.StateStarting, &model.Progress{Task: "preparing disk", Percent: 42}
		}, "waiting for dev's SSH (preparing disk 42 %)"},
		{func(v *model.VMStatus) { v.VM.State = vmhost.StateStarting }, "waiting for dev's SSH (starting)"},
		{func(v *model.VMStatus) {}, "waiting for dev's SSH (waiting for the guest's address)"},
		{func(v *model.VMStatus) { v.Link.Guest.IPv4 = netip.MustParseAddr("192.168.105.3") }, "waiting for dev's SSH (booting)"},
		// With ssh_address the guest's own address does not matter.
		{func(v *model.VMStatus) { v.VM.SSHAddress = "127.0.0.1:2222" }, "waiting for dev's SSH (booting)"},
		// A VM that boots a kernel may have no SSH server at all.
		{func(v *model.VMStatus) {
			v.VM.Image, v.Link.Guest.IPv4 = "", netip.MustParseAddr("192.168.105.3")
		}, "waiting for dev's SSH (nothing accepts on 192.168.105.3:22 yet)"},
	} {
		v := base
		tc.set(&v)
		if got := sshWaitText(v); got != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}
}

// TestWriteStatusOfACloudImage: the summary shows the image, the progress
// while the disk is prepared, and whether SSH is ready, with the command
// that logs in.
func TestWriteStatusOfACloudImage(t *testing.T) {
	now := time.Date(2026, 3, 4, 10, 0, 0, 0, time.Local)
	v := model.VMStatus{Name: "dev",
		VM: model.VM{State: vmhost.StateStarting, Since: now.Add(-12 * time.Second), Image: "/images/debian-12.qcow2",
			SSH: model.SSHWaiting, SSHUser: "debian", Progress: &model.Progress{Task: "preparing disk", Percent: 42}},
		Link: netlink.Status{State: netlink.StateConnecting}}
	var b strings.Builder
	writeStatus(&b, v, false, "", now)
	for _, w := range []string{"\nImage:       /images/debian-12.qcow2\n", "\nProgress:    preparing disk 42 %\n", "\nSSH:         waiting (preparing disk 42 %)\n"} {
		if !strings.Contains(b.String(), w) {
			t.Errorf("summary lacks %q:\n%s", w, b.String())
		}
	}

	v.VM.State, v.VM.Progress, v.VM.SSH = vmhost.StateRunning, nil, model.SSHReady
	v.Link.Guest = netlink.Guest{IPv4: netip.MustParseAddr("192.168.105.3"), Source: "dhcp"}
	b.Reset()
	writeStatus(&b, v, false, "", now)
	if w := "\nSSH:         ready (ssh debian@192.168.105.3)\n"; !strings.Contains(b.String(), w) {
		t.Errorf("summary lacks %q:\n%s", w, b.String())
	}
	if strings.Contains(b.String(), "Progress:") {
		t.Errorf("summary shows a progress when there is none:\n%s", b.String())
	}
	v.VM.SSHKey, v.VM.KnownHosts, v.VM.SSHAddress = "/Users/a/Library/Application Support/vmnetbar/vms/dev/ssh/id_ed25519", "/kh", "127.0.0.1:2222"
	b.Reset()
	writeStatus(&b, v, false, "", now)
	if w := "\nSSH:         ready (ssh -i '/Users/a/Library/Application Support/vmnetbar/vms/dev/ssh/id_ed25519' -o IdentitiesOnly=yes -o UserKnownHostsFile=/kh -o StrictHostKeyChecking=accept-new -p 2222 debian@127.0.0.1)\n"; !strings.Contains(b.String(), w) {
		t.Errorf("summary lacks %q:\n%s", w, b.String())
	}

	// A stopped VM that boots a kernel: no image, no SSH line.
	b.Reset()
	writeStatus(&b, model.VMStatus{Name: "dev", VM: model.VM{State: vmhost.StateStopped, SSH: model.SSHUnknown}}, false, "", now)
	for _, w := range []string{"Image:", "SSH:", "Progress:"} {
		if strings.Contains(b.String(), w) {
			t.Errorf("summary of a stopped kernel VM shows %q:\n%s", w, b.String())
		}
	}
}

// TestStatusLineSSHAndProgress: the headless line says ssh= while the VM
// runs and preparing= while its disk is made.
func TestStatusLineSSHAndProgress(t *testing.T) {
	for _, tc := range []struct {
		vm   model.VM
		want string
	}{
		{model.VM{State: vmhost.StateStarting, SSH: model.SSHWaiting, Progress: &model.Progress{Task: "preparing disk", Percent: 42}},
			"vm=starting link=connecting reconnects=0 tx=0B rx=0B drops=0 ssh=waiting preparing=42%"},
		{model.VM{State: vmhost.StateRunning, SSH: model.SSHReady},
			"vm=running link=connecting reconnects=0 tx=0B rx=0B drops=0 ssh=ready"},
		{model.VM{State: vmhost.StateStopped, SSH: model.SSHUnknown},
			"vm=stopped link=connecting reconnects=0 tx=0B rx=0B drops=0"},
	} {
		vm := tc.vm
		if got := statusLine(model.Status{VM: &vm, Link: netlink.Status{State: netlink.StateConnecting}}); got != tc.want {
			t.Errorf("got  %s\nwant %s", got, tc.want)
		}
	}
}
