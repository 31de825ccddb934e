package testdaemon

import "syscall"

// sysProcAttr makes the kernel kill gvproxy if the test process dies first.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
