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

// TestGuestConfigEntries: several entries make a vms: section the app
// accepts, each VM with its own console log and daemon.
func TestGuestConfigEntries(t *testing.T) {
	dir := t.TempDir()
	kernel, initrd := filepath.Join(dir, "vmlinuz"), filepath.Join(dir, "initrd")
	for _, f := range []string{kernel, initrd} {
		if err := os.WriteFile(f, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	g := testguest.Guest{Kernel: kernel, Initrd: initrd}
	one := GuestConfig{Guest: g, ConsoleLog: filepath.Join(dir, "one.log"), Socket: filepath.Join(dir, "one.sock"), FastReconnect: true}
	two := GuestConfig{Guest: g, ConsoleLog: filepath.Join(dir, "two.log"), Socket: filepath.Join(dir, "two.sock")}
	text := "vms:\n" + one.Entry("one") + two.Entry("two")
	file := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(file, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(file, config.Options{StateDir: dir})
	if err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	a, b := cfg.Lookup("one"), cfg.Lookup("two")
	if a == nil || b == nil || a.ConsoleLog != one.ConsoleLog || b.Network.Socket != two.Socket ||
		a.Reconnect.InitialBackoff != 50*time.Millisecond || b.Reconnect.InitialBackoff == 50*time.Millisecond {
		t.Fatalf("loaded %+v from\n%s", cfg.VMs, text)
	}
}
