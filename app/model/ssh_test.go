package model

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// sshVM is a VM whose link learned the guest's address ip ("" for none).
func sshVM(user, ip string) VMStatus {
	v := VMStatus{Name: "dev", VM: VM{SSHUser: user}}
	if ip != "" {
		v.Link.Guest.IPv4 = netip.MustParseAddr(ip)
	}
	return v
}

func TestSSHArgs(t *testing.T) {
	full := sshVM("debian", "192.168.105.3")
	full.VM.SSHKey = "/state/vms/dev/ssh/id_ed25519"
	full.VM.KnownHosts = "/state/vms/dev/ssh/known_hosts"
	forwarded := full
	forwarded.VM.SSHAddress = "127.0.0.1:2222"
	mac := sshVM("alice", "192.168.105.3")
	mac.VM.SSHKey = "/Users/alice/Library/Application Support/vmnetbar/vms/dev/id_ed25519"
	mac.VM.KnownHosts = "/Users/alice/Library/Application Support/vmnetbar/vms/dev/known_hosts"
	v6 := sshVM("alice", "")
	v6.VM.SSHAddress = "[::1]:2222"
	noAddrButForward := sshVM("alice", "")
	noAddrButForward.VM.SSHAddress = "localhost:2222"
	odd := sshVM("alice", "10.0.0.7")
	odd.VM.KnownHosts = `/tmp/50%"x\y/kh`
	oddKey := sshVM("alice", "10.0.0.7")
	oddKey.VM.SSHKey = "/tmp/50% b/key"
	for _, tc := range []struct {
		name string
		v    VMStatus
		want []string
	}{
		{"kernel VM: USER@IP", sshVM("alice", "192.168.105.3"), []string{"alice@192.168.105.3"}},
		{"no user", sshVM("", "192.168.105.3"), nil},
		{"no address", sshVM("alice", ""), nil},
		{"image VM: its key and known_hosts", full, []string{"-i", "/state/vms/dev/ssh/id_ed25519", "-o", "IdentitiesOnly=yes",
			"-o", "UserKnownHostsFile=/state/vms/dev/ssh/known_hosts", "-o", "StrictHostKeyChecking=accept-new", "debian@192.168.105.3"}},
		{"ssh_address wins over the guest's address", forwarded, []string{"-i", "/state/vms/dev/ssh/id_ed25519", "-o", "IdentitiesOnly=yes",
			"-o", "UserKnownHostsFile=/state/vms/dev/ssh/known_hosts", "-o", "StrictHostKeyChecking=accept-new", "-p", "2222", "debian@127.0.0.1"}},
		{"ssh_address without a guest address", noAddrButForward, []string{"-p", "2222", "alice@localhost"}},
		{"ssh_address IPv6", v6, []string{"-p", "2222", "alice@::1"}},
		{"macOS paths with a blank", mac, []string{"-i", "/Users/alice/Library/Application Support/vmnetbar/vms/dev/id_ed25519", "-o", "IdentitiesOnly=yes",
			"-o", `UserKnownHostsFile="/Users/alice/Library/Application Support/vmnetbar/vms/dev/known_hosts"`, "-o", "StrictHostKeyChecking=accept-new", "alice@192.168.105.3"}},
		{"a key with %", oddKey, []string{"-o", `IdentityFile="/tmp/50%% b/key"`, "-o", "IdentitiesOnly=yes", "alice@10.0.0.7"}},
		{"known_hosts with %, a quote and a backslash", odd, []string{"-o", `UserKnownHostsFile="/tmp/50%%\"x\\y/kh"`, "-o", "StrictHostKeyChecking=accept-new", "alice@10.0.0.7"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.v.SSHArgs()
			if strings.Join(got, "\x00") != strings.Join(tc.want, "\x00") || (got == nil) != (tc.want == nil) {
				t.Errorf("SSHArgs() = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestSSHArgsWithOpenSSH runs the system's ssh with SSHArgs against an
// SSH server on loopback, from a directory whose name has a blank, a
// quote and a '%' (as a macOS state directory has a blank): ssh logs in
// as the user, at ssh_address's port, offers only the VM's key, and
// records the server's host key in the VM's known_hosts file (a file
// split at the blank would land elsewhere).
func TestSSHArgsWithOpenSSH(t *testing.T) {
	sshPath, err := exec.LookPath("ssh")
	if err != nil {
		t.Skip("no ssh on PATH (OpenSSH's client): ", err)
	}
	// "": only the blank (-i KEY); a quote and '%' (-o IdentityFile=KEY).
	for _, sub := range []string{"", `it's "50%"`} {
		t.Run(fmt.Sprintf("%q", sub), func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "Application Support", sub)
			if err := os.MkdirAll(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			pub, priv, err := ed25519.GenerateKey(rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			block, err := ssh.MarshalPrivateKey(priv, "")
			if err != nil {
				t.Fatal(err)
			}
			key, kh := filepath.Join(dir, "id_ed25519"), filepath.Join(dir, "known hosts")
			if err := os.WriteFile(key, pem.EncodeToMemory(block), 0o600); err != nil {
				t.Fatal(err)
			}
			userKey, err := ssh.NewPublicKey(pub)
			if err != nil {
				t.Fatal(err)
			}
			srv := startSSHServer(t)

			v := sshVM("debian", "192.168.105.3") // not reachable: ssh_address wins
			v.VM.SSHKey, v.VM.KnownHosts, v.VM.SSHAddress = key, kh, srv.addr
			args := append([]string{"-F", "/dev/null", "-o", "BatchMode=yes", "-o", "ConnectTimeout=30"}, v.SSHArgs()...)
			args = append(args, "true")
			cmd := exec.Command(sshPath, args...)
			home := t.TempDir() // no ~/.ssh: no other key, no other known_hosts
			cmd.Env = append(os.Environ(), "HOME="+home)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("ssh %q logged in; the test server accepts nobody", args)
			}
			t.Logf("ssh %q: %v: %s", args, err, out)

			user, offered := srv.result()
			if user != "debian" {
				t.Errorf("ssh logged in as %q, want debian", user)
			}
			if len(offered) != 1 || !bytes.Equal(offered[0].Marshal(), userKey.Marshal()) {
				t.Errorf("ssh offered %d keys, want only the VM's key", len(offered))
			}
			b, err := os.ReadFile(kh)
			if err != nil {
				t.Fatalf("the VM's known_hosts file: %v", err)
			}
			_, hosts, hostKey, _, _, err := ssh.ParseKnownHosts(b)
			if err != nil || len(hosts) != 1 || hosts[0] != "["+strings.Replace(srv.addr, ":", "]:", 1) ||
				!bytes.Equal(hostKey.Marshal(), srv.hostKey.Marshal()) {
				t.Errorf("known_hosts %q (%v), want the server's host key for [127.0.0.1]:PORT", b, err)
			}
		})
	}
}

// sshServer is an SSH server on loopback that records the user and the
// keys offered, and accepts no one.
type sshServer struct {
	addr    string
	hostKey ssh.PublicKey
	mu      sync.Mutex
	user    string
	offered []ssh.PublicKey
}

func (s *sshServer) result() (string, []ssh.PublicKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.user, append([]ssh.PublicKey(nil), s.offered...)
}

// startSSHServer serves SSH connections until the test ends.
func startSSHServer(t *testing.T) *sshServer {
	t.Helper()
	_, hostPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(hostPriv)
	if err != nil {
		t.Fatal(err)
	}
	s := &sshServer{hostKey: signer.PublicKey()}
	cfg := &ssh.ServerConfig{
		PublicKeyCallback: func(c ssh.ConnMetadata, k ssh.PublicKey) (*ssh.Permissions, error) {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.user = c.User()
			s.offered = append(s.offered, k)
			return nil, errors.New("the test server accepts no one")
		},
	}
	cfg.AddHostKey(signer)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.addr = ln.Addr().String()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				c.SetDeadline(time.Now().Add(time.Minute))
				if sc, _, _, err := ssh.NewServerConn(c, cfg); err == nil {
					sc.Close()
				}
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return s
}

// TestSSHConfigPath: how a path is written as the value of an ssh option.
func TestSSHConfigPath(t *testing.T) {
	for in, want := range map[string]string{
		"/state/known_hosts":              "/state/known_hosts",
		"/Users/a/Application Support/kh": `"/Users/a/Application Support/kh"`,
		"/tmp/50%/kh":                     "/tmp/50%%/kh",
		`/tmp/a"b`:                        `"/tmp/a\"b"`,
		`/tmp/a\b`:                        `"/tmp/a\\b"`,
		"/tmp/it's":                       `"/tmp/it's"`,
		"/tmp/tab\there":                  "\"/tmp/tab\there\"",
	} {
		if got := sshConfigPath(in); got != want {
			t.Errorf("sshConfigPath(%q) = %q, want %q", in, got, want)
		}
	}
}

// ShellJoin quotes for a POSIX shell exactly the words that need it.
func TestShellJoin(t *testing.T) {
	for _, tc := range []struct {
		argv []string
		want string
	}{
		{[]string{"ssh", "alice@192.168.105.3"}, "ssh alice@192.168.105.3"},
		{[]string{"ssh", "-i", "/Users/a/Library/Application Support/k", "-o", "IdentitiesOnly=yes"},
			"ssh -i '/Users/a/Library/Application Support/k' -o IdentitiesOnly=yes"},
		{[]string{"ssh", "-o", `UserKnownHostsFile="/a b/kh"`}, `ssh -o 'UserKnownHostsFile="/a b/kh"'`},
		{[]string{"echo", "it's", "", "$HOME", "a;b"}, `echo 'it'\''s' '' '$HOME' 'a;b'`},
	} {
		if got := ShellJoin(tc.argv); got != tc.want {
			t.Errorf("ShellJoin(%q) = %s, want %s", tc.argv, got, tc.want)
		}
	}
}
