//go:build linux || darwin

package vmhost

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// vzBuild is a vzHost on fakes that records every spec it builds.
type vzBuild struct {
	h     vzHost
	fw    *fakeFirmware
	specs []vzSpec
}

func newVZBuild() *vzBuild {
	b := &vzBuild{fw: newFakeFirmware()}
	b.h = vzHost{limits: testLimits, fw: b.fw, build: func(s vzSpec) (vzMachine, error) {
		b.specs = append(b.specs, s)
		return newFakeVZ(), nil
	}}
	b.h.limits.macOS = "14.5"
	return b
}

// newVM builds a VM for cfg (never started: Stop ends it and closes its NIC).
func (b *vzBuild) newVM(t *testing.T, cfg Config) error {
	t.Helper()
	v, err := newVZ(cfg, testLogger(t), b.h)
	if v != nil {
		v.Stop(t.Context(), 0)
	}
	return err
}

// An EFI VM on macOS: the EFI boot loader on the VM's own variable store,
// made once; the generic platform with a machine identifier made once,
// saved and restored on every later boot; the disk read-write and the seed
// read-only.
func TestVZEFISpec(t *testing.T) {
	b := newVZBuild()
	cfg := efiConfig(t)
	if err := b.newVM(t, cfg); err != nil {
		t.Fatal(err)
	}
	s := b.specs[0]
	if !s.EFI || s.EFIVars != cfg.EFIVars {
		t.Errorf("boot loader: EFI %v on %q", s.EFI, s.EFIVars)
	}
	if s.Config.Cmdline != "" || s.Config.Kernel != "" {
		t.Errorf("an EFI boot with a kernel command line %q or kernel %q", s.Config.Cmdline, s.Config.Kernel)
	}
	if want := []vzDisk{{Path: cfg.Disk}, {Path: cfg.Seed, ReadOnly: true}}; !slices.Equal(s.Disks, want) {
		t.Errorf("disks %+v, want %+v", s.Disks, want)
	}
	store, err := os.ReadFile(cfg.EFIVars)
	if err != nil || string(store) != "store 1" {
		t.Fatalf("variable store %q, %v", store, err)
	}
	id, err := os.ReadFile(cfg.MachineID)
	if err != nil || string(id) != "machine-id-1" || !bytes.Equal(s.MachineID, id) {
		t.Fatalf("machine identifier: saved %q (%v), platform %q", id, err, s.MachineID)
	}
	if fi, _ := os.Stat(cfg.MachineID); fi.Mode().Perm() != 0o600 {
		t.Errorf("machine identifier mode %v", fi.Mode().Perm())
	}
	if entries, _ := os.ReadDir(filepath.Dir(cfg.EFIVars)); len(entries) != 4 {
		t.Errorf("the VM's directory holds %d entries, want disk, seed, store, id (no temporary file)", len(entries))
	}

	// The guest wrote into its store; the next boot keeps both files.
	if err := os.WriteFile(cfg.EFIVars, []byte("store 1 with boot entries"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg2 := cfg
	cfg2.NIC, _ = socketPair(t, unix.SOCK_DGRAM)
	if err := b.newVM(t, cfg2); err != nil {
		t.Fatal(err)
	}
	if stores, ids := b.fw.made(); stores != 1 || ids != 1 {
		t.Errorf("made %d stores and %d identifiers over two boots, want 1 and 1", stores, ids)
	}
	if !bytes.Equal(b.specs[1].MachineID, id) {
		t.Errorf("second boot's machine identifier %q, want %q", b.specs[1].MachineID, id)
	}
	if got, _ := os.ReadFile(cfg.EFIVars); string(got) != "store 1 with boot entries" {
		t.Errorf("the second boot replaced the variable store: %q", got)
	}
	if len(b.fw.checkedIDs) != 1 || !bytes.Equal(b.fw.checkedIDs[0], id) {
		t.Errorf("restored identifiers checked: %q", b.fw.checkedIDs)
	}
}

// The kernel way: the Linux boot loader, no variable store, the
// framework's own machine identifier unless MachineID is set.
func TestVZKernelSpec(t *testing.T) {
	b := newVZBuild()
	cfg := validConfig(t)
	if err := b.newVM(t, cfg); err != nil {
		t.Fatal(err)
	}
	s := b.specs[0]
	if s.EFI || s.MachineID != nil || s.Config.Kernel != cfg.Kernel || s.Config.Cmdline != DefaultCmdline {
		t.Errorf("kernel spec %+v", s)
	}
	if want := []vzDisk{{Path: cfg.Disk}}; !slices.Equal(s.Disks, want) {
		t.Errorf("disks %+v, want %+v", s.Disks, want)
	}
	if stores, ids := b.fw.made(); stores != 0 || ids != 0 {
		t.Errorf("made %d stores and %d identifiers for a kernel boot", stores, ids)
	}
}

// An empty identifier file is replaced; one the framework does not take
// is an error that says to delete it, and nothing is built or changed.
func TestVZMachineIDFiles(t *testing.T) {
	b := newVZBuild()
	cfg := efiConfig(t)
	if err := os.WriteFile(cfg.MachineID, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := b.newVM(t, cfg); err != nil {
		t.Fatal(err)
	}
	if id, _ := os.ReadFile(cfg.MachineID); string(id) != "machine-id-1" || string(b.specs[0].MachineID) != "machine-id-1" {
		t.Errorf("an empty identifier was not replaced: saved %q, used %q", id, b.specs[0].MachineID)
	}

	b = newVZBuild()
	cfg = efiConfig(t)
	if err := os.WriteFile(cfg.MachineID, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := b.newVM(t, cfg)
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "MachineID" || !strings.Contains(err.Error(), cfg.MachineID+" does not hold a machine identifier") || !strings.Contains(err.Error(), "delete it") {
		t.Errorf("garbage identifier: %v", err)
	}
	if len(b.specs) != 0 {
		t.Error("built a VM with a bad machine identifier")
	}
	if id, _ := os.ReadFile(cfg.MachineID); string(id) != "garbage" {
		t.Errorf("the identifier file was changed to %q", id)
	}

	b = newVZBuild()
	b.fw.newIDErr = fmt.Errorf("%w: vz says so", errMacOSTooOld)
	cfg = efiConfig(t)
	if err := b.newVM(t, cfg); !errors.As(err, &fe) || fe.Field != "MachineID" || !strings.Contains(err.Error(), "making a machine identifier: vmnetbar needs macOS 13") {
		t.Errorf("identifier refused: %v", err)
	}
	if _, err := os.Stat(cfg.MachineID); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("an identifier file was left (%v)", err)
	}
}

// A variable store the framework fails to make leaves nothing behind, and
// the error says what failed.
func TestVZVariableStoreFails(t *testing.T) {
	b := newVZBuild()
	b.fw.createErr = errors.New("disk full")
	cfg := efiConfig(t)
	err := b.newVM(t, cfg)
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "EFIVars" || !strings.Contains(err.Error(), "creating the EFI variable store "+cfg.EFIVars+": disk full") {
		t.Errorf("store failed: %v", err)
	}
	if len(b.specs) != 0 {
		t.Error("built a VM without its variable store")
	}
	entries, _ := os.ReadDir(filepath.Dir(cfg.EFIVars))
	for _, e := range entries {
		if e.Name() != "disk.raw" && e.Name() != "seed.iso" {
			t.Errorf("left behind: %s", e.Name())
		}
	}
	// The next try makes it.
	b.fw.createErr = nil
	cfg.NIC, _ = socketPair(t, unix.SOCK_DGRAM)
	if err := b.newVM(t, cfg); err != nil {
		t.Fatal(err)
	}
	if store, _ := os.ReadFile(cfg.EFIVars); string(store) != "store 2" {
		t.Errorf("store %q", store)
	}
}
