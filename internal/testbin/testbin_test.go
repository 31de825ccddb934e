package testbin

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/vmnetbar/vmnetbar/app/config"
	"github.com/vmnetbar/vmnetbar/internal/testguest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestGuestConfigLoads checks that the app accepts the configuration and
// reads back what was asked for.
func TestGuestConfigLoads(t *testing.T) {
	dir := t.TempDir()
	kernel, initrd := filepath.Join(dir, "vmlinuz"), filepath.Join(dir, "initrd")
	for _, f := range []string{kernel, initrd} {
		if err := os.WriteFile(f, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	c := GuestConfig{Guest: testguest.Guest{Kernel: kernel, Initrd: initrd}, Options: testguest.Options{},
		ConsoleLog: filepath.Join(dir, "console.log"), Socket: filepath.Join(dir, "daemon.sock"), FastReconnect: true}
	file := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(file, []byte(c.YAML()), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(file, config.Options{StateDir: dir})
	if err != nil {
		t.Fatalf("%v\n%s", err, c.YAML())
	}
	if cfg.VM.Kernel != kernel || cfg.VM.ConsoleLog != c.ConsoleLog || cfg.Network.Socket != c.Socket ||
		cfg.VM.CPUs != 1 || cfg.Reconnect.InitialBackoff != 50*time.Millisecond || cfg.Reconnect.MaxBackoff != 500*time.Millisecond {
		t.Fatalf("loaded %+v from\n%s", cfg, c.YAML())
	}
}
