package vmhost

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// MinMacOS is the oldest macOS vmnetbar runs VMs on. The app bundle says
// so (LSMinimumSystemVersion) and is built for it; a bare binary can still
// be started on an older macOS, and New refuses it there (checkMacOS).
const MinMacOS = 13

// The macOS backend's adapter turns the Virtualization framework's version
// errors into these, so that the messages are made (and tested) here.
var (
	// errMacOSTooOld: the running macOS lacks the call
	// (vz.ErrUnsupportedOSVersion).
	errMacOSTooOld = errors.New("unsupported macOS version")
	// errMacOSSDK: the binary was built against a macOS SDK that lacks
	// the call (vz.ErrBuildTargetOSVersion).
	errMacOSSDK = errors.New("unsupported build target macOS version")
)

// needMacOS is the sentence every macOS version message ends with.
func needMacOS(version string) string {
	s := fmt.Sprintf("vmnetbar needs macOS %d or later", MinMacOS)
	if version != "" {
		s += fmt.Sprintf(" and this Mac runs macOS %s", version)
	}
	return s + fmt.Sprintf(": update macOS (System Settings or System Preferences > Software Update) to %d (Ventura) or later", MinMacOS)
}

// checkMacOS reports why the macOS version (kern.osproductversion, such as
// "12.6.1") cannot run vmnetbar's VMs: anything before MinMacOS. An unknown
// version ("" or unparsable) passes: the framework then decides.
func checkMacOS(version string) error {
	if macOSBefore(version, MinMacOS) {
		return errors.New(needMacOS(version))
	}
	return nil
}

// MinMacOSEFI is the oldest macOS whose Virtualization framework boots a
// disk with EFI (VZEFIBootLoader, VZEFIVariableStore and a persistent
// VZGenericMachineIdentifier are macOS 13 API).
const MinMacOSEFI = 13

// checkMacOSEFI reports why the macOS version cannot boot a VM with EFI:
// anything before MinMacOSEFI. An unknown version passes.
func checkMacOSEFI(version string) error {
	if !macOSBefore(version, MinMacOSEFI) {
		return nil
	}
	return fieldErrorf("Boot", "is %q, but booting a disk with EFI needs macOS %d or later and this Mac runs macOS %s: update macOS (System Settings or System Preferences > Software Update), or boot a kernel and initrd", BootEFI, MinMacOSEFI, version)
}

// macOSBefore reports whether version (kern.osproductversion, such as
// "12.6.1") is known and older than major.
func macOSBefore(version string, major int) bool {
	m, _, _ := strings.Cut(strings.TrimSpace(version), ".")
	n, err := strconv.Atoi(m)
	return err == nil && n < major
}

// macOSError puts an error of the Virtualization framework about what
// (such as "the network attachment (nic)") in plain words; version is the
// running macOS version ("" when unknown). The framework's version errors
// (errMacOSTooOld, errMacOSSDK) say what to do; others are wrapped.
func macOSError(err error, what, version string) error {
	switch {
	case errors.Is(err, errMacOSTooOld):
		return fmt.Errorf("%s: %s", what, needMacOS(version))
	case errors.Is(err, errMacOSSDK):
		return fmt.Errorf("%s: this vmnetbar was built with a macOS SDK older than macOS %d, which lacks it: rebuild it with Xcode 14 or later (make build or make app)", what, MinMacOS)
	}
	return fmt.Errorf("%s: %w", what, err)
}
