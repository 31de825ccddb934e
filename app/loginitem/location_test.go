package loginitem

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// macResolver resolves paths the way macOS's links do: /var, /tmp and
// /etc are links into /private, and /Volumes/Macintosh HD is the boot
// volume, /.
func macResolver(p string) (string, error) {
	for _, top := range []string{"/var", "/tmp", "/etc"} {
		if p == top || strings.HasPrefix(p, top+"/") {
			return "/private" + p, nil
		}
	}
	if rest, ok := strings.CutPrefix(p, "/Volumes/Macintosh HD"); ok && (rest == "" || rest[0] == '/') {
		return "/" + strings.TrimPrefix(rest, "/"), nil
	}
	return p, nil
}

// noResolver fails as for paths that do not exist.
func noResolver(string) (string, error) { return "", os.ErrNotExist }

func TestCheckLocationMac(t *testing.T) {
	const tmpdir = "/var/folders/zz/zyxvpxvq6csfxvn_n0000000000000/T/"
	dirs := TempDirs("darwin", func(k string) string {
		if k == "TMPDIR" {
			return tmpdir
		}
		return ""
	})
	tests := []struct {
		exe     string
		resolve func(string) (string, error)
		want    PlaceKind // 0: fine
		dir     string
	}{
		// The same temporary directory, spelled with and without the
		// /private link, on either side.
		{exe: "/private/var/folders/zz/zyxvpxvq6csfxvn_n0000000000000/T/go-build1/b001/exe/vmnetbar", resolve: macResolver, want: PlaceTemporary, dir: tmpdir},
		{exe: "/var/folders/zz/zyxvpxvq6csfxvn_n0000000000000/T/vmnetbar", resolve: macResolver, want: PlaceTemporary, dir: tmpdir},
		{exe: "/private/var/folders/zz/zyxvpxvq6csfxvn_n0000000000000/T/vmnetbar", resolve: noResolver, want: PlaceTemporary, dir: tmpdir},
		{exe: "/private/tmp/vmnetbar", resolve: macResolver, want: PlaceTemporary, dir: "/tmp"},
		// Another user's or the cache part of /var/folders.
		{exe: "/private/var/folders/ab/cd/C/vmnetbar", resolve: noResolver, want: PlaceTemporary, dir: "/var/folders"},
		// App Translocation, under /var/folders too: the specific reason
		// wins.
		{exe: "/private/var/folders/zz/zyxvpxvq6csfxvn_n0000000000000/T/AppTranslocation/0F3C1B3E-6A8B-4F1C-9D0E-1234567890AB/d/vmnetbar.app/Contents/MacOS/vmnetbar", resolve: macResolver, want: PlaceTranslocated},
		{exe: "/some/where/AppTranslocation/X/d/vmnetbar.app/Contents/MacOS/vmnetbar", resolve: noResolver, want: PlaceTranslocated},
		// A disk image.
		{exe: "/Volumes/vmnetbar 1.2/vmnetbar.app/Contents/MacOS/vmnetbar", resolve: macResolver, want: PlaceVolume, dir: "/Volumes/vmnetbar 1.2"},
		// Fine places, including the boot volume by its /Volumes name.
		{exe: "/Applications/vmnetbar.app/Contents/MacOS/vmnetbar", resolve: macResolver},
		{exe: "/Users/me/Applications/vmnetbar.app/Contents/MacOS/vmnetbar", resolve: macResolver},
		{exe: "/Volumes/Macintosh HD/Applications/vmnetbar.app/Contents/MacOS/vmnetbar", resolve: macResolver},
		{exe: "/opt/homebrew/bin/vmnetbar", resolve: macResolver},
		{exe: "/private/var/root/vmnetbar", resolve: macResolver},
		{exe: "/tmpfoo/vmnetbar", resolve: macResolver},
		{exe: "/var/foldersX/vmnetbar", resolve: macResolver},
	}
	for _, tc := range tests {
		p := checkLocation(tc.exe, dirs, tc.resolve)
		if tc.want == 0 {
			if p != nil {
				t.Errorf("%s: %v, want no problem", tc.exe, p)
			}
			continue
		}
		if p == nil {
			t.Errorf("%s: no problem, want %v", tc.exe, tc.want)
			continue
		}
		if p.Kind != tc.want || p.Dir != tc.dir || p.Exe != tc.exe {
			t.Errorf("%s: %+v, want kind %v, dir %q", tc.exe, *p, tc.want, tc.dir)
		}
		if p.Transient() != (tc.want != PlaceVolume) {
			t.Errorf("%s: Transient() = %v", tc.exe, p.Transient())
		}
	}
}

// TestCheckLocationResolvesLinks uses real links: a temporary directory
// reached through a link, and a program reached through one.
func TestCheckLocationResolvesLinks(t *testing.T) {
	root := t.TempDir()
	realTmp := filepath.Join(root, "private", "tmp")
	home := filepath.Join(root, "home")
	for _, d := range []string{realTmp, home} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	linkTmp := filepath.Join(root, "tmp")
	if err := os.Symlink(realTmp, linkTmp); err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(realTmp, "vmnetbar")
	if err := os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	// The program by its real path, the temporary directory by its link:
	// a plain prefix test misses it.
	p := checkLocation(exe, []string{linkTmp}, filepath.EvalSymlinks)
	if p == nil || p.Kind != PlaceTemporary || p.Dir != linkTmp {
		t.Fatalf("program %s in temporary directory %s (a link to it): %+v, want PlaceTemporary", exe, linkTmp, p)
	}
	// The program reached through a link in home: its real place counts.
	link := filepath.Join(home, "vmnetbar")
	if err := os.Symlink(exe, link); err != nil {
		t.Fatal(err)
	}
	if p := checkLocation(link, []string{linkTmp}, filepath.EvalSymlinks); p == nil || p.Kind != PlaceTemporary {
		t.Fatalf("link %s to a program in the temporary directory: %+v, want PlaceTemporary", link, p)
	}
	// A program outside is fine.
	other := filepath.Join(home, "other")
	if err := os.WriteFile(other, nil, 0o755); err != nil {
		t.Fatal(err)
	}
	if p := checkLocation(other, []string{linkTmp}, filepath.EvalSymlinks); p != nil {
		t.Fatalf("%s: %v, want no problem", other, p)
	}
}

func TestCheckLocationLinux(t *testing.T) {
	env := map[string]string{"XDG_RUNTIME_DIR": "/run/user/1000"}
	dirs := TempDirs("linux", func(k string) string { return env[k] })
	if want := []string{"/tmp", "/run/user/1000"}; strings.Join(dirs, " ") != strings.Join(want, " ") {
		t.Fatalf("TempDirs = %q, want %q", dirs, want)
	}
	for exe, want := range map[string]PlaceKind{
		"/tmp/go-build123/b001/exe/vmnetbar": PlaceTemporary,
		"/run/user/1000/vmnetbar":            PlaceTemporary,
		"/usr/local/bin/vmnetbar":            0,
		"/home/me/.local/bin/vmnetbar":       0,
	} {
		p := checkLocation(exe, dirs, noResolver)
		if (p == nil) != (want == 0) || (p != nil && p.Kind != want) {
			t.Errorf("%s: %v, want %v", exe, p, want)
		}
	}
	// A relative or empty TMPDIR is ignored, never matching everything.
	dirs = TempDirs("linux", func(k string) string { return map[string]string{"TMPDIR": "tmp"}[k] })
	if p := checkLocation("/usr/bin/vmnetbar", append(dirs, "/", ""), noResolver); p != nil {
		t.Errorf("with TMPDIR=tmp, / and \"\": %v, want no problem", p)
	}
}

// TestCheckLocationMessages checks that each problem says where, why and
// what to do, and that the menu summary is short.
func TestCheckLocationMessages(t *testing.T) {
	for _, tc := range []struct {
		p    LocationProblem
		want []string
	}{
		{LocationProblem{Kind: PlaceTranslocated, Exe: "/x/AppTranslocation/y/vmnetbar"}, []string{"/x/AppTranslocation/y/vmnetbar", "App Translocation", "/Applications", "Finder"}},
		{LocationProblem{Kind: PlaceTemporary, Exe: "/tmp/a", Resolved: "/private/tmp/a", Dir: "/tmp"}, []string{"/private/tmp/a", "is in the temporary directory /tmp", "install vmnetbar first"}},
		{LocationProblem{Kind: PlaceVolume, Exe: "/Volumes/V/vmnetbar", Dir: "/Volumes/V"}, []string{"/Volumes/V/vmnetbar", "mounted volume /Volumes/V", "copy vmnetbar.app to /Applications"}},
	} {
		var err error = &tc.p
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%v: %q lacks %q", tc.p.Kind, err.Error(), w)
			}
		}
		var lp *LocationProblem
		if !errors.As(err, &lp) {
			t.Errorf("%v: not a *LocationProblem", tc.p.Kind)
		}
		if s := tc.p.Summary(); s == "" || len([]rune(s)) >= 60 {
			t.Errorf("%v: summary %q, want 1..59 characters", tc.p.Kind, s)
		}
	}
}

// TestManagersCheckTheirProgram checks that both login items check the
// program they start.
func TestManagersCheckTheirProgram(t *testing.T) {
	exe := filepath.Join(os.TempDir(), "vmnetbar")
	a, err := NewAutostart(t.TempDir(), exe, nil)
	if err != nil {
		t.Fatal(err)
	}
	if p := a.CheckLocation(); p == nil || p.Kind != PlaceTemporary {
		t.Errorf("Autostart for %s: %v, want PlaceTemporary", exe, p)
	}
	la, err := NewLaunchAgent(LaunchAgentConfig{Home: t.TempDir(), Exe: exe})
	if err != nil {
		t.Fatal(err)
	}
	if p := la.CheckLocation(); p == nil || p.Kind != PlaceTemporary {
		t.Errorf("LaunchAgent for %s: %v, want PlaceTemporary", exe, p)
	}
	a, err = NewAutostart(t.TempDir(), "/usr/bin/vmnetbar", nil)
	if err != nil {
		t.Fatal(err)
	}
	if p := a.CheckLocation(); p != nil {
		t.Errorf("Autostart for /usr/bin/vmnetbar: %v, want nil", p)
	}
}
