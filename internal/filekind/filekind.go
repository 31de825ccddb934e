// Package filekind names the kind of a file for messages: "a directory",
// "a named pipe", "a character device". It imports only the standard
// library.
package filekind

import "io/fs"

// Of names the kind of file m is, with an article.
func Of(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m.IsRegular():
		return "a regular file"
	case m&fs.ModeSymlink != 0:
		return "a symbolic link"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a block device"
	}
	return "a special file (mode " + m.String() + ")"
}
