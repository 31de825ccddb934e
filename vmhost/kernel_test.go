//go:build linux || darwin

package vmhost

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// arm64Image returns the start of an uncompressed arm64 Image (with the
// EFI stub's "MZ").
func arm64Image() []byte {
	h := make([]byte, 0x100)
	copy(h, "MZ")
	copy(h[0x38:], "ARM\x64")
	return h
}

// zbootImage returns the start of an EFI zboot kernel compressed with comp.
func zbootImage(comp string) []byte {
	h := make([]byte, 0x100)
	copy(h, "MZ\x00\x00zimg")
	binary.LittleEndian.PutUint32(h[8:], 0x10000)
	binary.LittleEndian.PutUint32(h[12:], 12345678)
	copy(h[24:], comp+"\x00")
	copy(h[0x38:], "\xcd\x23\x82\x81") // the PE magic
	return h
}

func TestCheckKernelFormat(t *testing.T) {
	const p = "/k/vmlinuz"
	gzip := append([]byte{0x1f, 0x8b, 8, 0}, make([]byte, 60)...)
	for _, tc := range []struct {
		name   string
		header []byte
		want   string // "" = accepted
	}{
		{"image", arm64Image(), ""},
		{"image header only", arm64Image()[:0x3c], ""},
		{"gzip", gzip, "Kernel: /k/vmlinuz is gzip-compressed: the Virtualization framework on Apple silicon boots only an uncompressed arm64 Linux Image: gunzip it (gunzip -c /k/vmlinuz > Image) and point it at the result"},
		{"zboot gzip", zbootImage("gzip"), "Kernel: /k/vmlinuz is a compressed EFI zboot image: the Virtualization framework on Apple silicon boots only an uncompressed arm64 Linux Image: extract it (tail -c +65537 /k/vmlinuz | head -c 12345678 | gzip -dc > Image), and point it at the result"},
		{"zboot zstd", zbootImage("zstd22"), "| zstd -dc > Image) (zstd from Homebrew: brew install zstd), and point"},
		{"zboot xz", zbootImage("xz"), "| xz -dc > Image)"},
		{"zboot unknown", zbootImage("foo"), `extract its payload (12345678 bytes at offset 65536, compressed with "foo") and decompress it`},
		{"x86 bzImage", append(make([]byte, 0x1fe), 0x55, 0xaa), "Kernel: /k/vmlinuz is not an arm64 Linux kernel Image (no ARM\\x64 magic at offset 0x38)"},
		{"plain PE", append([]byte("MZ"), make([]byte, 0x40)...), "is not an arm64 Linux kernel Image"},
		{"short", []byte("MZ"), "is not an arm64 Linux kernel Image"},
		{"empty", nil, "is not an arm64 Linux kernel Image"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkKernelFormat(p, tc.header, "darwin", "arm64")
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("got %v\nwant %s", err, tc.want)
			case tc.want != "":
				if fe, ok := err.(*FieldError); !ok || fe.Field != "Kernel" {
					t.Errorf("error %v is a %T, not a *FieldError about Kernel", err, err)
				}
			}
			// Only the framework on Apple silicon is particular.
			for _, host := range [][2]string{{"darwin", "amd64"}, {"linux", "arm64"}, {"linux", "amd64"}} {
				if err := checkKernelFormat(p, tc.header, host[0], host[1]); err != nil {
					t.Errorf("%s/%s refused it: %v", host[0], host[1], err)
				}
			}
		})
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{
		"/a/b-1.2_x": "/a/b-1.2_x",
		"/a b":       "'/a b'",
		"it's":       `'it'\''s'`,
		"":           "''",
	} {
		if got := shellQuote(in); got != want {
			t.Errorf("%q: %s, want %s", in, got, want)
		}
	}
}

// Check applies the format check on darwin/arm64 only, to real files.
func TestCheckKernelFileOnAppleSilicon(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	image := write("Image", arm64Image())
	gz := write("Image gz", []byte{0x1f, 0x8b, 8, 0, 0, 0})
	mac := testLimits
	mac.goos, mac.goarch = "darwin", "arm64"
	base := Config{MAC: []byte{0x52, 0x54, 0, 1, 2, 3}}

	c := base
	c.Kernel = image
	if err := c.check(mac); err != nil {
		t.Errorf("arm64 Image refused: %v", err)
	}
	c.Kernel = gz
	err := c.check(mac)
	if err == nil || !strings.Contains(err.Error(), "Kernel: "+gz+" is gzip-compressed") || !strings.Contains(err.Error(), "gunzip -c '"+gz+"' > Image") {
		t.Errorf("gzip kernel: %v", err)
	}
	linux := mac
	linux.goos, linux.goarch = "linux", "arm64"
	if err := c.check(linux); err != nil {
		t.Errorf("gzip kernel refused on linux/arm64: %v", err)
	}
	// A kernel that cannot be read gets one message, not two.
	c.Kernel = filepath.Join(dir, "missing")
	if err := c.check(mac); err == nil || len(err.(interface{ Unwrap() []error }).Unwrap()) != 1 {
		t.Errorf("missing kernel: %v", err)
	}
}
