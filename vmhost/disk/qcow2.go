package disk

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math/bits"
	"strings"
)

// The qcow2 format, as far as reading the active image needs it:
// https://gitlab.com/qemu-project/qemu/-/blob/master/docs/interop/qcow2.txt

const (
	qcowMinClusterBits = 9
	qcowMaxClusterBits = 21                 // 2 MiB, as QEMU
	qcowMaxL1Bytes     = 32 << 20           // QEMU's QCOW_MAX_L1_SIZE
	qcowMaxVirtualSize = 1 << 56            // offsets are 56 bits wide
	qcowOffsetMask     = 0x00fffffffffffe00 // bits 9-55: host offset in L1/L2 entries
	l2Compressed       = 1 << 62
	l2Zero             = 1 // v3: the cluster reads as zeros

	incompatDirty        = 1 << 0
	incompatCorrupt      = 1 << 1
	incompatExternalData = 1 << 2
	incompatCompression  = 1 << 3
	incompatExtendedL2   = 1 << 4
	incompatKnown        = incompatDirty | incompatCorrupt | incompatExternalData | incompatCompression | incompatExtendedL2

	extEnd          = 0x00000000
	extFeatureNames = 0x6803f857
)

// qcow2 is an opened, validated qcow2 image.
type qcow2 struct {
	f           io.ReaderAt
	path        string
	fileSize    int64
	size        int64 // virtual size
	clusterBits uint
	clusterSize int64
	extL2       bool  // extended L2 entries: 32 subclusters per cluster
	l2Entries   int64 // entries per L2 table
	l1          []uint64
	info        Info
}

// corrupt and truncated build the errors of a bad qcow2 image.
func (q *qcow2) corrupt(format string, args ...any) *Error {
	return &Error{Path: q.path, Kind: ErrCorrupt, What: fmt.Sprintf(format, args...),
		Fix: "the qcow2 metadata is inconsistent: download the image again, or try qemu-img check IMAGE"}
}

func (q *qcow2) truncated(format string, args ...any) *Error {
	return &Error{Path: q.path, Kind: ErrTruncated, What: fmt.Sprintf(format, args...) + fmt.Sprintf(" (the file is %d bytes)", q.fileSize), Fix: fixDownload}
}

// readAt reads len(b) bytes at off, which the caller has checked lie in the
// file.
func (q *qcow2) readAt(b []byte, off int64) error {
	n, err := q.f.ReadAt(b, off)
	if n == len(b) {
		return nil
	}
	if err == io.EOF || err == nil {
		return q.truncated("reading %d bytes at offset %d hit the end of the file", len(b), off)
	}
	return fmt.Errorf("disk image %s: %w", q.path, err)
}

// within says whether [off, off+n) lies inside the file.
func (q *qcow2) within(off, n int64) bool {
	return off >= 0 && n >= 0 && off <= q.fileSize && n <= q.fileSize-off
}

// openQcow2 parses the header and the L1 table of a file that starts with
// the qcow magic, then walks the L2 tables to validate the mapping.
func openQcow2(ctx context.Context, f io.ReaderAt, fileSize int64, path string) (*qcow2, error) {
	q := &qcow2{f: f, path: path, fileSize: fileSize}
	if fileSize < 72 {
		return nil, q.truncated("the qcow2 header is 72 bytes or more")
	}
	var h [112]byte
	hn := min(fileSize, int64(len(h)))
	if err := q.readAt(h[:hn], 0); err != nil {
		return nil, err
	}
	be := binary.BigEndian
	version := be.Uint32(h[4:])
	switch version {
	case 1:
		return nil, &Error{Path: path, Kind: ErrNotImage, What: "is a qcow version 1 image, an obsolete format",
			Fix: "convert it first: qemu-img convert -O qcow2 IMAGE new.qcow2"}
	case 2, 3:
	default:
		return nil, &Error{Path: path, Kind: ErrUnsupported, What: fmt.Sprintf("is qcow2 version %d; only versions 2 and 3 are supported", version),
			Fix: "convert it first: qemu-img convert -O raw IMAGE disk.raw"}
	}
	backingOff := be.Uint64(h[8:])
	backingLen := be.Uint32(h[16:])
	clusterBits := be.Uint32(h[20:])
	q.size = int64(be.Uint64(h[24:]) & (1<<63 - 1))
	if be.Uint64(h[24:]) >= qcowMaxVirtualSize {
		return nil, q.corrupt("the virtual size %d is too large", be.Uint64(h[24:]))
	}
	cryptMethod := be.Uint32(h[32:])
	l1Size := int64(be.Uint32(h[36:]))
	l1Off := be.Uint64(h[40:])
	refOff := be.Uint64(h[48:])
	refClusters := int64(be.Uint32(h[56:]))

	headerLen := int64(72)
	var incompat uint64
	compressionType := byte(0)
	if version == 3 {
		if fileSize < 104 {
			return nil, q.truncated("the qcow2 version 3 header is 104 bytes or more")
		}
		incompat = be.Uint64(h[72:])
		refcountOrder := be.Uint32(h[96:])
		headerLen = int64(be.Uint32(h[100:]))
		if headerLen < 104 || headerLen%8 != 0 {
			return nil, q.corrupt("the header length %d is not a multiple of 8 of at least 104", headerLen)
		}
		if refcountOrder > 6 {
			return nil, q.corrupt("the refcount order %d is larger than 6", refcountOrder)
		}
		if headerLen > 104 && hn > 104 {
			compressionType = h[104]
		}
	}
	if clusterBits < qcowMinClusterBits || clusterBits > qcowMaxClusterBits {
		return nil, q.corrupt("the cluster size 2^%d is not between 512 B and 2 MiB", clusterBits)
	}
	q.clusterBits = uint(clusterBits)
	q.clusterSize = 1 << clusterBits
	if headerLen > q.clusterSize {
		return nil, q.corrupt("the header (%d bytes) is larger than a cluster", headerLen)
	}
	if !q.within(0, headerLen) {
		return nil, q.truncated("the qcow2 header is %d bytes", headerLen)
	}

	// Header extensions: after the header, up to the end of the first
	// cluster. Only the feature name table matters here (to name unknown
	// features); it is best effort.
	featureNames := map[uint64]string{}
	q.readExtensions(headerLen, featureNames)

	// Refusals, most fundamental first.
	if backingOff != 0 {
		name := ""
		if backingLen > 0 && backingLen <= 1023 && q.within(int64(backingOff), int64(backingLen)) {
			b := make([]byte, backingLen)
			if q.readAt(b, int64(backingOff)) == nil {
				name = " (" + strings.ToValidUTF8(string(b), "?") + ")"
			}
		}
		return nil, &Error{Path: path, Kind: ErrBackingFile,
			What: "is a qcow2 overlay on a backing file" + name + ", not a whole disk",
			Fix:  "flatten it first: qemu-img convert -O qcow2 IMAGE standalone.qcow2"}
	}
	if cryptMethod != 0 {
		method := map[uint32]string{1: "AES", 2: "LUKS"}[cryptMethod]
		if method == "" {
			method = fmt.Sprintf("method %d", cryptMethod)
		}
		return nil, &Error{Path: path, Kind: ErrUnsupported, What: "is encrypted (" + method + "); encrypted images are not supported",
			Fix: "use an unencrypted image, or decrypt this one first with qemu-img convert -O raw (giving its passphrase with --object secret)"}
	}
	if incompat&incompatCorrupt != 0 {
		return nil, &Error{Path: path, Kind: ErrCorrupt, What: "is marked corrupt by QEMU",
			Fix: "repair it with qemu-img check -r all IMAGE, or download the image again"}
	}
	if incompat&incompatExternalData != 0 {
		return nil, &Error{Path: path, Kind: ErrUnsupported, What: "keeps its data in an external data file, which is not supported",
			Fix: "make a self-contained image first: qemu-img convert -O qcow2 IMAGE standalone.qcow2"}
	}
	if unknown := incompat &^ incompatKnown; unknown != 0 {
		var names []string
		for b := 0; b < 64; b++ {
			if unknown&(1<<b) != 0 {
				if n := featureNames[uint64(b)]; n != "" {
					names = append(names, fmt.Sprintf("%q (bit %d)", n, b))
				} else {
					names = append(names, fmt.Sprintf("bit %d", b))
				}
			}
		}
		return nil, &Error{Path: path, Kind: ErrUnsupported,
			What: "uses incompatible qcow2 features this version does not know: " + strings.Join(names, ", "),
			Fix:  "convert it first: qemu-img convert -O raw IMAGE disk.raw"}
	}
	if incompat&incompatCompression != 0 && compressionType != 0 {
		what := fmt.Sprintf("uses compression type %d", compressionType)
		if compressionType == 1 {
			what = "uses zstd compression"
		}
		return nil, &Error{Path: path, Kind: ErrUnsupported, What: what + "; only zlib-compressed qcow2 images are supported",
			Fix: "convert it first: qemu-img convert -O qcow2 -c -o compression_type=zlib IMAGE new.qcow2 (or -O raw)"}
	}
	if incompat&incompatExtendedL2 != 0 {
		if clusterBits < 14 {
			return nil, q.corrupt("extended L2 entries need clusters of 16 KiB or more, not %d bytes", q.clusterSize)
		}
		q.extL2 = true
	}
	if q.size == 0 {
		return nil, &Error{Path: path, Kind: ErrNotImage, What: "is a qcow2 image of size 0", Fix: "name an image that holds a disk"}
	}

	entryBytes := int64(8)
	if q.extL2 {
		entryBytes = 16
	}
	q.l2Entries = q.clusterSize / entryBytes
	perL1 := q.l2Entries * q.clusterSize // guest bytes one L1 entry covers
	need := (q.size + perL1 - 1) / perL1
	if l1Size < need {
		return nil, q.corrupt("the L1 table has %d entries; a disk of %d bytes needs %d", l1Size, q.size, need)
	}
	if need*8 > qcowMaxL1Bytes {
		return nil, q.corrupt("the L1 table needs %d bytes, more than the 32 MiB QEMU allows", need*8)
	}
	if int64(l1Off)%q.clusterSize != 0 || l1Off >= qcowMaxVirtualSize {
		return nil, q.corrupt("the L1 table offset %d is not cluster-aligned", l1Off)
	}
	if !q.within(int64(l1Off), l1Size*8) {
		return nil, q.truncated("the L1 table (%d bytes at offset %d) ends past the end of the file", l1Size*8, l1Off)
	}
	if refClusters > 0 && (refOff >= qcowMaxVirtualSize || !q.within(int64(refOff), refClusters*q.clusterSize)) {
		return nil, q.truncated("the refcount table (%d clusters at offset %d) ends past the end of the file", refClusters, refOff)
	}
	// The L1 table lies inside the file, so this allocation is bounded by
	// the file's size.
	raw := make([]byte, need*8)
	if err := q.readAt(raw, int64(l1Off)); err != nil {
		return nil, err
	}
	q.l1 = make([]uint64, need)
	for i := range q.l1 {
		q.l1[i] = be.Uint64(raw[i*8:])
	}

	q.info = Info{Format: FormatQcow2, VirtualSize: q.size, FileSize: fileSize,
		Version: int(version), ClusterSize: q.clusterSize}
	// Validate the whole mapping now, so that a bad image fails before any
	// disk is written.
	err := q.walk(ctx, func(e extent) error {
		q.info.DataBytes += e.length
		if e.compressed {
			q.info.Compressed = true
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return q, nil
}

// readExtensions reads the header extensions it knows into names; it
// ignores extensions that are cut short.
func (q *qcow2) readExtensions(headerLen int64, names map[uint64]string) {
	end := min(q.clusterSize, q.fileSize)
	if end <= headerLen {
		return
	}
	buf := make([]byte, end-headerLen)
	if q.readAt(buf, headerLen) != nil {
		return
	}
	be := binary.BigEndian
	for len(buf) >= 8 {
		typ, n := be.Uint32(buf), int64(be.Uint32(buf[4:]))
		buf = buf[8:]
		if typ == extEnd || n > int64(len(buf)) {
			return
		}
		data := buf[:n]
		if typ == extFeatureNames {
			for ; len(data) >= 48; data = data[48:] {
				if data[0] == 0 { // incompatible feature
					names[uint64(data[1])] = strings.TrimRight(string(data[2:48]), "\x00")
				}
			}
		}
		pad := (n + 7) &^ 7
		if pad > int64(len(buf)) {
			return
		}
		buf = buf[pad:]
	}
}

// An extent is a piece of the guest disk that the image stores: either
// plain data at host, or one compressed cluster at host (clen bytes).
// Anything not covered by an extent reads as zeros.
type extent struct {
	guest, length int64
	host          int64
	compressed    bool
	clen          int64 // compressed: bytes to read at host
}

// walk calls fn for every stored extent of the image in guest order,
// validating every table and entry on the way. Consecutive extents are not
// merged.
func (q *qcow2) walk(ctx context.Context, fn func(extent) error) error {
	be := binary.BigEndian
	var table []byte // allocated once a table is known to lie in the file
	perL1 := q.l2Entries * q.clusterSize
	scBits := q.clusterBits
	if q.extL2 {
		scBits -= 5
	}
	sc := int64(1) << scBits // unit of allocation: cluster or subcluster
	// Compressed descriptors: x = 62 - (cluster_bits - 8).
	x := 62 - (q.clusterBits - 8)
	// Each L2 table of the active image belongs to one L1 entry. Refusing
	// a table named twice also bounds the work of a walk by the file's
	// size: a hostile L1 table cannot make it read one table again and
	// again.
	seen := make(map[int64]bool)
	for i, l1e := range q.l1 {
		if err := ctx.Err(); err != nil {
			return err
		}
		l2Off := int64(l1e & qcowOffsetMask)
		if l2Off == 0 {
			continue
		}
		if l2Off%q.clusterSize != 0 {
			return q.corrupt("L1 entry %d points to an L2 table at %d, which is not cluster-aligned", i, l2Off)
		}
		if !q.within(l2Off, q.clusterSize) {
			return q.truncated("L1 entry %d points to an L2 table at %d, past the end of the file", i, l2Off)
		}
		if seen[l2Off] {
			return q.corrupt("L1 entry %d points to the L2 table at %d, which another entry uses too", i, l2Off)
		}
		seen[l2Off] = true
		if table == nil {
			table = make([]byte, q.clusterSize)
		}
		if err := q.readAt(table, l2Off); err != nil {
			return err
		}
		base := int64(i) * perL1
		for j := int64(0); j < q.l2Entries; j++ {
			guest := base + j*q.clusterSize
			if guest >= q.size {
				break
			}
			clen := min(q.clusterSize, q.size-guest) // guest bytes of this cluster
			var e, bitmap uint64
			if q.extL2 {
				e, bitmap = be.Uint64(table[j*16:]), be.Uint64(table[j*16+8:])
			} else {
				e = be.Uint64(table[j*8:])
			}
			if e&l2Compressed != 0 {
				if q.extL2 && bitmap != 0 {
					return q.corrupt("the compressed cluster at guest offset %d has a subcluster bitmap", guest)
				}
				host := int64(e & (1<<x - 1))
				sectors := int64((e&(1<<62-1))>>x) + 1
				n := sectors*512 - host&511
				if host == 0 || host >= q.fileSize {
					return q.truncated("the compressed cluster at guest offset %d is at %d, past the end of the file", guest, host)
				}
				// The last sector of compressed data may be cut short at
				// the end of the file; QEMU reads it as zeros, and so
				// does this. Never read more than two clusters.
				n = min(n, q.fileSize-host, 2*q.clusterSize)
				if err := fn(extent{guest: guest, length: clen, host: host, compressed: true, clen: n}); err != nil {
					return err
				}
				continue
			}
			host := int64(e & qcowOffsetMask)
			if host != 0 && host%q.clusterSize != 0 {
				return q.corrupt("the cluster at guest offset %d is at host offset %d, which is not cluster-aligned", guest, host)
			}
			if !q.extL2 {
				if e&l2Zero != 0 || host == 0 {
					continue // zeros, or unallocated (no backing file: zeros)
				}
				if !q.within(host, clen) {
					return q.truncated("the data of guest offset %d lies at %d, past the end of the file", guest, host)
				}
				if err := fn(extent{guest: guest, length: clen, host: host}); err != nil {
					return err
				}
				continue
			}
			alloc, zero := uint32(bitmap), uint32(bitmap>>32)
			if alloc&zero != 0 {
				return q.corrupt("the cluster at guest offset %d has subclusters both allocated and zero", guest)
			}
			if alloc == 0 {
				continue
			}
			if host == 0 {
				return q.corrupt("the cluster at guest offset %d has allocated subclusters but no host offset", guest)
			}
			for alloc != 0 {
				k := int64(bits.TrailingZeros32(alloc))
				run := int64(bits.TrailingZeros32(^(alloc >> k)))
				alloc &^= uint32((uint64(1)<<run - 1) << k)
				g, n := guest+k*sc, run*sc
				if g >= guest+clen {
					break
				}
				n = min(n, guest+clen-g)
				if !q.within(host+k*sc, n) {
					return q.truncated("the data of guest offset %d lies at %d, past the end of the file", g, host+k*sc)
				}
				if err := fn(extent{guest: g, length: n, host: host + k*sc}); err != nil {
					return err
				}
			}
		}
	}
	return nil
}
