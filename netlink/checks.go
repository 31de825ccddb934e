package netlink

import (
	"errors"
	"fmt"
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// MinInitialBackoff is the shortest first wait between failed dials that
// New accepts: a shorter one redials a missing daemon in a tight loop (and
// logs every attempt at debug level). Configuration layers check their
// setting against the same number.
const MinInitialBackoff = 10 * time.Millisecond

// SunPathSize is the size of sun_path on this system, the terminating NUL
// included: 108 bytes on Linux, 104 on macOS. A UNIX socket path can have
// at most SunPathSize-1 bytes.
const SunPathSize = len(unix.RawSockaddrUnix{}.Path)

// CheckSocketPath reports why path cannot be dialed as a UNIX socket: it is
// empty or longer than sun_path allows (which connect would refuse with a
// bare "invalid argument"). The message starts with the quoted path, so
// that callers put their own name for it in front: `--socket "/x…" is 130
// bytes long, …` or `network.socket "/x…" is …`.
func CheckSocketPath(path string) error {
	if path == "" {
		return errors.New(`"" is empty: give the daemon's socket path (e.g. /opt/homebrew/var/run/socket_vmnet)`)
	}
	if len(path) >= SunPathSize {
		return fmt.Errorf("%q is %d bytes long; a UNIX socket path may have at most %d bytes on %s (sun_path is %d bytes including the terminating NUL): use a shorter path, e.g. a symlink to the socket in a short directory such as /tmp",
			path, len(path), SunPathSize-1, osName(), SunPathSize)
	}
	return nil
}

// CheckBackoff reports why a Config's InitialBackoff and MaxBackoff (0 for
// the defaults) are not usable: negative, a first wait below
// MinInitialBackoff, or a maximum below the first wait. Its messages say
// "initial backoff" and "maximum backoff"; callers that know the user's
// names for them check first and use those.
func CheckBackoff(initial, max time.Duration) error {
	if initial < 0 {
		return fmt.Errorf("the initial backoff %v is negative: use at least %v, or 0 for the default %v", initial, MinInitialBackoff, DefaultInitialBackoff)
	}
	if max < 0 {
		return fmt.Errorf("the maximum backoff %v is negative: use at least the initial backoff, or 0 for the default %v", max, DefaultMaxBackoff)
	}
	init, initWhat := initial, ""
	if init == 0 {
		init, initWhat = DefaultInitialBackoff, " (the default)"
	}
	if init < MinInitialBackoff {
		return fmt.Errorf("the initial backoff %v is below the minimum of %v, which keeps a missing daemon from being redialed in a tight loop: use at least %v", init, MinInitialBackoff, MinInitialBackoff)
	}
	mx, maxWhat := max, ""
	if mx == 0 {
		mx, maxWhat = DefaultMaxBackoff, " (the default)"
	}
	if mx < init {
		return fmt.Errorf("the maximum backoff %v%s is shorter than the initial backoff %v%s: make it at least as long", mx, maxWhat, init, initWhat)
	}
	return nil
}

func osName() string {
	switch runtime.GOOS {
	case "darwin":
		return "macOS"
	case "linux":
		return "Linux"
	default:
		return runtime.GOOS
	}
}

// CheckMTU reports whether mtu is a usable Config.MTU: 0 (the default,
// DefaultMTU) or MinMTU..MaxMTU.
func CheckMTU(mtu int) error {
	if mtu != 0 && (mtu < MinMTU || mtu > MaxMTU) {
		return fmt.Errorf("the MTU %d is out of range: use %d..%d, or 0 for the default %d", mtu, MinMTU, MaxMTU, DefaultMTU)
	}
	return nil
}
