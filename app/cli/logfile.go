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
// then goes on in the file only, which says so once. Standard error is
// written by a goroutine of its own through a bounded queue, so a reader
// that stalls without closing (a suspended pager, a terminal after Ctrl-S)
// never blocks a log call, and with it the link or a signal: lines that do
// not fit the queue are dropped from standard error (never from the file).
type logOutput struct {
	mu     sync.Mutex
	file   *logFile    // nil without a log file
	queue  chan []byte // lines for standard error; nil once it failed or after close
	stderr io.Writer
	failed bool // a write to standard error failed
	done   chan struct{}
}

// stderrQueueLen is how many log lines may wait for a slow standard error.
const stderrQueueLen = 256

// stderrDrainTimeout bounds how long close waits for the queued lines to
// reach a standard error that does not take them.
const stderrDrainTimeout = time.Second

func newLogOutput(stderr io.Writer) *logOutput {
	o := &logOutput{stderr: stderr, queue: make(chan []byte, stderrQueueLen), done: make(chan struct{})}
	go o.writeStderr(o.queue)
	return o
}

// writeStderr owns the writes to standard error until the queue is closed.
func (o *logOutput) writeStderr(queue <-chan []byte) {
	defer close(o.done)
	failed := false
	for p := range queue {
		if failed {
			continue
		}
		if _, err := o.stderr.Write(p); err != nil {
			failed = true
			o.mu.Lock()
			o.failed = true
			if o.file != nil {
				fmt.Fprintf(o.file, "time=%q level=warning msg=\"standard error is closed (%v): logging to this file only\"\n",
					time.Now().Format(time.RFC3339), err)
			}
			o.mu.Unlock()
		}
	}
}

func (o *logOutput) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.stderrLocked(p)
	if o.file != nil {
		if _, err := o.file.Write(p); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// stderrLocked queues p for standard error (dropped when the queue is
// full: standard error does not keep up, the file has the line); after
// close it writes p at once.
func (o *logOutput) stderrLocked(p []byte) {
	switch {
	case o.failed:
	case o.queue != nil:
		select {
		case o.queue <- append([]byte(nil), p...):
		default:
		}
	default:
		if _, err := o.stderr.Write(p); err != nil {
			o.failed = true
		}
	}
}

// toStderrOnly writes p to standard error alone, in order with the log
// (a message the log file has in its own form).
func (o *logOutput) toStderrOnly(p []byte) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.stderrLocked(p)
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

// close stops writing to the file and ends the standard error writer once
// it has written what is queued (waiting at most stderrDrainTimeout for a
// stalled standard error: the process is about to exit); later lines go
// straight to standard error.
func (o *logOutput) close() {
	o.mu.Lock()
	if o.queue != nil {
		close(o.queue)
		o.queue = nil
	}
	o.mu.Unlock()
	select {
	case <-o.done:
	case <-time.After(stderrDrainTimeout):
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.file != nil {
		o.file.Close()
		o.file = nil
	}
}
