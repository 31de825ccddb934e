package e2e

import (
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/vmnetbar/vmnetbar/internal/testbin"
)

func TestMain(m *testing.M) {
	// The vmnetbar binary the tests share goes once they have all run.
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		testbin.Remove()
		os.Exit(code)
	}))
}
