//go:build unix

package control

import (
	"io/fs"
	"os/user"
	"strconv"
	"syscall"
)

// fileOwner returns the uid that owns the file fi describes.
func fileOwner(fi fs.FileInfo) (int, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return int(st.Uid), true
}

// describeUID names a user: "nobody (uid 65534)", or "uid 65534" when the
// user has no name.
func describeUID(uid int, known bool) string {
	if !known {
		return "an unknown user"
	}
	s := "uid " + strconv.Itoa(uid)
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil && u.Username != "" {
		s = u.Username + " (" + s + ")"
	}
	return s
}
