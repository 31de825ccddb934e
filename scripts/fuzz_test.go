package scripts

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// fuzzModule writes a module with fuzz targets: two that pass, in two
// packages (one in an external test package), one that fails on its seed
// when fail is set, and things that look like targets but are not.
func fuzzModule(t *testing.T, fail bool) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"go.mod": "module example.com/fz\n\ngo 1.22\n",
		"a/a.go": "package a\n\nfunc Parse(b []byte) int { return len(b) }\n",
		"a/a_test.go": `package a

import "testing"

func FuzzParse(f *testing.F) {
	f.Add([]byte("x"))
	f.Fuzz(func(t *testing.T, b []byte) { Parse(b) })
}

// Fuzzy is not a fuzz target (a lower-case letter follows Fuzz).
func Fuzzy() {}

func TestParse(t *testing.T) { t.Fatal("unit tests do not run while fuzzing") }
`,
		"b/b.go": "package b\n",
		"b/b_test.go": `package b_test

import "testing"

func Fuzz_Other(f *testing.F) {
	f.Add(1)
	f.Fuzz(func(t *testing.T, n int) {})
}
`,
		"c/c.go": "package c\n", // no tests
		"d/d_test.go": `//go:build ignore

package d

import "testing"

func FuzzIgnored(f *testing.F) { f.Fuzz(func(t *testing.T, b []byte) { t.Fatal("built") }) }
`,
	}
	if fail {
		files["b/bad_test.go"] = `package b

import "testing"

func FuzzBad(f *testing.F) {
	f.Add([]byte("boom"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if string(b) == "boom" {
			t.Fatal("boom")
		}
	})
}
`
	}
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func runFuzz(t *testing.T, dir string) (string, int) {
	t.Helper()
	if _, err := exec.LookPath("go"); err != nil {
		t.Skipf("no go: %v", err)
	}
	script, err := filepath.Abs("fuzz.sh")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bashPath(t), script)
	cmd.Dir = dir
	// 50 inputs per target: enough to run each, quick.
	cmd.Env = append(os.Environ(), "FUZZTIME=50x", "GOFLAGS=", "GOWORK=off", "GOTOOLCHAIN=local")
	b, err := cmd.CombinedOutput()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatal(err)
		}
		code = ee.ExitCode()
	}
	return string(b), code
}

// TestFuzzRunsEveryTarget: every fuzz target of every package runs, and
// nothing else does.
func TestFuzzRunsEveryTarget(t *testing.T) {
	out, code := runFuzz(t, fuzzModule(t, false))
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	for _, want := range []string{
		"fuzz: 2 targets, 50x each",
		"fuzz: FuzzParse in example.com/fz/a\n",
		"fuzz: Fuzz_Other in example.com/fz/b\n",
		"fuzz: all 2 targets passed",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	for _, bad := range []string{"Fuzzy", "FuzzIgnored", "unit tests do not run"} {
		if strings.Contains(out, bad) {
			t.Errorf("output mentions %q:\n%s", bad, out)
		}
	}
}

// TestFuzzFails: a failing target fails the run and is named; the others
// still run.
func TestFuzzFails(t *testing.T) {
	out, code := runFuzz(t, fuzzModule(t, true))
	if code != 1 {
		t.Fatalf("exit %d, want 1:\n%s", code, out)
	}
	for _, want := range []string{
		"fuzz: 3 targets, 50x each",
		"fuzz: FuzzParse in example.com/fz/a\n",
		"fuzz: Fuzz_Other in example.com/fz/b\n",
		"fuzz: FAILED: FuzzBad in example.com/fz/b",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "all 3 targets passed") {
		t.Errorf("a failing run says all passed:\n%s", out)
	}
}

// TestFuzzBadPackage: targets that cannot be listed are an error, not a
// silent pass.
func TestFuzzBadPackage(t *testing.T) {
	dir := fuzzModule(t, false)
	if err := os.WriteFile(filepath.Join(dir, "a", "broken.go"), []byte("package other\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, code := runFuzz(t, dir)
	if code != 2 || !strings.Contains(out, "fuzz: go list ./... failed") {
		t.Fatalf("exit %d, want 2 and the go list failure:\n%s", code, out)
	}
}

// TestFuzzFindsTheModulesTargets: in this module, the discovery finds the
// stream decoder's target (so make test cannot pass by fuzzing nothing).
func TestFuzzFindsTheModulesTargets(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skipf("no go: %v", err)
	}
	// A go that lists for real but prints what it is asked to fuzz
	// instead of fuzzing.
	bin := t.TempDir()
	goPath, _ := exec.LookPath("go")
	writeExec(t, filepath.Join(bin, "go"), `case "$1 $2" in
"list "*|"test -list") exec "`+goPath+`" "$@" ;;
esac
echo "would run: $*"
`)
	script, _ := filepath.Abs("fuzz.sh")
	cmd := exec.Command(bashPath(t), script)
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "GO="+filepath.Join(bin, "go"), "FUZZTIME=1s")
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v:\n%s", err, b)
	}
	if want := "would run: test -run ^$ -fuzz ^FuzzDecoder$ -fuzztime 1s github.com/vmnetbar/vmnetbar/netlink"; !strings.Contains(string(b), want) {
		t.Errorf("output lacks %q:\n%s", want, b)
	}
}

// TestFuzzDeadlineRaceRetried: a run that ends only with Go's fuzzing
// coordinator racing its -fuzztime deadline (go.dev/issue/75804: "context
// deadline exceeded", nothing found) is run once more; a real finding is
// not retried.
func TestFuzzDeadlineRaceRetried(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skipf("no go: %v", err)
	}
	goPath, _ := exec.LookPath("go")
	for _, tc := range []struct {
		name, first string
		code, runs  int
	}{
		{"deadline race", "--- FAIL: FuzzParse (5.01s)\n    context deadline exceeded\nFAIL", 0, 2},
		{"real finding", "--- FAIL: FuzzParse (0.10s)\n    a_test.go:7: boom\n    Failing input written to testdata/fuzz/FuzzParse/x\n    context deadline exceeded\nFAIL", 1, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bin, state := t.TempDir(), t.TempDir()
			// A go that lists for real; its first fuzz run fails with
			// tc.first, later ones pass.
			writeExec(t, filepath.Join(bin, "go"), `case "$1 $2" in
"list "*|"test -list") exec "`+goPath+`" "$@" ;;
esac
echo run >>"`+state+`/runs"
if [ "$(wc -l <"`+state+`/runs")" -eq 1 ]; then
	printf '%s\n' '`+strings.ReplaceAll(tc.first, "\n", "' '")+`'
	exit 1
fi
echo ok
`)
			dir := t.TempDir()
			for name, text := range map[string]string{
				"go.mod":      "module example.com/fz\n\ngo 1.22\n",
				"a/a.go":      "package a\n",
				"a/a_test.go": "package a\n\nimport \"testing\"\n\nfunc FuzzParse(f *testing.F) { f.Fuzz(func(t *testing.T, b []byte) {}) }\n",
			} {
				if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			script, _ := filepath.Abs("fuzz.sh")
			cmd := exec.Command(bashPath(t), script)
			cmd.Dir = dir
			cmd.Env = append(os.Environ(), "GO="+filepath.Join(bin, "go"), "FUZZTIME=1s")
			b, err := cmd.CombinedOutput()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			}
			runs, _ := os.ReadFile(filepath.Join(state, "runs"))
			if code != tc.code || strings.Count(string(runs), "run") != tc.runs {
				t.Fatalf("exit %d after %d runs, want %d after %d:\n%s", code, strings.Count(string(runs), "run"), tc.code, tc.runs, b)
			}
		})
	}
}
