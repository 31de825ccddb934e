package vmhost

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The markers the test's EFI payload prints on the serial console.
const (
	efiMarkerBegin = "VMNETBAR-EFI-BEGIN"
	efiMarkerEnd   = "VMNETBAR-EFI-END"
)

// espDisk builds, without root or loop devices, a raw GPT disk of 40 MiB
// whose only partition is an EFI system partition holding
// \EFI\BOOT\BOOTX64.EFI: a GRUB image (grub-mkimage, Debian's
// grub-efi-amd64-bin) with an embedded configuration that prints the
// markers around the list of its disks and powers the VM off. It skips
// (fails under CI=true) when a tool is missing.
func espDisk(t *testing.T, dir string) string {
	t.Helper()
	for _, tool := range []string{"grub-mkimage", "mkfs.vfat", "mmd", "mcopy", "sfdisk"} {
		if _, err := exec.LookPath(tool); err != nil {
			requireTool(t, err)
		}
	}
	if _, err := os.Stat("/usr/lib/grub/x86_64-efi"); err != nil {
		requireTool(t, err)
	}
	run := func(stdin string, name string, args ...string) {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Stdin = strings.NewReader(stdin)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
	}
	cfg := filepath.Join(dir, "early.cfg")
	script := "echo " + efiMarkerBegin + "\nls\necho " + efiMarkerEnd + "\nhalt\n"
	if err := os.WriteFile(cfg, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	loader := filepath.Join(dir, "BOOTX64.EFI")
	run("", "grub-mkimage", "-O", "x86_64-efi", "-o", loader, "-p", "/EFI/BOOT", "-c", cfg, "echo", "ls", "halt", "part_gpt", "fat")

	const espStart, espSectors = 2048, 65536 // 1 MiB in, 32 MiB
	esp := filepath.Join(dir, "esp.img")
	run("", "mkfs.vfat", "-C", esp, "32768")
	run("", "mmd", "-i", esp, "::/EFI", "::/EFI/BOOT")
	run("", "mcopy", "-i", esp, loader, "::/EFI/BOOT/BOOTX64.EFI")

	disk := sizedFile(t, dir, "disk.raw", 40<<20)
	run("label: gpt\nstart=2048, size=65536, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B\n", "sfdisk", "-q", disk)
	b, err := os.ReadFile(esp)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(b)) != espSectors*512 {
		t.Fatalf("the ESP image is %d bytes, want %d", len(b), espSectors*512)
	}
	f, err := os.OpenFile(disk, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, espStart*512); err != nil {
		t.Fatal(err)
	}
	return disk
}

// A real EFI boot under QEMU (TCG): OVMF from read-only pflash with the
// VM's own variable store, the disk found through virtio-blk and booted
// first (bootindex), no network boot tried. The payload prints its markers
// and powers off; the second boot reuses the store the first one wrote.
func TestGuestEFIBoot(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("the EFI payload is built for x86-64")
	}
	requireQEMU(t)
	fw, err := hostFirmware()
	if err != nil {
		requireTool(t, err)
	}
	dir := t.TempDir()
	disk := espDisk(t, dir)
	mac, err := RandomMAC()
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		Boot:        BootEFI,
		Disk:        disk,
		Seed:        sizedFile(t, dir, "seed.iso", 4096),
		EFIVars:     filepath.Join(dir, "efi-vars.fd"),
		MachineID:   filepath.Join(dir, "machine-id"),
		CPUs:        1,
		Memory:      256 * MiB,
		MAC:         mac,
		ConsoleLog:  filepath.Join(dir, "console.log"),
		QEMUOptions: QEMUOptions{Accel: "tcg"},
	}
	tmpl, err := os.ReadFile(fw.Vars)
	if err != nil {
		t.Fatal(err)
	}
	var afterFirst []byte
	for boot := 1; boot <= 2; boot++ {
		vmEnd, _ := socketPair(t, unix.SOCK_DGRAM)
		cfg.NIC = vmEnd
		if err := os.WriteFile(cfg.ConsoleLog, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		vm, err := New(cfg, testLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		v := vm.(*qemuVM)
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			v.Stop(ctx, time.Millisecond)
		})
		if boot == 2 {
			if b, _ := os.ReadFile(cfg.EFIVars); !bytes.Equal(b, afterFirst) {
				t.Fatal("New replaced the variable store the first boot wrote")
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
		if err := v.Start(ctx); err != nil {
			cancel()
			t.Fatal(err)
		}
		// The payload powers the VM off: QEMU exits 0.
		evs := awaitDone(t, v, 120*time.Second)
		cancel()
		log, _ := os.ReadFile(cfg.ConsoleLog)
		if st, cause := v.State(); st != StateStopped {
			t.Fatalf("boot %d: state %s (%v), events %v; console:\n%s", boot, st, cause, states(evs), log)
		}
		begin, end := bytes.Index(log, []byte(efiMarkerBegin)), bytes.Index(log, []byte(efiMarkerEnd))
		if begin < 0 || end < begin {
			t.Fatalf("boot %d: the EFI payload's markers are not on the console:\n%s", boot, log)
		}
		// GRUB found its disk and the ESP on it.
		if between := string(log[begin:end]); !strings.Contains(between, "(hd0,gpt1)") {
			t.Errorf("boot %d: GRUB did not list the ESP: %q", boot, between)
		}
		for _, unwanted := range []string{"PXE", "HTTP Boot", "Start PXE"} {
			if bytes.Contains(log, []byte(unwanted)) {
				t.Errorf("boot %d: the firmware tried a network boot (%q):\n%s", boot, unwanted, log)
			}
		}
		if !isClosed(cfg.NIC) {
			t.Errorf("boot %d: the NIC is still open after the VM ended", boot)
		}
		if boot == 1 {
			afterFirst, err = os.ReadFile(cfg.EFIVars)
			if err != nil {
				t.Fatal(err)
			}
			// The firmware wrote its boot entries into the VM's own
			// store, not the template.
			if len(afterFirst) != len(tmpl) || bytes.Equal(afterFirst, tmpl) {
				t.Errorf("the variable store after the first boot: %d bytes, equal to the template: %v", len(afterFirst), bytes.Equal(afterFirst, tmpl))
			}
		}
	}
	if _, err := os.Stat(cfg.MachineID); err == nil {
		t.Error("QEMU made a machine identifier file")
	}
}
