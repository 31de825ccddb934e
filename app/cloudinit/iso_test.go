package cloudinit

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kdomanski/iso9660"
)

// readISO reads the volume label and the root directory's files back with
// the ISO library's reader.
func readISO(t *testing.T, path string) (string, map[string]string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := iso9660.OpenImage(f)
	if err != nil {
		t.Fatalf("not an ISO 9660 image: %v", err)
	}
	label, err := img.Label()
	if err != nil {
		t.Fatal(err)
	}
	root, err := img.RootDir()
	if err != nil {
		t.Fatal(err)
	}
	children, err := root.GetChildren()
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	for _, c := range children {
		if c.IsDir() {
			t.Errorf("unexpected directory %s", c.Name())
			continue
		}
		b, err := io.ReadAll(c.Reader())
		if err != nil {
			t.Fatal(err)
		}
		files[c.Name()] = string(b)
	}
	return strings.TrimSpace(label), files
}

func wantFiles(t *testing.T, s Seed) map[string]string {
	t.Helper()
	f, err := s.Render()
	if err != nil {
		t.Fatal(err)
	}
	return map[string]string{
		"meta-data":      string(f.MetaData),
		"user-data":      string(f.UserData),
		"network-config": string(f.NetworkConfig),
	}
}

func TestWriteISOReadBack(t *testing.T) {
	path := filepath.Join(t.TempDir(), "seed.iso")
	s := testSeed(t)
	s.UserData = []byte("#!/bin/sh\necho hi\n")
	changed, err := WriteISO(path, s)
	if err != nil || !changed {
		t.Fatalf("WriteISO = %v, %v", changed, err)
	}
	label, files := readISO(t, path)
	if label != "cidata" {
		t.Errorf("label %q, want cidata", label)
	}
	want := wantFiles(t, s)
	if len(files) != len(want) {
		t.Errorf("files %v", keys(files))
	}
	for name, w := range want {
		if files[name] != w {
			t.Errorf("%s = %q, want %q", name, files[name], w)
		}
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %04o, want 0600", fi.Mode().Perm())
	}
	// No temporary file is left beside it.
	if ents, _ := os.ReadDir(filepath.Dir(path)); len(ents) != 1 {
		t.Errorf("directory holds %d entries, want the seed only", len(ents))
	}
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// isoinfo (genisoimage) is another reader: it finds the label and the
// files by their ISO 9660 names, the names Linux's isofs shows without
// ";1".
func TestWriteISOIsoinfo(t *testing.T) {
	isoinfo, err := exec.LookPath("isoinfo")
	if err != nil {
		t.Skip("isoinfo not installed (Debian package genisoimage)")
	}
	path := filepath.Join(t.TempDir(), "seed.iso")
	s := testSeed(t)
	if _, err := WriteISO(path, s); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(isoinfo, "-d", "-i", path).CombinedOutput()
	if err != nil {
		t.Fatalf("isoinfo -d: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "Volume id: cidata\n") {
		t.Errorf("isoinfo -d does not say Volume id: cidata:\n%s", out)
	}
	out, err = exec.Command(isoinfo, "-f", "-i", path).CombinedOutput()
	if err != nil {
		t.Fatalf("isoinfo -f: %v\n%s", err, out)
	}
	if got := strings.Fields(string(out)); strings.Join(got, " ") != "/meta-data;1 /network-config;1 /user-data;1" {
		t.Errorf("isoinfo -f lists %q", got)
	}
	for name, want := range wantFiles(t, s) {
		got, err := exec.Command(isoinfo, "-i", path, "-x", "/"+name+";1").Output()
		if err != nil {
			t.Fatalf("isoinfo -x %s: %v", name, err)
		}
		if string(got) != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
}

// The image depends on the seed alone: the volume descriptor's dates say
// "not specified" (ECMA-119 8.4.26.1), and nothing of the clock is in it.
func TestBuildISODeterministic(t *testing.T) {
	f, err := testSeed(t).Render()
	if err != nil {
		t.Fatal(err)
	}
	img, err := BuildISO(f)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 4; i++ {
		off := pvdOffset + pvdDateOffset + i*pvdDateLen
		if got := img[off : off+pvdDateLen]; !bytes.Equal(got, unspecifiedDate) {
			t.Errorf("PVD date %d = %q, want not specified", i, got)
		}
	}
	year := []byte(time.Now().UTC().Format("200601"))
	if bytes.Contains(img, year) {
		t.Errorf("the image contains this month (%s): a date was left in", year)
	}
}

type stamp struct {
	ino   uint64
	mtime time.Time
}

func stat(t *testing.T, path string) stamp {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return stamp{fi.Sys().(*syscall.Stat_t).Ino, fi.ModTime()}
}

func TestWriteISOOnlyWhenChanged(t *testing.T) {
	path := filepath.Join(t.TempDir(), "seed.iso")
	s := testSeed(t)
	if changed, err := WriteISO(path, s); err != nil || !changed {
		t.Fatalf("first WriteISO = %v, %v", changed, err)
	}
	// An old mtime: a rewrite would show, whatever the clock's resolution.
	old := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := os.Chtimes(path, old, old); err != nil {
		t.Fatal(err)
	}
	before := stat(t, path)

	if changed, err := WriteISO(path, s); err != nil || changed {
		t.Fatalf("unchanged WriteISO = %v, %v", changed, err)
	}
	if after := stat(t, path); after != before {
		t.Errorf("unchanged seed was rewritten: %+v -> %+v", before, after)
	}

	s.AuthorizedKeys = append(s.AuthorizedKeys, testKey(t, 3, "new"))
	if changed, err := WriteISO(path, s); err != nil || !changed {
		t.Fatalf("WriteISO with a new key = %v, %v", changed, err)
	}
	if after := stat(t, path); after == before {
		t.Errorf("seed with a new key was not rewritten")
	}
	if _, files := readISO(t, path); !strings.Contains(files["user-data"], testKey(t, 3, "new")) {
		t.Errorf("the new key is not in user-data:\n%s", files["user-data"])
	}

	// A damaged seed (same size, other bytes) is rewritten.
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-1] ^= 0xff
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if changed, err := WriteISO(path, s); err != nil || !changed {
		t.Fatalf("WriteISO over a damaged seed = %v, %v", changed, err)
	}
}

// A seed others could read (an older one) gets 0600 without a rewrite.
func TestWriteISOTightensMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "seed.iso")
	s := testSeed(t)
	if _, err := WriteISO(path, s); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if changed, err := WriteISO(path, s); err != nil || changed {
		t.Fatalf("WriteISO = %v, %v", changed, err)
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %04o, want 0600", fi.Mode().Perm())
	}
}

func TestWriteISOErrors(t *testing.T) {
	s := testSeed(t)
	s.UserData, s.UserDataPath = []byte("hello\n"), "~/ud.txt"
	path := filepath.Join(t.TempDir(), "seed.iso")
	if _, err := WriteISO(path, s); err == nil || !strings.Contains(err.Error(), "user_data ~/ud.txt") {
		t.Errorf("bad user-data: err = %v", err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("a seed was written for bad user-data")
	}
	s = testSeed(t)
	if _, err := WriteISO(filepath.Join(t.TempDir(), "no-such-dir", "seed.iso"), s); err == nil ||
		!strings.Contains(err.Error(), "writing the cloud-init seed") {
		t.Errorf("missing directory: err = %v", err)
	}
	dir := filepath.Join(t.TempDir(), "seed.iso")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := WriteISO(dir, s); err == nil || !strings.Contains(err.Error(), dir) {
		t.Errorf("a directory in the way: err = %v", err)
	}
}

// BenchmarkWriteISOUnchanged: the cost of a VM start whose seed is up to
// date (render, build, compare).
func BenchmarkWriteISOUnchanged(b *testing.B) {
	path := filepath.Join(b.TempDir(), "seed.iso")
	s := testSeed(b)
	if _, err := WriteISO(path, s); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := WriteISO(path, s); err != nil {
			b.Fatal(err)
		}
	}
}

// libblkid, through which cloud-init's NoCloud finds its seed (blkid
// -tLABEL=cidata), sees an ISO 9660 file system labelled cidata.
func TestWriteISOBlkid(t *testing.T) {
	blkid, err := exec.LookPath("blkid")
	if err != nil {
		t.Skip("blkid not installed (Debian package util-linux)")
	}
	path := filepath.Join(t.TempDir(), "seed.iso")
	if _, err := WriteISO(path, testSeed(t)); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(blkid, "-p", "-o", "export", path).CombinedOutput()
	if err != nil {
		t.Fatalf("blkid: %v\n%s", err, out)
	}
	for _, want := range []string{"LABEL=cidata\n", "TYPE=iso9660\n"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("blkid does not say %q:\n%s", want, out)
		}
	}
}
