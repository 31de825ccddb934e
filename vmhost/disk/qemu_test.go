//go:build linux || darwin

package disk

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Images made by qemu-img and qemu-io: the converted disk must hold the
// same bytes as `qemu-img convert -O raw` makes, and be as sparse.

const qemuRawSize = 6<<20 + 9*512 // not a multiple of any cluster size

func TestQcow2MatchesQemuImg(t *testing.T) {
	needTool(t, "qemu-img")
	type step struct {
		name string
		args []string
	}
	convert := func(opts string, extra ...string) []step {
		args := append([]string{"convert", "-f", "raw", "-O", "qcow2", "-o", opts}, extra...)
		return []step{{"qemu-img", append(args, "SRC", "IMG")}}
	}
	create := func(opts, size string, ioCmds ...string) []step {
		s := []step{{"qemu-img", []string{"create", "-q", "-f", "qcow2", "-o", opts, "IMG", size}}}
		args := []string{"-f", "qcow2"}
		for _, c := range ioCmds {
			args = append(args, "-c", c)
		}
		return append(s, step{"qemu-io", append(args, "IMG")})
	}
	zeroWrites := []string{
		"write -P 0x5a 0 1M", "write -z 64k 128k", "write -z -u 512k 64k",
		"write -P 0xa5 3M 4k", "write -z 3M 4k", "write -P 0x11 5M 100k",
	}
	cases := []struct {
		name       string
		steps      []step
		version    int
		cluster    int64
		compressed bool
	}{
		{"v3 64k", convert("cluster_size=64k"), 3, 64 << 10, false},
		{"v2 compat=0.10", convert("compat=0.10"), 2, 64 << 10, false},
		{"512 B clusters", convert("cluster_size=512"), 3, 512, false},
		{"4k clusters", convert("cluster_size=4k"), 3, 4 << 10, false},
		{"2M clusters", convert("cluster_size=2M"), 3, 2 << 20, false},
		{"compressed 64k", convert("cluster_size=64k", "-c"), 3, 64 << 10, true},
		{"compressed 4k", convert("cluster_size=4k", "-c"), 3, 4 << 10, true},
		{"compressed 2M", convert("cluster_size=2M", "-c"), 3, 2 << 20, true},
		{"compressed v2", convert("compat=0.10", "-c"), 2, 64 << 10, true},
		{"zero clusters v3", create("cluster_size=64k", "7M", zeroWrites...), 3, 64 << 10, false},
		{"zero clusters v2", create("compat=0.10", "7M", zeroWrites...), 2, 64 << 10, false},
		{"preallocated metadata", create("preallocation=metadata", "3M", "write -P 0x33 1M 8k"), 3, 64 << 10, false},
		{"extended L2", create("extended_l2=on,cluster_size=64k", "5M",
			"write -P 0x11 0 4k", "write -P 0x22 70k 6k", "write -P 0x33 128k 64k",
			"write -z 130k 2k", "write -P 0x44 4M 2k", "write -P 0x55 5118k 2k"), 3, 64 << 10, false},
		{"extended L2 converted", convert("extended_l2=on,cluster_size=32k"), 3, 32 << 10, false},
		{"data only at the end", create("cluster_size=64k", "10M", "write -P 0x77 10239k 1k"), 3, 64 << 10, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			src := writeFile(t, filepath.Join(dir, "src.raw"), patterned(7, qemuRawSize))
			img := filepath.Join(dir, "image.qcow2")
			for _, s := range c.steps {
				if s.name == "qemu-io" {
					needTool(t, "qemu-io")
				}
				args := make([]string, len(s.args))
				for i, a := range s.args {
					args[i] = strings.NewReplacer("SRC", src, "IMG", img).Replace(a)
				}
				run(t, s.name, args...)
			}
			ref := filepath.Join(dir, "ref.raw")
			run(t, "qemu-img", "convert", "-O", "raw", img, ref)

			info, err := Inspect(img)
			if err != nil {
				t.Fatal(err)
			}
			refSt, _ := os.Stat(ref)
			if info.Format != FormatQcow2 || info.Version != c.version || info.ClusterSize != c.cluster ||
				info.Compressed != c.compressed || info.VirtualSize != refSt.Size() {
				t.Errorf("Inspect = %+v, want qcow2 v%d, %d B clusters, compressed %v, virtual size %d",
					info, c.version, c.cluster, c.compressed, refSt.Size())
			}

			dst := filepath.Join(dir, "disk.raw")
			res, err := Prepare(context.Background(), img, dst, 1, nil)
			if err != nil {
				t.Fatal(err)
			}
			if res.Size != roundUp(info.VirtualSize) || res.Cloned {
				t.Errorf("Prepare = %+v, want size %d, not cloned", res, roundUp(info.VirtualSize))
			}
			sameContent(t, dst, ref)
			// As sparse as qemu-img's own output (both skip zero 4 KiB
			// blocks), give or take a cluster.
			if got, want := allocated(t, dst), allocated(t, ref); got > want+max(c.cluster, 64<<10) {
				t.Errorf("the disk occupies %d bytes, qemu-img's %d: zeros were written", got, want)
			}
			assertOnly(t, dir, "src.raw", "image.qcow2", "ref.raw", "disk.raw")
		})
	}
}

// A compressed image of content like a system disk's (several batches),
// then changed by qemu-io: clusters rewritten plain (placed at the end of
// the file, out of disk order), partly rewritten (a compressed cluster
// becomes plain), zeroed and discarded, as the clusters of an image that
// was used before it was shipped are.
func TestCompressedMixedMatchesQemuImg(t *testing.T) {
	needTool(t, "qemu-img")
	needTool(t, "qemu-io")
	const size = 24<<20 + 3*512
	for _, opts := range []string{"cluster_size=64k", "cluster_size=4k", "extended_l2=on,cluster_size=128k", "compat=0.10"} {
		t.Run(opts, func(t *testing.T) {
			dir := t.TempDir()
			src := writeFile(t, filepath.Join(dir, "src.raw"), realistic(9, size))
			img := filepath.Join(dir, "image.qcow2")
			run(t, "qemu-img", "convert", "-c", "-f", "raw", "-O", "qcow2", "-o", opts, src, img)
			os.Remove(src)
			run(t, "qemu-io", "-f", "qcow2",
				"-c", "write -P 0x5a 1M 64k", "-c", "write -P 0x11 5121k 3k", "-c", "write -z 8M 256k",
				"-c", "discard 12M 1M", "-c", "write -P 0x22 23M 64k", "-c", "write -P 0x33 2M 4k", img)
			ref := filepath.Join(dir, "ref.raw")
			run(t, "qemu-img", "convert", "-O", "raw", img, ref)
			info, err := Inspect(img)
			if err != nil {
				t.Fatal(err)
			}
			if !info.Compressed {
				t.Fatalf("Inspect = %+v, want compressed", info)
			}
			dst := filepath.Join(dir, "disk.raw")
			if _, err := Prepare(context.Background(), img, dst, 1, nil); err != nil {
				t.Fatal(err)
			}
			sameContent(t, dst, ref)
			if got, want := allocated(t, dst), allocated(t, ref); got > want+128<<10 {
				t.Errorf("the disk occupies %d bytes, qemu-img's %d: zeros were written", got, want)
			}
		})
	}
}

func TestBadImagesFromQemuImg(t *testing.T) {
	needTool(t, "qemu-img")
	cases := []struct {
		name string
		make func(t *testing.T, dir, img string)
		kind error
		says []string
	}{
		{"truncated data", func(t *testing.T, dir, img string) {
			run(t, "qemu-img", "convert", "-f", "raw", "-O", "qcow2", writeFile(t, filepath.Join(dir, "s"), patterned(3, 4<<20)), img)
			os.Remove(filepath.Join(dir, "s"))
			st, _ := os.Stat(img)
			os.Truncate(img, st.Size()*2/3)
		}, ErrTruncated, []string{"past the end of the file", "download the image again"}},
		{"truncated compressed data", func(t *testing.T, dir, img string) {
			run(t, "qemu-img", "convert", "-c", "-f", "raw", "-O", "qcow2", writeFile(t, filepath.Join(dir, "s"), realistic(3, 8<<20)), img)
			os.Remove(filepath.Join(dir, "s"))
			st, _ := os.Stat(img)
			os.Truncate(img, st.Size()*2/3)
		}, ErrTruncated, []string{"compressed cluster", "past the end of the file", "download the image again"}},
		{"truncated tables", func(t *testing.T, dir, img string) {
			run(t, "qemu-img", "create", "-q", "-f", "qcow2", img, "1G")
			os.Truncate(img, 70<<10) // the L1 table is at 192 KiB
		}, ErrTruncated, []string{"L1 table"}},
		{"truncated header", func(t *testing.T, dir, img string) {
			run(t, "qemu-img", "create", "-q", "-f", "qcow2", img, "1G")
			os.Truncate(img, 50)
		}, ErrTruncated, []string{"header"}},
		{"backing file", func(t *testing.T, dir, img string) {
			base := filepath.Join(dir, "base.qcow2")
			run(t, "qemu-img", "create", "-q", "-f", "qcow2", base, "1M")
			run(t, "qemu-img", "create", "-q", "-f", "qcow2", "-b", base, "-F", "qcow2", img)
		}, ErrBackingFile, []string{"backing file", "base.qcow2", "qemu-img convert"}},
		{"LUKS encrypted", func(t *testing.T, dir, img string) {
			// qemu-img times its key derivation on the thread's CPU
			// clock, and on a busy machine it can read no time at all
			// ("Unable to get accurate CPU usage"): try again then.
			args := []string{"create", "-q", "-f", "qcow2", "--object", "secret,id=sec0,data=secret",
				"-o", "encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=10", img, "1M"}
			for try := 1; ; try++ {
				out, err := exec.Command("qemu-img", args...).CombinedOutput()
				if err == nil {
					break
				}
				if try == 5 || !strings.Contains(string(out), "accurate CPU usage") {
					t.Fatalf("qemu-img %s: %v\n%s", strings.Join(args, " "), err, out)
				}
				os.Remove(img)
			}
		}, ErrUnsupported, []string{"encrypted (LUKS)"}},
		{"external data file", func(t *testing.T, dir, img string) {
			run(t, "qemu-img", "create", "-q", "-f", "qcow2", "-o", "data_file="+filepath.Join(dir, "data.raw"), img, "1M")
		}, ErrUnsupported, []string{"external data file"}},
		{"zstd", func(t *testing.T, dir, img string) {
			out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", "-o", "compression_type=zstd", img, "1M").CombinedOutput()
			if err != nil {
				t.Skipf("this qemu-img cannot make zstd images: %v %s", err, out)
			}
		}, ErrUnsupported, []string{"zstd", "compression_type=zlib"}},
		{"qcow v1", qemuCreate("qcow"), ErrNotImage, []string{"qcow version 1"}},
		{"vmdk", qemuCreate("vmdk"), ErrNotImage, []string{"VMDK"}},
		{"vhdx", qemuCreate("vhdx"), ErrNotImage, []string{"VHDX"}},
		{"vdi", qemuCreate("vdi"), ErrNotImage, []string{"VDI"}},
		{"vhd dynamic", qemuCreate("vpc"), ErrNotImage, []string{"VHD"}},
		{"vhd fixed", qemuCreate("vpc", "-o", "subformat=fixed"), ErrNotImage, []string{"fixed-size VHD"}},
		{"qed", qemuCreate("qed"), ErrNotImage, []string{"QED"}},
		{"parallels", qemuCreate("parallels"), ErrNotImage, []string{"Parallels"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			img := filepath.Join(dir, "image")
			c.make(t, dir, img)
			before := dirNames(t, dir)
			checkRefused(t, img, c.kind, c.says...)
			assertOnly(t, dir, before...)
		})
	}
}

func qemuCreate(format string, opts ...string) func(t *testing.T, dir, img string) {
	return func(t *testing.T, dir, img string) {
		args := append([]string{"create", "-q", "-f", format}, opts...)
		run(t, "qemu-img", append(args, img, "1M")...)
	}
}

// checkRefused checks that Inspect and Prepare refuse img with an error of
// kind that names the file and says each of says, and that Prepare leaves
// no disk and no temporary file.
func checkRefused(t *testing.T, img string, kind error, says ...string) {
	t.Helper()
	_, err := Inspect(img)
	if !errors.Is(err, kind) {
		t.Fatalf("Inspect: %v, want %v", err, kind)
	}
	var e *Error
	if !errors.As(err, &e) || e.Fix == "" {
		t.Errorf("Inspect: %#v is not an *Error with a fix", err)
	}
	for _, s := range append(says, img) {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("Inspect: %q does not say %q", err, s)
		}
	}
	dst := filepath.Join(filepath.Dir(img), "disk.raw")
	if _, err := Prepare(context.Background(), img, dst, 0, nil); !errors.Is(err, kind) {
		t.Errorf("Prepare: %v, want %v", err, kind)
	}
	if _, err := os.Stat(dst); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Prepare left %s: %v", dst, err)
	}
}
