package provision

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/vmnetbar/vmnetbar/app/cloudinit"
	"github.com/vmnetbar/vmnetbar/vmhost/disk"
)

// VM is what provisioning needs to know about one VM (from its
// configuration).
type VM struct {
	Name      string           // the VM's name (the guest's hostname)
	StateDir  string           // STATE/vms/NAME: everything below is kept here
	Image     string           // the distro cloud image (qcow2 or raw)
	DiskSize  int64            // the size the disk grows to (0 = disk.DefaultSize)
	CloudInit bool             // write the cloud-init seed
	SSHUser   string           // the guest user (already defaulted to the host user by the caller)
	SSHKeys   []string         // public key files; none = every HOME/.ssh/*.pub (vmnetbar's own key is always added)
	UserData  string           // the user's own user-data file, "" = none
	MAC       net.HardwareAddr // the NIC's MAC (network-config matches it)
	Home      string           // the host user's home (for ~/.ssh), "" = none
}

// File names in the VM's state directory.
const (
	DiskFile       = "disk.raw"
	SeedFile       = "seed.iso"
	EFIVarsFile    = "efi-vars.fd"
	MachineIDFile  = "machine-id"
	SSHDirName     = "ssh"
	KnownHostsFile = "known_hosts"
)

// DiskPath is the VM's disk, StateDir/disk.raw.
func (v VM) DiskPath() string { return filepath.Join(v.StateDir, DiskFile) }

// SeedPath is the VM's cloud-init seed, StateDir/seed.iso.
func (v VM) SeedPath() string { return filepath.Join(v.StateDir, SeedFile) }

// EFIVarsPath is the VM's EFI variable store, StateDir/efi-vars.fd. vmhost
// creates it at the first boot; provision removes it with the disk.
func (v VM) EFIVarsPath() string { return filepath.Join(v.StateDir, EFIVarsFile) }

// MachineIDPath is VZ's machine identifier, StateDir/machine-id. vmhost
// creates it; it is kept across resets.
func (v VM) MachineIDPath() string { return filepath.Join(v.StateDir, MachineIDFile) }

// SSHDir is StateDir/ssh: vmnetbar's own key pair (id_ed25519) and
// known_hosts.
func (v VM) SSHDir() string { return filepath.Join(v.StateDir, SSHDirName) }

// KnownHostsPath is SSHDir()/known_hosts: the guest's host keys, as `vmnetbar
// ssh` accepted them.
func (v VM) KnownHostsPath() string { return filepath.Join(v.SSHDir(), KnownHostsFile) }

// instanceIDPath is where cloudinit.InstanceID keeps the instance-id.
func (v VM) instanceIDPath() string { return filepath.Join(v.StateDir, cloudinit.InstanceIDFile) }

// Result says what Prepare made.
type Result struct {
	Disk    string   // DiskPath()
	Seed    string   // SeedPath(), "" when CloudInit is false
	Created bool     // the disk was made now (first start or after Reset)
	Note    string   // disk.Result.Note, if any (size kept at the image's)
	Key     string   // the private key `vmnetbar ssh` must use: vmnetbar's own key (in the seed); "" when CloudInit is false
	Skipped []string // public key files skipped, with why (for the log)
}

// Error is a problem that a configuration key fixes: Key names it in the
// user's words (image, disk_size, ssh_user, ssh_keys, user_data, mac), so
// that the caller can point at the file and line.
type Error struct {
	Key  string // the configuration key at fault, without the VM's prefix
	Path string // the file at fault, "" when the key names no file
	Msg  string // what is wrong and what to do (names Path)
	Err  error  // the cause (*disk.Error, *cloudinit.UserDataError, ...), or nil
}

func (e *Error) Error() string { return e.Key + ": " + e.Msg }

// Unwrap returns the cause: errors.Is(err, disk.ErrNotImage) works.
func (e *Error) Unwrap() error { return e.Err }

// keyErr makes an *Error.
func keyErr(key, path string, cause error, format string, args ...any) *Error {
	return &Error{Key: key, Path: path, Msg: fmt.Sprintf(format, args...), Err: cause}
}

// Prepare makes what the VM's next boot needs: the disk from the image when
// it does not exist yet (never touching an existing disk: data persists),
// and the seed (rewritten only when its content changes). progress (may be
// nil) gets the disk's bytes done/total while the disk is made, on the
// caller's goroutine. ctx cancels the disk copy (nothing half-made stays).
// Errors that a configuration key fixes are *Error.
//
// The seed's inputs (keys, user-data, ssh_user, mac) are checked before the
// disk is made. A new disk drops the old instance-id, EFI variable store and
// known_hosts first (see the package documentation).
func Prepare(ctx context.Context, v VM, progress func(done, total int64)) (Result, error) {
	if err := v.check(); err != nil {
		return Result{}, err
	}
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	if err := os.MkdirAll(v.StateDir, 0o700); err != nil {
		return Result{}, fmt.Errorf("making the state directory of VM %s: %w", v.Name, err)
	}
	res := Result{Disk: v.DiskPath()}

	// The seed first, with a stand-in instance-id: everything the user can
	// get wrong in it fails now, before minutes of disk conversion.
	var seed cloudinit.Seed
	if v.CloudInit {
		var err error
		seed, res.Key, res.Skipped, err = v.seed()
		if err != nil {
			return Result{}, err
		}
		seed.InstanceID = "i-0000000000000000"
		if _, err := seed.Render(); err != nil {
			return Result{}, seedErr(err)
		}
	}

	exists, err := v.diskExists()
	if err != nil {
		return Result{}, err
	}
	if !exists {
		note, err := v.makeDisk(ctx, progress)
		if err != nil {
			return Result{}, err
		}
		res.Created, res.Note = true, note
	}

	if !v.CloudInit {
		// An old seed may hold the user's own user-data: remove it.
		if err := removeFile(v.SeedPath()); err != nil {
			return Result{}, fmt.Errorf("removing the cloud-init seed of VM %s (cloud_init is off): %w", v.Name, err)
		}
		return res, nil
	}
	iid, err := cloudinit.InstanceID(v.StateDir)
	if err != nil {
		return Result{}, err
	}
	seed.InstanceID = iid
	if _, err := cloudinit.WriteISO(v.SeedPath(), seed); err != nil {
		return Result{}, seedErr(err)
	}
	res.Seed = v.SeedPath()
	return res, nil
}

// Reset removes the VM's disk, its EFI variable store and its instance-id
// (so the next start makes a fresh disk from the image and cloud-init
// provisions it again), and known_hosts (the new guest has new host keys).
// It keeps the machine identifier, the seed (rewritten at the next start
// when its content changes) and vmnetbar's key pair. The VM must not run.
func Reset(v VM) error {
	if v.StateDir == "" {
		return errors.New("resetting a VM: no state directory given")
	}
	// The disk first: should Reset stop half-way, the next Prepare finds no
	// disk and drops the rest itself.
	if err := removeFile(v.DiskPath()); err != nil {
		return fmt.Errorf("resetting VM %s: removing its disk: %w", v.Name, err)
	}
	return v.dropGuestState()
}

// dropGuestState removes what belongs to a disk that is gone: the
// instance-id, the EFI variable store and known_hosts.
func (v VM) dropGuestState() error {
	for _, f := range []struct{ path, what string }{
		{v.instanceIDPath(), "its cloud-init instance-id"},
		{v.EFIVarsPath(), "its EFI variable store"},
		{v.KnownHostsPath(), "the known_hosts of its old disk"},
	} {
		if err := removeFile(f.path); err != nil {
			return fmt.Errorf("resetting VM %s: removing %s: %w", v.Name, f.what, err)
		}
	}
	return nil
}

// removeFile removes path; a missing file is no error.
func removeFile(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// check refuses a VM that provisioning cannot work with.
func (v VM) check() error {
	switch {
	case v.StateDir == "":
		return fmt.Errorf("provisioning VM %q: no state directory given", v.Name)
	case v.Image == "":
		return keyErr("image", "", nil, "is not set: name a distro cloud image (qcow2 or raw)")
	case v.DiskSize < 0:
		return keyErr("disk_size", "", nil, "%d is negative: give a size such as 20GiB, or remove the key for the default (%d GiB)",
			v.DiskSize, disk.DefaultSize>>30)
	}
	return nil
}

// diskExists says whether the VM has its disk. Anything at the disk's path
// but a file (or a symbolic link to one) is an error, never replaced.
func (v VM) diskExists() (bool, error) {
	st, err := os.Stat(v.DiskPath())
	switch {
	case errors.Is(err, os.ErrNotExist):
		if _, lerr := os.Lstat(v.DiskPath()); lerr == nil {
			return false, fmt.Errorf("the disk of VM %s, %s, is a symbolic link to a missing file: "+
				"restore its target, or remove the link and vmnetbar makes a new disk from the image", v.Name, v.DiskPath())
		}
		return false, nil
	case err != nil:
		return false, fmt.Errorf("the disk of VM %s: %w", v.Name, err)
	case !st.Mode().IsRegular():
		return false, fmt.Errorf("the disk of VM %s, %s, is not a file (%s): move it away and vmnetbar makes a new disk from the image",
			v.Name, v.DiskPath(), st.Mode().Type())
	}
	return true, nil
}

// makeDisk makes the VM's disk from its image, after dropping what belonged
// to an old disk. It returns disk.Result.Note.
func (v VM) makeDisk(ctx context.Context, progress func(done, total int64)) (string, error) {
	// disk.Prepare reports a file that is no image as a *disk.Error, but
	// one it cannot open as any other error: check that here.
	if reason := openable(v.Image); reason != "" {
		return "", keyErr("image", v.Image, nil, "%s %s: check the path of the image and its permissions", v.Image, reason)
	}
	if err := v.dropGuestState(); err != nil {
		return "", err
	}
	r, err := disk.Prepare(ctx, v.Image, v.DiskPath(), v.DiskSize, progress)
	var de *disk.Error
	switch {
	case errors.As(err, &de):
		sep := ": " // "PATH: the L1 table ends ...", but "PATH is not a qcow2 image ..."
		if strings.HasPrefix(de.What, "is ") {
			sep = " "
		}
		msg := de.Path + sep + de.What
		if de.Fix != "" {
			msg += "; " + de.Fix
		}
		return "", &Error{Key: "image", Path: v.Image, Msg: msg, Err: err}
	case err != nil:
		return "", fmt.Errorf("making the disk of VM %s: %w", v.Name, err)
	}
	return r.Note, nil
}

// openable says why path is no file that opens for reading, or "". It
// looks before it opens: opening a FIFO would block.
func openable(path string) (reason string) {
	st, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return "does not exist"
	case err != nil:
		return fmt.Sprintf("cannot be read (%v)", pathReason(err))
	case st.IsDir():
		return "is a directory"
	case !st.Mode().IsRegular():
		return "is not a regular file"
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("cannot be read (%v)", pathReason(err))
	}
	_ = f.Close()
	return ""
}

// pathReason is an *os.PathError's reason without the path (which the
// message names already).
func pathReason(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// seed gathers the seed of v but its instance-id: the keys (the user's and
// vmnetbar's own), the user-data file and the rest. It returns the private
// key to log in with and the key files skipped.
func (v VM) seed() (s cloudinit.Seed, key string, skipped []string, err error) {
	var keys []string
	if len(v.SSHKeys) > 0 {
		for _, path := range v.SSHKeys {
			ks, err := readPubKeys(path)
			if err != nil {
				return s, "", nil, err
			}
			keys = append(keys, ks...)
		}
	} else if v.Home != "" {
		ks, sk, err := cloudinit.HostKeys(v.Home)
		if err != nil {
			// vmnetbar's own key still lets the user in.
			skipped = append(skipped, fmt.Sprintf("%s: %v", filepath.Join(v.Home, ".ssh"), err))
		}
		keys = ks
		for _, x := range sk {
			skipped = append(skipped, x.String())
		}
	}
	key, own, err := cloudinit.EnsureKey(v.SSHDir())
	if err != nil {
		return s, "", nil, err
	}
	keys = append(keys, own)
	s = cloudinit.Seed{
		Hostname:       v.Name,
		User:           v.SSHUser,
		AuthorizedKeys: dedup(keys),
		MAC:            v.MAC,
	}
	if v.UserData != "" {
		data, err := readUserData(v.UserData)
		if err != nil {
			return s, "", nil, err
		}
		s.UserData, s.UserDataPath = data, v.UserData
	}
	return s, key, skipped, nil
}

// dedup drops repeated keys (the same line twice), keeping the first.
func dedup(keys []string) []string {
	var out []string
	for _, k := range keys {
		if !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	return out
}

// readPubKeys reads a public key file named in ssh_keys.
func readPubKeys(path string) ([]string, error) {
	data, reason := readLimited(path, cloudinit.MaxPubKeyFile)
	if reason == "" {
		var keys []string
		if keys, reason = cloudinit.ParsePubKeys(data); reason == "" {
			return keys, nil
		}
	}
	return nil, keyErr("ssh_keys", path, nil, "%s: %s; name an SSH public key file (such as ~/.ssh/id_ed25519.pub)", path, reason)
}

// readUserData reads the user-data file named in user_data.
func readUserData(path string) ([]byte, error) {
	data, reason := readLimited(path, cloudinit.MaxUserDataSize)
	if reason != "" {
		return nil, keyErr("user_data", path, nil, "%s: %s; name your own cloud-init user-data file, or remove user_data", path, reason)
	}
	return data, nil
}

// readLimited reads a regular file of at most limit bytes, or says why it
// cannot ("does not exist", "is a directory", ...). A FIFO or device is
// refused before it is opened, so nothing blocks.
func readLimited(path string, limit int64) (data []byte, reason string) {
	if reason := openable(path); reason != "" {
		return nil, reason
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Sprintf("cannot be read (%v)", pathReason(err))
	}
	defer f.Close()
	data, err = io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Sprintf("cannot be read (%v)", pathReason(err))
	}
	if int64(len(data)) > limit {
		return nil, fmt.Sprintf("is larger than %d KiB, too large", limit>>10)
	}
	return data, ""
}

// seedErr names the configuration key of a seed's error.
func seedErr(err error) error {
	var ue *cloudinit.UserDataError
	if errors.As(err, &ue) {
		return &Error{Key: "user_data", Path: ue.Path, Msg: ue.Path + ": " + ue.Msg, Err: err}
	}
	var se *cloudinit.SeedError
	if errors.As(err, &se) {
		switch se.Field {
		case "ssh_user", "ssh_keys", "mac":
			return &Error{Key: se.Field, Msg: se.Msg, Err: err}
		}
	}
	return err
}
