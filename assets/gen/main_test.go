package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestCommittedFilesMatch renders every icon into a temporary directory and
// checks that the PNG files in the assets directory are byte for byte what
// this program draws, so a change to the drawing code cannot be committed
// without the regenerated icons.
func TestCommittedFilesMatch(t *testing.T) {
	dir := t.TempDir()
	if err := Render(dir); err != nil {
		t.Fatal(err)
	}
	n := 0
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		n++
		rel, _ := filepath.Rel(dir, path)
		want, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		got, err := os.ReadFile(filepath.Join("..", rel))
		if err != nil {
			t.Errorf("%s: %v (run go generate ./assets)", rel, err)
			return nil
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from the generator's output (run go generate ./assets)", rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := len(States)*4 + 1; n != want {
		t.Fatalf("rendered %d files, want %d", n, want)
	}
}
