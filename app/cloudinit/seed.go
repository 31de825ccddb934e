package cloudinit

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/crypto/ssh"
)

// Seed is what goes into a VM's NoCloud seed.
type Seed struct {
	// InstanceID is meta-data's instance-id. cloud-init provisions the
	// guest again (new host keys, users, first-boot scripts) whenever it
	// changes, so it must stay the same until the VM's disk is reset:
	// InstanceID(dir) keeps one in the VM's state directory.
	InstanceID string
	// Hostname is meta-data's local-hostname: the VM's name.
	Hostname string
	// User is the guest user made for the host user (ssh_user), with
	// passwordless sudo and AuthorizedKeys.
	User string
	// AuthorizedKeys are authorized_keys lines (HostKeys, EnsureKey). At
	// least one is needed: the guest has no password to log in with.
	AuthorizedKeys []string
	// MAC is the VM's NIC: network-config matches it.
	MAC net.HardwareAddr
	// UserData is the user's own user-data file (user_data), merged after
	// vmnetbar's; nil for none. UserDataPath names it in errors.
	UserData     []byte
	UserDataPath string
}

// Files is a seed's content: the three files of a NoCloud seed.
type Files struct {
	MetaData      []byte // meta-data
	UserData      []byte // user-data
	NetworkConfig []byte // network-config (version 2)
}

// A SeedError is a Seed field that cannot go into a seed. Field is the
// configuration key it comes from.
type SeedError struct {
	Field string // ssh_user, ssh_keys, mac, ...
	Msg   string
}

func (e *SeedError) Error() string { return e.Field + ": " + e.Msg }

var (
	// A guest user name as useradd takes it everywhere (and not a
	// number, which useradd would take as a uid).
	userRE = regexp.MustCompile(`^[a-z_][a-z0-9_.-]{0,31}$`)
	// An RFC 1123 host name label.
	hostRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	// An instance-id: printable, no space (it names a directory under
	// /var/lib/cloud/instances in the guest).
	iidRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)
)

// UserRule says what a guest user name may be (ValidUser).
const UserRule = "1 to 32 lowercase letters, digits, '_', '.' and '-', starting with a letter or '_'"

// ValidUser reports whether name is a user name for the guest that
// cloud-init and ssh both accept (UserRule).
func ValidUser(name string) bool { return userRE.MatchString(name) }

// Validate says what in s cannot go into a seed, naming the configuration
// key to fix.
func (s Seed) Validate() error {
	if !iidRE.MatchString(s.InstanceID) {
		return &SeedError{"instance-id", fmt.Sprintf("%q is not an instance-id (1 to 128 letters, digits, '.', '_' and '-'): "+
			"remove the instance-id file in the VM's state directory and vmnetbar makes a new one", s.InstanceID)}
	}
	if !hostRE.MatchString(s.Hostname) {
		return &SeedError{"local-hostname", fmt.Sprintf("%q is not a host name (1 to 63 lowercase letters, digits and '-', "+
			"starting and ending with a letter or digit): rename the VM", s.Hostname)}
	}
	if !ValidUser(s.User) {
		return &SeedError{"ssh_user", fmt.Sprintf("%q is not a user name for the guest (%s): set ssh_user", s.User, UserRule)}
	}
	if len(s.AuthorizedKeys) == 0 {
		return &SeedError{"ssh_keys", "no key to log in with: name a public key in ssh_keys, or leave it unset " +
			"and vmnetbar uses ~/.ssh/*.pub or a key of its own"}
	}
	for i, k := range s.AuthorizedKeys {
		if err := checkAuthorizedKey(k); err != nil {
			return &SeedError{"ssh_keys", fmt.Sprintf("key %d: %v", i+1, err)}
		}
	}
	if len(s.MAC) != 6 {
		return &SeedError{"mac", fmt.Sprintf("%q is not an Ethernet MAC address (6 bytes)", s.MAC)}
	}
	return nil
}

// checkAuthorizedKey: one authorized_keys line with a key (not a
// certificate) that ssh parses.
func checkAuthorizedKey(line string) error {
	if strings.ContainsAny(line, "\r\n") {
		return errors.New("more than one line: give one key per entry")
	}
	if !utf8.ValidString(line) || strings.ContainsFunc(line, func(r rune) bool { return r != '\t' && unicode.IsControl(r) }) {
		return fmt.Errorf("%q is not text: give the key as ssh-keygen writes it", truncate(line, 40))
	}
	pub, _, _, rest, err := ssh.ParseAuthorizedKey([]byte(line))
	if err != nil {
		return fmt.Errorf("%q is not an authorized_keys line (%v)", truncate(line, 40), err)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return errors.New("more than one key: give one key per entry")
	}
	if _, ok := pub.(*ssh.Certificate); ok {
		return fmt.Errorf("%q is an SSH certificate, not a key: give the key it certifies", truncate(line, 40))
	}
	return nil
}

// Render checks s and renders the seed's files. The output depends on s
// alone, so an unchanged Seed renders the same bytes.
func (s Seed) Render() (Files, error) {
	if err := s.Validate(); err != nil {
		return Files{}, err
	}
	ours := s.cloudConfig()
	userData := ours
	if s.UserData != nil {
		name := s.UserDataPath
		if name == "" {
			name = "(user-data)"
		}
		ud, err := ParseUserData(name, s.UserData)
		if err != nil {
			return Files{}, err
		}
		userData = mimeMultipart(ours, ud)
	}
	return Files{MetaData: s.metaData(), UserData: userData, NetworkConfig: s.networkConfig()}, nil
}

// q renders a string as a YAML double-quoted scalar (JSON strings are
// YAML), so no value is ever read as another type or breaks the layout.
func q(s string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	return strings.TrimSuffix(b.String(), "\n")
}

func (s Seed) metaData() []byte {
	return []byte("instance-id: " + q(s.InstanceID) + "\nlocal-hostname: " + q(s.Hostname) + "\n")
}

func (s Seed) cloudConfig() []byte {
	var b strings.Builder
	b.WriteString("#cloud-config\n")
	b.WriteString("# Written by vmnetbar. To add your own settings, set user_data in vmnetbar's configuration.\n")
	b.WriteString("manage_etc_hosts: true\n")
	b.WriteString("users:\n")
	b.WriteString("  - name: " + q(s.User) + "\n")
	b.WriteString("    shell: \"/bin/bash\"\n")
	b.WriteString("    sudo: \"ALL=(ALL) NOPASSWD:ALL\"\n")
	b.WriteString("    lock_passwd: true\n")
	b.WriteString("    ssh_authorized_keys:\n")
	for _, k := range s.AuthorizedKeys {
		b.WriteString("      - " + q(strings.TrimSpace(k)) + "\n")
	}
	return []byte(b.String())
}

func (s Seed) networkConfig() []byte {
	return []byte("version: 2\n" +
		"ethernets:\n" +
		"  vmnet0:\n" +
		"    match:\n" +
		"      macaddress: " + q(s.MAC.String()) + "\n" +
		"    dhcp4: true\n" +
		"    dhcp-identifier: mac\n")
}

// NewInstanceID returns a new random instance-id ("i-" and 16 hex digits).
func NewInstanceID() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return "i-" + hex.EncodeToString(b[:])
}

// InstanceIDFile is the file in a VM's state directory that keeps its
// instance-id. Resetting the VM's disk removes it, so the next seed has a
// new instance-id and cloud-init provisions the new disk.
const InstanceIDFile = "instance-id"

// InstanceID returns the instance-id kept in dir/instance-id, making one
// (NewInstanceID) the first time. dir must exist.
func InstanceID(dir string) (string, error) {
	path := filepath.Join(dir, InstanceIDFile)
	b, err := os.ReadFile(path)
	if err == nil {
		id := strings.TrimSpace(string(b))
		if !iidRE.MatchString(id) {
			return "", fmt.Errorf("%s holds %q, not an instance-id: remove the file and vmnetbar makes a new one "+
				"(the guest then provisions again)", path, truncate(id, 40))
		}
		return id, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("reading the VM's instance-id: %w", err)
	}
	id := NewInstanceID()
	created, err := createOnce(path, []byte(id+"\n"), 0o644)
	if err != nil {
		return "", fmt.Errorf("saving the VM's instance-id: %w", err)
	}
	if !created { // another process made it first: use its
		return InstanceID(dir)
	}
	return id, nil
}

// ResetInstanceID removes dir/instance-id (for a reset of the VM's disk).
func ResetInstanceID(dir string) error {
	if err := os.Remove(filepath.Join(dir, InstanceIDFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
