package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
)

// instanceLockName is the file in the state directory whose lock (flock)
// the running app holds: one app per user, wherever its control socket is.
const instanceLockName = "vmnetbar.lock"

// errAlreadyRunning is returned by lockInstance when another app holds
// the lock.
type errAlreadyRunning struct {
	file string
	pid  int // 0 when unknown
}

func (e *errAlreadyRunning) Error() string {
	if e.pid > 0 {
		return fmt.Sprintf("already running for this user (pid %d holds %s): use 'vmnetbar status', or quit it from its menu or with 'kill %d'", e.pid, e.file, e.pid)
	}
	return fmt.Sprintf("already running for this user (another process holds %s): use 'vmnetbar status', or quit it from its menu", e.file)
}

// lockInstance takes the single-instance lock in dir (created 0700 when
// missing) and writes this process's id into the lock file. The lock is
// held until release is called or the process ends; a crashed app leaves
// nothing that blocks the next one. The lock file's descriptor is
// close-on-exec, so children (QEMU) never hold it.
func lockInstance(dir string) (release func(), err error) {
	return lockInstanceIn(dir, flockFile)
}

// flockFile takes f's exclusive lock without waiting.
func flockFile(f *os.File) error {
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// errLockUnsupported wraps a lock error when the file system cannot lock
// files at all (a network home without a lock service).
var errLockUnsupported = errors.New("the file system does not support file locks")

// takeInstanceLock takes the single-instance lock in the state directory.
// When its file system cannot lock files (NFS without a lock service), the
// lock is taken in the user's private directory in the local temporary
// directory instead, with a warning: one app per user and machine is still
// enforced. fallback names that directory; flock locks a file (both are
// parameters for the tests).
func takeInstanceLock(stateDir string, fallback func() (string, error), flock func(*os.File) error, log logrus.FieldLogger) (release func(), err error) {
	release, err = lockInstanceIn(stateDir, flock)
	if !errors.Is(err, errLockUnsupported) {
		return release, err
	}
	dir, ferr := fallback()
	if ferr != nil {
		return nil, fmt.Errorf("%w; and the local fallback for the lock is unusable: %v", err, ferr)
	}
	release, ferr = lockInstanceIn(dir, flock)
	if ferr != nil {
		return nil, ferr
	}
	log.WithError(err).WithField("lock", filepath.Join(dir, instanceLockName)).Warn("the state directory cannot hold the single-instance lock; it is in the local temporary directory instead")
	return release, nil
}

func lockInstanceIn(dir string, flock func(*os.File) error) (release func(), err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating the state directory for the instance lock: %w", err)
	}
	path := filepath.Join(dir, instanceLockName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening the instance lock %s: %w (remove it if it is not a regular file)", path, err)
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("the instance lock %s is not a regular file: remove it", path)
	}
	err = flock(f)
	if errors.Is(err, unix.EWOULDBLOCK) {
		b := make([]byte, 32)
		n, _ := f.ReadAt(b, 0)
		f.Close()
		pid, _ := strconv.Atoi(strings.TrimSpace(string(b[:n])))
		return nil, &errAlreadyRunning{file: path, pid: pid}
	}
	if errors.Is(err, unix.ENOLCK) || errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOTSUP) {
		f.Close()
		return nil, fmt.Errorf("locking %s: %w (%w)", path, errLockUnsupported, err)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return func() { f.Close() }, nil
}
