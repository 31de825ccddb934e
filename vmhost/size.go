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

// FormatSize writes n with the largest binary unit that divides it exactly
// ("1GiB", "1536MiB", "4097B"), so ParseSize(FormatSize(n)) == n.
func FormatSize(n uint64) string {
	for _, u := range []struct {
		mult uint64
		name string
	}{{TiB, "TiB"}, {GiB, "GiB"}, {MiB, "MiB"}, {KiB, "KiB"}} {
		if n != 0 && n%u.mult == 0 {
			return strconv.FormatUint(n/u.mult, 10) + u.name
		}
	}
	return strconv.FormatUint(n, 10) + "B"
}
