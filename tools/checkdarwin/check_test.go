package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// toolBin is checkdarwin built without the race detector, which makes
// type-checking the standard library and vz many times slower; the tests
// that check them run it. The small cases run in-process.
var toolBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "checkdarwin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	toolBin = filepath.Join(dir, "checkdarwin")
	if out, err := exec.Command("go", "build", "-o", toolBin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building checkdarwin: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		os.RemoveAll(dir)
		os.Exit(code)
	}))
}

// runTool runs the built checkdarwin and returns its exit code, stdout and
// stderr.
func runTool(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, toolBin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, stdout.String(), stderr.String()
	case errors.As(err, &ee) && ee.ExitCode() > 0:
		return ee.ExitCode(), stdout.String(), stderr.String()
	}
	t.Fatalf("running checkdarwin %q: %v\nstderr: %s", args, err, stderr.String())
	return 0, "", ""
}

// probeModule writes a throwaway module that requires the same modules as
// this repository (so vz resolves from the module cache) plus the given
// files, and returns its directory. The go command is told to run offline
// and to fix up the probe's go.mod by itself.
func probeModule(t *testing.T, files map[string]string) string {
	t.Helper()
	gomod, err := os.ReadFile("../../go.mod")
	if err != nil {
		t.Fatalf("reading the repository's go.mod: %v", err)
	}
	gosum, err := os.ReadFile("../../go.sum")
	if err != nil {
		t.Fatalf("reading the repository's go.sum: %v", err)
	}
	modLine := regexp.MustCompile(`(?m)^module .*$`)
	if !modLine.Match(gomod) {
		t.Fatal("the repository's go.mod has no module line")
	}
	gomod = modLine.ReplaceAll(gomod, []byte("module example.com/probe"))

	dir := t.TempDir()
	write := func(name string, data []byte) {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("go.mod", gomod)
	write("go.sum", gosum)
	for name, src := range files {
		write(name, []byte(src))
	}
	t.Setenv("GOFLAGS", "-mod=mod")
	t.Setenv("GOPROXY", "off")
	return dir
}

// runCheck runs the command and returns its exit code, stdout and stderr.
func runCheck(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

const portableFile = `// Package probe is a test module.
package probe

// Name is portable.
const Name = "probe"
`

const goodDarwinFile = `package probe

import (
	"net"
	"os"

	"github.com/Code-Hex/vz/v3"
)

// NIC builds a VZ network device on a datagram socket.
func NIC(f *os.File, hw net.HardwareAddr) (*vz.VirtioNetworkDeviceConfiguration, error) {
	att, err := vz.NewFileHandleNetworkDeviceAttachment(f)
	if err != nil {
		return nil, err
	}
	cfg, err := vz.NewVirtioNetworkDeviceConfiguration(att)
	if err != nil {
		return nil, err
	}
	mac, err := vz.NewMACAddress(hw)
	if err != nil {
		return nil, err
	}
	cfg.SetMACAddress(mac)
	return cfg, nil
}
`

// badDarwinFile passes a *os.File where vz wants a NetworkDeviceAttachment
// (line 11).
const badDarwinFile = `package probe

import (
	"os"

	"github.com/Code-Hex/vz/v3"
)

// NIC builds a VZ network device on a datagram socket.
func NIC(f *os.File) (*vz.VirtioNetworkDeviceConfiguration, error) {
	return vz.NewVirtioNetworkDeviceConfiguration(f)
}
`

func TestWrongVZCallFails(t *testing.T) {
	dir := probeModule(t, map[string]string{
		"probe.go":          portableFile,
		"nic/nic_darwin.go": strings.Replace(badDarwinFile, "package probe", "package nic", 1),
		"nic/nic.go":        "// Package nic is a test package.\npackage nic\n",
	})
	code, stdout, stderr := runTool(t, "-dir", dir, "-arch", "arm64")
	if code != exitFailure {
		t.Fatalf("exit code %d, want %d\nstdout: %s\nstderr: %s", code, exitFailure, stdout, stderr)
	}
	want := regexp.MustCompile(`(?m)^nic/nic_darwin\.go:11:\d+: .*NetworkDeviceAttachment.*\[darwin/arm64\]$`)
	if !want.MatchString(stderr) {
		t.Errorf("stderr does not name the wrong call in nic/nic_darwin.go:11:\n%s", stderr)
	}
	if !strings.Contains(stderr, "1 error(s) in example.com/probe") {
		t.Errorf("stderr has no error summary:\n%s", stderr)
	}
}

func TestCorrectVZCallPasses(t *testing.T) {
	dir := probeModule(t, map[string]string{
		"probe.go":            portableFile,
		"nic_darwin.go":       goodDarwinFile,
		"probe_linux.go":      "package probe\n\nvar broken int = \"linux code is not checked\"\n",
		"probe_linux_test.go": "package probe\n\nvar brokenTest int = \"linux tests are not checked\"\n",
		"probe_test.go":       "package probe\n\nimport \"testing\"\n\nfunc TestName(t *testing.T) { _ = Name + \"x\" }\n",
		"cmd/tool/main.go":    "package main\n\nimport _ \"example.com/probe\"\n\nfunc main() {}\n",
	})
	code, stdout, stderr := runTool(t, "-dir", dir)
	if code != exitOK {
		t.Fatalf("exit code %d, want %d\nstdout: %s\nstderr: %s", code, exitOK, stdout, stderr)
	}
	want := regexp.MustCompile(`^checkdarwin: 2 packages of example.com/probe type-check for darwin/arm64, darwin/amd64 \(\d+ packages checked in [0-9.]+s\)\n$`)
	if !want.MatchString(stdout) {
		t.Errorf("unexpected summary: %q", stdout)
	}
	if stderr != "" {
		t.Errorf("unexpected stderr: %q", stderr)
	}
}

func TestBrokenDarwinTestFilesFail(t *testing.T) {
	dir := probeModule(t, map[string]string{
		"probe.go":               portableFile,
		"nic_darwin.go":          goodDarwinFile,
		"nic_darwin_test.go":     "package probe\n\nimport \"testing\"\n\nfunc TestNIC(t *testing.T) {\n\tNIC(nil)\n}\n",
		"probe_ext_test.go":      "package probe_test\n\nimport (\n\t\"testing\"\n\n\t\"example.com/probe\"\n)\n\nfunc TestExt(t *testing.T) { probe.Missing() }\n",
		"probe_internal_test.go": "package probe\n\nimport \"testing\"\n\nfunc TestFine(t *testing.T) { _ = Name }\n",
	})
	code, _, stderr := runTool(t, "-dir", dir, "-arch", "arm64")
	if code != exitFailure {
		t.Fatalf("exit code %d, want %d\nstderr: %s", code, exitFailure, stderr)
	}
	for _, want := range []string{
		"nic_darwin_test.go:6:", // too few arguments
		"probe_ext_test.go:9:",  // undefined: probe.Missing
		"2 error(s) in example.com/probe",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	if code, stdout, stderr := runTool(t, "-dir", dir, "-arch", "arm64", "-test=false"); code != exitOK {
		t.Errorf("-test=false: exit code %d, want %d\nstdout: %s\nstderr: %s", code, exitOK, stdout, stderr)
	}
}

func TestArchSpecificError(t *testing.T) {
	dir := probeModule(t, map[string]string{
		"probe.go":              portableFile,
		"probe_darwin.go":       "package probe\n\nimport \"strconv\"\n\n// S needs a few standard packages checked first.\nvar S = strconv.Itoa(1)\n",
		"probe_darwin_amd64.go": "package probe\n\nvar onlyIntel uint8 = 300\n",
	})
	if code, stdout, stderr := runCheck(t, "-dir", dir, "-arch", "arm64"); code != exitOK {
		t.Fatalf("arm64 only: exit code %d, want %d\nstdout: %s\nstderr: %s", code, exitOK, stdout, stderr)
	}
	code, _, stderr := runCheck(t, "-dir", dir, "-arch", "arm64,amd64")
	if code != exitFailure {
		t.Fatalf("exit code %d, want %d\nstderr: %s", code, exitFailure, stderr)
	}
	want := regexp.MustCompile(`(?m)^probe_darwin_amd64\.go:3:23: .*overflows.*\[darwin/amd64\]$`)
	if !want.MatchString(stderr) {
		t.Errorf("stderr does not name the amd64-only error:\n%s", stderr)
	}
}

func TestBrokenImportFails(t *testing.T) {
	dir := probeModule(t, map[string]string{
		"probe.go":        portableFile,
		"probe_darwin.go": "package probe\n\nimport _ \"example.com/probe/missing\"\n",
	})
	code, _, stderr := runCheck(t, "-dir", dir, "-arch", "arm64")
	if code != exitFailure {
		t.Fatalf("exit code %d, want %d\nstderr: %s", code, exitFailure, stderr)
	}
	if !strings.Contains(stderr, "probe_darwin.go:3:") || !strings.Contains(stderr, "example.com/probe/missing") {
		t.Errorf("stderr does not name the broken import:\n%s", stderr)
	}
}

func TestSyntaxErrorFails(t *testing.T) {
	dir := probeModule(t, map[string]string{
		"probe.go":        portableFile,
		"probe_darwin.go": "package probe\n\nfunc f() {\n\treturn 1 +\n}\n",
	})
	code, _, stderr := runCheck(t, "-dir", dir, "-arch", "amd64")
	if code != exitFailure {
		t.Fatalf("exit code %d, want %d\nstderr: %s", code, exitFailure, stderr)
	}
	if !strings.Contains(stderr, "probe_darwin.go:5:") {
		t.Errorf("stderr does not name the syntax error:\n%s", stderr)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"-arch", "386"}, exitUsage, `"386" is not a darwin architecture`},
		{[]string{"-arch", ","}, exitUsage, "empty list"},
		{[]string{"extra"}, exitUsage, `unexpected argument "extra"`},
		{[]string{"-nope"}, exitUsage, "flag provided but not defined"},
		{[]string{"-dir", filepath.Join(t.TempDir(), "absent")}, exitFailure, "is not a directory"},
		{[]string{"-dir", t.TempDir()}, exitFailure, "go list for darwin/"},
	} {
		code, _, stderr := runCheck(t, tc.args...)
		if code != tc.code || !strings.Contains(stderr, tc.want) {
			t.Errorf("%q: exit %d, stderr %q; want exit %d and %q", tc.args, code, stderr, tc.code, tc.want)
		}
	}
}

func TestParsePos(t *testing.T) {
	for in, want := range map[string]string{
		"a/b.go:3:9":   "a/b.go:3:9",
		"a/b.go:3":     "a/b.go:3",
		"a/b.go":       "a/b.go",
		"c:\\x.go:4:2": "c:\\x.go:4:2",
	} {
		if got := parsePos(in).String(); got != want {
			t.Errorf("parsePos(%q) = %q, want %q", in, got, want)
		}
	}
}
