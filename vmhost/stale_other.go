//go:build !linux && !darwin

package vmhost

import "github.com/sirupsen/logrus"

// RemoveStaleRuntime does nothing: earlier vmnetbar versions left QEMU
// runtime directories on Linux only.
func RemoveStaleRuntime(log logrus.FieldLogger) error { return nil }
