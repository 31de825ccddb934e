package netlink

import "golang.org/x/sys/unix"

// tuneStream prepares the daemon connection so that a write of at most
// maxWrite bytes is queued whole or not at all. Linux splits a UNIX stream
// write into buffers of min(SO_SNDBUF/2 - 64, about 36 KiB) and a
// non-blocking write may queue the first and report EAGAIN for the rest,
// leaving the daemon a cut frame; with SO_SNDBUF >= streamSendBuffer a
// write of maxWrite (32 KiB) bytes is a single buffer.
func tuneStream(fd int) error {
	return raiseBuffer(fd, unix.SO_SNDBUF, streamSendBuffer, "SO_SNDBUF")
}
