//go:build !unix

package control

import (
	"io/fs"
	"strconv"
)

// fileOwner is unknown where files have no uid.
func fileOwner(fs.FileInfo) (int, bool) { return 0, false }

func describeUID(uid int, known bool) string {
	if !known {
		return "an unknown user"
	}
	return "uid " + strconv.Itoa(uid)
}
