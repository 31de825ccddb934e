package testbin

import (
	"strings"
	"testing"
)

// RaceEnv is the GORACE setting for a race-enabled vmnetbar a test runs in
// the background: its exit status ignores data races (else 66) and it does
// not sleep at exit; the test calls CheckRaces on its standard error
// instead. fyne.io/systray v1.12.2 has races of its own (its menu
// revision counter is written under one lock and read under another),
// which a test must not fail on.
const RaceEnv = "GORACE=exitcode=0 atexit_sleep_ms=0"

// CheckRaces fails t for each data race reported in stderr (a race-enabled
// process's standard error) with an access in this module's code, and
// logs the others: races inside dependencies, which this module's
// goroutines may have called into but cannot fix.
func CheckRaces(t testing.TB, stderr string) {
	t.Helper()
	reports := strings.Split(stderr, "WARNING: DATA RACE")
	for _, r := range reports[1:] {
		if i := strings.Index(r, "=================="); i >= 0 {
			r = r[:i]
		}
		if RaceIsOurs(r) {
			t.Errorf("data race in the vmnetbar process:%s", r)
		} else {
			t.Logf("data race inside a dependency of the vmnetbar process (not in this module's code)")
		}
	}
}

// RaceIsOurs reports whether an access of a race report happened in this
// module's code: the first frame of the access's stack outside the
// runtime, reflect and sync packages is this module's.
func RaceIsOurs(report string) bool {
	inAccess, found := false, false
	for _, line := range strings.Split(report, "\n") {
		line = strings.TrimSpace(line)
		// Lines copied from a test log carry a "child: " prefix.
		if i := strings.Index(line, "child: "); i >= 0 {
			line = strings.TrimSpace(line[i+len("child: "):])
		}
		switch {
		case strings.HasPrefix(line, "Read at") || strings.HasPrefix(line, "Write at") ||
			strings.HasPrefix(line, "Previous read at") || strings.HasPrefix(line, "Previous write at") ||
			strings.HasPrefix(line, "Atomic") || strings.HasPrefix(line, "Previous atomic"):
			inAccess, found = true, false
		case !inAccess || found || line == "" || strings.HasPrefix(line, "/") || strings.HasPrefix(line, "<"):
			if line == "" {
				inAccess = false
			}
		case strings.HasPrefix(line, "runtime.") || strings.HasPrefix(line, "reflect.") ||
			strings.HasPrefix(line, "sync.") || strings.HasPrefix(line, "sync/atomic."):
		default:
			found = true
			if strings.HasPrefix(line, "github.com/vmnetbar/vmnetbar/") {
				return true
			}
		}
	}
	return false
}
