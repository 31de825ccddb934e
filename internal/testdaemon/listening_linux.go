package testdaemon

import (
	"bufio"
	"os"
	"strconv"
	"strings"
)

// soAcceptCon is __SO_ACCEPTCON: the socket is listening.
const soAcceptCon = 1 << 16

// listening reports whether a socket bound to path is listening. The file
// appears at bind(), before listen(), so its existence is not enough; this
// reads /proc/net/unix instead of connecting (gvproxy serves one connection).
func listening(path string) bool {
	f, err := os.Open("/proc/net/unix")
	if err != nil {
		return socketExists(path)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// Num RefCount Protocol Flags Type St Inode Path
		fields := strings.Fields(sc.Text())
		if len(fields) < 8 || fields[7] != path {
			continue
		}
		flags, err := strconv.ParseUint(fields[3], 16, 32)
		if err == nil && flags&soAcceptCon != 0 {
			return socketExists(path)
		}
	}
	return false
}
