package disk

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Result says what Prepare made.
type Result struct {
	// Image describes the source image.
	Image Info
	// Size is the size of the disk made, in bytes: a multiple of 512.
	Size int64
	// Cloned is true when a raw image was cloned copy-on-write (FICLONE
	// on Linux, clonefile on macOS) rather than copied.
	Cloned bool
	// Note is a remark for the user, or "": set when the disk keeps the
	// image's size because the size asked for is smaller.
	Note string
}

const (
	chunkSize    = 4 << 20 // bytes read and written at a time
	progressStep = 4 << 20 // progress is reported at most once per this many bytes
	zeroBlock    = 4096    // granularity of hole detection, as qemu-img's -S default
	maxSize      = 1 << 56 // the largest disk: qcow2's limit, far above any file system's
)

// Prepare makes the VM's disk dst, a raw disk image, from the image src
// (qcow2 or raw, see Inspect). src is never modified.
//
// The disk is size bytes (0 means DefaultSize), rounded up to a multiple
// of 512. It is never smaller than the image's disk: when size is smaller,
// the disk keeps the image's size and Result.Note says so.
//
// A qcow2 image is converted to a sparse raw file: only non-zero data is
// written. A raw image is cloned copy-on-write where the file system can
// (FICLONE on Linux: Btrfs, XFS; clonefile on macOS: APFS), else copied
// sparsely (holes and zero blocks stay holes).
//
// dst is written atomically: Prepare writes a temporary file next to dst
// (.NAME.RANDOM.tmp) and renames it over dst at the end (replacing any old
// disk). On any error or when ctx is cancelled the temporary file is
// removed and dst is untouched. Temporary files of dst left by a process
// that was killed are removed when Prepare starts, so Prepare must not run
// twice at once for the same dst.
//
// progress, when not nil, is called with the bytes of the image's disk
// done so far and their total (Result.Image.VirtualSize): first (0, total),
// then at most once per 4 MiB, in increasing order, and last (total,
// total) once the disk is complete. It is called on the caller's
// goroutine.
func Prepare(ctx context.Context, src, dst string, size int64, progress func(done, total int64)) (Result, error) {
	if size < 0 {
		return Result{}, fmt.Errorf("disk size %d is negative: give a size of 0 (for the default, %d GiB) or more", size, DefaultSize>>30)
	}
	if size > maxSize {
		return Result{}, fmt.Errorf("disk size %d is too large: the limit is %d TiB", size, maxSize>>40)
	}
	if size == 0 {
		size = DefaultSize
	}
	if src == "" {
		return Result{}, errors.New("disk image: no image path given")
	}
	if dst == "" {
		return Result{}, errors.New("disk: no path given for the disk to make")
	}
	in, err := openImage(src)
	if err != nil {
		return Result{}, err
	}
	defer in.Close()
	if err := checkDst(in, src, dst); err != nil {
		return Result{}, err
	}
	info, q, err := inspectFile(ctx, in, src)
	if err != nil {
		return Result{}, err
	}
	res := Result{Image: info, Size: roundUp(max(size, info.VirtualSize))}
	if size < info.VirtualSize {
		res.Note = fmt.Sprintf("the image's disk is %d bytes, larger than the %d bytes asked for; the disk keeps the image's size (a disk cannot shrink without losing data)", info.VirtualSize, size)
	}

	removeLeftovers(dst)
	tmp, err := os.CreateTemp(filepath.Dir(dst), tempPrefix(dst)+"*"+tempSuffix)
	if err != nil {
		return Result{}, fmt.Errorf("making disk %s: %w", dst, err)
	}
	tmpPath := tmp.Name()
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(tmpPath)
		}
	}()

	p := progressor{fn: progress, total: info.VirtualSize}
	p.report(0)
	switch {
	case q != nil:
		if err := tmp.Truncate(res.Size); err != nil {
			return Result{}, fmt.Errorf("making disk %s: %w", dst, err)
		}
		if err := convertQcow2(ctx, q, tmp, &p); err != nil {
			return Result{}, wrapWrite(err, dst)
		}
	default:
		var cloned bool
		tmp, cloned, err = cloneTo(in, tmp, tmpPath)
		if err != nil {
			return Result{}, fmt.Errorf("making disk %s: %w", dst, err)
		}
		if cloned {
			res.Cloned = true
		} else {
			if err := tmp.Truncate(res.Size); err != nil {
				return Result{}, fmt.Errorf("making disk %s: %w", dst, err)
			}
			if err := copyRaw(ctx, in, tmp, info.VirtualSize, &p); err != nil {
				return Result{}, wrapWrite(err, dst)
			}
		}
		if err := ctx.Err(); err != nil {
			return Result{}, err
		}
		if err := tmp.Truncate(res.Size); err != nil {
			return Result{}, fmt.Errorf("making disk %s: %w", dst, err)
		}
	}
	if err := tmp.Sync(); err != nil {
		return Result{}, fmt.Errorf("making disk %s: %w", dst, err)
	}
	if err := tmp.Close(); err != nil {
		return Result{}, fmt.Errorf("making disk %s: %w", dst, err)
	}
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	if err := os.Rename(tmpPath, dst); err != nil {
		return Result{}, fmt.Errorf("making disk %s: %w", dst, err)
	}
	ok = true
	syncDir(filepath.Dir(dst))
	p.done()
	return res, nil
}

// The temporary file of dst is .NAME.RANDOM.tmp next to it.
const tempSuffix = ".tmp"

func tempPrefix(dst string) string { return "." + filepath.Base(dst) + "." }

// removeLeftovers removes the temporary files of dst that an earlier
// Prepare left when its process was killed: they can be as large as the
// disk. (Prepare must not run twice at once for the same dst.)
func removeLeftovers(dst string) {
	dir, prefix := filepath.Dir(dst), tempPrefix(dst)
	es, err := os.ReadDir(dir)
	if err != nil {
		return // CreateTemp reports the problem
	}
	for _, e := range es {
		if n := e.Name(); e.Type().IsRegular() && strings.HasPrefix(n, prefix) && strings.HasSuffix(n, tempSuffix) &&
			len(n) > len(prefix)+len(tempSuffix) && !strings.Contains(n[len(prefix):len(n)-len(tempSuffix)], ".") {
			os.Remove(filepath.Join(dir, n))
		}
	}
}

// checkDst refuses a dst that is the image itself or a directory.
func checkDst(in *os.File, src, dst string) error {
	st, err := os.Stat(dst)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("disk %s: %w", dst, err)
	}
	if st.IsDir() {
		return fmt.Errorf("disk %s is a directory: name a file for the VM's disk", dst)
	}
	sst, err := in.Stat()
	if err != nil {
		return fmt.Errorf("disk image %s: %w", src, err)
	}
	if os.SameFile(st, sst) {
		return fmt.Errorf("disk %s is the image %s itself: the image is never modified, so the VM's disk must be another file", dst, src)
	}
	return nil
}

// wrapWrite names dst in errors of writing it; errors about the image and
// context errors pass through.
func wrapWrite(err error, dst string) error {
	var e *Error
	if errors.As(err, &e) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return fmt.Errorf("making disk %s: %w", dst, err)
}

func roundUp(n int64) int64 { return (n + SectorSize - 1) &^ (SectorSize - 1) }

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync() // best effort: the rename is durable once the directory is
		d.Close()
	}
}

// progressor reports progress at most once per progressStep.
type progressor struct {
	fn          func(done, total int64)
	total, last int64
	started     bool
}

func (p *progressor) report(done int64) {
	if p.fn == nil {
		return
	}
	done = min(done, p.total)
	// The call with done == total is left to done, which makes it once
	// the disk is complete.
	if p.started && (done-p.last < progressStep || done == p.total) {
		return
	}
	p.started, p.last = true, done
	p.fn(done, p.total)
}

// done makes the final report (total, total) unless it was made.
func (p *progressor) done() {
	if p.fn != nil && (!p.started || p.last != p.total) {
		p.started = true
		p.last = p.total
		p.fn(p.total, p.total)
	}
}

var zeros [zeroBlock]byte

// writeData writes b at off in w, leaving out every aligned zeroBlock of
// zeros (which stays a hole in a freshly truncated file).
func writeData(w io.WriterAt, b []byte, off int64) error {
	for i := 0; i < len(b); {
		// The first block ends at a zeroBlock boundary of the disk.
		n := min(zeroBlock-int((off+int64(i))%zeroBlock), len(b)-i)
		if bytes.Equal(b[i:i+n], zeros[:n]) {
			i += n
			continue
		}
		j := i + n
		for j < len(b) {
			m := min(zeroBlock, len(b)-j)
			if bytes.Equal(b[j:j+m], zeros[:m]) {
				break
			}
			j += m
		}
		if _, err := w.WriteAt(b[i:j], off+int64(i)); err != nil {
			return err
		}
		i = j
	}
	return nil
}

// copyRaw copies the size bytes of the raw image in into w (a file already
// of at least that size, all holes), skipping holes and zero blocks.
func copyRaw(ctx context.Context, in *os.File, w io.WriterAt, size int64, p *progressor) error {
	buf := make([]byte, chunkSize)
	return dataSegments(in, size, func(off, end int64) error {
		for off < end {
			if err := ctx.Err(); err != nil {
				return err
			}
			b := buf[:min(int64(len(buf)), end-off)]
			n, err := in.ReadAt(b, off)
			if n < len(b) {
				if err == nil || err == io.EOF {
					err = fmt.Errorf("disk image %s: the file became shorter while it was copied", in.Name())
				}
				return err
			}
			if err := writeData(w, b, off); err != nil {
				return err
			}
			off += int64(n)
			p.report(off)
		}
		return nil
	})
}
