package disk

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/vmnetbar/vmnetbar/internal/filekind"
)

// Formats Inspect reports.
const (
	FormatQcow2 = "qcow2"
	FormatRaw   = "raw"
)

// DefaultSize is the size Prepare gives a disk when the caller asks for
// none (size 0): 20 GiB, or the image's own size when that is larger.
const DefaultSize int64 = 20 << 30

// SectorSize is the unit disk sizes are rounded up to: Apple's
// Virtualization framework takes only raw disks whose size is a multiple of
// 512 bytes.
const SectorSize = 512

// Info describes a disk image.
type Info struct {
	// Format is FormatQcow2 or FormatRaw.
	Format string
	// VirtualSize is the size of the disk the image holds, in bytes: the
	// file's size for a raw image.
	VirtualSize int64
	// FileSize is the size of the image file itself.
	FileSize int64
	// DataBytes counts the bytes of the disk that the image stores (for
	// qcow2: allocated clusters, compressed ones included; for raw: the
	// file's size). The rest reads as zeros.
	DataBytes int64

	// Version is the qcow2 version (2 or 3); 0 for raw.
	Version int
	// ClusterSize is the qcow2 cluster size in bytes; 0 for raw.
	ClusterSize int64
	// Compressed is true when a qcow2 image has compressed clusters.
	Compressed bool
}

// Kinds of errors, for errors.Is. Every error Inspect and Prepare return for
// a bad image is an *Error that wraps one of these.
var (
	// ErrNotImage: the file is not a qcow2 or raw disk image (another
	// image format, an archive, an ISO, or no partition table).
	ErrNotImage = errors.New("not a qcow2 or raw disk image")
	// ErrTruncated: the image ends before its header, tables or data do.
	ErrTruncated = errors.New("disk image is truncated")
	// ErrCorrupt: the qcow2 metadata is inconsistent.
	ErrCorrupt = errors.New("disk image is corrupt")
	// ErrBackingFile: the qcow2 image is an overlay on a backing file.
	ErrBackingFile = errors.New("disk image has a backing file")
	// ErrUnsupported: the image uses a feature this package does not read
	// (encryption, an external data file, zstd compression, unknown
	// incompatible features).
	ErrUnsupported = errors.New("disk image uses an unsupported feature")
)

// Error is a problem with a disk image: which file, what is wrong and what
// to do about it.
type Error struct {
	Path string // the image file
	Kind error  // ErrNotImage, ErrTruncated, ...
	What string // what is wrong, e.g. "the L1 table ends past the end of the file"
	Fix  string // what to do, e.g. "download the image again"
}

func (e *Error) Error() string {
	s := fmt.Sprintf("disk image %s: %s", e.Path, e.What)
	if e.Fix != "" {
		s += "; " + e.Fix
	}
	return s
}

// Unwrap returns Kind.
func (e *Error) Unwrap() error { return e.Kind }

const fixDownload = "the file is incomplete: download the image again (and check its checksum)"

// Inspect reads the image at path and says what it is. It validates the
// whole qcow2 mapping (header, L1 and L2 tables, the place of every data
// cluster), so an image that passes Inspect converts without surprises
// unless it changes in between.
func Inspect(path string) (Info, error) {
	f, err := openImage(path)
	if err != nil {
		return Info{}, err
	}
	defer f.Close()
	info, _, err := inspectFile(context.Background(), f, path)
	return info, err
}

// openImage opens a regular file for reading.
func openImage(path string) (*os.File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("disk image: %w; check the path of the image", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("disk image %s: %w", path, err)
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, &Error{Path: path, Kind: ErrNotImage,
			What: "is " + filekind.Of(st.Mode()) + ", not a file",
			Fix:  "name a qcow2 or raw image file"}
	}
	return f, nil
}

// inspectFile reads f (named path in messages). For qcow2 it returns the
// parsed image too.
func inspectFile(ctx context.Context, f io.ReaderAt, path string) (Info, *qcow2, error) {
	size, err := fileSize(f)
	if err != nil {
		return Info{}, nil, fmt.Errorf("disk image %s: %w", path, err)
	}
	if size == 0 {
		return Info{}, nil, &Error{Path: path, Kind: ErrNotImage, What: "the file is empty",
			Fix: "name a qcow2 or raw disk image (a distro cloud image such as Debian's genericcloud .qcow2)"}
	}
	head := make([]byte, min(size, 64<<10))
	if _, err := f.ReadAt(head, 0); err != nil && err != io.EOF {
		return Info{}, nil, fmt.Errorf("disk image %s: %w", path, err)
	}
	if bytes.HasPrefix(head, qcowMagic) {
		q, err := openQcow2(ctx, f, size, path)
		if err != nil {
			return Info{}, nil, err
		}
		return q.info, q, nil
	}
	var tail []byte
	if size >= 512 {
		tail = make([]byte, 512)
		if _, err := f.ReadAt(tail, size-512); err != nil && err != io.EOF {
			return Info{}, nil, fmt.Errorf("disk image %s: %w", path, err)
		}
	}
	if e := sniffOther(head, tail); e != nil {
		e.Path = path
		return Info{}, nil, e
	}
	return Info{Format: FormatRaw, VirtualSize: size, FileSize: size, DataBytes: size}, nil, nil
}

func fileSize(f io.ReaderAt) (int64, error) {
	switch f := f.(type) {
	case interface{ Stat() (os.FileInfo, error) }:
		st, err := f.Stat()
		if err != nil {
			return 0, err
		}
		return st.Size(), nil
	case interface{ Size() int64 }:
		return f.Size(), nil
	}
	return 0, errors.New("cannot tell the size of the file")
}

var qcowMagic = []byte{'Q', 'F', 'I', 0xfb}

const convertHint = "convert it first: qemu-img convert -O qcow2 IMAGE new.qcow2 (or -O raw)"

// sniffOther tells a raw disk image from the formats a user might name by
// mistake. head is the start of the file (up to 64 KiB), tail its last 512
// bytes (nil when the file is shorter). A raw disk must have a partition
// table (an MBR boot signature or a GPT header): every cloud image has one,
// EFI cannot boot a disk without one, and it tells a disk from any other
// file.
func sniffOther(head, tail []byte) *Error {
	at := func(off int, sig string) bool {
		return len(head) >= off+len(sig) && string(head[off:off+len(sig)]) == sig
	}
	other := func(what, fix string) *Error {
		return &Error{Kind: ErrNotImage, What: what, Fix: fix}
	}
	switch {
	case at(0, "KDMV") || at(0, "# Disk DescriptorFile") || at(0, "COWD"):
		return other("is a VMDK image, not qcow2 or raw", convertHint)
	case at(0, "vhdxfile"):
		return other("is a VHDX image, not qcow2 or raw", convertHint)
	case at(0, "conectix"):
		return other("is a VHD image, not qcow2 or raw", convertHint)
	case len(head) >= 0x44 && binary.LittleEndian.Uint32(head[0x40:]) == 0xbeda107f:
		return other("is a VirtualBox VDI image, not qcow2 or raw", convertHint)
	case at(0, "QED\x00"):
		return other("is a QED image, not qcow2 or raw", convertHint)
	case at(0, "WithoutFreeSpace") || at(0, "WithouFreSpacExt"):
		return other("is a Parallels image, not qcow2 or raw", convertHint)
	case at(0, "\x1f\x8b"):
		return other("is gzip-compressed", "decompress it first (gunzip) and name the image inside")
	case at(0, "\xfd7zXZ\x00"):
		return other("is xz-compressed", "decompress it first (xz -d, or tar -xf for a .tar.xz) and name the image inside")
	case at(0, "\x28\xb5\x2f\xfd"):
		return other("is zstd-compressed", "decompress it first (zstd -d) and name the image inside")
	case at(0, "BZh"):
		return other("is bzip2-compressed", "decompress it first (bunzip2) and name the image inside")
	case at(0, "PK\x03\x04"):
		return other("is a zip archive", "unzip it first and name the image inside")
	case at(257, "ustar"):
		return other("is a tar archive", "extract it first (tar -xf) and name the image inside")
	case at(0x8001, "CD001"):
		return other("is an ISO 9660 (CD/DVD) image, such as an installer, not a disk image",
			"use a distro cloud image (qcow2 or raw), such as Debian's genericcloud image")
	}
	if len(tail) == 512 && string(tail[:8]) == "conectix" {
		return other("is a fixed-size VHD image, not qcow2 or raw", convertHint)
	}
	if len(tail) == 512 && string(tail[:4]) == "koly" {
		return other("is a macOS disk image (.dmg), not qcow2 or raw", "use a distro cloud image (qcow2 or raw)")
	}
	mbr := len(head) >= 512 && head[510] == 0x55 && head[511] == 0xaa
	gpt := at(512, "EFI PART") || at(4096, "EFI PART")
	if !mbr && !gpt {
		return other("is not a qcow2 image and has no partition table (no MBR boot signature or GPT header), so it is not a raw disk image either",
			"name a distro cloud image (qcow2 or raw), such as Debian's genericcloud .qcow2")
	}
	return nil
}
