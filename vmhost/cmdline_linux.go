//go:build linux && !arm64

package vmhost

// DefaultCmdline is the kernel command line used when Config.Cmdline is
// empty: the console on the first serial port, which QEMU writes to
// Config.ConsoleLog.
const DefaultCmdline = "console=ttyS0"
