package cloudinit

import (
	"errors"
	"os"
	"path/filepath"
)

// writeTemp writes data to a new temporary file in dir (mode perm), synced,
// and returns its path; the caller renames or removes it.
func writeTemp(dir, pattern string, data []byte, perm os.FileMode) (string, error) {
	f, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return "", err
	}
	tmp := f.Name()
	fail := func(err error) (string, error) {
		_ = f.Close()
		_ = os.Remove(tmp)
		return "", err
	}
	if err := f.Chmod(perm); err != nil {
		return fail(err)
	}
	if _, err := f.Write(data); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		_ = os.Remove(tmp)
		return "", err
	}
	return tmp, nil
}

// replaceFile atomically replaces path with data (temp file + rename).
func replaceFile(path string, data []byte, perm os.FileMode) error {
	tmp, err := writeTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp", data, perm)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	syncDir(filepath.Dir(path))
	return nil
}

// createOnce creates path with data, complete or not at all, unless it
// exists (then created is false and the file is left alone): the data is
// written to a temporary file and hard-linked into place.
func createOnce(path string, data []byte, perm os.FileMode) (created bool, err error) {
	tmp, err := writeTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp", data, perm)
	if err != nil {
		return false, err
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, os.ErrExist) {
			return false, nil
		}
		return false, err
	}
	syncDir(filepath.Dir(path))
	return true, nil
}

// syncDir makes a rename in dir durable; best effort (not every file
// system syncs directories).
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
}
