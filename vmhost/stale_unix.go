//go:build linux || darwin

package vmhost

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
)

// staleRuntimePrefix names the directories (in os.TempDir()) in which
// vmnetbar before QMP moved to an inherited socketpair kept QEMU's QMP
// socket, qmp.sock. An abnormal exit left them behind.
const staleRuntimePrefix = "vmnetbar-qemu-"

// staleRuntimeGrace is how old such a directory without a socket must be
// before it counts as stale: an older vmnetbar may be starting its QEMU in
// it right now.
const staleRuntimeGrace = time.Minute

// RemoveStaleRuntime removes the vmnetbar-qemu-* directories that earlier
// vmnetbar versions left in os.TempDir() when they ended abnormally. It
// removes only directories (never symlinks) owned by the current user in
// which no QEMU answers on qmp.sock: a directory whose socket accepts a
// connection belongs to a VM that still runs and is kept, as is one
// without a socket that is younger than a minute. It returns the
// directories it could not remove; the app calls it once at start and
// logs the error.
func RemoveStaleRuntime(log logrus.FieldLogger) error {
	return removeStaleRuntime(log, os.TempDir(), time.Now())
}

func removeStaleRuntime(log logrus.FieldLogger, dir string, now time.Time) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("looking for stale QEMU runtime directories in %s: %w", dir, err)
	}
	uid := os.Getuid()
	var errs []error
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), staleRuntimePrefix) {
			continue
		}
		p := filepath.Join(dir, e.Name())
		fi, err := os.Lstat(p)
		if err != nil {
			continue // gone meanwhile
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !fi.IsDir() || !ok || int(st.Uid) != uid {
			continue // a symlink, a file or someone else's
		}
		l := log.WithField("dir", p)
		if why := runtimeInUse(filepath.Join(p, "qmp.sock"), fi.ModTime(), now); why != "" {
			l.WithField("reason", why).Debug("keeping a QEMU runtime directory of an earlier vmnetbar")
			continue
		}
		if err := os.RemoveAll(p); err != nil {
			errs = append(errs, fmt.Errorf("removing the stale QEMU runtime directory %s: %w", p, err))
			continue
		}
		l.Info("removed a stale QEMU runtime directory left by an earlier vmnetbar")
	}
	return errors.Join(errs...)
}

// runtimeInUse says why the runtime directory whose QMP socket is sock
// (the directory last modified at mtime) may still be in use, "" when it
// is stale.
func runtimeInUse(sock string, mtime, now time.Time) string {
	fi, err := os.Lstat(sock)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if now.Sub(mtime) < staleRuntimeGrace {
			return "no QMP socket yet, and the directory is new"
		}
		return ""
	case err != nil:
		return err.Error()
	case fi.Mode()&os.ModeSocket == 0:
		return "" // not a socket: nothing can answer on it
	}
	c, err := net.DialTimeout("unix", sock, time.Second)
	if err == nil {
		c.Close()
		return "a QEMU answers on its QMP socket"
	}
	if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT) {
		return ""
	}
	return "its QMP socket could not be checked: " + err.Error()
}
