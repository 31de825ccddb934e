// Package human renders byte counts and durations for people, the same way
// in the command line, the headless status lines and the tray menu.
//
// human imports only the standard library.
package human

import (
	"fmt"
	"regexp"
	"time"
)

// Bytes renders a byte count in decimal units with one decimal:
// "0 B", "999 B", "1.2 kB", "3.4 GB".
func Bytes(n uint64) string { return bytes(n, " ") }

// CompactBytes is Bytes without the space, for key=value lines:
// "0B", "1.2kB", "3.4GB".
func CompactBytes(n uint64) string { return bytes(n, "") }

func bytes(n uint64, sep string) string {
	if n < 1000 {
		return fmt.Sprintf("%d%sB", n, sep)
	}
	units := []string{"kB", "MB", "GB", "TB", "PB", "EB"}
	v := float64(n)
	i := -1
	for v >= 999.95 && i < len(units)-1 {
		v /= 1000
		i++
	}
	return fmt.Sprintf("%.1f%s%s", v, sep, units[i])
}

// Duration renders a duration precisely while it is short and with its two
// largest units once it is long: "850ms", "2.5s", "3s", "45s", "4m",
// "2h 14m", "3d 5h". Shorter units are truncated, not rounded. Negative durations (clock steps) show as "0s".
func Duration(d time.Duration) string {
	switch {
	case d <= 0:
		return "0s"
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < 10*time.Second:
		return d.Truncate(100 * time.Millisecond).String()
	}
	s := int64(d / time.Second)
	switch {
	case s < 60:
		return fmt.Sprintf("%ds", s)
	case s < 3600:
		return fmt.Sprintf("%dm", s/60)
	case s < 86400:
		return fmt.Sprintf("%dh %dm", s/3600, s%3600/60)
	default:
		return fmt.Sprintf("%dd %dh", s/86400, s%86400/3600)
	}
}

// dialMissing matches the link's error while the daemon's socket does not
// exist, or nothing listens on it (a socket file left behind): netlink's
// "dialing the daemon: " and Go's net.OpError for a UNIX socket.
var dialMissing = regexp.MustCompile(`^dialing the daemon: dial unix (.+): connect: (?:no such file or directory|connection refused)$`)

// WaitingForDaemon returns the daemon's socket path when a link that is
// dialing (connecting or reconnecting) failed its last dial because the
// socket does not exist or nobody listens on it: socket_vmnet is not
// installed or not started yet, and the link waits for it.
func WaitingForDaemon(dialing bool, lastError string) (string, bool) {
	if !dialing {
		return "", false
	}
	m := dialMissing.FindStringSubmatch(lastError)
	if m == nil {
		return "", false
	}
	return m[1], true
}
