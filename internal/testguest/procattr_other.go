//go:build !linux

package testguest

import "syscall"

func sysProcAttr() *syscall.SysProcAttr { return nil }
