package cloudinit

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

func writeFile(t *testing.T, path, content string, perm os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), perm); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, perm); err != nil { // past the umask
		t.Fatal(err)
	}
}

func TestHostKeys(t *testing.T) {
	home := t.TempDir()
	sshDir := filepath.Join(home, ".ssh")
	if err := os.Mkdir(sshDir, 0o700); err != nil {
		t.Fatal(err)
	}
	k1, k2, k3 := testKey(t, 1, "me@laptop"), testKey(t, 2, ""), testKey(t, 3, "third")
	writeFile(t, filepath.Join(sshDir, "id_ed25519.pub"), k1+"\n", 0o644)
	writeFile(t, filepath.Join(sshDir, "a.pub"), "# two keys\n\n"+k2+"\r\n  "+k3+"  \n", 0o644)
	writeFile(t, filepath.Join(sshDir, "id_ed25519"), "-----BEGIN OPENSSH PRIVATE KEY-----\n", 0o600)
	writeFile(t, filepath.Join(sshDir, "known_hosts"), "host "+k1+"\n", 0o644)
	writeFile(t, filepath.Join(sshDir, "garbage.pub"), "not a key\n", 0o644)
	writeFile(t, filepath.Join(sshDir, "empty.pub"), "\n", 0o644)
	writeFile(t, filepath.Join(sshDir, "priv.pub"), "-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n", 0o644)
	writeFile(t, filepath.Join(sshDir, "big.pub"), strings.Repeat("#\n", MaxPubKeyFile), 0o644)
	if err := os.Mkdir(filepath.Join(sshDir, "dir.pub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("nowhere", filepath.Join(sshDir, "dangling.pub")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("id_ed25519.pub", filepath.Join(sshDir, "link.pub")); err != nil {
		t.Fatal(err)
	}
	// A certificate: authorized_keys needs the key itself.
	signer, err := ssh.NewSignerFromKey(mustEd25519(4))
	if err != nil {
		t.Fatal(err)
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(k1))
	if err != nil {
		t.Fatal(err)
	}
	cert := &ssh.Certificate{Key: pub, CertType: ssh.UserCert, ValidPrincipals: []string{"me"}, ValidBefore: ssh.CertTimeInfinity}
	if err := cert.SignCert(zeroReader{}, signer); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(sshDir, "id_ed25519-cert.pub"), string(ssh.MarshalAuthorizedKey(cert)), 0o644)

	keys, skipped, err := HostKeys(home)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{k2, k3, k1, k1} // a.pub, id_ed25519.pub, link.pub
	if strings.Join(keys, "\n") != strings.Join(want, "\n") {
		t.Errorf("keys:\n%s\nwant:\n%s", strings.Join(keys, "\n"), strings.Join(want, "\n"))
	}
	reasons := map[string]string{}
	for _, s := range skipped {
		reasons[filepath.Base(s.Path)] = s.Reason
		if filepath.Dir(s.Path) != sshDir {
			t.Errorf("skipped path %q not in %s", s.Path, sshDir)
		}
	}
	for name, reason := range map[string]string{
		"garbage.pub":         "line 1: \"not a key\" is not an authorized_keys line",
		"empty.pub":           "holds no key",
		"priv.pub":            "holds a private key",
		"big.pub":             "too large",
		"dir.pub":             "not a regular file",
		"dangling.pub":        "cannot be read: no such file or directory",
		"id_ed25519-cert.pub": "is an SSH certificate, not a key",
	} {
		if !strings.Contains(reasons[name], reason) {
			t.Errorf("%s: reason %q, want %q", name, reasons[name], reason)
		}
	}
	if len(skipped) != 7 {
		t.Errorf("skipped %v", skipped)
	}
}

func TestHostKeysUnreadable(t *testing.T) {
	if os.Getuid() == 0 {
		t.Skip("root reads files whatever their mode")
	}
	home := t.TempDir()
	sshDir := filepath.Join(home, ".ssh")
	if err := os.Mkdir(sshDir, 0o700); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(sshDir, "x.pub"), testKey(t, 1, ""), 0o000)
	keys, skipped, err := HostKeys(home)
	if err != nil || len(keys) != 0 || len(skipped) != 1 || !strings.Contains(skipped[0].Reason, "permission denied") {
		t.Errorf("HostKeys = %v, %v, %v", keys, skipped, err)
	}
}

func TestHostKeysNoSSHDir(t *testing.T) {
	keys, skipped, err := HostKeys(t.TempDir())
	if err != nil || keys != nil || skipped != nil {
		t.Errorf("HostKeys = %v, %v, %v; want nothing", keys, skipped, err)
	}
	home := t.TempDir()
	writeFile(t, filepath.Join(home, ".ssh"), "a file", 0o644)
	if _, _, err := HostKeys(home); err == nil || !strings.Contains(err.Error(), "listing your SSH keys") {
		t.Errorf("~/.ssh a file: err = %v", err)
	}
}

func TestEnsureKey(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state", "ssh")
	priv, pub, err := EnsureKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	if priv != filepath.Join(dir, "id_ed25519") {
		t.Errorf("private key path %q", priv)
	}
	if !strings.HasPrefix(pub, "ssh-ed25519 ") || !strings.HasSuffix(pub, " vmnetbar") {
		t.Errorf("public key %q", pub)
	}
	if err := checkAuthorizedKey(pub); err != nil {
		t.Errorf("public key: %v", err)
	}
	for path, mode := range map[string]os.FileMode{dir: 0o700 | os.ModeDir, priv: 0o600, priv + ".pub": 0o644} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != mode {
			t.Errorf("%s: mode %v, want %v", path, fi.Mode(), mode)
		}
	}
	data, err := os.ReadFile(priv)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(data), "-----BEGIN OPENSSH PRIVATE KEY-----\n") {
		t.Errorf("private key is not in OpenSSH format:\n%s", data)
	}
	pubFile, err := os.ReadFile(priv + ".pub")
	if err != nil || string(pubFile) != pub+"\n" {
		t.Errorf("%s = %q, %v; want %q", priv+".pub", pubFile, err, pub+"\n")
	}

	// Reused.
	priv2, pub2, err := EnsureKey(dir)
	if err != nil || priv2 != priv || pub2 != pub {
		t.Errorf("second EnsureKey = %q, %q, %v", priv2, pub2, err)
	}
	// A lost or wrong .pub is written again from the private key.
	writeFile(t, priv+".pub", testKey(t, 9, "wrong")+"\n", 0o644)
	if _, pub3, err := EnsureKey(dir); err != nil || pub3 != pub {
		t.Errorf("EnsureKey with a wrong .pub = %q, %v", pub3, err)
	}
	if b, _ := os.ReadFile(priv + ".pub"); string(b) != pub+"\n" {
		t.Errorf(".pub not rewritten: %q", b)
	}

	// The system's ssh takes the key and derives the same public key.
	keygen, err := exec.LookPath("ssh-keygen")
	if err != nil {
		t.Log("ssh-keygen not installed (Debian package openssh-client): not checked with it")
		return
	}
	out, err := exec.Command(keygen, "-y", "-f", priv).CombinedOutput()
	if err != nil {
		t.Fatalf("ssh-keygen -y -f %s: %v\n%s", priv, err, out)
	}
	if got := strings.Fields(string(out)); len(got) < 2 || got[0]+" "+got[1] != strings.Join(strings.Fields(pub)[:2], " ") {
		t.Errorf("ssh-keygen -y derives %q, want %q", out, pub)
	}
}

func TestEnsureKeyRefused(t *testing.T) {
	t.Run("key readable by others", func(t *testing.T) {
		dir := t.TempDir()
		priv, _, err := EnsureKey(dir)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(priv, 0o644); err != nil {
			t.Fatal(err)
		}
		_, _, err = EnsureKey(dir)
		if err == nil || !strings.Contains(err.Error(), "can be read or written by others (mode 0644)") ||
			!strings.Contains(err.Error(), "chmod 600 "+priv) {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("directory writable by others", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "ssh")
		if err := os.Mkdir(dir, 0o777); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, 0o777); err != nil {
			t.Fatal(err)
		}
		_, _, err := EnsureKey(dir)
		if err == nil || !strings.Contains(err.Error(), "chmod 700 "+dir) {
			t.Errorf("err = %v", err)
		}
		if _, err := os.Stat(filepath.Join(dir, KeyName)); !os.IsNotExist(err) {
			t.Errorf("a key was made in a directory others can write")
		}
	})
	t.Run("key owned by another user", func(t *testing.T) {
		if os.Getuid() != 0 {
			t.Skip("only root can give a file to another user")
		}
		dir := t.TempDir()
		priv, _, err := EnsureKey(dir)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(priv, 65534, -1); err != nil {
			t.Fatal(err)
		}
		_, _, err = EnsureKey(dir)
		if err == nil || !strings.Contains(err.Error(), "belongs to user id 65534, not to you (0)") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("symlink", func(t *testing.T) {
		dir := t.TempDir()
		target := filepath.Join(t.TempDir(), "k")
		writeFile(t, target, "x", 0o600)
		if err := os.Symlink(target, filepath.Join(dir, KeyName)); err != nil {
			t.Fatal(err)
		}
		_, _, err := EnsureKey(dir)
		if err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("not a key", func(t *testing.T) {
		dir := t.TempDir()
		writeFile(t, filepath.Join(dir, KeyName), "garbage", 0o600)
		_, _, err := EnsureKey(dir)
		if err == nil || !strings.Contains(err.Error(), "is not a private key ssh can use") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("passphrase", func(t *testing.T) {
		dir := t.TempDir()
		block, err := ssh.MarshalPrivateKeyWithPassphrase(mustEd25519(5), "c", []byte("secret"))
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, KeyName), string(pemEncode(block)), 0o600)
		_, _, err = EnsureKey(dir)
		if err == nil || !strings.Contains(err.Error(), "has a passphrase") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("dir is a file", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "f")
		writeFile(t, dir, "x", 0o600)
		if _, _, err := EnsureKey(dir); err == nil {
			t.Errorf("no error")
		}
	})
}
