//go:build !linux

package netlink

import "time"

// busyWait waits busyRetryWait before the next attempt: macOS reports a
// full VM queue with ENOBUFS, which poll does not signal.
func (b *batcher) busyWait() { time.Sleep(busyRetryWait) }

func (b *batcher) doPoll(fd uintptr) {}
