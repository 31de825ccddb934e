//go:build linux || darwin

package disk

import (
	"os"
	"syscall"
)

// blocks returns the 512-byte blocks a file occupies.
func blocks(st os.FileInfo) int64 { return st.Sys().(*syscall.Stat_t).Blocks }
