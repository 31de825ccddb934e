package tray

// openCommandFor returns the command that opens path on goos in the
// user's default application, or with text in a text editor; nil when goos
// has no known opener.
//
//   - macOS: open, with -t for text: a stock Mac has no application for
//     .yaml, and open fails for it without -t.
//   - Linux: xdg-open, which has no text-editor switch (text files open in
//     the default for text).
func openCommandFor(goos, path string, text bool) []string {
	switch goos {
	case "darwin":
		if text {
			return []string{"open", "-t", path}
		}
		return []string{"open", path}
	case "linux":
		return []string{"xdg-open", path}
	}
	return nil
}
