package tray

import (
	"os"
	"os/exec"
)

// newClipboard returns Linux's clipboard: wl-copy under Wayland
// (WAYLAND_DISPLAY is set), else xclip, else xsel, whichever is on PATH
// and works (xclip and xsel also serve XWayland's clipboard).
func newClipboard() Clipboard {
	return commandClipboard{
		programs: func() [][]string { return linuxClipboards(os.Getenv) },
		lookPath: exec.LookPath,
		install:  "install wl-clipboard (Wayland), xclip or xsel",
	}
}

// linuxClipboards are the clipboard programs to try, in order.
func linuxClipboards(getenv func(string) string) [][]string {
	var p [][]string
	if getenv("WAYLAND_DISPLAY") != "" {
		p = append(p, []string{"wl-copy"})
	}
	return append(p, []string{"xclip", "-selection", "clipboard"}, []string{"xsel", "--clipboard", "--input"})
}
