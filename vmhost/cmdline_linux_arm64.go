package vmhost

// DefaultCmdline is the kernel command line used when Config.Cmdline is
// empty: the console on the virt machine's PL011 serial port, which QEMU
// writes to Config.ConsoleLog.
const DefaultCmdline = "console=ttyAMA0"
