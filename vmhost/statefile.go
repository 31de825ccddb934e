package vmhost

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// createOnce makes the file path with mk unless it exists, and reports
// whether it made it. mk writes a temporary file next to path, which is
// synced and renamed into place, so that path is either missing or
// complete, never half-written: a crash or a failing mk leaves no path
// (and no temporary file when mk fails). An existing path is left as it
// is.
func createOnce(path string, mk func(tmp string) error) (created bool, err error) {
	if _, err := os.Stat(path); err == nil {
		return false, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return false, pathError(path, err)
	}
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".*.tmp")
	if err != nil {
		return false, fmt.Errorf("creating %s: %w", path, err)
	}
	tmp := f.Name()
	f.Close()
	defer func() {
		if err != nil {
			os.Remove(tmp)
		}
	}()
	if err := mk(tmp); err != nil {
		return false, err
	}
	if err := syncFile(tmp); err != nil {
		return false, fmt.Errorf("creating %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return false, fmt.Errorf("creating %s: %w", path, err)
	}
	// The rename is durable once the directory is synced; should that
	// fail, the file is complete anyway.
	syncFile(dir)
	return true, nil
}

// syncFile flushes path (a file or a directory) to stable storage.
func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
