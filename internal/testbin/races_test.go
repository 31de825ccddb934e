package testbin

import "testing"

// TestRaceIsOurs: a race between two accesses inside a dependency, even
// one called from this module, is not this module's; one whose access is in
// this module's code is.
func TestRaceIsOurs(t *testing.T) {
	dependency := `
Write at 0x00c000461770 by goroutine 44:
  reflect.typedmemmove()
      /usr/local/go/src/runtime/mbarrier.go:213 +0x0
  github.com/godbus/dbus/v5.setDest()
      /root/go/pkg/mod/github.com/godbus/dbus/v5@v5.1.0/dbus.go:101 +0x593
  github.com/vmnetbar/vmnetbar/app/tray.(*tray).setIcon()
      /work/main/app/tray/tray.go:520 +0x1c1

Previous read at 0x00c000461770 by goroutine 108:
  reflect.Value.Int()
      /usr/local/go/src/reflect/value.go:1 +0x1
  github.com/godbus/dbus/v5.(*encoder).encode()
      /root/go/pkg/mod/github.com/godbus/dbus/v5@v5.1.0/encoder.go:1 +0x1

Goroutine 44 (running) created at:
  github.com/vmnetbar/vmnetbar/app/tray.(*tray).onReady()
      /work/main/app/tray/tray.go:1 +0x1
`
	ours := `
Read at 0x00c000461770 by goroutine 12:
  runtime.mapaccess1_faststr()
      /usr/local/go/src/runtime/map.go:1 +0x1
  github.com/vmnetbar/vmnetbar/app/tray.(*tray).handle()
      /work/main/app/tray/tray.go:1 +0x1

Previous write at 0x00c000461770 by goroutine 13:
  github.com/vmnetbar/vmnetbar/app/tray.(*tray).render()
      /work/main/app/tray/tray.go:2 +0x1
`
	if RaceIsOurs(dependency) {
		t.Error("a race between two godbus accesses was attributed to this module")
	}
	if !RaceIsOurs(ours) {
		t.Error("a race in this module's code was not attributed to it")
	}
}
