//go:build linux || darwin

package disk

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestHandBuiltQcow2(t *testing.T) {
	q := goodQB()
	dir, img := tempImage(t, "image.qcow2", q.build())
	info, err := Inspect(img)
	if err != nil {
		t.Fatal(err)
	}
	if info.Format != FormatQcow2 || info.VirtualSize != q.size || info.ClusterSize != 512 || !info.Compressed ||
		info.DataBytes != 6*512 {
		t.Errorf("Inspect = %+v", info)
	}
	dst := filepath.Join(dir, "disk.raw")
	res, err := Prepare(context.Background(), img, dst, 100<<10+3, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Size != 100<<10+512 || res.Note != "" {
		t.Errorf("Prepare = %+v, want size %d (rounded up to 512 B) and no note", res, 100<<10+512)
	}
	got, _ := os.ReadFile(dst)
	want := append(q.expected(), make([]byte, 100<<10+512-q.size)...)
	if i := firstDiff(got, want); i >= 0 || len(got) != len(want) {
		t.Fatalf("disk differs at byte %d (len %d, want %d)", i, len(got), len(want))
	}
}

// A dirty image (lazy refcounts, not closed cleanly) has valid data: it is
// read, as qemu-img reads it.
func TestDirtyImageIsRead(t *testing.T) {
	q := goodQB()
	dir, img := tempImage(t, "image.qcow2", patch(q.build(), 72, uint64(incompatDirty)))
	dst := filepath.Join(dir, "disk.raw")
	if _, err := Prepare(context.Background(), img, dst, 1, nil); err != nil {
		t.Fatal(err)
	}
	checkDisk(t, dst, q.expected(), q.size)
}

// patch returns a copy of b with v written big-endian at off.
func patch(b []byte, off int, v any) []byte {
	b = bytes.Clone(b)
	switch v := v.(type) {
	case uint32:
		binary.BigEndian.PutUint32(b[off:], v)
	case uint64:
		binary.BigEndian.PutUint64(b[off:], v)
	case byte:
		b[off] = v
	}
	return b
}

func TestBadHandBuiltImages(t *testing.T) {
	good := goodQB().build()
	withQ := func(f func(*qb)) []byte {
		q := goodQB()
		f(&q)
		return q.build()
	}
	l1 := binary.BigEndian.Uint64(good[40:])
	l2 := binary.BigEndian.Uint64(good[l1:]) &^ (1 << 63)
	// With 512 B clusters every offset an entry can hold is aligned: use
	// 4 KiB clusters to misalign.
	good4k := withQ(func(q *qb) { q.clusterBits = 12 })
	l1k := binary.BigEndian.Uint64(good4k[40:])
	l2k := binary.BigEndian.Uint64(good4k[l1k:]) &^ (1 << 63)
	iso := make([]byte, 40<<10)
	copy(iso[0x8001:], "CD001")
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(patterned(1, 1<<20))
	zw.Close()
	tarball := make([]byte, 2048)
	copy(tarball[257:], "ustar")
	cases := []struct {
		name string
		img  []byte
		kind error
		says []string
	}{
		{"empty", nil, ErrNotImage, []string{"empty"}},
		{"text", []byte(strings.Repeat("not a disk\n", 100)), ErrNotImage, []string{"no partition table"}},
		{"gzip", gz.Bytes(), ErrNotImage, []string{"gzip", "gunzip"}},
		{"xz", []byte("\xfd7zXZ\x00" + strings.Repeat("x", 600)), ErrNotImage, []string{"xz -d"}},
		{"tar", tarball, ErrNotImage, []string{"tar -xf"}},
		{"iso", iso, ErrNotImage, []string{"ISO 9660"}},
		{"dmg", append(make([]byte, 4096), append([]byte("koly"), make([]byte, 508)...)...), ErrNotImage, []string{".dmg"}},
		{"version 4", patch(good, 4, uint32(4)), ErrUnsupported, []string{"version 4"}},
		{"corrupt bit", patch(good, 72, uint64(incompatCorrupt)), ErrCorrupt, []string{"marked corrupt", "qemu-img check -r all"}},
		{"unknown feature", patch(good, 72, uint64(1<<9)), ErrUnsupported, []string{"bit 9"}},
		{"zstd", withQ(func(q *qb) { q.incompat, q.compression = incompatCompression, 1 }), ErrUnsupported, []string{"zstd"}},
		{"aes", withQ(func(q *qb) { q.crypt = 1 }), ErrUnsupported, []string{"encrypted (AES)"}},
		{"backing", withQ(func(q *qb) { q.backing = "base.img" }), ErrBackingFile, []string{"base.img"}},
		{"cluster size", patch(good, 20, uint32(22)), ErrCorrupt, []string{"cluster size"}},
		{"L1 too small", patch(good, 36, uint32(0)), ErrCorrupt, []string{"L1 table has 0 entries"}},
		{"L1 misaligned", patch(good4k, 40, uint64(l1k+512)), ErrCorrupt, []string{"not cluster-aligned"}},
		{"L1 past the end", patch(good, 40, uint64(1<<30)), ErrTruncated, []string{"L1 table"}},
		{"refcount table past the end", patch(patch(good, 48, uint64(1<<20)), 56, uint32(1)), ErrTruncated, []string{"refcount table"}},
		{"L2 misaligned", patch(good4k, int(l1k), uint64(l2k+512)), ErrCorrupt, []string{"L2 table"}},
		{"L2 table twice", patch(good, int(l1+8), l2|1<<63), ErrCorrupt, []string{"another entry uses too"}},
		{"L2 past the end", patch(good, int(l1), uint64(1<<30)), ErrTruncated, []string{"L2 table"}},
		{"data past the end", patch(good, int(l2+8), uint64(1<<40)), ErrTruncated, []string{"guest offset 512"}},
		{"data misaligned", patch(good4k, int(l2k+8), uint64(l2k+512)), ErrCorrupt, []string{"not cluster-aligned"}},
		{"size 0", patch(good, 24, uint64(0)), ErrNotImage, []string{"size 0"}},
		{"huge", patch(good, 24, uint64(1<<62)), ErrCorrupt, []string{"too large"}},
		{"cut in the header", good[:100], ErrTruncated, []string{"header"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir, img := tempImage(t, "image", c.img)
			checkRefused(t, img, c.kind, c.says...)
			assertOnly(t, dir, "image")
		})
	}
}

// A compressed cluster whose data does not inflate to a whole cluster is
// found while converting: the temporary file goes.
func TestBadCompressedCluster(t *testing.T) {
	q := goodQB()
	img := q.build()
	// The first compressed cluster's data follows the plain clusters.
	off := len(img) - 1024 // within the compressed data at the end
	for j := off; j < len(img); j++ {
		img[j] ^= 0x5a
	}
	dir, path := tempImage(t, "image", img)
	_, err := Prepare(context.Background(), path, filepath.Join(dir, "disk.raw"), 0, nil)
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "compressed cluster") {
		t.Fatalf("Prepare: %v, want a corrupt compressed cluster", err)
	}
	assertOnly(t, dir, "image")
}

func TestNotAFile(t *testing.T) {
	dir := t.TempDir()
	_, err := Inspect(dir)
	if !errors.Is(err, ErrNotImage) || !strings.Contains(err.Error(), "a directory") {
		t.Errorf("Inspect(dir): %v", err)
	}
	_, err = Inspect(filepath.Join(dir, "missing.qcow2"))
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "missing.qcow2") {
		t.Errorf("Inspect(missing): %v", err)
	}
}

// rawImage writes a sparse raw disk: data at 0, a 10 MiB hole, data, a
// zero-filled (but allocated) 1 MiB, and data at the end; n bytes in all.
func rawImage(t testing.TB, path string, n int64) []byte {
	t.Helper()
	want := make([]byte, n)
	put := func(off int64, b []byte) {
		copy(want[off:], b)
	}
	put(0, patterned(11, 1<<20))
	put(11<<20, patterned(12, 1<<20))
	put(n-3000, patterned(13, 3000))
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, r := range [][2]int64{{0, 1 << 20}, {11 << 20, 13 << 20}, {n - 3000, n}} {
		if _, err := f.WriteAt(want[r[0]:r[1]], r[0]); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Truncate(n); err != nil {
		t.Fatal(err)
	}
	return want
}

func TestRawCopyIsSparse(t *testing.T) {
	dir := t.TempDir()
	const n = 20<<20 + 1000 // not a multiple of 512
	src := filepath.Join(dir, "image.raw")
	want := rawImage(t, src, n)
	srcBefore, _ := os.ReadFile(src)
	srcSt, _ := os.Stat(src)

	dst := filepath.Join(dir, "disk.raw")
	res, err := Prepare(context.Background(), src, dst, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Cloned {
		t.Skip("the temporary directory's file system clones; TestClone covers that")
	}
	if res.Size != DefaultSize || res.Image.Format != FormatRaw || res.Image.VirtualSize != n {
		t.Errorf("Prepare = %+v, want a raw image of %d grown to %d", res, n, DefaultSize)
	}
	checkDisk(t, dst, want, DefaultSize)
	// The hole and the zero-filled MiB stay holes: 2 MiB + 3000 bytes of
	// data, rounded to file system blocks.
	if a := allocated(t, dst); a > 2<<20+64<<10 {
		t.Errorf("the disk occupies %d bytes, want about 2 MiB: holes or zeros were written", a)
	}
	// The image is untouched.
	after, _ := os.ReadFile(src)
	afterSt, _ := os.Stat(src)
	if !bytes.Equal(after, srcBefore) || !afterSt.ModTime().Equal(srcSt.ModTime()) || afterSt.Mode() != srcSt.Mode() {
		t.Error("the image changed")
	}
	assertOnly(t, dir, "image.raw", "disk.raw")
}

func TestSizeRoundingAndNoShrink(t *testing.T) {
	dir := t.TempDir()
	src := writeFile(t, filepath.Join(dir, "image.raw"), patterned(5, 1000))
	for _, c := range []struct {
		ask, want int64
		note      bool
	}{
		{1, 1024, true},           // smaller than the image: keep its size, rounded up
		{1000, 1024, false},       // the image's size, rounded up
		{1025, 1536, false},       // grown and rounded up
		{1 << 20, 1 << 20, false}, // grown
		{0, DefaultSize, false},   // the default
	} {
		dst := filepath.Join(dir, "disk.raw")
		res, err := Prepare(context.Background(), src, dst, c.ask, nil)
		if err != nil {
			t.Fatal(err)
		}
		if res.Size != c.want || (res.Note != "") != c.note {
			t.Errorf("size %d: result %+v; want %d bytes, note %v", c.ask, res, c.want, c.note)
		}
		checkDisk(t, dst, patterned(5, 1000), c.want)
	}
	for ask, says := range map[int64]string{-1: "negative", 1<<63 - 1: "too large"} {
		if _, err := Prepare(context.Background(), src, filepath.Join(dir, "d"), ask, nil); err == nil || !strings.Contains(err.Error(), says) {
			t.Errorf("size %d: %v, want an error that says %q", ask, err, says)
		}
	}
	assertOnly(t, dir, "image.raw", "disk.raw")
}

func TestPrepareRefusesBadDestinations(t *testing.T) {
	dir := t.TempDir()
	src := writeFile(t, filepath.Join(dir, "image.raw"), patterned(5, 4096))
	for _, c := range []struct{ dst, says string }{
		{src, "is the image"},
		{dir, "is a directory"},
		{filepath.Join(dir, "no", "disk.raw"), "no such file or directory"},
	} {
		_, err := Prepare(context.Background(), src, c.dst, 0, nil)
		if err == nil || !strings.Contains(err.Error(), c.says) || !strings.Contains(err.Error(), c.dst) {
			t.Errorf("Prepare to %s: %v, want an error naming it that says %q", c.dst, err, c.says)
		}
	}
	if got, _ := os.ReadFile(src); !bytes.Equal(got, patterned(5, 4096)) {
		t.Error("the image changed")
	}
	assertOnly(t, dir, "image.raw")
}

// The temporary file of a killed Prepare goes; other files stay.
func TestPrepareRemovesLeftovers(t *testing.T) {
	dir := t.TempDir()
	src := writeFile(t, filepath.Join(dir, "image.raw"), patterned(5, 4096))
	writeFile(t, filepath.Join(dir, ".disk.raw.123456.tmp"), []byte("half a disk"))
	writeFile(t, filepath.Join(dir, ".other.raw.123456.tmp"), []byte("another VM's"))
	writeFile(t, filepath.Join(dir, ".disk.raw.a.b.tmp"), []byte("not ours"))
	if _, err := Prepare(context.Background(), src, filepath.Join(dir, "disk.raw"), 0, nil); err != nil {
		t.Fatal(err)
	}
	assertOnly(t, dir, "image.raw", "disk.raw", ".other.raw.123456.tmp", ".disk.raw.a.b.tmp")
}

// A second Prepare (a reset) replaces the old disk.
func TestPrepareReplacesDisk(t *testing.T) {
	dir := t.TempDir()
	src := writeFile(t, filepath.Join(dir, "image.raw"), patterned(5, 4096))
	dst := writeFile(t, filepath.Join(dir, "disk.raw"), bytes.Repeat([]byte("old"), 5000))
	if _, err := Prepare(context.Background(), src, dst, 8192, nil); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(dst)
	if !bytes.Equal(got, append(patterned(5, 4096), make([]byte, 4096)...)) {
		t.Error("the old disk was not replaced")
	}
}

func TestProgress(t *testing.T) {
	for _, kind := range []string{"raw", "qcow2", "qcow2 compressed"} {
		t.Run(kind, func(t *testing.T) {
			dir := t.TempDir()
			src := filepath.Join(dir, "image")
			var total int64 = 40<<20 + 512
			switch kind {
			case "raw":
				f, _ := os.Create(src)
				f.Write(patterned(3, 40<<20))
				f.Truncate(total)
				f.Close()
			case "qcow2":
				q := qb{version: 3, clusterBits: 16, size: total, plain: map[int64][]byte{}}
				for c := int64(0); c < 640; c += 3 {
					q.plain[c] = patterned(uint64(c), 64<<10)
				}
				writeFile(t, src, q.build())
			default: // converted in batches by several goroutines
				q := qb{version: 3, clusterBits: 16, size: total, plain: map[int64][]byte{}, compressed: map[int64][]byte{}}
				for c := int64(0); c < 640; c += 2 {
					q.compressed[c] = bytes.Repeat([]byte{byte(c)}, 100)
				}
				q.plain[7] = patterned(7, 64<<10)
				writeFile(t, src, q.build())
			}
			type call struct{ done, total int64 }
			var calls []call
			_, err := Prepare(context.Background(), src, filepath.Join(dir, "disk"), 0, func(d, tot int64) {
				calls = append(calls, call{d, tot})
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(calls) < 3 || calls[0] != (call{0, total}) || calls[len(calls)-1] != (call{total, total}) {
				t.Fatalf("progress calls %v: want (0, %d) first, (%d, %d) last, some between", calls, total, total, total)
			}
			for i := 1; i < len(calls); i++ {
				if calls[i].total != total || calls[i].done <= calls[i-1].done ||
					(calls[i].done < total && calls[i].done-calls[i-1].done < progressStep) {
					t.Fatalf("progress call %d %v after %v: want increasing, at least %d apart", i, calls[i], calls[i-1], progressStep)
				}
			}
		})
	}
}

func TestCancelLeavesNothing(t *testing.T) {
	for _, kind := range []string{"raw", "qcow2", "qcow2 compressed"} {
		t.Run(kind, func(t *testing.T) {
			dir := t.TempDir()
			src := filepath.Join(dir, "image")
			switch kind {
			case "raw":
				writeFile(t, src, patterned(3, 24<<20))
			case "qcow2":
				q := qb{version: 3, clusterBits: 16, size: 24 << 20, plain: map[int64][]byte{}}
				for c := int64(0); c < 384; c++ {
					q.plain[c] = patterned(uint64(c), 64<<10)
				}
				writeFile(t, src, q.build())
			default:
				q := qb{version: 3, clusterBits: 16, size: 24 << 20, compressed: map[int64][]byte{}}
				for c := int64(0); c < 384; c++ {
					q.compressed[c] = bytes.Repeat([]byte{byte(c), 1, 2}, 1000)
				}
				writeFile(t, src, q.build())
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			calls := 0
			_, err := Prepare(ctx, src, filepath.Join(dir, "disk"), 0, func(done, total int64) {
				calls++
				if done > 0 {
					cancel() // midway
				}
			})
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("Prepare: %v (after %d progress calls), want context.Canceled", err, calls)
			}
			assertOnly(t, dir, "image")
		})
	}
	// Cancelled before it starts.
	dir := t.TempDir()
	src := writeFile(t, filepath.Join(dir, "image"), goodQB().build())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Prepare(ctx, src, filepath.Join(dir, "disk"), 0, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("Prepare: %v, want context.Canceled", err)
	}
	assertOnly(t, dir, "image")
}

func TestWriteDataSkipsZeroBlocks(t *testing.T) {
	b := make([]byte, 5*zeroBlock+100)
	b[10] = 1             // block 0
	b[2*zeroBlock+5] = 2  // block 2
	b[3*zeroBlock] = 3    // block 3, merged with 2
	b[5*zeroBlock+99] = 4 // the short last block
	var w recWriter
	if err := writeData(&w, b, 0); err != nil {
		t.Fatal(err)
	}
	want := [][2]int64{{0, zeroBlock}, {2 * zeroBlock, 2 * zeroBlock}, {5 * zeroBlock, 100}}
	if len(w) != len(want) {
		t.Fatalf("writes %v, want %v", w, want)
	}
	for i := range w {
		if w[i] != want[i] {
			t.Fatalf("writes %v, want %v", w, want)
		}
	}
	// Unaligned start: blocks follow the disk's 4 KiB boundaries.
	w = nil
	c := make([]byte, 2*zeroBlock)
	c[zeroBlock-513] = 1 // the disk's byte 4095, in its block [0, 4096)
	if err := writeData(&w, c, 512); err != nil {
		t.Fatal(err)
	}
	if len(w) != 1 || w[0] != [2]int64{512, zeroBlock - 512} {
		t.Fatalf("writes %v, want [[512 %d]]", w, zeroBlock-512)
	}
}

// recWriter records the (offset, length) of each write.
type recWriter [][2]int64

func (w *recWriter) WriteAt(b []byte, off int64) (int, error) {
	*w = append(*w, [2]int64{off, int64(len(b))})
	return len(b), nil
}
