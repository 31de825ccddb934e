package scripts

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// makeDryRun prints what make would run for the targets in the repository
// (make -n runs nothing but recursive makes, which get -n too).
func makeDryRun(t *testing.T, args ...string) string {
	t.Helper()
	if _, err := exec.LookPath("make"); err != nil {
		t.Skipf("no make: %v", err)
	}
	cmd := exec.Command("make", append([]string{"-n", "-C", ".."}, args...)...)
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "GO", "FUZZTIME", "FUZZTIME_TEST":
			continue // make test's own settings when it runs this test
		}
		cmd.Env = append(cmd.Env, kv)
	}
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make -n %s: %v\n%s", strings.Join(args, " "), err, b)
	}
	return string(b)
}

// TestMakeTestFuzzesAndLints: make test runs every fuzz target briefly and
// checks the workflows with actionlint; make fuzz runs every target longer.
func TestMakeTestFuzzesAndLints(t *testing.T) {
	out := makeDryRun(t, "test")
	for _, want := range []string{
		"FUZZTIME=5s GO=go scripts/fuzz.sh",
		"actionlint -shellcheck= -pyflakes= .github/workflows/*.yml",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("make test does not run %q:\n%s", want, out)
		}
	}
	if out := makeDryRun(t, "fuzz"); !strings.Contains(out, "FUZZTIME=60s GO=go scripts/fuzz.sh") {
		t.Errorf("make fuzz does not run every target for 60s:\n%s", out)
	}
	if out := makeDryRun(t, "fuzz", "FUZZTIME=10m"); !strings.Contains(out, "FUZZTIME=10m GO=go scripts/fuzz.sh") {
		t.Errorf("make fuzz FUZZTIME=10m does not fuzz for 10m:\n%s", out)
	}
}

// TestWorkflow: the GitHub Actions workflow runs .ci/run on Linux, and on
// macOS builds, vets, tests without CI=true (GitHub sets it; it turns a
// missing QEMU into a failure), builds the signed app and checks its
// entitlement. actionlint (make lint-ci) checks that the file is valid.
func TestWorkflow(t *testing.T) {
	b, err := os.ReadFile("../.github/workflows/ci.yml")
	if err != nil {
		t.Fatal(err)
	}
	wf := string(b)
	for _, want := range []string{
		"run: .ci/run",
		"runs-on: macos-14",
		"go vet ./...",
		`CI: "false"`,
		"make app sign",
		"codesign -d --entitlements - build/vmnetbar.app 2>&1 | grep com.apple.security.virtualization",
		"make build",
	} {
		if !strings.Contains(wf, want) {
			t.Errorf(".github/workflows/ci.yml lacks %q", want)
		}
	}
}
