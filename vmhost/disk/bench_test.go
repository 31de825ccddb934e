//go:build linux || darwin

package disk

import (
	"context"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// The benchmarks convert a qcow2 image to raw with Prepare and with
// `qemu-img convert -O raw`, and report both speeds (MB/s of the disk's
// virtual size) and their ratio. Prepare fsyncs the disk before renaming
// it; qemu-img's default cache mode for convert (unsafe) does not, so
// qemu-img is timed both ways: qemu_MB/s by default, qemu_sync_MB/s with
// -t writeback (it flushes at the end). ratio compares Prepare with the
// like-for-like -t writeback; the target is 0.7 or more. ratio_nosync
// compares it with the default.

// BenchmarkPrepareQcow2 converts a 256 MiB qcow2 image (64 KiB clusters,
// not compressed; random data, zeros and half-filled blocks, as patterned
// makes).
func BenchmarkPrepareQcow2(b *testing.B) {
	qemuImg := needTool(b, "qemu-img")
	dir := b.TempDir()
	const size = 256 << 20
	src := writeFile(b, filepath.Join(dir, "src.raw"), patterned(42, size))
	img := filepath.Join(dir, "image.qcow2")
	run(b, qemuImg, "convert", "-f", "raw", "-O", "qcow2", src, img)
	os.Remove(src)
	benchConvert(b, qemuImg, img, size)
}

// BenchmarkPrepareQcow2Compressed converts a 256 MiB compressed qcow2
// image (`qemu-img convert -c`, as distros ship theirs; 64 KiB clusters)
// of content like a system disk's, as realistic makes: text, code-like
// binary data, incompressible data, sparse metadata blocks and zeros.
func BenchmarkPrepareQcow2Compressed(b *testing.B) {
	qemuImg := needTool(b, "qemu-img")
	dir := b.TempDir()
	const size = 256 << 20
	src := writeFile(b, filepath.Join(dir, "src.raw"), realistic(42, size))
	img := filepath.Join(dir, "image.qcow2")
	run(b, qemuImg, "convert", "-c", "-f", "raw", "-O", "qcow2", src, img)
	os.Remove(src)
	benchConvert(b, qemuImg, img, size)
}

// BenchmarkPrepareImage converts the image named by $VMNETBAR_BENCH_IMAGE
// (for example the test image internal/testimage builds,
// ~/.cache/vmnetbar/testimage/*/debian-12-vmnetbar-amd64.qcow2); it is
// skipped when the variable is not set.
func BenchmarkPrepareImage(b *testing.B) {
	img := os.Getenv("VMNETBAR_BENCH_IMAGE")
	if img == "" {
		b.Skip("set VMNETBAR_BENCH_IMAGE to an image to convert")
	}
	qemuImg := needTool(b, "qemu-img")
	info, err := Inspect(img)
	if err != nil {
		b.Fatal(err)
	}
	benchConvert(b, qemuImg, img, info.VirtualSize)
}

// benchConvert times Prepare and qemu-img converting img, a disk of size
// bytes, and reports the metrics described above.
func benchConvert(b *testing.B, qemuImg, img string, size int64) {
	dir := b.TempDir()
	dst := filepath.Join(dir, "disk.raw")
	ref := filepath.Join(dir, "ref.raw")
	qemu := func(args ...string) time.Duration {
		start := time.Now()
		if out, err := exec.Command(qemuImg, append(append([]string{"convert", "-O", "raw"}, args...), img, ref)...).CombinedOutput(); err != nil {
			b.Fatalf("qemu-img convert: %v %s", err, out)
		}
		d := time.Since(start)
		b.StopTimer()
		os.Remove(ref)
		b.StartTimer()
		return d
	}
	var ours, theirs, theirsSync time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		if _, err := Prepare(context.Background(), img, dst, 1, nil); err != nil {
			b.Fatal(err)
		}
		ours += time.Since(start)
		b.StopTimer()
		os.Remove(dst)
		b.StartTimer()
		theirs += qemu()
		theirsSync += qemu("-t", "writeback")
	}
	mbps := func(d time.Duration) float64 { return float64(size) * float64(b.N) / 1e6 / d.Seconds() }
	b.ReportMetric(mbps(ours), "MB/s")
	b.ReportMetric(mbps(theirs), "qemu_MB/s")
	b.ReportMetric(mbps(theirsSync), "qemu_sync_MB/s")
	b.ReportMetric(theirsSync.Seconds()/ours.Seconds(), "ratio")
	b.ReportMetric(theirs.Seconds()/ours.Seconds(), "ratio_nosync")
}

// realistic returns n bytes of a disk with content like a system disk's,
// compressible but not trivially: runs of 64 KiB blocks, each run of one
// kind, a partition table signature at the start.
//
//   - zeros (about a third, in runs of up to 8 MiB: free space);
//   - text: lines of words and numbers, like logs, man pages and sources;
//   - code: bytes of a skewed distribution with repeated sequences, like
//     executables and libraries;
//   - random bytes, like already-compressed files (about a tenth);
//   - metadata: small records spread over mostly zero blocks, like inode
//     tables and bitmaps.
func realistic(seed uint64, n int64) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	words := []string{"the", "of", "kernel", "systemd", "usr", "lib", "error", "config", "return", "if",
		"struct", "int", "package", "debian", "x86_64", "0x", "=", "{", "}", "(void)", "Started", "Reached",
		"target", "network", "--help", "DESCRIPTION", "static", "const", "char", "*", "for", "while"}
	const blk = 64 << 10
	for off := int64(0); off < n; {
		end := min(off+blk*int64(1+r.IntN(16)), n)
		p := b[off:end]
		switch k := r.IntN(20); {
		case k < 7: // zeros, sometimes long runs
			end = min(off+blk*int64(1+r.IntN(24)), n)
		case k < 13: // text
			for i := 0; i < len(p); {
				var line []byte
				line = strconv.AppendInt(line, int64(r.IntN(100000)), 10)
				for w := 3 + r.IntN(10); w > 0; w-- {
					line = append(line, ' ')
					line = append(line, words[r.IntN(len(words))]...)
					if r.IntN(10) == 0 {
						line = strconv.AppendUint(append(line, ' '), r.Uint64()>>r.IntN(64), 16)
					}
				}
				i += copy(p[i:], append(line, '\n'))
			}
		case k < 17: // code-like
			for i := 0; i < len(p); {
				if i > 256 && r.IntN(2) == 0 { // a repeat of earlier bytes
					from := i - 1 - r.IntN(min(i, 4096)-1)
					i += copy(p[i:min(len(p), i+4+r.IntN(60))], p[from:])
					continue
				}
				for j := min(len(p), i+4+r.IntN(16)); i < j; i++ {
					p[i] = byte(r.IntN(1 + r.IntN(256)))
				}
			}
		case k < 18: // random, in 8-byte words
			for i := 0; i+8 <= len(p); i += 8 {
				v := r.Uint64()
				for j := range 8 {
					p[i+j] = byte(v >> (8 * j))
				}
			}
		default: // metadata: 256-byte records in a zero block
			for i := 0; i+256 <= len(p); i += 256 {
				if r.IntN(3) == 0 {
					for j := 0; j < 40; j++ {
						p[i+j] = byte(r.IntN(1 + r.IntN(256)))
					}
				}
			}
		}
		off = end
	}
	b[510], b[511] = 0x55, 0xaa
	return b
}
