//go:build unix

package cloudinit

import (
	"os"
	"syscall"
)

// owner returns the uid owning fi and this process's uid.
func owner(fi os.FileInfo) (uid, me int, ok bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, false
	}
	return int(st.Uid), os.Getuid(), true
}
