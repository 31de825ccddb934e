//go:build linux || darwin

package disk

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkPrepareQcow2 converts a 256 MiB qcow2 image (64 KiB clusters,
// not compressed; random data, zeros and half-filled blocks, as
// patterned makes) to raw with Prepare and with `qemu-img convert -O raw`,
// and reports both speeds (MB/s of the disk's virtual size) and their
// ratio. Prepare fsyncs the disk before renaming it; qemu-img's default
// cache mode for convert (unsafe) does not, so qemu-img is timed both ways:
// qemu_MB/s by default, qemu_sync_MB/s with -t writeback (it flushes at the
// end). ratio compares Prepare with the like-for-like -t writeback; the
// target is 0.7 or more.
func BenchmarkPrepareQcow2(b *testing.B) {
	qemuImg := needTool(b, "qemu-img")
	dir := b.TempDir()
	const size = 256 << 20
	src := writeFile(b, filepath.Join(dir, "src.raw"), patterned(42, size))
	img := filepath.Join(dir, "image.qcow2")
	run(b, qemuImg, "convert", "-f", "raw", "-O", "qcow2", src, img)
	os.Remove(src)
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
