package cli

import (
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmnetbar/vmnetbar/app/model"
	"github.com/vmnetbar/vmnetbar/internal/testwait"
	"github.com/vmnetbar/vmnetbar/netlink"
	"github.com/vmnetbar/vmnetbar/vmhost"
)

// fakeSSH is an ssh program that prints its arguments, one per line, and
// exits 7.
func fakeSSH(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "ssh")
	if err := os.WriteFile(p, []byte("#!/bin/sh\nfor a in \"$@\"; do echo \"$a\"; done\nexit 7\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestSSHCommandLine checks the exact command line 'vmnetbar ssh' runs:
// USER@ADDRESS of the VM named, then everything after '--', and that it
// exits with ssh's status.
func TestSSHCommandLine(t *testing.T) {
	m, sock := serveVMs(t, "build", "dev")
	running(m, "dev")
	m.Set("dev", func(v *model.VMStatus) { v.VM.SSHUser = "alice" })
	env := []string{sshEnv + "=" + fakeSSH(t)}

	if r := runCLIEnv(t, env, "ssh", "--control", sock); r.code != ExitUsage || !strings.Contains(r.stderr, "build, dev") {
		t.Fatalf("ssh without a NAME among two: exit %d, %q", r.code, r.stderr)
	}
	if r := runCLIEnv(t, env, "ssh", "dev", "extra", "--control", sock); r.code != ExitUsage || !strings.Contains(r.stderr, "after '--'") {
		t.Fatalf("ssh with two names: exit %d, %q", r.code, r.stderr)
	}
	// No address yet: exit 1 saying why.
	if r := runCLIEnv(t, env, "ssh", "dev", "--control", sock); r.code != ExitFailure || !strings.Contains(r.stderr, "no DHCP or ARP seen from the guest yet") {
		t.Fatalf("ssh before the address is known: exit %d, %q", r.code, r.stderr)
	}

	m.Set("dev", func(v *model.VMStatus) {
		v.VM.SSHUser = "alice"
		v.Link.Guest = netlink.Guest{IPv4: netip.MustParseAddr("192.168.127.3"), Source: "dhcp"}
	})
	r := runCLIEnv(t, env, "ssh", "dev", "--control", sock, "--", "-p", "2222", "uname", "-a")
	if want := "alice@192.168.127.3\n-p\n2222\nuname\n-a\n"; r.code != 7 || r.stdout != want {
		t.Fatalf("ssh dev -- ...: exit %d, stdout %q, want 7 and %q; stderr %q", r.code, r.stdout, want, r.stderr)
	}
	if r := runCLIEnv(t, []string{sshEnv + "=/nonexistent/ssh"}, "ssh", "dev", "--control", sock); r.code != ExitFailure || !strings.Contains(r.stderr, "cannot run /nonexistent/ssh") {
		t.Fatalf("ssh without an ssh program: exit %d, %q", r.code, r.stderr)
	}
}

// A VM that boots a kernel is waited for only with --wait, and then until
// its SSH is ready, not merely until its address is known.
func TestSSHWaitsWithWait(t *testing.T) {
	m, sock := serveVMs(t, "dev")
	running(m, "dev")
	m.Set("dev", func(v *model.VMStatus) { v.VM.SSHUser, v.VM.SSH = "bob", model.SSHWaiting })
	t.Setenv(sshEnv, fakeSSH(t))
	p := startCLI(t, nil, true, "ssh", "--control", sock, "--wait", "30s", "--", "true")
	testwait.For(t, "ssh --wait to follow the status", func() bool { return m.Subscribers() > 0 })
	m.Set("dev", func(v *model.VMStatus) {
		v.Link.Guest = netlink.Guest{IPv4: netip.MustParseAddr("192.168.127.9"), Source: "arp"}
	})
	// The address alone does not end the wait (TestSSHWaitDecisions).
	m.Set("dev", func(v *model.VMStatus) { v.VM.SSH = model.SSHReady })
	out := make([]byte, 64)
	n, _ := p.stdout.Read(out)
	if p.wait(t, 10*time.Second); p.code != 7 || !strings.HasPrefix(string(out[:n]), "bob@192.168.127.9\n") {
		t.Fatalf("ssh --wait: exit %d, stdout %q, stderr %q", p.code, out[:n], p.stderr.String())
	}
}

// cloudVM makes the VM called name of m one made from an image, running,
// its SSH as given, with vmnetbar's key and its own known_hosts.
func cloudVM(m interface {
	Set(string, func(*model.VMStatus))
}, name string, ssh model.SSHState) {
	m.Set(name, func(v *model.VMStatus) {
		v.VM.State, v.Link.State = vmhost.StateRunning, netlink.StateUp
		v.VM.Image = testImage
		v.VM.SSHUser, v.VM.SSH = "tester", ssh
		v.VM.SSHKey = "/state/vms/" + name + "/ssh/id_ed25519"
		v.VM.KnownHosts = "/state/vms/" + name + "/ssh/known_hosts"
		v.Link.Guest = netlink.Guest{IPv4: netip.MustParseAddr("192.168.105.3"), Source: "dhcp"}
	})
}

// TestSSHToACloudImage checks the exact ssh command line for a VM made
// from an image: vmnetbar's key, the VM's known_hosts, and ssh_address
// when set.
func TestSSHToACloudImage(t *testing.T) {
	m, sock := serveVMs(t, "dev")
	cloudVM(m, "dev", model.SSHReady)
	env := []string{sshEnv + "=" + fakeSSH(t)}
	const opts = "-i\n/state/vms/dev/ssh/id_ed25519\n-o\nIdentitiesOnly=yes\n" +
		"-o\nUserKnownHostsFile=/state/vms/dev/ssh/known_hosts\n-o\nStrictHostKeyChecking=accept-new\n"

	r := runCLIEnv(t, env, "ssh", "dev", "--control", sock, "--", "uname", "-a")
	if want := opts + "tester@192.168.105.3\nuname\n-a\n"; r.code != 7 || r.stdout != want || r.stderr != "" {
		t.Errorf("ssh dev: exit %d, stdout %q, stderr %q; want 7 and %q", r.code, r.stdout, r.stderr, want)
	}

	// ssh_address (gvproxy's forward) replaces the guest's address.
	m.Set("dev", func(v *model.VMStatus) { v.VM.SSHAddress = "127.0.0.1:2222" })
	r = runCLIEnv(t, env, "ssh", "dev", "--control", sock)
	if want := opts + "-p\n2222\ntester@127.0.0.1\n"; r.code != 7 || r.stdout != want {
		t.Errorf("ssh dev with ssh_address: exit %d, stdout %q, stderr %q; want %q", r.code, r.stdout, r.stderr, want)
	}
	// ... also when the guest's address is not known (the daemon's
	// guests are not reachable from the host), and on port 22.
	m.Set("dev", func(v *model.VMStatus) { v.VM.SSHAddress, v.Link.Guest = "[::1]:22", netlink.Guest{} })
	r = runCLIEnv(t, env, "ssh", "dev", "--control", sock)
	if want := opts + "-p\n22\ntester@::1\n"; r.code != 7 || r.stdout != want {
		t.Errorf("ssh dev with ssh_address [::1]:22: exit %d, stdout %q, stderr %q; want %q", r.code, r.stdout, r.stderr, want)
	}

	// Without vmnetbar's key and known_hosts, only the destination.
	m.Set("dev", func(v *model.VMStatus) { v.VM.SSHKey, v.VM.KnownHosts, v.VM.SSHAddress = "", "", "" })
	m.Set("dev", func(v *model.VMStatus) { v.Link.Guest.IPv4 = netip.MustParseAddr("192.168.105.3") })
	if r := runCLIEnv(t, env, "ssh", "dev", "--control", sock); r.stdout != "tester@192.168.105.3\n" {
		t.Errorf("ssh dev without a key: stdout %q, stderr %q", r.stdout, r.stderr)
	}
}

// TestSSHWaitsUntilReady: for a VM made from an image, 'vmnetbar ssh'
// waits (without --wait) until its SSH is ready, and runs ssh then; on
// anything but a terminal it says nothing while it waits.
func TestSSHWaitsUntilReady(t *testing.T) {
	m, sock := serveVMs(t, "dev")
	cloudVM(m, "dev", model.SSHWaiting)
	m.Set("dev", func(v *model.VMStatus) { v.VM.State, v.Link.Guest = vmhost.StateStarting, netlink.Guest{} })
	t.Setenv(sshEnv, fakeSSH(t))
	p := startCLI(t, nil, true, "ssh", "dev", "--control", sock)
	testwait.For(t, "ssh to follow the status", func() bool { return m.Subscribers() > 0 })
	m.Set("dev", func(v *model.VMStatus) { v.VM.Progress = &model.Progress{Task: "preparing disk", Percent: 42} })
	m.Set("dev", func(v *model.VMStatus) { v.VM.Progress, v.VM.State = nil, vmhost.StateRunning })
	m.Set("dev", func(v *model.VMStatus) { v.Link.Guest.IPv4 = netip.MustParseAddr("192.168.105.3") })
	m.Set("dev", func(v *model.VMStatus) { v.VM.SSH = model.SSHReady })
	p.wait(t, 10*time.Second)
	out, _ := io.ReadAll(p.stdout)
	if p.code != 7 || !strings.HasSuffix(string(out), "tester@192.168.105.3\n") || p.stderr.String() != "" {
		t.Fatalf("ssh dev: exit %d, stdout %q, stderr %q; want 7, ssh to tester@192.168.105.3 and nothing on stderr", p.code, out, p.stderr.String())
	}
}

// TestSSHToAVMThatIsNotUp: a stopped VM is not waited for, a VM that
// stops or fails while waited for ends the wait, and a wait that runs out
// says what it waited for.
func TestSSHToAVMThatIsNotUp(t *testing.T) {
	m, sock := serveVMs(t, "dev")
	m.Set("dev", func(v *model.VMStatus) { v.VM.Image, v.VM.SSHUser, v.VM.SSH = testImage, "tester", model.SSHUnknown })
	env := []string{sshEnv + "=" + fakeSSH(t)}
	if r := runCLIEnv(t, env, "ssh", "dev", "--control", sock); r.code != ExitFailure || r.stderr != "vmnetbar ssh: dev is stopped: vmnetbar start dev\n" {
		t.Errorf("ssh to a stopped VM: exit %d, stderr %q", r.code, r.stderr)
	}
	m.Set("dev", func(v *model.VMStatus) { v.VM.State, v.VM.Error = vmhost.StateError, "QEMU exited: status 1" })
	if r := runCLIEnv(t, env, "ssh", "dev", "--control", sock); r.code != ExitFailure || !strings.Contains(r.stderr, "dev failed (QEMU exited: status 1): vmnetbar start dev") {
		t.Errorf("ssh to a failed VM: exit %d, stderr %q", r.code, r.stderr)
	}

	// It fails while waited for.
	cloudVM(m, "dev", model.SSHWaiting)
	t.Setenv(sshEnv, fakeSSH(t))
	p := startCLI(t, nil, false, "ssh", "dev", "--control", sock)
	testwait.For(t, "ssh to follow the status", func() bool { return m.Subscribers() > 0 })
	m.Set("dev", func(v *model.VMStatus) { v.VM.State, v.VM.Error = vmhost.StateError, "the guest crashed" })
	if p.wait(t, 10*time.Second); p.code != ExitFailure || !strings.Contains(p.stderr.String(), "dev failed (the guest crashed): vmnetbar start dev") {
		t.Errorf("ssh to a VM that fails while waited for: exit %d, stderr %q", p.code, p.stderr.String())
	}

	// The wait runs out.
	cloudVM(m, "dev", model.SSHWaiting)
	r := runCLIEnv(t, env, "ssh", "dev", "--wait", "1ms", "--control", sock)
	if r.code != ExitFailure || !strings.Contains(r.stderr, "dev's SSH is not ready after 1ms (booting)") || r.stdout != "" {
		t.Errorf("ssh whose wait runs out: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	// --wait 0 does not wait: ssh runs at once.
	if r := runCLIEnv(t, env, "ssh", "dev", "--wait", "0", "--control", sock); r.code != 7 || !strings.HasSuffix(r.stdout, "tester@192.168.105.3\n") {
		t.Errorf("ssh --wait 0: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}

// TestSSHWaitDecisions: how long 'vmnetbar ssh' waits, and for what.
func TestSSHWaitDecisions(t *testing.T) {
	kernel := model.VMStatus{Name: "dev", VM: model.VM{State: vmhost.StateRunning}}
	image := model.VMStatus{Name: "dev", VM: model.VM{State: vmhost.StateRunning, Image: testImage}}
	for _, tc := range []struct {
		what string
		v    model.VMStatus
		wait time.Duration
		set  bool
		want time.Duration
	}{
		{"a kernel VM, no --wait", kernel, 0, false, 0},
		{"a kernel VM, --wait 2m", kernel, 2 * time.Minute, true, 2 * time.Minute},
		{"an image VM, no --wait", image, 0, false, 5 * time.Minute},
		{"an image VM, --wait 0", image, 0, true, 0},
		{"an image VM, --wait 10m", image, 10 * time.Minute, true, 10 * time.Minute},
	} {
		if got := sshWait(tc.v, tc.wait, tc.set); got != tc.want {
			t.Errorf("%s: waits %v, want %v", tc.what, got, tc.want)
		}
	}

	for _, tc := range []struct {
		what string
		set  func(*model.VMStatus)
		over bool
	}{
		{"starting", func(v *model.VMStatus) { v.VM.State, v.VM.SSH = vmhost.StateStarting, model.SSHWaiting }, false},
		// A vmnetbar from before the SSH check: its address is enough.
		{"no SSH state, no address", func(v *model.VMStatus) { v.VM.SSH = "" }, false},
		{"no SSH state, an address", func(v *model.VMStatus) {
			v.VM.SSH, v.Link.Guest.IPv4 = "", netip.MustParseAddr("192.168.105.3")
		}, true},
		{"running, no address", func(v *model.VMStatus) { v.VM.SSH = model.SSHWaiting }, false},
		{"running, an address, SSH not ready", func(v *model.VMStatus) {
			v.VM.SSH, v.Link.Guest.IPv4 = model.SSHWaiting, netip.MustParseAddr("192.168.105.3")
		}, false},
		{"SSH ready", func(v *model.VMStatus) { v.VM.SSH = model.SSHReady }, true},
		{"stopped", func(v *model.VMStatus) { v.VM.State, v.VM.SSH = vmhost.StateStopped, model.SSHUnknown }, true},
		{"stopping", func(v *model.VMStatus) { v.VM.State = vmhost.StateStopping }, true},
		{"failed", func(v *model.VMStatus) { v.VM.State = vmhost.StateError }, true},
	} {
		v := image
		tc.set(&v)
		if got := sshWaitOver(v); got != tc.over {
			t.Errorf("%s: the wait is over: %v, want %v", tc.what, got, tc.over)
		}
	}
}
