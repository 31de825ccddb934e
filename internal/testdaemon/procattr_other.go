//go:build !linux

package testdaemon

import "syscall"

func sysProcAttr() *syscall.SysProcAttr { return nil }
