package vmhost

import (
	"fmt"
	"math/big"
	"strconv"
	"strings"
)

// Binary size units.
const (
	KiB uint64 = 1 << 10
	MiB uint64 = 1 << 20
	GiB uint64 = 1 << 30
	TiB uint64 = 1 << 40
)

// sizeUnits maps a lower-case unit to its multiplier. K, M, G and T are
// binary (as in QEMU's -m and most VM tools); KB, MB, GB and TB are decimal
// (SI).
var sizeUnits = map[string]uint64{
	"":    1,
	"b":   1,
	"k":   KiB,
	"kib": KiB,
	"m":   MiB,
	"mib": MiB,
	"g":   GiB,
	"gib": GiB,
	"t":   TiB,
	"tib": TiB,
	"kb":  1e3,
	"mb":  1e6,
	"gb":  1e9,
	"tb":  1e12,
}

// ParseSize reads a byte count: a plain number of bytes ("1073741824") or a
// number with a unit ("1GiB", "512MiB", "2G", "1.5GiB", "512 MiB"). Units are
// case-insensitive; K, M, G, T and KiB, MiB, GiB, TiB are powers of 1024, KB,
// MB, GB, TB are powers of 1000, B is bytes. The result must be a whole
// number of bytes that fits in 64 bits.
func ParseSize(s string) (uint64, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, fmt.Errorf("empty size: write a number of bytes or a number with a unit, like 1GiB or 512MiB")
	}
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9' || t[i] == '.') {
		i++
	}
	num, unit := t[:i], strings.ToLower(strings.TrimSpace(t[i:]))
	if num == "" {
		if strings.HasPrefix(t, "-") {
			return 0, fmt.Errorf("size %q is negative: sizes are at least 0", s)
		}
		return 0, fmt.Errorf("size %q does not start with a number: write it like 1GiB or 512MiB", s)
	}
	mult, ok := sizeUnits[unit]
	if !ok {
		return 0, fmt.Errorf("size %q has unknown unit %q: use B, KiB, MiB, GiB, TiB (or K, M, G, T; KB, MB, GB, TB are powers of 1000)", s, t[i:])
	}
	r, ok := new(big.Rat).SetString(num)
	if !ok || strings.Count(num, ".") > 1 || strings.HasSuffix(num, ".") || strings.HasPrefix(num, ".") {
		return 0, fmt.Errorf("size %q: %q is not a number", s, num)
	}
	r.Mul(r, new(big.Rat).SetInt(new(big.Int).SetUint64(mult)))
	if !r.IsInt() {
		return 0, fmt.Errorf("size %q is not a whole number of bytes", s)
	}
	n := r.Num()
	if !n.IsUint64() {
		return 0, fmt.Errorf("size %q is too large (the limit is 16EiB)", s)
	}
	return n.Uint64(), nil
}

// formatUnits are the units FormatSize writes, largest first.
var formatUnits = []struct {
	mult uint64
	name string
}{{TiB, "TiB"}, {GiB, "GiB"}, {MiB, "MiB"}, {KiB, "KiB"}}

// FormatSize writes n for people: a number of at most five digits before
// and two after the point in the largest binary unit in which it is exact
// ("1GiB", "1.5GiB", "4769MiB", "1.5KiB", "1000B"), so that
// ParseSize(FormatSize(n)) == n for every n below 1MiB and every whole
// number of MiB below 100000MiB (and of quarter GiB below 100000GiB).
// Any other n is rounded to two decimals in its largest unit and says so
// ("about 23.54GiB"): never a long run of digits in a small unit such as
// 24683548KiB. A message that suggests a value to write rounds it first
// (suggestSize, roundSize), so that it is exact.
func FormatSize(n uint64) string {
	for _, u := range formatUnits {
		if n < u.mult || (u.mult == KiB && n >= MiB) {
			continue
		}
		if s, ok := exactSize(n, u.mult); ok && len(strings.SplitN(s, ".", 2)[0]) <= 5 {
			return s + u.name
		}
	}
	if n < MiB {
		return strconv.FormatUint(n, 10) + "B"
	}
	u := formatUnits[0]
	for _, u = range formatUnits {
		if n >= u.mult {
			break
		}
	}
	v := new(big.Rat).SetFrac(new(big.Int).SetUint64(n), new(big.Int).SetUint64(u.mult))
	return "about " + v.FloatString(2) + u.name
}

// exactSize writes n/mult when it has at most two decimals.
func exactSize(n, mult uint64) (string, bool) {
	v := new(big.Rat).SetFrac(new(big.Int).SetUint64(n), new(big.Int).SetUint64(mult))
	s := v.FloatString(2)
	if back, ok := new(big.Rat).SetString(s); !ok || back.Cmp(v) != 0 {
		return "", false
	}
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s, true
}

// roundSize rounds n to a whole number of step (a power of two), down or
// up, staying within 64 bits. A size rounded to MiB, or to a quarter GiB,
// is one that FormatSize writes exactly: fit to suggest to the user.
func roundSize(n, step uint64, down bool) uint64 {
	r := n / step * step
	if !down && r < n && r <= ^uint64(0)-step {
		r += step
	}
	return r
}

// suggestSize rounds n (down or up) to a size to suggest to the user: a
// whole number of MiB, or of quarter GiB when FormatSize would not write
// that exactly.
func suggestSize(n uint64, down bool) uint64 {
	if r := roundSize(n, MiB, down); !strings.HasPrefix(FormatSize(r), "about ") {
		return r
	}
	return roundSize(n, GiB/4, down)
}

// niceStep is the step roundSize uses for a limit the user is told about:
// a quarter GiB from 1GiB on ("23.5GiB"), else 1MiB.
func niceStep(n uint64) uint64 {
	if n >= GiB {
		return GiB / 4
	}
	return MiB
}
