package vmhost

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// The EFI command line, argument for argument: q35, the firmware as
// read-only pflash and the VM's variable store as writable pflash, the
// disk as virtio-blk with bootindex 0, the seed read-only, no option ROM on
// the NIC, and no kernel.
func TestQEMUArgsEFI(t *testing.T) {
	cfg := Config{
		Boot: BootEFI, Disk: "/vm/disk,1.raw", Seed: "/vm/seed.iso", EFIVars: "/vm/efi-vars.fd", MachineID: "/vm/machine-id",
		CPUs: 2, Memory: 1 * GiB, ConsoleLog: "/vm/console.log", MAC: net.HardwareAddr{0x52, 0x54, 0, 1, 2, 3}, MTU: 1500,
	}
	cfg = cfg.withDefaults()
	const code = "/usr/share/OVMF/OVMF_CODE_4M.fd"
	tail := []string{
		"-drive", "if=pflash,format=raw,unit=0,readonly=on,file=" + code,
		"-drive", "if=pflash,format=raw,unit=1,file=/vm/efi-vars.fd",
		"-chardev", "file,id=console0,append=on,path=/vm/console.log", "-serial", "chardev:console0",
		"-netdev", "dgram,id=n0,local.type=fd,local.str=3",
		"-device", "virtio-net-pci,netdev=n0,mac=52:54:00:01:02:03,romfile=",
		"-device", "virtio-rng-pci",
		"-drive", "if=none,id=disk0,format=raw,cache=writeback,discard=unmap,file=/vm/disk,,1.raw",
		"-device", "virtio-blk-pci,drive=disk0,bootindex=0",
		"-drive", "if=none,id=seed0,format=raw,readonly=on,file=/vm/seed.iso",
		"-device", "virtio-blk-pci,drive=seed0",
		"-chardev", "socket,id=qmp,fd=4", "-mon", "chardev=qmp,mode=control",
	}
	head := []string{"-nodefaults", "-no-user-config", "-name", "vmnetbar", "-display", "none", "-no-reboot"}
	for _, tc := range []struct {
		arch, code string
		kvm        bool
		machine    []string
	}{
		{"amd64", code, false, []string{"-machine", "q35", "-accel", "tcg"}},
		{"amd64", code, true, []string{"-machine", "q35", "-accel", "kvm", "-cpu", "host"}},
		{"arm64", "/usr/share/AAVMF/AAVMF_CODE.fd", false, []string{"-machine", "virt", "-accel", "tcg", "-cpu", "max"}},
	} {
		want := slices.Concat(head, tc.machine, []string{"-smp", "2", "-m", "1024M"}, tail)
		want[len(head)+len(tc.machine)+5] = "if=pflash,format=raw,unit=0,readonly=on,file=" + tc.code
		got := qemuArgs(cfg, tc.kvm, tc.arch, tc.code)
		if !slices.Equal(got, want) {
			t.Errorf("%s kvm=%v:\ngot  %q\nwant %q", tc.arch, tc.kvm, got, want)
		}
	}

	// Without a seed there is no second disk.
	cfg.Seed = ""
	if got := strings.Join(qemuArgs(cfg, false, "amd64", code), " "); strings.Contains(got, "seed0") {
		t.Errorf("a seed without Seed: %s", got)
	}
}

// The kernel way attaches a seed read-only too, and keeps its own disk and
// NIC arguments.
func TestQEMUArgsKernelSeed(t *testing.T) {
	cfg := Config{Kernel: "/k", Disk: "/d.raw", Seed: "/s.iso", CPUs: 1, Memory: 256 * MiB, MAC: net.HardwareAddr{0x52, 0x54, 0, 1, 2, 3}, MTU: 1500}
	args := strings.Join(qemuArgs(cfg.withDefaults(), false, "amd64", ""), " ")
	for _, want := range []string{
		"-kernel /k", "-drive if=virtio,format=raw,file=/d.raw",
		"-drive if=none,id=seed0,format=raw,readonly=on,file=/s.iso -device virtio-blk-pci,drive=seed0",
		"mac=52:54:00:01:02:03 ",
	} {
		if !strings.Contains(args, want) {
			t.Errorf("args lack %q:\n%s", want, args)
		}
	}
	for _, unwanted := range []string{"pflash", "q35", "romfile", "bootindex"} {
		if strings.Contains(args, unwanted) {
			t.Errorf("args have %q:\n%s", unwanted, args)
		}
	}
}

func TestFindFirmware(t *testing.T) {
	have := map[string]bool{}
	exists := func(p string) bool { return have[p] }

	_, err := findFirmware("amd64", exists)
	for _, want := range []string{"needs QEMU's UEFI firmware (OVMF)", "/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/edk2/ovmf/OVMF_CODE.fd", "apt-get install ovmf"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("no firmware: %v does not say %q", err, want)
		}
	}
	_, err = findFirmware("arm64", exists)
	for _, want := range []string{"(AAVMF)", "/usr/share/AAVMF/AAVMF_CODE.fd", "apt-get install qemu-efi-aarch64"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("no arm64 firmware: %v does not say %q", err, want)
		}
	}
	if _, err := findFirmware("riscv64", exists); err == nil || !strings.Contains(err.Error(), "riscv64") {
		t.Errorf("riscv64: %v", err)
	}

	// A code file without its variables does not count: they come in
	// pairs from one build.
	have["/usr/share/OVMF/OVMF_CODE_4M.fd"] = true
	have["/usr/share/OVMF/OVMF_CODE.fd"] = true
	have["/usr/share/OVMF/OVMF_VARS.fd"] = true
	if fw, err := findFirmware("amd64", exists); err != nil || fw != (firmware{"/usr/share/OVMF/OVMF_CODE.fd", "/usr/share/OVMF/OVMF_VARS.fd"}) {
		t.Errorf("2 MiB fallback: %+v, %v", fw, err)
	}
	have["/usr/share/OVMF/OVMF_VARS_4M.fd"] = true
	if fw, err := findFirmware("amd64", exists); err != nil || fw != (firmware{"/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/OVMF/OVMF_VARS_4M.fd"}) {
		t.Errorf("4 MiB first: %+v, %v", fw, err)
	}
	have["/usr/share/AAVMF/AAVMF_CODE.fd"] = true
	have["/usr/share/AAVMF/AAVMF_VARS.fd"] = true
	if fw, err := findFirmware("arm64", exists); err != nil || fw != (firmware{"/usr/share/AAVMF/AAVMF_CODE.fd", "/usr/share/AAVMF/AAVMF_VARS.fd"}) {
		t.Errorf("AAVMF: %+v, %v", fw, err)
	}

	if isRegularFile(t.TempDir()) || isRegularFile(filepath.Join(t.TempDir(), "nope")) || !isRegularFile(writeFile(t, t.TempDir(), "f")) {
		t.Error("isRegularFile")
	}
}

// The VM's variable store is a copy of the template made once: later
// boots keep what the guest wrote into it.
func TestEnsureEFIVars(t *testing.T) {
	dir := t.TempDir()
	template := filepath.Join(dir, "OVMF_VARS.fd")
	tmpl := bytes.Repeat([]byte("template"), 1024)
	if err := os.WriteFile(template, tmpl, 0o644); err != nil {
		t.Fatal(err)
	}
	vmDir := filepath.Join(dir, "vm")
	if err := os.Mkdir(vmDir, 0o755); err != nil {
		t.Fatal(err)
	}
	vars := filepath.Join(vmDir, "efi-vars.fd")

	created, err := ensureEFIVars(vars, template)
	if err != nil || !created {
		t.Fatalf("first boot: created %v, %v", created, err)
	}
	b, err := os.ReadFile(vars)
	if err != nil || !bytes.Equal(b, tmpl) {
		t.Fatalf("the copy differs from the template (%v)", err)
	}
	if fi, _ := os.Stat(vars); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	entries, _ := os.ReadDir(vmDir)
	if len(entries) != 1 {
		t.Errorf("left behind: %v", entries)
	}

	// The guest writes a boot entry; the next boot keeps it.
	guest := bytes.Repeat([]byte("bootent!"), 1024)
	if err := os.WriteFile(vars, guest, 0o600); err != nil {
		t.Fatal(err)
	}
	created, err = ensureEFIVars(vars, template)
	if err != nil || created {
		t.Fatalf("second boot: created %v, %v", created, err)
	}
	if b, _ := os.ReadFile(vars); !bytes.Equal(b, guest) {
		t.Fatal("the second boot overwrote the variable store")
	}

	// A store of another size was made for other firmware.
	if err := os.WriteFile(vars, []byte("short"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = ensureEFIVars(vars, template)
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "EFIVars" || !strings.Contains(err.Error(), "is 5 bytes, but the firmware's variable store ("+template+") is 8192 bytes") || !strings.Contains(err.Error(), "delete it") {
		t.Errorf("wrong size: %v", err)
	}

	// No template: nothing is made.
	os.Remove(vars)
	if _, err := ensureEFIVars(vars, filepath.Join(dir, "nope")); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("no template: %v", err)
	}
	if _, err := os.Stat(vars); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a store was made without a template (%v)", err)
	}
	// A directory that cannot hold it.
	if _, err := ensureEFIVars(filepath.Join(dir, "no", "vars.fd"), template); !errors.As(err, &fe) || fe.Field != "EFIVars" {
		t.Errorf("missing directory: %v", err)
	}
}

// newQEMU refuses an EFI VM when the firmware is missing and otherwise
// makes its variable store; Start runs QEMU with it.
func TestNewQEMUEFI(t *testing.T) {
	fw, err := hostFirmware()
	if err != nil {
		requireTool(t, err)
	}
	out := filepath.Join(t.TempDir(), "args")
	t.Setenv("VMNETBAR_FAKE_OUT", out)
	cfg := efiConfig(t)
	cfg.Memory = 128 * MiB
	v := newTestVM(t, cfg, fakeQEMU(t, "qemu-record.sh"))
	b, err := os.ReadFile(cfg.EFIVars)
	if err != nil {
		t.Fatalf("New did not make the variable store: %v", err)
	}
	if tmpl, _ := os.ReadFile(fw.Vars); !bytes.Equal(b, tmpl) {
		t.Error("the variable store is not a copy of " + fw.Vars)
	}
	if _, err := os.Stat(cfg.MachineID); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("QEMU made the machine identifier (%v)", err)
	}
	if err := v.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	awaitDone(t, v, 10*time.Second)
	got, _ := os.ReadFile(out)
	for _, want := range []string{
		"if=pflash,format=raw,unit=0,readonly=on,file=" + fw.Code + "\n",
		"if=pflash,format=raw,unit=1,file=" + cfg.EFIVars + "\n",
		"virtio-blk-pci,drive=disk0,bootindex=0\n",
	} {
		if !bytes.Contains(got, []byte(want)) {
			t.Errorf("QEMU's arguments lack %q:\n%s", want, got)
		}
	}
}

// requireTool skips for err (something the test needs is not installed),
// or fails under CI=true, where everything must be installed.
func requireTool(t *testing.T, err error) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatal(err)
	}
	t.Skip(err)
}
