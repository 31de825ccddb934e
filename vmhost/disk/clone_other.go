//go:build !linux && !darwin

package disk

import "os"

// cloneTo cannot clone on this system: the caller copies.
func cloneTo(src, tmp *os.File, tmpPath string) (*os.File, bool, error) {
	return tmp, false, nil
}
