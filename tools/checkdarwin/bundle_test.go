package main

// The app bundle is built only on macOS; these tests guard its inputs
// (Info.plist, vmnetbar.entitlements, the Makefile's bundle targets) on
// every OS.

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// readPlist decodes an XML property list into Go values: dict ->
// map[string]any, array -> []any, string -> string, integer -> int64,
// true/false -> bool. Other value types are errors (the bundle uses none).
func readPlist(data []byte) (any, error) {
	dec := xml.NewDecoder(bytes.NewReader(data))
	var root any
	sawPlist := false
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		se, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		if !sawPlist {
			if se.Name.Local != "plist" {
				return nil, fmt.Errorf("root element is <%s>, want <plist>", se.Name.Local)
			}
			sawPlist = true
			continue
		}
		if root != nil {
			return nil, errors.New("<plist> holds more than one value")
		}
		if root, err = plistValue(dec, se); err != nil {
			return nil, err
		}
	}
	if root == nil {
		return nil, errors.New("empty plist")
	}
	return root, nil
}

func plistValue(dec *xml.Decoder, se xml.StartElement) (any, error) {
	switch se.Name.Local {
	case "true", "false":
		if err := dec.Skip(); err != nil {
			return nil, err
		}
		return se.Name.Local == "true", nil
	case "string", "key":
		var s string
		err := dec.DecodeElement(&s, &se)
		return s, err
	case "integer":
		var s string
		if err := dec.DecodeElement(&s, &se); err != nil {
			return nil, err
		}
		return strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	case "array":
		arr := []any{}
		for {
			tok, err := dec.Token()
			if err != nil {
				return nil, err
			}
			switch t := tok.(type) {
			case xml.StartElement:
				v, err := plistValue(dec, t)
				if err != nil {
					return nil, err
				}
				arr = append(arr, v)
			case xml.EndElement:
				return arr, nil
			}
		}
	case "dict":
		m := map[string]any{}
		var key *string
		for {
			tok, err := dec.Token()
			if err != nil {
				return nil, err
			}
			switch t := tok.(type) {
			case xml.StartElement:
				v, err := plistValue(dec, t)
				if err != nil {
					return nil, err
				}
				if key == nil {
					k, ok := v.(string)
					if t.Name.Local != "key" || !ok {
						return nil, fmt.Errorf("dict: <%s> where a <key> belongs", t.Name.Local)
					}
					if _, dup := m[k]; dup {
						return nil, fmt.Errorf("dict: duplicate key %q", k)
					}
					key = &k
					continue
				}
				if t.Name.Local == "key" {
					return nil, fmt.Errorf("dict: key %q has no value", *key)
				}
				m[*key] = v
				key = nil
			case xml.EndElement:
				if key != nil {
					return nil, fmt.Errorf("dict: key %q has no value", *key)
				}
				return m, nil
			}
		}
	}
	return nil, fmt.Errorf("unsupported plist element <%s>", se.Name.Local)
}

func readDictFile(t *testing.T, path string) map[string]any {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	v, err := readPlist(data)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	m, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("%s: top-level value is %T, want a dict", path, v)
	}
	return m
}

func TestInfoPlist(t *testing.T) {
	got := readDictFile(t, "../../Info.plist")
	want := map[string]any{
		"CFBundleExecutable":         "vmnetbar",
		"CFBundleIdentifier":         "io.github.vmnetbar",
		"CFBundleName":               "vmnetbar",
		"CFBundlePackageType":        "APPL",
		"CFBundleShortVersionString": "@VERSION@", // filled in by make app
		"CFBundleVersion":            "@BUILD@",   // filled in by make app
		"CFBundleIconFile":           "vmnetbar",  // Contents/Resources/vmnetbar.icns
		"LSMinimumSystemVersion":     "13.0",
		"NSHighResolutionCapable":    true,
		"LSUIElement":                true,
	}
	for k, w := range want {
		if g, ok := got[k]; !ok {
			t.Errorf("Info.plist lacks %s", k)
		} else if !reflect.DeepEqual(g, w) {
			t.Errorf("Info.plist %s = %#v, want %#v", k, g, w)
		}
	}
}

func TestEntitlements(t *testing.T) {
	got := readDictFile(t, "../../vmnetbar.entitlements")
	want := map[string]any{"com.apple.security.virtualization": true}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("vmnetbar.entitlements = %#v, want %#v", got, want)
	}
}

// fakeMac is a copy of the Makefile and the bundle's inputs in a temporary
// directory, with stand-ins for uname (saying Darwin unless linux is set),
// go, codesign, sips, iconutil and plutil that log their calls. make runs
// there as it would on a Mac, without a Mac.
type fakeMac struct {
	dir, bin, log string
	// noEntitlement makes the fake codesign -d show no entitlement.
	noEntitlement bool
}

const fakeTools = `
cat > go <<'X'
#!/bin/sh
echo "go $* | MACOSX_DEPLOYMENT_TARGET=${MACOSX_DEPLOYMENT_TARGET-} CGO_ENABLED=${CGO_ENABLED-} CGO_CFLAGS=${CGO_CFLAGS-} CGO_LDFLAGS=${CGO_LDFLAGS-}" >>"$FAKE_LOG"
prev=
for a in "$@"; do [ "$prev" = -o ] && : >"$a"; prev=$a; done
exit 0
X
cat > codesign <<'X'
#!/bin/sh
echo "codesign $*" >>"$FAKE_LOG"
[ "$1" = -d ] && [ -z "$FAKE_NO_ENTITLEMENT" ] && echo "[Key] com.apple.security.virtualization" >&2
exit 0
X
cat > sips <<'X'
#!/bin/sh
echo "sips $*" >>"$FAKE_LOG"
prev=
for a in "$@"; do [ "$prev" = --out ] && : >"$a"; prev=$a; done
exit 0
X
cat > iconutil <<'X'
#!/bin/sh
echo "iconutil $*" >>"$FAKE_LOG"
prev=
for a in "$@"; do [ "$prev" = -o ] && : >"$a"; prev=$a; done
exit 0
X
cat > plutil <<'X'
#!/bin/sh
echo "plutil $*" >>"$FAKE_LOG"
X
cat > uname <<'X'
#!/bin/sh
echo Darwin
X
chmod +x go codesign sips iconutil plutil uname
`

func newFakeMac(t *testing.T, linux bool) *fakeMac {
	t.Helper()
	if _, err := exec.LookPath("make"); err != nil {
		t.Skipf("no make: %v", err)
	}
	f := &fakeMac{dir: t.TempDir(), bin: t.TempDir()}
	f.log = filepath.Join(f.bin, "calls.log")
	for _, name := range []string{"Makefile", "Info.plist", "vmnetbar.entitlements", "assets/appicon.png"} {
		b, err := os.ReadFile(filepath.Join("../..", name))
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(f.dir, name)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("sh", "-c", fakeTools)
	cmd.Dir = f.bin
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("writing the fake tools: %v\n%s", err, out)
	}
	if linux {
		if err := os.Remove(filepath.Join(f.bin, "uname")); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// make runs make with the given arguments in the fake Mac and returns its
// output and the logged tool calls, one per line.
func (f *fakeMac) make(t *testing.T, args ...string) (out string, calls []string, err error) {
	t.Helper()
	cmd := exec.Command("make", append([]string{"-C", f.dir}, args...)...)
	env := []string{"PATH=" + f.bin + string(os.PathListSeparator) + os.Getenv("PATH"), "FAKE_LOG=" + f.log}
	if f.noEntitlement {
		env = append(env, "FAKE_NO_ENTITLEMENT=1")
	}
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "PATH", "GO", "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MACOSX_DEPLOYMENT_TARGET",
			"CGO_ENABLED", "CGO_CFLAGS", "CGO_LDFLAGS", "FAKE_LOG", "FAKE_NO_ENTITLEMENT":
			continue // the Makefile's inputs: the test sets them
		}
		env = append(env, kv)
	}
	cmd.Env = env
	b, err := cmd.CombinedOutput()
	logged, rerr := os.ReadFile(f.log)
	if rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
		t.Fatal(rerr)
	}
	if s := strings.TrimSpace(string(logged)); s != "" {
		calls = strings.Split(s, "\n")
	}
	return string(b), calls, err
}

// minSystemVersion is Info.plist's LSMinimumSystemVersion.
func minSystemVersion(t *testing.T) string {
	v, _ := readDictFile(t, "../../Info.plist")["LSMinimumSystemVersion"].(string)
	if v == "" {
		t.Fatal("Info.plist has no LSMinimumSystemVersion")
	}
	return v
}

// checkGoBuild finds the go build writing out and checks that it builds
// with cgo for the macOS release Info.plist names.
func checkGoBuild(t *testing.T, calls []string, out string) {
	t.Helper()
	min := minSystemVersion(t)
	for _, c := range calls {
		if !strings.HasPrefix(c, "go build ") || !strings.Contains(c, " -o "+out+" ") {
			continue
		}
		for _, want := range []string{
			"MACOSX_DEPLOYMENT_TARGET=" + min + " ",
			"CGO_ENABLED=1 ",
			"-mmacosx-version-min=" + min + " ", // in CGO_CFLAGS
		} {
			if !strings.Contains(c, want) {
				t.Errorf("the build of %s lacks %q:\n%s", out, want, c)
			}
		}
		if !strings.HasSuffix(c, "-mmacosx-version-min="+min) {
			t.Errorf("the build of %s does not link for macOS %s (CGO_LDFLAGS):\n%s", out, min, c)
		}
		return
	}
	t.Errorf("no go build -o %s among the calls:\n%s", out, strings.Join(calls, "\n"))
}

func hasCall(calls []string, want string) bool {
	for _, c := range calls {
		if c == want {
			return true
		}
	}
	return false
}

// TestMacOSVersion: the bundle and the Makefile name the same oldest macOS,
// and it is 13 (the Virtualization framework features vmnetbar uses).
func TestMacOSVersion(t *testing.T) {
	if got := minSystemVersion(t); got != "13.0" {
		t.Errorf("Info.plist LSMinimumSystemVersion = %q, want 13.0", got)
	}
	mk, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(mk), "\nMACOS_MIN := "+minSystemVersion(t)+"\n") {
		t.Errorf("the Makefile does not set MACOS_MIN := %s (Info.plist's LSMinimumSystemVersion)", minSystemVersion(t))
	}
}

// TestMakeBuildMacOS: on macOS make build builds for the oldest supported
// macOS and signs ./vmnetbar ad hoc with the virtualization entitlement, so
// `./vmnetbar run` works from Terminal.
func TestMakeBuildMacOS(t *testing.T) {
	f := newFakeMac(t, false)
	out, calls, err := f.make(t, "build")
	if err != nil {
		t.Fatalf("make build: %v\n%s", err, out)
	}
	checkGoBuild(t, calls, "vmnetbar")
	for _, want := range []string{
		"codesign --force --sign - --entitlements vmnetbar.entitlements ./vmnetbar",
		"codesign -d --entitlements - ./vmnetbar",
	} {
		if !hasCall(calls, want) {
			t.Errorf("make build did not run %q; calls:\n%s", want, strings.Join(calls, "\n"))
		}
	}

	// A signature without the entitlement fails the build, saying so.
	f = newFakeMac(t, false)
	f.noEntitlement = true
	out, _, err = f.make(t, "build")
	if err == nil {
		t.Fatalf("make build succeeded although the signature lacks the entitlement:\n%s", out)
	}
	if want := "./vmnetbar lacks the com.apple.security.virtualization entitlement"; !strings.Contains(out, want) {
		t.Errorf("make build: output lacks %q:\n%s", want, out)
	}
}

// TestMakeBuildLinux: off macOS make build is a plain go build.
func TestMakeBuildLinux(t *testing.T) {
	if runtime.GOOS == "darwin" {
		t.Skip("this is macOS")
	}
	f := newFakeMac(t, true)
	out, calls, err := f.make(t, "build")
	if err != nil {
		t.Fatalf("make build: %v\n%s", err, out)
	}
	if len(calls) != 1 || !strings.HasPrefix(calls[0], "go build -ldflags -X main.version=dev -o vmnetbar . | MACOSX_DEPLOYMENT_TARGET= CGO_ENABLED= CGO_CFLAGS= CGO_LDFLAGS=") {
		t.Errorf("make build on Linux ran:\n%s\nwant only a plain go build", strings.Join(calls, "\n"))
	}
}

// TestMakeAppSignMacOS runs make app sign as on a Mac: the bundle's binary
// is built for the oldest supported macOS, Info.plist gets the version,
// the icon is made, and the bundle is signed with the entitlement, checked.
func TestMakeAppSignMacOS(t *testing.T) {
	f := newFakeMac(t, false)
	out, calls, err := f.make(t, "app", "sign")
	if err != nil {
		t.Fatalf("make app sign: %v\n%s", err, out)
	}
	checkGoBuild(t, calls, "build/vmnetbar.app/Contents/MacOS/vmnetbar")
	for _, want := range []string{
		"iconutil -c icns -o build/vmnetbar.icns build/vmnetbar.iconset",
		"plutil -lint build/vmnetbar.app/Contents/Info.plist",
		"codesign --force --sign - --entitlements vmnetbar.entitlements build/vmnetbar.app",
		"codesign -d --entitlements - build/vmnetbar.app",
	} {
		if !hasCall(calls, want) {
			t.Errorf("make app sign did not run %q; calls:\n%s", want, strings.Join(calls, "\n"))
		}
	}
	if _, err := os.Stat(filepath.Join(f.dir, "build/vmnetbar.app/Contents/Resources/vmnetbar.icns")); err != nil {
		t.Errorf("the bundle has no icon: %v", err)
	}
	// Info.plist with the version filled in (no tags and no git here:
	// 0.0.0, build 1).
	got := readDictFile(t, filepath.Join(f.dir, "build/vmnetbar.app/Contents/Info.plist"))
	for k, w := range map[string]string{
		"CFBundleShortVersionString": "0.0.0",
		"CFBundleVersion":            "1",
		"LSMinimumSystemVersion":     minSystemVersion(t),
	} {
		if got[k] != w {
			t.Errorf("the bundle's Info.plist %s = %#v, want %q", k, got[k], w)
		}
	}
}

// TestMakeAppNeedsMacOS runs the bundle targets off macOS: each must stop
// at once with a message saying what to use instead.
func TestMakeAppNeedsMacOS(t *testing.T) {
	if runtime.GOOS == "darwin" {
		t.Skip("the bundle targets work on macOS")
	}
	if _, err := exec.LookPath("make"); err != nil {
		t.Skipf("no make: %v", err)
	}
	for target, want := range map[string]string{
		"app":  "make app needs macOS (the Virtualization framework and iconutil); on Linux use make run / make build",
		"sign": "make app needs macOS", // sign builds the app first
		"icns": "make icns needs macOS",
	} {
		out, err := exec.Command("make", "-s", "-C", "../..", target).CombinedOutput()
		if err == nil {
			t.Errorf("make %s succeeded off macOS:\n%s", target, out)
			continue
		}
		if !strings.Contains(string(out), want) {
			t.Errorf("make %s: output lacks %q:\n%s", target, want, out)
		}
	}
}

func TestReadPlistRejectsBadInput(t *testing.T) {
	for _, in := range []string{
		``,
		`<dict/>`,
		`<plist><dict><key>a</key></dict></plist>`,
		`<plist><dict><key>a</key><true/><key>a</key><true/></dict></plist>`,
		`<plist><dict><string>a</string><true/></dict></plist>`,
		`<plist><real>1.5</real></plist>`,
		`<plist><true/><true/></plist>`,
	} {
		if v, err := readPlist([]byte(in)); err == nil {
			t.Errorf("readPlist(%q) = %#v, want an error", in, v)
		}
	}
}
