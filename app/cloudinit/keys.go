package cloudinit

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/crypto/ssh"
)

// MaxPubKeyFile is the largest *.pub file HostKeys reads: a public key is
// at most a few KiB (RSA 16384 is about 2.8 KiB).
const MaxPubKeyFile = 64 << 10

// Skipped is a *.pub file that HostKeys left out, and why.
type Skipped struct {
	Path   string
	Reason string
}

func (s Skipped) String() string { return s.Path + ": " + s.Reason }

// HostKeys returns the public keys of the host user: every line of every
// home/.ssh/*.pub, in file name order, as authorized_keys lines. A file
// that cannot be read, or holds anything but public keys (a certificate, a
// private key, garbage), is skipped whole, with the reason. A missing
// ~/.ssh gives no keys and no error.
func HostKeys(home string) (keys []string, skipped []Skipped, err error) {
	dir := filepath.Join(home, ".ssh")
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("listing your SSH keys: %w", err)
	}
	var names []string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".pub") && !strings.HasPrefix(e.Name(), ".") {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	for _, name := range names {
		path := filepath.Join(dir, name)
		ks, reason := readPubFile(path)
		if reason != "" {
			skipped = append(skipped, Skipped{Path: path, Reason: reason})
			continue
		}
		keys = append(keys, ks...)
	}
	return keys, skipped, nil
}

// readPubFile reads one *.pub file (following a symlink): its keys, or why
// it is skipped.
func readPubFile(path string) ([]string, string) {
	f, err := os.Open(path)
	if err != nil {
		return nil, "cannot be read: " + errReason(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, "cannot be read: " + errReason(err)
	}
	if !fi.Mode().IsRegular() {
		return nil, "not a regular file"
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxPubKeyFile+1))
	if err != nil {
		return nil, "cannot be read: " + errReason(err)
	}
	if len(data) > MaxPubKeyFile {
		return nil, fmt.Sprintf("larger than %d KiB, too large for a public key", MaxPubKeyFile>>10)
	}
	return ParsePubKeys(data)
}

func errReason(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// ParsePubKeys parses the content of a *.pub file: one or more
// authorized_keys lines (blank lines and # comments are ignored). It
// returns the lines, trimmed, or why the file is no public key file. Each
// returned line parses with ssh.ParseAuthorizedKey as exactly one key.
func ParsePubKeys(data []byte) (keys []string, reason string) {
	if bytes.Contains(data, []byte("PRIVATE KEY-----")) {
		return nil, "holds a private key: never name a private key as a public one"
	}
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		if err := checkAuthorizedKey(line); err != nil {
			return nil, fmt.Sprintf("line %d: %v", i+1, err)
		}
		keys = append(keys, line)
	}
	if len(keys) == 0 {
		return nil, "holds no key"
	}
	return keys, ""
}

// Key file names in EnsureKey's directory.
const (
	KeyName    = "id_ed25519"
	PubKeyName = "id_ed25519.pub"
	keyComment = "vmnetbar"
)

// EnsureKey returns vmnetbar's own SSH key in dir: the private key's path
// (for ssh -i) and its public key as an authorized_keys line. The first
// call makes dir (mode 0700) and an ed25519 key pair without passphrase,
// the private key in OpenSSH format (mode 0600) and dir/id_ed25519.pub;
// later calls reuse it. Like ssh, it refuses a private key that another
// user owns or that others may read or write, and a directory that others
// may write; the error says what to do.
func EnsureKey(dir string) (privPath, pubLine string, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", fmt.Errorf("making the directory for vmnetbar's SSH key: %w", err)
	}
	if err := checkPrivate(dir, true); err != nil {
		return "", "", err
	}
	privPath = filepath.Join(dir, KeyName)
	if _, err := os.Lstat(privPath); errors.Is(err, os.ErrNotExist) {
		if err := newKey(privPath); err != nil {
			return "", "", fmt.Errorf("making vmnetbar's SSH key %s: %w", privPath, err)
		}
	}
	signer, err := loadKey(privPath)
	if err != nil {
		return "", "", err
	}
	pubLine = strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey()))) + " " + keyComment
	pubPath := filepath.Join(dir, PubKeyName)
	if cur, err := os.ReadFile(pubPath); err != nil || strings.TrimSpace(string(cur)) != pubLine {
		if err := replaceFile(pubPath, []byte(pubLine+"\n"), 0o644); err != nil {
			return "", "", fmt.Errorf("writing vmnetbar's SSH public key %s: %w", pubPath, err)
		}
	}
	return privPath, pubLine, nil
}

// newKey writes a new ed25519 private key to path, unless a key appeared
// there meanwhile (another vmnetbar): then that one is used.
func newKey(path string) error {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	block, err := ssh.MarshalPrivateKey(priv, keyComment)
	if err != nil {
		return err
	}
	_, err = createOnce(path, pem.EncodeToMemory(block), 0o600)
	return err
}

// loadKey reads vmnetbar's private key after checking who may read it.
func loadKey(path string) (ssh.Signer, error) {
	if err := checkPrivate(path, false); err != nil {
		return nil, err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading vmnetbar's SSH key: %w", err)
	}
	signer, err := ssh.ParsePrivateKey(data)
	var missing *ssh.PassphraseMissingError
	switch {
	case errors.As(err, &missing):
		return nil, fmt.Errorf("vmnetbar's SSH key %s has a passphrase, which vmnetbar cannot type: "+
			"remove it (ssh-keygen -p -N '' -f %s) or delete the file and vmnetbar makes a new key", path, path)
	case err != nil:
		return nil, fmt.Errorf("vmnetbar's SSH key %s is not a private key ssh can use (%v): "+
			"delete it and vmnetbar makes a new key", path, err)
	}
	return signer, nil
}

// checkPrivate refuses what ssh would refuse for a private key (or, for a
// directory, what lets others replace it): another owner, a symlink,
// access for others.
func checkPrivate(path string, isDir bool) error {
	fi, err := os.Lstat(path)
	if err != nil {
		return fmt.Errorf("checking vmnetbar's SSH key: %w", err)
	}
	what := "vmnetbar's SSH key"
	if isDir {
		what = "the directory of vmnetbar's SSH key"
	}
	switch {
	case isDir && !fi.IsDir():
		return fmt.Errorf("%s %s is not a directory: move it away", what, path)
	case !isDir && !fi.Mode().IsRegular():
		return fmt.Errorf("%s %s is not a regular file (%s): delete it and vmnetbar makes a new key", what, path, fi.Mode().Type())
	}
	if uid, me, ok := owner(fi); ok && uid != me {
		return fmt.Errorf("%s %s belongs to user id %d, not to you (%d): delete it (or chown it to you) and start again",
			what, path, uid, me)
	}
	perm := fi.Mode().Perm()
	switch {
	case isDir && perm&0o022 != 0:
		return fmt.Errorf("%s %s can be written by others (mode %04o), who could replace the key: run chmod 700 %s",
			what, path, perm, path)
	case !isDir && perm&0o077 != 0:
		return fmt.Errorf("%s %s can be read or written by others (mode %04o), and ssh refuses such a key: run chmod 600 %s",
			what, path, perm, path)
	}
	return nil
}
