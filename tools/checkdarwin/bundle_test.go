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

// TestMakefileBundle checks that the Makefile's bundle recipe matches
// Info.plist and the entitlements file.
func TestMakefileBundle(t *testing.T) {
	data, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	mk := string(data)
	for _, want := range []string{
		"s/@VERSION@/$(APP_VERSION)/",
		"s/@BUILD@/$(APP_BUILD)/",
		"-o $(APP)/Contents/MacOS/vmnetbar .",
		"$(APP)/Contents/Resources/vmnetbar.icns",
		"--entitlements vmnetbar.entitlements $(APP)",
		"grep -q com.apple.security.virtualization",
		"iconutil -c icns",
	} {
		if !strings.Contains(mk, want) {
			t.Errorf("Makefile lacks %q", want)
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
