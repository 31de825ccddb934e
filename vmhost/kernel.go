package vmhost

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
)

// kernelHeaderSize is how much of the kernel checkKernelFormat looks at:
// the arm64 Image header (its magic ends at 0x3c) and the EFI zboot header.
const kernelHeaderSize = 0x40

// arm64 Image and EFI zboot header fields (the kernel's
// Documentation/arch/arm64/booting.rst and
// drivers/firmware/efi/libstub/zboot-header.S).
const (
	arm64MagicOffset = 0x38
	arm64Magic       = "ARM\x64"
	zbootTypeOffset  = 4 // "zimg" after the "MZ" DOS signature
	zbootType        = "zimg"
	zbootPayloadOff  = 8  // le32: where the compressed payload starts
	zbootPayloadSize = 12 // le32: its size
	zbootCompOffset  = 24 // NUL-terminated compression name ("gzip", "zstd", ...)
)

// readKernelHeader returns the first kernelHeaderSize bytes of path (fewer
// when the file is shorter).
func readKernelHeader(path string) ([]byte, error) {
	// O_NONBLOCK: a pipe swapped in after the caller's stat does not block.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, pathError(path, err)
	}
	defer f.Close()
	b := make([]byte, kernelHeaderSize)
	n, err := io.ReadFull(f, b)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	return b[:n], nil
}

// checkKernelFile reports why the readable kernel at path cannot be booted
// on goos/goarch (see checkKernelFormat). It reads the file only where the
// format matters.
func checkKernelFile(path, goos, goarch string) error {
	if checkKernelFormat(path, nil, goos, goarch) == nil {
		return nil // any kernel will do here
	}
	h, err := readKernelHeader(path)
	if err != nil {
		return fieldErrorf("Kernel", "%w: set it to the path of a readable Linux kernel image", err)
	}
	return checkKernelFormat(path, h, goos, goarch)
}

// checkKernelFormat reports why the kernel at path, whose first bytes are
// header, cannot be booted by the VM host on goos/goarch. Only the
// Virtualization framework on Apple silicon (darwin/arm64) is particular:
// its Linux boot loader takes an uncompressed arm64 Image only, which
// carries the magic "ARM\x64" at offset 0x38. A gzip-compressed kernel
// (Image.gz, many distributions' vmlinuz) and an EFI zboot image are
// refused with the command that extracts the Image; anything else is not an
// arm64 Linux Image. Every error is a *FieldError about Kernel.
func checkKernelFormat(path string, header []byte, goos, goarch string) error {
	if goos != "darwin" || goarch != "arm64" {
		return nil
	}
	if len(header) >= arm64MagicOffset+len(arm64Magic) &&
		string(header[arm64MagicOffset:arm64MagicOffset+len(arm64Magic)]) == arm64Magic {
		return nil
	}
	const needs = "the Virtualization framework on Apple silicon boots only an uncompressed arm64 Linux Image"
	switch {
	case bytes.HasPrefix(header, []byte{0x1f, 0x8b}):
		return fieldErrorf("Kernel", "%s is gzip-compressed: %s: gunzip it (gunzip -c %s > Image) and point it at the result",
			path, needs, shellQuote(path))
	case bytes.HasPrefix(header, []byte("MZ")) && len(header) >= zbootCompOffset &&
		string(header[zbootTypeOffset:zbootTypeOffset+len(zbootType)]) == zbootType:
		return fieldErrorf("Kernel", "%s is a compressed EFI zboot image: %s: %s, and point it at the result",
			path, needs, zbootExtract(path, header))
	}
	return fieldErrorf("Kernel", "%s is not an arm64 Linux kernel Image (no ARM\\x64 magic at offset 0x38): %s (such as arch/arm64/boot/Image): point it at one",
		path, needs)
}

// zbootExtract says how to extract the Image from an EFI zboot kernel: its
// header gives the payload's offset, size and compression.
func zbootExtract(path string, h []byte) string {
	off := binary.LittleEndian.Uint32(h[zbootPayloadOff:])
	size := binary.LittleEndian.Uint32(h[zbootPayloadSize:])
	comp := ""
	if len(h) > zbootCompOffset {
		c := h[zbootCompOffset:min(len(h), arm64MagicOffset)]
		if i := bytes.IndexByte(c, 0); i >= 0 {
			c = c[:i]
		}
		comp = string(c)
	}
	var tool, from string
	switch {
	case comp == "gzip":
		tool = "gzip -dc"
	case strings.HasPrefix(comp, "zstd"):
		tool, from = "zstd -dc", " (zstd from Homebrew: brew install zstd)"
	case comp == "xz":
		tool = "xz -dc"
	case comp == "lzma":
		tool = "xz --format=lzma -dc"
	case comp == "lz4":
		tool, from = "lz4 -dc", " (lz4 from Homebrew: brew install lz4)"
	case comp == "bzip2":
		tool = "bzip2 -dc"
	case comp == "lzo":
		tool, from = "lzop -dc", " (lzop from Homebrew: brew install lzop)"
	default:
		return fmt.Sprintf("extract its payload (%d bytes at offset %d, compressed with %q) and decompress it", size, off, comp)
	}
	return fmt.Sprintf("extract it (tail -c +%d %s | head -c %d | %s > Image)%s",
		uint64(off)+1, shellQuote(path), size, tool, from)
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./+,:@%=") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
