package vmhost

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
)

// firmware is QEMU's UEFI firmware for an EFI boot: the code, attached as
// read-only pflash, and the template of the variable store, which each VM
// copies once into its own EFIVars (read-write pflash).
type firmware struct {
	Code, Vars string
}

// firmwareCandidates are the places distributions install the UEFI
// firmware for QEMU on goarch, best first, and the Debian package that
// installs the first: OVMF for x86-64, AAVMF for aarch64. Code and
// variables must come from the same build, so they are looked up in
// pairs.
func firmwareCandidates(goarch string) (pairs []firmware, name, pkg string) {
	switch goarch {
	case "amd64":
		return []firmware{
			// Debian 12 and later, Ubuntu 22.04 and later (ovmf).
			{"/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/OVMF/OVMF_VARS_4M.fd"},
			// Older Debian and Ubuntu (2 MiB flash).
			{"/usr/share/OVMF/OVMF_CODE.fd", "/usr/share/OVMF/OVMF_VARS.fd"},
			// Fedora (edk2-ovmf).
			{"/usr/share/edk2/ovmf/OVMF_CODE.fd", "/usr/share/edk2/ovmf/OVMF_VARS.fd"},
			// Arch (edk2-ovmf).
			{"/usr/share/edk2/x64/OVMF_CODE.4m.fd", "/usr/share/edk2/x64/OVMF_VARS.4m.fd"},
			// QEMU's own build.
			{"/usr/share/qemu/edk2-x86_64-code.fd", "/usr/share/qemu/edk2-i386-vars.fd"},
		}, "OVMF", "ovmf"
	case "arm64":
		return []firmware{
			// Debian and Ubuntu (qemu-efi-aarch64): both padded to the
			// 64 MiB the virt machine's flash banks take.
			{"/usr/share/AAVMF/AAVMF_CODE.fd", "/usr/share/AAVMF/AAVMF_VARS.fd"},
			// Fedora (edk2-aarch64).
			{"/usr/share/edk2/aarch64/QEMU_EFI-pflash.raw", "/usr/share/edk2/aarch64/vars-template-pflash.raw"},
			// QEMU's own build.
			{"/usr/share/qemu/edk2-aarch64-code.fd", "/usr/share/qemu/edk2-arm-vars.fd"},
		}, "AAVMF", "qemu-efi-aarch64"
	}
	return nil, "", ""
}

// findFirmware returns the first pair of firmware files for goarch of
// which both are regular files (exists says), or an error naming the
// places looked at and the package to install.
func findFirmware(goarch string, exists func(string) bool) (firmware, error) {
	pairs, name, pkg := firmwareCandidates(goarch)
	if pairs == nil {
		return firmware{}, fmt.Errorf("booting a disk with EFI is not supported on the %s architecture: use amd64 or arm64, or boot a kernel and initrd", goarch)
	}
	var looked []string
	for _, p := range pairs {
		if exists(p.Code) && exists(p.Vars) {
			return p, nil
		}
		looked = append(looked, p.Code)
	}
	return firmware{}, fmt.Errorf("booting a disk with EFI needs QEMU's UEFI firmware (%s), which is not installed (looked for %s): install it (Debian/Ubuntu: apt-get install %s)",
		name, strings.Join(looked, ", "), pkg)
}

// isRegularFile reports whether path is a regular file (after symlinks).
func isRegularFile(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular()
}

// hostFirmware is findFirmware for the host's architecture and files.
func hostFirmware() (firmware, error) { return findFirmware(runtime.GOARCH, isRegularFile) }

// efiUsable reports why a VM cannot boot with EFI here: QEMU's firmware
// is missing.
func efiUsable() error {
	_, err := hostFirmware()
	return err
}

// ensureEFIVars makes the VM's variable store, path, a copy of the
// firmware's template when it does not exist yet (atomically: see
// createOnce), and reports whether it did. An existing store is kept, with
// whatever the guest wrote into it (boot entries), unless its size is not
// the template's: then the firmware would not take it, and the error says
// so (a *FieldError for EFIVars).
func ensureEFIVars(path, template string) (created bool, err error) {
	tfi, err := os.Stat(template)
	if err != nil {
		return false, fmt.Errorf("QEMU's UEFI variable store template: %w", pathError(template, err))
	}
	created, err = createOnce(path, func(tmp string) error { return copyFile(template, tmp) })
	if err != nil {
		return false, fieldErrorf("EFIVars", "%w", err)
	}
	if created {
		return true, nil
	}
	fi, err := os.Stat(path)
	if err != nil {
		return false, fieldErrorf("EFIVars", "%w", pathError(path, err))
	}
	if fi.Size() != tfi.Size() {
		return false, fieldErrorf("EFIVars", "%s is %d bytes, but the firmware's variable store (%s) is %d bytes: it was made for other firmware: delete it, and a fresh copy is made at the next start (the disk's fallback boot loader still boots)",
			path, fi.Size(), template, tfi.Size())
	}
	return false, nil
}

// copyFile copies the file src over dst.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copying %s to %s: %w", src, dst, err)
	}
	return out.Close()
}
