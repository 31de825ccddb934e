package provision

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vmnetbar/vmnetbar/app/cloudinit"
	"github.com/vmnetbar/vmnetbar/vmhost/disk"
)

func TestPaths(t *testing.T) {
	v := VM{StateDir: "/s/vms/dev"}
	for got, want := range map[string]string{
		v.DiskPath():       "/s/vms/dev/disk.raw",
		v.SeedPath():       "/s/vms/dev/seed.iso",
		v.EFIVarsPath():    "/s/vms/dev/efi-vars.fd",
		v.MachineIDPath():  "/s/vms/dev/machine-id",
		v.SSHDir():         "/s/vms/dev/ssh",
		v.KnownHostsPath(): "/s/vms/dev/ssh/known_hosts",
	} {
		if got != want {
			t.Errorf("got %s, want %s", got, want)
		}
	}
}

// The first Prepare makes the disk and the seed; the second leaves the
// disk alone (the VM's data persists) and does not rewrite the seed.
func TestPrepareMakesThenKeeps(t *testing.T) {
	f := newFixture(t)
	var calls [][2]int64
	res, err := Prepare(t.Context(), f.VM, func(done, total int64) { calls = append(calls, [2]int64{done, total}) })
	if err != nil {
		t.Fatal(err)
	}
	ownKey := filepath.Join(f.SSHDir(), cloudinit.KeyName)
	want := Result{Disk: f.DiskPath(), Seed: f.SeedPath(), Created: true, Key: ownKey}
	if res.Disk != want.Disk || res.Seed != want.Seed || !res.Created || res.Key != want.Key || res.Note != "" || len(res.Skipped) != 0 {
		t.Fatalf("first Prepare: %+v, want %+v", res, want)
	}
	if n := len(calls); n == 0 || calls[n-1] != [2]int64{imageSize, imageSize} {
		t.Errorf("progress calls %v, want them to end with (%d, %d)", calls, imageSize, imageSize)
	}
	d := readFile(t, f.DiskPath())
	if int64(len(d)) != f.DiskSize || !bytes.Equal(d[:imageSize], f.image) {
		t.Fatalf("disk is %d bytes (want %d) or differs from the image", len(d), f.DiskSize)
	}
	iid := strings.TrimSpace(string(readFile(t, filepath.Join(f.StateDir, cloudinit.InstanceIDFile))))
	pub := strings.TrimSpace(string(readFile(t, ownKey+".pub")))
	for _, s := range []string{iid, f.homeKey, pub, `"alice"`, `"dev"`, "52:54:00:12:34:56"} {
		if !seedHolds(t, f.SeedPath(), s) {
			t.Errorf("the seed does not hold %q", s)
		}
	}
	if fi, err := os.Stat(f.StateDir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("state directory: %v, mode %v; want 0700", err, fi.Mode())
	}

	// The guest writes to its disk; the next start keeps it.
	marker := []byte("written by the guest")
	df, err := os.OpenFile(f.DiskPath(), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := df.WriteAt(marker, 2<<20); err != nil {
		t.Fatal(err)
	}
	if err := df.Close(); err != nil {
		t.Fatal(err)
	}
	seedBefore, diskBefore := stampOf(t, f.SeedPath()), stampOf(t, f.DiskPath())

	calls = nil
	res, err = Prepare(t.Context(), f.VM, func(done, total int64) { calls = append(calls, [2]int64{done, total}) })
	if err != nil {
		t.Fatal(err)
	}
	if res.Created || res.Disk != f.DiskPath() || res.Seed != f.SeedPath() || res.Key != ownKey {
		t.Errorf("second Prepare: %+v", res)
	}
	if len(calls) != 0 {
		t.Errorf("progress called %v without a disk to make", calls)
	}
	if d := readFile(t, f.DiskPath()); !bytes.Equal(d[2<<20:2<<20+len(marker)], marker) {
		t.Error("the second Prepare replaced the disk: the guest's data is gone")
	}
	if !stampOf(t, f.DiskPath()).same(diskBefore) {
		t.Error("the second Prepare touched the disk")
	}
	if !stampOf(t, f.SeedPath()).same(seedBefore) {
		t.Error("the second Prepare rewrote an unchanged seed")
	}
	if got := strings.TrimSpace(string(readFile(t, filepath.Join(f.StateDir, cloudinit.InstanceIDFile)))); got != iid {
		t.Errorf("instance-id changed from %s to %s without a reset", iid, got)
	}
}

// A qcow2 image made by qemu-img converts to the same bytes.
func TestPrepareQcow2(t *testing.T) {
	qemuImg, err := exec.LookPath("qemu-img")
	if err != nil {
		t.Skipf("qemu-img is not installed (apt-get install -y qemu-utils): %v", err)
	}
	f := newFixture(t)
	qcow := f.path("debian.qcow2")
	if out, err := exec.Command(qemuImg, "convert", "-f", "raw", "-O", "qcow2", f.Image, qcow).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img convert: %v\n%s", err, out)
	}
	f.Image = qcow
	res, err := Prepare(t.Context(), f.VM, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Created {
		t.Errorf("Created is false after the first Prepare")
	}
	d := readFile(t, f.DiskPath())
	if int64(len(d)) != f.DiskSize || !bytes.Equal(d[:imageSize], f.image) || bytes.ContainsFunc(d[imageSize:], func(r rune) bool { return r != 0 }) {
		t.Errorf("disk (%d bytes) is not the image's disk grown to %d bytes", len(d), f.DiskSize)
	}
}

// A disk size smaller than the image keeps the image's size, with a note.
func TestPrepareNote(t *testing.T) {
	f := newFixture(t)
	f.DiskSize = 1 << 20
	res, err := Prepare(t.Context(), f.VM, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Note == "" {
		t.Error("no note for a disk_size smaller than the image")
	}
	if fi, err := os.Stat(f.DiskPath()); err != nil || fi.Size() != imageSize {
		t.Errorf("disk: %v, want %d bytes", err, imageSize)
	}
}

// A changed key rewrites the seed (and nothing else).
func TestChangedKeyRewritesSeed(t *testing.T) {
	f := newFixture(t)
	keyFile := f.path("work.pub")
	k1, k2 := pubKey(t, "work-1"), pubKey(t, "work-2")
	writeFile(t, keyFile, []byte(k1+"\n"), 0o644)
	f.SSHKeys = []string{keyFile}
	if _, err := Prepare(t.Context(), f.VM, nil); err != nil {
		t.Fatal(err)
	}
	if !seedHolds(t, f.SeedPath(), k1) {
		t.Fatal("the seed does not hold the key of ssh_keys")
	}
	if seedHolds(t, f.SeedPath(), f.homeKey) {
		t.Error("the seed holds ~/.ssh's key although ssh_keys is set")
	}
	before, disk := stampOf(t, f.SeedPath()), stampOf(t, f.DiskPath())

	writeFile(t, keyFile, []byte(k2+"\n"), 0o644)
	res, err := Prepare(t.Context(), f.VM, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Created || !stampOf(t, f.DiskPath()).same(disk) {
		t.Error("a changed key made a new disk")
	}
	if stampOf(t, f.SeedPath()).same(before) {
		t.Error("the seed was not rewritten for a changed key")
	}
	if !seedHolds(t, f.SeedPath(), k2) || seedHolds(t, f.SeedPath(), k1) {
		t.Error("the rewritten seed does not hold the new key alone")
	}
	// vmnetbar's own key is still there, beside the user's.
	pub := strings.TrimSpace(string(readFile(t, filepath.Join(f.SSHDir(), cloudinit.PubKeyName))))
	if !seedHolds(t, f.SeedPath(), pub) || res.Key != filepath.Join(f.SSHDir(), cloudinit.KeyName) {
		t.Errorf("vmnetbar's own key is not in the seed or not Result.Key (%q)", res.Key)
	}
}

// Without keys of the user's, vmnetbar's own key lets `vmnetbar ssh` in;
// a ~/.ssh/*.pub that is no key is skipped and reported.
func TestKeysFromHome(t *testing.T) {
	t.Run("no keys", func(t *testing.T) {
		f := newFixture(t)
		if err := os.RemoveAll(filepath.Join(f.Home, ".ssh")); err != nil {
			t.Fatal(err)
		}
		res, err := Prepare(t.Context(), f.VM, nil)
		if err != nil {
			t.Fatal(err)
		}
		priv := filepath.Join(f.SSHDir(), cloudinit.KeyName)
		if res.Key != priv {
			t.Errorf("Key = %q, want %q", res.Key, priv)
		}
		pub := strings.TrimSpace(string(readFile(t, priv+".pub")))
		if !seedHolds(t, f.SeedPath(), pub) {
			t.Error("the seed does not hold vmnetbar's own key")
		}
	})
	t.Run("skipped", func(t *testing.T) {
		f := newFixture(t)
		bad := filepath.Join(f.Home, ".ssh", "garbage.pub")
		writeFile(t, bad, []byte("not a key\n"), 0o644)
		res, err := Prepare(t.Context(), f.VM, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Skipped) != 1 || !strings.HasPrefix(res.Skipped[0], bad+": ") {
			t.Errorf("Skipped = %q, want one entry for %s", res.Skipped, bad)
		}
		if !seedHolds(t, f.SeedPath(), f.homeKey) {
			t.Error("the seed does not hold the good key of ~/.ssh")
		}
	})
	t.Run("no home", func(t *testing.T) {
		f := newFixture(t)
		f.Home = ""
		t.Chdir(filepath.Dir(f.Image)) // a .ssh here must not be read
		writeFile(t, filepath.Join(".ssh", "id.pub"), []byte(f.homeKey+"\n"), 0o644)
		res, err := Prepare(t.Context(), f.VM, nil)
		if err != nil {
			t.Fatal(err)
		}
		if seedHolds(t, res.Seed, f.homeKey) {
			t.Error("without a home, Prepare read .ssh in the working directory")
		}
	})
}

// Reset removes the disk, EFI vars, instance-id and known_hosts, keeps the
// machine identifier, the seed and vmnetbar's key; the next Prepare makes a
// new disk and a new instance-id.
func TestReset(t *testing.T) {
	f := newFixture(t)
	if _, err := Prepare(t.Context(), f.VM, nil); err != nil {
		t.Fatal(err)
	}
	iidPath := filepath.Join(f.StateDir, cloudinit.InstanceIDFile)
	iid := strings.TrimSpace(string(readFile(t, iidPath)))
	writeFile(t, f.EFIVarsPath(), []byte("efi vars"), 0o600)
	writeFile(t, f.MachineIDPath(), []byte("machine id"), 0o600)
	writeFile(t, f.KnownHostsPath(), []byte("[127.0.0.1]:2222 ssh-ed25519 AAAA\n"), 0o600)
	priv := filepath.Join(f.SSHDir(), cloudinit.KeyName)
	keyBefore := readFile(t, priv)
	df, err := os.OpenFile(f.DiskPath(), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := df.WriteAt([]byte("old guest"), 2<<20); err != nil {
		t.Fatal(err)
	}
	_ = df.Close()

	if err := Reset(f.VM); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{f.DiskPath(), f.EFIVarsPath(), iidPath, f.KnownHostsPath()} {
		if exists(t, p) {
			t.Errorf("%s is left after Reset", p)
		}
	}
	for _, p := range []string{f.MachineIDPath(), f.SeedPath(), priv} {
		if !exists(t, p) {
			t.Errorf("Reset removed %s", p)
		}
	}
	if err := Reset(f.VM); err != nil {
		t.Errorf("a second Reset: %v", err)
	}

	res, err := Prepare(t.Context(), f.VM, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Created {
		t.Error("Created is false after Reset")
	}
	if d := readFile(t, f.DiskPath()); !bytes.Equal(d[:imageSize], f.image) {
		t.Error("the disk after Reset is not the image's")
	}
	newIID := strings.TrimSpace(string(readFile(t, iidPath)))
	if newIID == iid || !seedHolds(t, f.SeedPath(), newIID) || seedHolds(t, f.SeedPath(), iid) {
		t.Errorf("instance-id after Reset: %s (was %s); the seed must hold the new one only", newIID, iid)
	}
	if !bytes.Equal(readFile(t, priv), keyBefore) || string(readFile(t, f.MachineIDPath())) != "machine id" {
		t.Error("vmnetbar's key or the machine identifier changed across Reset")
	}
}

func TestResetNeedsStateDir(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	writeFile(t, DiskFile, []byte("not ours"), 0o600)
	if err := Reset(VM{Name: "dev"}); err == nil {
		t.Fatal("Reset without a state directory succeeded")
	}
	if !exists(t, filepath.Join(dir, DiskFile)) {
		t.Error("Reset without a state directory removed disk.raw in the working directory")
	}
}

// A disk that went away (removed by hand, or a Reset killed half-way) is
// a new guest: its old instance-id, EFI vars and known_hosts go too.
func TestNewDiskDropsOldGuestState(t *testing.T) {
	f := newFixture(t)
	if _, err := Prepare(t.Context(), f.VM, nil); err != nil {
		t.Fatal(err)
	}
	iidPath := filepath.Join(f.StateDir, cloudinit.InstanceIDFile)
	iid := string(readFile(t, iidPath))
	writeFile(t, f.EFIVarsPath(), []byte("efi vars"), 0o600)
	writeFile(t, f.KnownHostsPath(), []byte("old host key\n"), 0o600)
	if err := os.Remove(f.DiskPath()); err != nil {
		t.Fatal(err)
	}
	res, err := Prepare(t.Context(), f.VM, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Created {
		t.Error("Created is false for a new disk")
	}
	if exists(t, f.EFIVarsPath()) || exists(t, f.KnownHostsPath()) {
		t.Error("the old disk's EFI vars or known_hosts are left beside the new disk")
	}
	if string(readFile(t, iidPath)) == iid {
		t.Error("the new disk got the old disk's instance-id")
	}
}

// Once the disk exists the image is no longer needed.
func TestImageGoneAfterFirstStart(t *testing.T) {
	f := newFixture(t)
	if _, err := Prepare(t.Context(), f.VM, nil); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(f.Image); err != nil {
		t.Fatal(err)
	}
	res, err := Prepare(t.Context(), f.VM, nil)
	if err != nil {
		t.Fatalf("Prepare with the disk made and the image gone: %v", err)
	}
	if res.Created {
		t.Error("Created is true for a kept disk")
	}
}

// A temporary disk left by a killed run is cleaned up.
func TestKilledRunLeftovers(t *testing.T) {
	f := newFixture(t)
	leftover := filepath.Join(f.StateDir, ".disk.raw.12345.tmp")
	writeFile(t, leftover, make([]byte, 4096), 0o600)
	if _, err := Prepare(t.Context(), f.VM, nil); err != nil {
		t.Fatal(err)
	}
	if exists(t, leftover) {
		t.Error("the temporary disk of a killed run is left")
	}
}

// Cancelling leaves nothing half-made: no disk, no seed, no instance-id.
func TestPrepareCancel(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	_, err := Prepare(ctx, f.VM, func(done, total int64) { cancel() })
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Prepare cancelled while making the disk: %v, want context.Canceled", err)
	}
	assertOnly(t, f.StateDir, SSHDirName)
}

func TestCloudInitOff(t *testing.T) {
	f := newFixture(t)
	writeFile(t, f.SeedPath(), []byte("an old seed with secrets"), 0o600)
	f.CloudInit = false
	f.SSHUser = "" // not needed without a seed
	res, err := Prepare(t.Context(), f.VM, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Seed != "" || res.Key != "" || !res.Created {
		t.Errorf("Prepare without cloud-init: %+v, want no seed, no key, a new disk", res)
	}
	assertOnly(t, f.StateDir, DiskFile)
}

// Errors name the configuration key at fault, and leave no disk behind.
func TestPrepareErrors(t *testing.T) {
	random := make([]byte, 1<<20)
	_, _ = rand.Read(random)
	random[510] = 0 // no MBR signature by chance
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, f *fixture)
		key   string
		want  []string // in the message
		is    error    // errors.Is, when not nil
	}{
		{"image not set", func(t *testing.T, f *fixture) { f.Image = "" }, "image", []string{"not set"}, nil},
		{"image missing", func(t *testing.T, f *fixture) { f.Image = f.path("nope.qcow2") }, "image",
			[]string{"nope.qcow2 does not exist"}, nil},
		{"image is random bytes", func(t *testing.T, f *fixture) { writeFile(t, f.Image, random, 0o644) }, "image",
			[]string{f0("debian.raw"), "no partition table"}, disk.ErrNotImage},
		{"image is a directory", func(t *testing.T, f *fixture) { f.Image = f.dir }, "image", []string{"is a directory"}, nil},
		{"image is a FIFO", func(t *testing.T, f *fixture) { f.Image = mkfifo(t, f.path("fifo")) }, "image",
			[]string{"fifo is not a regular file"}, nil},
		{"image truncated qcow2", func(t *testing.T, f *fixture) {
			writeFile(t, f.Image, append([]byte("QFI\xfb\x00\x00\x00\x03"), make([]byte, 40)...), 0o644)
		}, "image", []string{"debian.raw"}, nil},
		{"disk_size negative", func(t *testing.T, f *fixture) { f.DiskSize = -1 }, "disk_size", []string{"-1 is negative"}, nil},
		{"ssh_keys without a key", func(t *testing.T, f *fixture) {
			writeFile(t, f.path("empty.pub"), []byte("# nothing here\n\n"), 0o644)
			f.SSHKeys = []string{f.path("empty.pub")}
		}, "ssh_keys", []string{"empty.pub: holds no key"}, nil},
		{"ssh_keys private key", func(t *testing.T, f *fixture) {
			writeFile(t, f.path("id_ed25519"), []byte("-----BEGIN OPENSSH PRIVATE KEY-----\nxx\n"), 0o600)
			f.SSHKeys = []string{f.path("id_ed25519")}
		}, "ssh_keys", []string{"private key"}, nil},
		{"ssh_keys missing", func(t *testing.T, f *fixture) { f.SSHKeys = []string{f.path("gone.pub")} }, "ssh_keys",
			[]string{"gone.pub: does not exist"}, nil},
		{"ssh_keys FIFO", func(t *testing.T, f *fixture) { f.SSHKeys = []string{mkfifo(t, f.path("key.pub"))} }, "ssh_keys",
			[]string{"key.pub: is not a regular file"}, nil},
		{"user_data not cloud-init", func(t *testing.T, f *fixture) {
			writeFile(t, f.path("ud.yaml"), []byte("packages: [htop]\n"), 0o644)
			f.UserData = f.path("ud.yaml")
		}, "user_data", []string{"ud.yaml", "#cloud-config"}, nil},
		{"user_data bad YAML", func(t *testing.T, f *fixture) {
			writeFile(t, f.path("ud.yaml"), []byte("#cloud-config\npackages: [htop\n"), 0o644)
			f.UserData = f.path("ud.yaml")
		}, "user_data", []string{"ud.yaml", "YAML"}, nil},
		{"user_data missing", func(t *testing.T, f *fixture) { f.UserData = f.path("ud.yaml") }, "user_data",
			[]string{"ud.yaml: does not exist"}, nil},
		{"user_data too large", func(t *testing.T, f *fixture) {
			writeFile(t, f.path("big"), append([]byte("#cloud-config\n"), bytes.Repeat([]byte("#\n"), cloudinit.MaxUserDataSize/2)...), 0o644)
			f.UserData = f.path("big")
		}, "user_data", []string{"big: is larger than 1024 KiB"}, nil},
		{"ssh_user", func(t *testing.T, f *fixture) { f.SSHUser = "Alice Smith" }, "ssh_user", []string{"Alice Smith"}, nil},
		{"mac", func(t *testing.T, f *fixture) { f.MAC = nil }, "mac", []string{"MAC"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			tc.setup(t, f)
			_, err := prepareWithin(t, f.VM)
			if err == nil {
				t.Fatal("Prepare succeeded")
			}
			e := keyErrOf(t, err, tc.key)
			for _, w := range tc.want {
				if !strings.Contains(e.Error(), w) {
					t.Errorf("error %q does not say %q", e, w)
				}
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %q is not %v", err, tc.is)
			}
			if exists(t, f.DiskPath()) || exists(t, f.SeedPath()) || exists(t, filepath.Join(f.StateDir, cloudinit.InstanceIDFile)) {
				t.Errorf("a failed Prepare left %q in the state directory", entries(t, f.StateDir))
			}
			for _, name := range entries(t, f.StateDir) {
				if name != SSHDirName {
					t.Errorf("a failed Prepare left %s", name)
				}
			}
		})
	}
}

// f0 is a file name as the fixture's image path ends.
func f0(name string) string { return string(filepath.Separator) + name }

// prepareWithin runs Prepare and fails the test when it has not returned
// after a generous deadline (a FIFO opened for reading blocks forever).
func prepareWithin(t *testing.T, v VM) (Result, error) {
	t.Helper()
	type out struct {
		r   Result
		err error
	}
	ch := make(chan out, 1)
	go func() {
		r, err := Prepare(t.Context(), v, nil)
		ch <- out{r, err}
	}()
	select {
	case o := <-ch:
		return o.r, o.err
	case <-time.After(30 * time.Second):
		t.Fatal("Prepare did not return within 30 s: it blocks")
		return Result{}, nil
	}
}

func mkfifo(t *testing.T, path string) string {
	t.Helper()
	if err := syscall.Mkfifo(path, 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	return path
}

// A good user-data file goes into the seed.
func TestUserData(t *testing.T) {
	f := newFixture(t)
	writeFile(t, f.path("ud.yaml"), []byte("#cloud-config\npackages: [htop]\n"), 0o644)
	f.UserData = f.path("ud.yaml")
	res, err := Prepare(t.Context(), f.VM, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !seedHolds(t, res.Seed, "packages: [htop]") {
		t.Error("the seed does not hold the user's user-data")
	}
}

// Anything but a file where the disk goes is an error, never replaced.
func TestDiskNotAFile(t *testing.T) {
	f := newFixture(t)
	if err := os.MkdirAll(filepath.Join(f.DiskPath(), "keep"), 0o700); err != nil {
		t.Fatal(err)
	}
	_, err := Prepare(t.Context(), f.VM, nil)
	if err == nil || !strings.Contains(err.Error(), f.DiskPath()) {
		t.Fatalf("Prepare with a directory as the disk: %v, want an error naming %s", err, f.DiskPath())
	}
	if !exists(t, filepath.Join(f.DiskPath(), "keep")) {
		t.Error("the directory at the disk's path was replaced")
	}
}
