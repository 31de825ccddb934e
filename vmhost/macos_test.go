package vmhost

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestCheckMacOS(t *testing.T) {
	for _, v := range []string{"13.0", "13.6.1", "14.5", "15.0", "26.0", "", "unknown", " 13.1\n"} {
		if err := checkMacOS(v); err != nil {
			t.Errorf("%q refused: %v", v, err)
		}
	}
	for _, v := range []string{"12.7.4", "12.0", "11.7.10", "10.15.7"} {
		err := checkMacOS(v)
		want := "vmnetbar needs macOS 13 or later and this Mac runs macOS " + v + ": update macOS"
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", v, err, want)
		}
	}
}

func TestMacOSError(t *testing.T) {
	vzErr := errors.New("unsupported macOS version") // what vz says
	for _, tc := range []struct {
		err     error
		version string
		want    string
	}{
		{fmt.Errorf("%w: %w", errMacOSTooOld, vzErr), "12.6", "the network attachment (nic): vmnetbar needs macOS 13 or later and this Mac runs macOS 12.6: update macOS"},
		{fmt.Errorf("%w: %w", errMacOSTooOld, vzErr), "", "the network attachment (nic): vmnetbar needs macOS 13 or later: update macOS"},
		{errMacOSSDK, "14.0", "the network attachment (nic): this vmnetbar was built with a macOS SDK older than macOS 13"},
		{errors.New("file not found"), "14.0", "the network attachment (nic): file not found"},
	} {
		got := macOSError(tc.err, "the network attachment (nic)", tc.version)
		if !strings.HasPrefix(got.Error(), tc.want) {
			t.Errorf("%v: %q, want it to start %q", tc.err, got, tc.want)
		}
	}
	other := errors.New("other")
	if err := macOSError(other, "x", ""); !errors.Is(err, other) {
		t.Errorf("the framework's error is not wrapped: %v", err)
	}
}
