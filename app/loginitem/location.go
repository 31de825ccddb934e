package loginitem

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// PlaceKind names a kind of place a login item's program should not be
// started from.
type PlaceKind int

const (
	// PlaceTranslocated is an App Translocation copy: macOS runs a
	// quarantined app (downloaded, not yet moved by Finder) from a random
	// read-only path under /private/var/folders/.../AppTranslocation/ that
	// is gone after the app quits or the Mac restarts.
	PlaceTranslocated PlaceKind = iota + 1
	// PlaceTemporary is a temporary directory ($TMPDIR, /tmp, macOS's
	// /var/folders, Linux's $XDG_RUNTIME_DIR): emptied at restart or
	// logout, or by cleaners.
	PlaceTemporary
	// PlaceVolume is a mounted volume under /Volumes (a disk image or an
	// external disk), which may not be mounted at the next login.
	PlaceVolume
)

func (k PlaceKind) String() string {
	switch k {
	case PlaceTranslocated:
		return "translocated"
	case PlaceTemporary:
		return "temporary"
	case PlaceVolume:
		return "volume"
	}
	return fmt.Sprintf("PlaceKind(%d)", int(k))
}

// LocationProblem tells why a login item that starts Exe may not start at
// the next login. It is an error; Error is the full message (what is wrong
// and what to do), Summary a short one for a menu line.
type LocationProblem struct {
	Kind     PlaceKind
	Exe      string // the program as given
	Resolved string // the program with symbolic links resolved ("" if that failed)
	Dir      string // PlaceTemporary: the temporary directory; PlaceVolume: the volume
}

// Transient reports whether the program's path will be gone (a temporary
// directory or an App Translocation copy), not merely perhaps absent: a
// login item for it is never worth making.
func (p *LocationProblem) Transient() bool {
	return p.Kind == PlaceTranslocated || p.Kind == PlaceTemporary
}

func (p *LocationProblem) shown() string {
	if p.Resolved != "" {
		return p.Resolved
	}
	return p.Exe
}

// Error says what is wrong and what to do.
func (p *LocationProblem) Error() string {
	switch p.Kind {
	case PlaceTranslocated:
		return fmt.Sprintf("%s is a temporary copy that macOS made because the app is quarantined (App Translocation), and it is gone after vmnetbar quits or the Mac restarts; move vmnetbar.app to /Applications with Finder, open it from there, and turn launch at login on again", p.shown())
	case PlaceTemporary:
		return fmt.Sprintf("%s is in the temporary directory %s and may be gone at the next login; install vmnetbar first (on macOS: move vmnetbar.app to /Applications) and turn launch at login on from there", p.shown(), p.Dir)
	case PlaceVolume:
		return fmt.Sprintf("%s is on the mounted volume %s (a disk image or an external disk), which may not be mounted at the next login; copy vmnetbar.app to /Applications and turn launch at login on from there", p.shown(), p.Dir)
	}
	return fmt.Sprintf("%s: unknown location problem %v", p.shown(), p.Kind)
}

// Summary is a short form of Error for a menu line (under 60 characters).
func (p *LocationProblem) Summary() string {
	switch p.Kind {
	case PlaceTranslocated:
		return "macOS runs a temporary copy; move the app to Applications"
	case PlaceTemporary:
		return "vmnetbar is in a temporary folder; install it first"
	case PlaceVolume:
		return "it runs from a disk image; copy it to Applications"
	}
	return p.Kind.String() + " location"
}

// CheckLocation reports whether a login item starting exe may fail to
// start it at the next login because of where exe is: an App Translocation
// copy, a temporary directory, a mounted volume. It returns nil when exe's
// place is fine. Symbolic links of exe and of the temporary directories
// are resolved before comparing (on macOS $TMPDIR is under /var/folders,
// which is /private/var/folders).
func CheckLocation(exe string) *LocationProblem {
	return checkLocation(exe, TempDirs(runtime.GOOS, os.Getenv), filepath.EvalSymlinks)
}

// CheckLocation checks the agent's program with the package's
// CheckLocation.
func (a *LaunchAgent) CheckLocation() *LocationProblem { return CheckLocation(a.cfg.Exe) }

// CheckLocation checks the entry's program with the package's
// CheckLocation.
func (a *Autostart) CheckLocation() *LocationProblem { return CheckLocation(a.exe) }

// TempDirs lists the temporary directories of goos, given its environment:
// $TMPDIR (or /tmp), /tmp, and /var/folders (macOS: every user's
// temporary and cache directories) or $XDG_RUNTIME_DIR (Linux: emptied at
// logout).
func TempDirs(goos string, getenv func(string) string) []string {
	dirs := []string{}
	if d := getenv("TMPDIR"); filepath.IsAbs(d) {
		dirs = append(dirs, d)
	}
	dirs = append(dirs, "/tmp")
	switch goos {
	case "darwin":
		dirs = append(dirs, "/var/folders")
	case "linux":
		if d := getenv("XDG_RUNTIME_DIR"); filepath.IsAbs(d) {
			dirs = append(dirs, d)
		}
	}
	return dirs
}

// checkLocation is CheckLocation with the temporary directories and the
// symlink resolver given. It is pure apart from resolve.
func checkLocation(exe string, tempDirs []string, resolve func(string) (string, error)) *LocationProblem {
	if exe == "" {
		return nil
	}
	p := &LocationProblem{Exe: exe}
	if r, err := resolve(exe); err == nil {
		p.Resolved = filepath.Clean(r)
	}
	forms := pathForms(filepath.Clean(exe), p.Resolved)
	for _, f := range forms {
		if strings.Contains(f+"/", "/AppTranslocation/") {
			p.Kind = PlaceTranslocated
			return p
		}
	}
	for _, d := range tempDirs {
		if !filepath.IsAbs(d) {
			continue
		}
		var rd string
		if r, err := resolve(d); err == nil {
			rd = filepath.Clean(r)
		}
		for _, df := range pathForms(filepath.Clean(d), rd) {
			if df == "/" {
				continue
			}
			for _, f := range forms {
				if strings.HasPrefix(f, df+"/") {
					p.Kind, p.Dir = PlaceTemporary, d
					return p
				}
			}
		}
	}
	// The boot volume is also /Volumes/<its name> (a link to /): a path
	// that resolves elsewhere is not on a mounted volume.
	resolved := p.Resolved
	if resolved == "" {
		resolved = filepath.Clean(exe)
	}
	for _, f := range pathForms(resolved) {
		if rest, ok := strings.CutPrefix(f, "/Volumes/"); ok && rest != "" {
			name, _, _ := strings.Cut(rest, "/")
			p.Kind, p.Dir = PlaceVolume, "/Volumes/"+name
			return p
		}
	}
	return nil
}

// pathForms returns the cleaned, non-empty paths given, each also in its
// macOS alias form: /private/var, /private/tmp and /private/etc are what
// /var, /tmp and /etc link to, so a path that cannot be resolved (it does
// not exist, or it is checked on another system) still compares equal to
// its resolved twin.
func pathForms(paths ...string) []string {
	var out []string
	add := func(p string) {
		for _, q := range out {
			if q == p {
				return
			}
		}
		out = append(out, p)
	}
	for _, p := range paths {
		if p == "" {
			continue
		}
		add(p)
		for _, top := range []string{"/var", "/tmp", "/etc"} {
			if p == top || strings.HasPrefix(p, top+"/") {
				add("/private" + p)
			} else if rest, ok := strings.CutPrefix(p, "/private"+top); ok && (rest == "" || rest[0] == '/') {
				add(top + rest)
			}
		}
	}
	return out
}
