//go:build linux || darwin

package disk

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// needTool skips the test when the program is missing.
func needTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s is not installed (apt-get install -y qemu-utils): %v", name, err)
	}
	return p
}

// run runs a command and fails the test when it fails.
func run(t testing.TB, name string, args ...string) {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// patterned returns n bytes of a disk: a partition table signature, then
// 64 KiB blocks of random data, zeros and half-zero blocks, and data in the
// last bytes.
func patterned(seed uint64, n int64) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	const blk = 64 << 10
	for off := int64(0); off < n; off += blk {
		end := min(off+blk, n)
		switch r.IntN(4) {
		case 0, 1: // zeros
		case 2:
			for i := off; i < end; i++ {
				b[i] = byte(r.Uint32())
			}
		case 3: // data in the second half only, at an odd place
			for i := off + blk/2 + 100; i < end; i++ {
				b[i] = byte(r.Uint32())
			}
		}
	}
	for i := max(0, n-700); i < n; i++ { // data at the very end
		b[i] = byte(r.Uint32() | 1)
	}
	b[510], b[511] = 0x55, 0xaa
	return b
}

func writeFile(t testing.TB, path string, b []byte) string {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// dirNames lists the names in dir, sorted.
func dirNames(t testing.TB, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	slices.Sort(names)
	return names
}

// assertOnly checks that dir holds exactly names: no disk, no temporary
// file besides.
func assertOnly(t testing.TB, dir string, names ...string) {
	t.Helper()
	slices.Sort(names)
	if got := dirNames(t, dir); !slices.Equal(got, names) {
		t.Errorf("%s holds %q, want %q", dir, got, names)
	}
}

// allocated returns the bytes a file occupies on disk.
func allocated(t testing.TB, path string) int64 {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return blocks(st) * 512
}

// sameContent compares the disk at got with the reference raw file want:
// the same bytes, and zeros after want's end.
func sameContent(t testing.TB, got, want string) {
	t.Helper()
	g, err := os.ReadFile(got)
	if err != nil {
		t.Fatal(err)
	}
	w, err := os.ReadFile(want)
	if err != nil {
		t.Fatal(err)
	}
	if len(g) < len(w) {
		t.Fatalf("%s is %d bytes, shorter than %s (%d)", got, len(g), want, len(w))
	}
	if i := firstDiff(g[:len(w)], w); i >= 0 {
		t.Fatalf("%s differs from %s at byte %d: %#x, want %#x", got, want, i, g[i], w[i])
	}
	if i := firstDiff(g[len(w):], make([]byte, len(g)-len(w))); i >= 0 {
		t.Fatalf("%s is not zero at byte %d after the image's end", got, len(w)+i)
	}
}

// checkDisk checks that the file at path is size bytes: want, then zeros.
// It reads only want and the data after it (not the holes), so disks of
// many GiB are cheap to check.
func checkDisk(t testing.TB, path string, want []byte, size int64) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	if st.Size() != size {
		t.Fatalf("%s is %d bytes, want %d", path, st.Size(), size)
	}
	got := make([]byte, len(want))
	if _, err := f.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	if i := firstDiff(got, want); i >= 0 {
		t.Fatalf("%s differs at byte %d", path, i)
	}
	buf := make([]byte, 1<<20)
	n := int64(len(want))
	err = dataSegments(f, size, func(off, end int64) error {
		for off = max(off, n); off < end; off += int64(len(buf)) {
			b := buf[:min(int64(len(buf)), end-off)]
			if _, err := f.ReadAt(b, off); err != nil {
				return err
			}
			if i := firstDiff(b, make([]byte, len(b))); i >= 0 {
				t.Fatalf("%s is not zero at byte %d, after the image", path, off+int64(i))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func firstDiff(a, b []byte) int {
	if bytes.Equal(a, b) {
		return -1
	}
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	return len(a)
}

// qb builds small qcow2 images by hand, for images qemu-img will not make
// (bad ones) and for fuzz seeds. Layout: header in cluster 0, the L1 table
// from cluster 1, then one L2 table per L1 entry in use, then data.
type qb struct {
	version     uint32
	clusterBits uint
	size        int64
	incompat    uint64
	compression byte
	crypt       uint32
	backing     string
	plain       map[int64][]byte // guest cluster -> data
	compressed  map[int64][]byte // guest cluster -> data, stored deflated
	zero        []int64          // guest clusters with the zero flag
}

func (q qb) build() []byte {
	cs := int64(1) << q.clusterBits
	be := binary.BigEndian
	perL2 := cs / 8
	nL1 := (q.size + perL2*cs - 1) / (perL2 * cs)
	l1Clusters := max(1, (nL1*8+cs-1)/cs)
	img := make([]byte, (1+l1Clusters)*cs)
	h := img
	copy(h, "QFI\xfb")
	be.PutUint32(h[4:], q.version)
	be.PutUint32(h[20:], uint32(q.clusterBits))
	be.PutUint64(h[24:], uint64(q.size))
	be.PutUint32(h[32:], q.crypt)
	be.PutUint32(h[36:], uint32(nL1))
	be.PutUint64(h[40:], uint64(cs))
	if q.version >= 3 {
		be.PutUint64(h[72:], q.incompat)
		be.PutUint32(h[96:], 4)
		be.PutUint32(h[100:], 112)
		h[104] = q.compression
	}
	if q.backing != "" {
		copy(h[200:], q.backing)
		be.PutUint64(h[8:], 200)
		be.PutUint32(h[16:], uint32(len(q.backing)))
	}
	l2 := map[int64]int64{} // L1 index -> L2 table offset
	entry := func(c int64, v uint64) {
		i := c / perL2
		off, ok := l2[i]
		if !ok {
			// After compressed data the file may not end at a cluster.
			img = append(img, make([]byte, (cs-int64(len(img))%cs)%cs)...)
			off = int64(len(img))
			img = append(img, make([]byte, cs)...)
			l2[i] = off
			be.PutUint64(img[cs+i*8:], uint64(off)|1<<63)
		}
		be.PutUint64(img[off+(c%perL2)*8:], v)
	}
	for _, c := range sortedKeys(q.plain) {
		off := int64(len(img))
		d := make([]byte, cs)
		copy(d, q.plain[c])
		img = append(img, d...)
		entry(c, uint64(off)|1<<63)
	}
	for _, c := range q.zero {
		entry(c, 1)
	}
	x := 62 - (q.clusterBits - 8)
	for _, c := range sortedKeys(q.compressed) {
		d := make([]byte, cs)
		copy(d, q.compressed[c])
		var z bytes.Buffer
		w, _ := flate.NewWriter(&z, flate.BestCompression)
		w.Write(d)
		w.Close()
		off := int64(len(img))
		img = append(img, z.Bytes()...)
		// Pad to a sector, as QEMU does not need to but often does.
		for len(img)%512 != 0 {
			img = append(img, 0)
		}
		sectors := (off+int64(z.Len())-1)/512 - off/512 // beyond the first
		entry(c, 1<<62|uint64(sectors)<<x|uint64(off))
	}
	return img
}

func sortedKeys(m map[int64][]byte) []int64 {
	var ks []int64
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// goodQB is a small valid image: 512 B clusters, plain, zero and compressed
// clusters, and data in the last cluster.
func goodQB() qb {
	return qb{
		version: 3, clusterBits: 9, size: 64 << 10,
		plain: map[int64][]byte{
			0:   append(bytes.Repeat([]byte{0}, 510), 0x55, 0xaa),
			1:   bytes.Repeat([]byte("plain"), 100),
			2:   bytes.Repeat([]byte("next"), 128),
			127: bytes.Repeat([]byte("end!"), 128),
		},
		zero:       []int64{3},
		compressed: map[int64][]byte{5: bytes.Repeat([]byte("squeeze"), 70), 70: []byte("far")},
	}
}

// expected is the disk qb describes.
func (q qb) expected() []byte {
	cs := int64(1) << q.clusterBits
	b := make([]byte, q.size)
	for c, d := range q.plain {
		copy(b[c*cs:min((c+1)*cs, q.size)], d)
	}
	for c, d := range q.compressed {
		copy(b[c*cs:min((c+1)*cs, q.size)], d)
	}
	return b
}

func tempImage(t testing.TB, name string, b []byte) (dir, path string) {
	t.Helper()
	dir = t.TempDir()
	return dir, writeFile(t, filepath.Join(dir, name), b)
}
