package cli

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmnetbar/vmnetbar/app/model"
	"github.com/vmnetbar/vmnetbar/internal/testwait"
	"github.com/vmnetbar/vmnetbar/netlink"
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

// --wait waits for the address, then runs ssh.
func TestSSHWaitsForTheAddress(t *testing.T) {
	m, sock := serveVMs(t, "dev")
	running(m, "dev")
	m.Set("dev", func(v *model.VMStatus) { v.VM.SSHUser = "bob" })
	t.Setenv(sshEnv, fakeSSH(t))
	p := startCLI(t, nil, true, "ssh", "--control", sock, "--wait", "30s", "--", "true")
	testwait.For(t, "ssh --wait to follow the status", func() bool { return m.Subscribers() > 0 })
	m.Set("dev", func(v *model.VMStatus) {
		v.Link.Guest = netlink.Guest{IPv4: netip.MustParseAddr("192.168.127.9"), Source: "arp"}
	})
	out := make([]byte, 64)
	n, _ := p.stdout.Read(out)
	if p.wait(t, 10*time.Second); p.code != 7 || !strings.HasPrefix(string(out[:n]), "bob@192.168.127.9\n") {
		t.Fatalf("ssh --wait: exit %d, stdout %q, stderr %q", p.code, out[:n], p.stderr.String())
	}
}
