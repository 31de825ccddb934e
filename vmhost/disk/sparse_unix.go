//go:build linux || darwin

package disk

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// dataSegments calls fn for every range [off, end) of the first size bytes
// of f that may hold data, in order, skipping holes (SEEK_DATA/SEEK_HOLE).
// Where the file system cannot tell, the whole file is one range.
func dataSegments(f *os.File, size int64, fn func(off, end int64) error) error {
	for off := int64(0); off < size; {
		data, err := unix.Seek(int(f.Fd()), off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			return nil // only a hole is left
		}
		if err != nil {
			return fn(off, size) // SEEK_DATA not supported
		}
		if data >= size {
			return nil
		}
		hole, err := unix.Seek(int(f.Fd()), data, unix.SEEK_HOLE)
		if err != nil || hole > size {
			hole = size
		}
		if hole <= data {
			return fn(data, size)
		}
		if err := fn(data, hole); err != nil {
			return err
		}
		off = hole
	}
	return nil
}
