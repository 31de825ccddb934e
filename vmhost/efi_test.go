//go:build linux || darwin

package vmhost

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// efiConfig returns a configuration that boots a disk with EFI and passes
// Validate with testLimits. The variable store and the machine identifier
// do not exist yet.
func efiConfig(t *testing.T) Config {
	t.Helper()
	c := validConfig(t)
	dir := t.TempDir()
	c.Boot = BootEFI
	c.Kernel, c.Initrd = "", ""
	c.Disk = sizedFile(t, dir, "disk.raw", 1<<20)
	c.Seed = sizedFile(t, dir, "seed.iso", 4096)
	c.EFIVars = filepath.Join(dir, "efi-vars.fd")
	c.MachineID = filepath.Join(dir, "machine-id")
	return c
}

func TestValidateEFI(t *testing.T) {
	c := efiConfig(t)
	if err := c.validate(testLimits); err != nil {
		t.Fatalf("valid EFI config refused: %v", err)
	}
	// Existing state files are fine too, and Validate creates nothing.
	for _, p := range []string{c.EFIVars, c.MachineID} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("Validate created %s (%v)", p, err)
		}
	}
	min := Config{Boot: BootEFI, Disk: c.Disk, EFIVars: c.EFIVars, MachineID: c.MachineID, MAC: c.MAC, NIC: c.NIC}
	if err := min.validate(testLimits); err != nil {
		t.Fatalf("minimal EFI config refused: %v", err)
	}
	writeFile(t, filepath.Dir(c.EFIVars), filepath.Base(c.EFIVars))
	writeFile(t, filepath.Dir(c.MachineID), filepath.Base(c.MachineID))
	if err := c.validate(testLimits); err != nil {
		t.Fatalf("existing state files refused: %v", err)
	}
	// The kernel way may have a seed and a machine identifier.
	k := validConfig(t)
	k.Seed, k.MachineID = c.Seed, c.MachineID
	if err := k.validate(testLimits); err != nil {
		t.Fatalf("kernel boot with a seed refused: %v", err)
	}
}

func TestValidateEFINamesTheField(t *testing.T) {
	dir := t.TempDir()
	odd := sizedFile(t, dir, "odd.raw", 1000)
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		kernel bool // start from the kernel way (validConfig), not efiConfig
		mutate func(*Config)
		want   []string
	}{
		{"unknown boot", false, func(c *Config) { c.Boot = "bios" }, []string{`Boot is "bios": use "kernel" (a kernel and initrd) or "efi"`}},
		{"kernel with efi", false, func(c *Config) { c.Kernel = writeFile(t, dir, "vmlinuz") }, []string{"Kernel is set, but the VM boots its disk with EFI", "either a kernel or its disk"}},
		{"initrd with efi", false, func(c *Config) { c.Initrd = writeFile(t, dir, "initrd") }, []string{"Initrd is set, but the VM boots its disk with EFI"}},
		{"cmdline with efi", false, func(c *Config) { c.Cmdline = "console=hvc0" }, []string{"Cmdline is set, but the VM boots its disk with EFI"}},
		{"efi without disk", false, func(c *Config) { c.Disk = "" }, []string{"Disk is not set: a VM that boots with EFI boots its own disk"}},
		{"efi disk missing", false, func(c *Config) { c.Disk = filepath.Join(dir, "nope") }, []string{"Disk: ", "does not exist"}},
		{"efi disk a device", false, func(c *Config) { c.Disk = os.DevNull }, []string{"Disk: /dev/null is a character device, not a disk image (a regular file)"}},
		{"efi disk a dir", false, func(c *Config) { c.Disk = dir }, []string{"Disk: ", "is a directory"}},
		{"efi disk odd size", false, func(c *Config) { c.Disk = odd }, []string{"Disk: " + odd + " is 1000 bytes, not a whole number of 512-byte sectors", "truncate -s 1024 " + odd}},
		{"kernel disk odd size", true, func(c *Config) { c.Disk = odd }, []string{"Disk: " + odd + " is 1000 bytes"}},
		{"seed odd size", false, func(c *Config) { c.Seed = odd }, []string{"Seed: " + odd + " is 1000 bytes"}},
		{"seed missing", false, func(c *Config) { c.Seed = filepath.Join(dir, "nope.iso") }, []string{"Seed: ", "does not exist", "cloud-init ISO"}},
		{"seed a dir", false, func(c *Config) { c.Seed = dir }, []string{"Seed: ", "is a directory"}},
		{"seed empty", false, func(c *Config) { c.Seed = empty }, []string{"Seed: ", "is empty"}},
		{"vars not set", false, func(c *Config) { c.EFIVars = "" }, []string{"EFIVars is not set: a VM that boots with EFI needs its own EFI variable store"}},
		{"vars dir missing", false, func(c *Config) { c.EFIVars = filepath.Join(dir, "no", "vars.fd") }, []string{"EFIVars: ", "no does not exist"}},
		{"vars a dir", false, func(c *Config) { c.EFIVars = dir }, []string{"EFIVars: " + dir + " is a directory, not a file"}},
		{"vars with kernel", true, func(c *Config) { c.EFIVars = filepath.Join(dir, "vars.fd") }, []string{`EFIVars is set, but the VM boots a kernel (Boot is "kernel")`}},
		{"machine id not set", false, func(c *Config) { c.MachineID = "" }, []string{"MachineID is not set"}},
		{"machine id dir missing", false, func(c *Config) { c.MachineID = filepath.Join(dir, "no", "id") }, []string{"MachineID: ", "does not exist"}},
		{"machine id a dir with kernel", true, func(c *Config) { c.MachineID = dir }, []string{"MachineID: ", "is a directory"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := efiConfig(t)
			if tc.kernel {
				c = validConfig(t)
			}
			tc.mutate(&c)
			err := validateWithin(t, c, testLimits)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if n := len(err.(interface{ Unwrap() []error }).Unwrap()); n != 1 {
				t.Errorf("%d problems reported, want 1: %v", n, err)
			}
			checkFieldErrors(t, err)
		})
	}
}

// Where the host cannot boot with EFI (QEMU's firmware is missing), Check
// says so for an EFI VM only.
func TestCheckEFIFirmware(t *testing.T) {
	l := testLimits
	missing := errors.New("booting a disk with EFI needs QEMU's UEFI firmware (OVMF), which is not installed")
	l.efi = func() error { return missing }
	if err := efiConfig(t).check(l); !errors.Is(err, missing) {
		t.Errorf("EFI config without firmware: %v", err)
	}
	if err := validConfig(t).check(l); err != nil {
		t.Errorf("kernel config without firmware: %v", err)
	}
}

// EFI needs macOS 13: an older macOS is refused with the version, also
// should the app's minimum ever be lowered below it.
func TestCheckMacOSEFI(t *testing.T) {
	for _, v := range []string{"13.0", "14.5", "", "junk"} {
		if err := checkMacOSEFI(v); err != nil {
			t.Errorf("%q: %v", v, err)
		}
	}
	err := checkMacOSEFI("12.7.4")
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "Boot" || !strings.Contains(err.Error(), "booting a disk with EFI needs macOS 13 or later and this Mac runs macOS 12.7.4: update macOS") {
		t.Errorf("macOS 12: %v", err)
	}
	// Below MinMacOS the general message says it all, once.
	l := testLimits
	l.macOS = "12.7.4"
	err = efiConfig(t).check(l)
	if n := len(err.(interface{ Unwrap() []error }).Unwrap()); n != 1 || !strings.Contains(err.Error(), "vmnetbar needs macOS 13") {
		t.Errorf("EFI config on macOS 12: %v", err)
	}
}

// An EFI VM gets no default kernel command line: its boot loader has its
// own.
func TestEFIDefaults(t *testing.T) {
	c := Config{Boot: BootEFI}.withDefaults()
	if c.Cmdline != "" || c.Boot != BootEFI {
		t.Errorf("EFI defaults: %+v", c)
	}
	if c := (Config{}).withDefaults(); c.Boot != BootKernel || c.Cmdline != DefaultCmdline {
		t.Errorf("kernel defaults: boot %q cmdline %q", c.Boot, c.Cmdline)
	}
}
