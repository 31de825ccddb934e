package cli

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// maxLogSize is the size at which the app's log file is rotated: it is
// renamed to FILE.1 (replacing the previous one) and a new file begins, so
// the log never takes more than about twice this much disk.
const maxLogSize = 10 << 20

// logFile is an append-only log file that rotates itself at max bytes.
// Its methods are not safe for concurrent use: logOutput serialises them.
type logFile struct {
	path string
	max  int64
	f    *os.File
	size int64
}

// openLogFile opens (creating it and its directory, mode 0700/0600) the
// log file at path, rotating it first when it is already over max bytes.
func openLogFile(path string, max int64) (*logFile, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("creating the log directory: %w", err)
	}
	l := &logFile{path: path, max: max}
	if err := l.open(); err != nil {
		return nil, err
	}
	if l.size >= max {
		l.rotate()
	}
	return l, nil
}

func (l *logFile) open() error {
	// Refuse a named pipe or device before opening it: opening a pipe
	// nobody reads would block.
	if fi, err := os.Stat(l.path); err == nil && !fi.Mode().IsRegular() {
		return fmt.Errorf("opening the log file: %s is not a regular file", l.path)
	}
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("opening the log file: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("opening the log file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return fmt.Errorf("opening the log file: %s is not a regular file", l.path)
	}
	l.f, l.size = f, fi.Size()
	return nil
}

// rotate moves the file to FILE.1 and starts a new one. When that fails
// the log goes on in the old file, and rotation is tried again after
// another max bytes.
func (l *logFile) rotate() {
	old := l.f
	if err := os.Rename(l.path, l.path+".1"); err != nil {
		l.size = 0
		fmt.Fprintf(old, "time=%q level=warning msg=\"cannot rotate the log file: %v\"\n", time.Now().Format(time.RFC3339), err)
		return
	}
	if err := l.open(); err != nil {
		// Keep writing to the renamed file rather than losing lines.
		l.f, l.size = old, 0
		return
	}
	old.Close()
}

func (l *logFile) Write(p []byte) (int, error) {
	if l.size > 0 && l.size+int64(len(p)) > l.max {
		l.rotate()
	}
	n, err := l.f.Write(p)
	l.size += int64(n)
	return n, err
}

func (l *logFile) Close() error { return l.f.Close() }

// logOutput is where the app's log goes: the log file (when it could be
// opened) and standard error until a write to it fails. A closed standard
// error (a pipe whose reader went away) must never stop the app: the log
// then goes on in the file only, which says so once.
type logOutput struct {
	mu     sync.Mutex
	file   *logFile  // nil without a log file
	stderr io.Writer // nil once a write to it failed
}

func (o *logOutput) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.stderr != nil {
		if _, err := o.stderr.Write(p); err != nil {
			o.stderr = nil
			if o.file != nil {
				fmt.Fprintf(o.file, "time=%q level=warning msg=\"standard error is closed (%v): logging to this file only\"\n",
					time.Now().Format(time.RFC3339), err)
			}
		}
	}
	if o.file != nil {
		if _, err := o.file.Write(p); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// toFileOnly writes p to the log file alone (a message already shown on
// standard error in its own words).
func (o *logOutput) toFileOnly(p []byte) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.file != nil {
		o.file.Write(p)
	}
}

// close stops writing to the file; standard error stays.
func (o *logOutput) close() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.file != nil {
		o.file.Close()
		o.file = nil
	}
}
