package testguest

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestOptionsParams(t *testing.T) {
	cases := []struct {
		o    Options
		want string
	}{
		{Options{}, ""},
		{Options{Pings: 3, PowerOff: true}, "vmnetbar.ping=3 vmnetbar.poweroff=1"},
		{Options{Forever: true, Pings: 9, Interval: 250 * time.Millisecond}, "vmnetbar.ping=forever vmnetbar.interval=0.25"},
		{Options{Pings: 1, Interval: 2 * time.Second}, "vmnetbar.ping=1 vmnetbar.interval=2"},
		{Options{Static: netip.MustParsePrefix("192.168.127.50/24"), StaticGateway: netip.MustParseAddr("192.168.127.1"), Pings: 2},
			"vmnetbar.static=192.168.127.50/24,192.168.127.1 vmnetbar.ping=2"},
		{Options{Static: netip.MustParsePrefix("10.0.0.7/8")}, "vmnetbar.static=10.0.0.7/8"},
		// A gateway without a static address means nothing: DHCP says it.
		{Options{StaticGateway: netip.MustParseAddr("192.168.127.1")}, ""},
	}
	for _, c := range cases {
		if got := c.o.Params(); got != c.want {
			t.Errorf("%+v.Params() = %q, want %q", c.o, got, c.want)
		}
	}
	if got, want := Cmdline(Options{PowerOff: true}), "console=ttyS0 quiet panic=-1 vmnetbar.poweroff=1"; got != want {
		t.Errorf("Cmdline = %q, want %q", got, want)
	}
}

func TestParseLog(t *testing.T) {
	console := "SeaBIOS\r\n\x1b[2JVMNETBAR-BOOT kernel=6.1.0-56-cloud-amd64\r\n" +
		"VMNETBAR-ACPID ok\n" +
		"[    1.0] virtio_net: something\n" +
		"VMNETBAR-DHCP ip=192.168.127.3/24 gw=192.168.127.1\n" +
		"VMNETBAR-READY t=3.79\n" +
		"VMNETBAR-PING seq=1 ok t=3.82\n" +
		"VMNETBAR-PING seq=2 fail t=4.85\n" +
		"VMNETBAR-ERROR insmod x.ko failed\n" +
		"VMNETBAR-PING seq=3 ok t=5.5\n" +
		"VMNETBAR-PINGS-DONE ok=2 fail=1\n" +
		"VMNETBAR-POWEROFF reason=cmdline\n" +
		"VMNETBAR-PING seq=4 ok" // partial line: ignored
	l := ParseLog([]byte(console))
	if !l.Booted || l.Boots != 1 || l.Kernel != "6.1.0-56-cloud-amd64" || !l.ACPID || !l.Ready || l.NoNIC || l.DHCPFail {
		t.Errorf("flags wrong: %+v", l)
	}
	if l.Addr != "192.168.127.3/24" || l.Gateway != "192.168.127.1" {
		t.Errorf("lease = %q %q", l.Addr, l.Gateway)
	}
	want := []Ping{{1, true, 3820 * time.Millisecond}, {2, false, 4850 * time.Millisecond}, {3, true, 5500 * time.Millisecond}}
	if len(l.Pings) != len(want) {
		t.Fatalf("pings = %+v, want %+v", l.Pings, want)
	}
	for i := range want {
		d := l.Pings[i].Uptime - want[i].Uptime
		if l.Pings[i].Seq != want[i].Seq || l.Pings[i].OK != want[i].OK || d > time.Millisecond || d < -time.Millisecond {
			t.Errorf("ping %d = %+v, want %+v", i, l.Pings[i], want[i])
		}
	}
	if l.OKPings() != 2 || !l.PingsDone || l.PowerOff != "cmdline" || len(l.Errors) != 1 {
		t.Errorf("summary wrong: %s", l.Summary())
	}
	if p, ok := l.LastPing(); !ok || p.Seq != 3 {
		t.Errorf("LastPing = %+v %v", p, ok)
	}
	if l := ParseLog([]byte("VMNETBAR-BOOT kernel=x")); l.Booted {
		t.Error("a line without newline was parsed")
	}
	if l.Static {
		t.Error("a DHCP lease was taken for a static address")
	}
}

func TestParseLogStatic(t *testing.T) {
	l := ParseLog([]byte("VMNETBAR-BOOT kernel=x\nVMNETBAR-STATIC ip=192.168.127.50/24 gw=192.168.127.1\nVMNETBAR-READY t=2.5\n"))
	if !l.Static || l.Addr != "192.168.127.50/24" || l.Gateway != "192.168.127.1" || !l.Ready {
		t.Errorf("static: %s", l.Summary())
	}
	// No gateway, from either source, is "".
	for _, line := range []string{
		"VMNETBAR-STATIC ip=10.0.0.7/8 gw=none\n",
		"VMNETBAR-DHCP ip=10.0.0.7/8 gw=none\n",
	} {
		if l := ParseLog([]byte(line)); l.Addr != "10.0.0.7/8" || l.Gateway != "" {
			t.Errorf("%q: addr %q gateway %q, want 10.0.0.7/8 and none", line, l.Addr, l.Gateway)
		}
	}
}

func TestBuildMissingBusybox(t *testing.T) {
	t.Setenv("VMNETBAR_BUSYBOX", "/nonexistent/busybox")
	_, err := Build(context.Background())
	if !errors.Is(err, ErrMissingDependency) {
		t.Fatalf("Build with no busybox: err = %v, want ErrMissingDependency", err)
	}
	t.Logf("error: %v", err)
}

func TestBuildIsCached(t *testing.T) {
	g := Ensure(t)
	before := modTimes(t, g)
	again, err := Build(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if again != g {
		t.Fatalf("second build gave %+v, first %+v", again, g)
	}
	// Served from the cache: the files were not built again.
	if after := modTimes(t, g); after != before {
		t.Fatalf("the guest's files were rewritten: %v, before %v", after, before)
	}
}

func modTimes(t *testing.T, g Guest) [2]time.Time {
	t.Helper()
	var m [2]time.Time
	for i, p := range []string{g.Kernel, g.Initrd} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		m[i] = fi.ModTime()
	}
	return m
}

func TestBootAndPowerOffFromCmdline(t *testing.T) {
	t.Parallel()
	g := Ensure(t)
	console := filepath.Join(t.TempDir(), "console.log")
	start := time.Now()
	q := StartQEMU(t, QEMUConfig{Guest: g, Cmdline: Cmdline(Options{PowerOff: true}), ConsoleLog: console})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := q.Wait(ctx); err != nil {
		l, _ := ReadLog(console)
		t.Fatalf("QEMU: %v; console: %s", err, l.Summary())
	}
	t.Logf("boot to power-off took %v", time.Since(start))
	l, err := ReadLog(console)
	if err != nil {
		t.Fatal(err)
	}
	if !l.Booted || !l.ACPID || !l.NoNIC || !l.Ready || l.PowerOff != "cmdline" || len(l.Errors) > 0 {
		t.Fatalf("console: %s", l.Summary())
	}
}

func TestPowerButton(t *testing.T) {
	t.Parallel()
	g := Ensure(t)
	console := filepath.Join(t.TempDir(), "console.log")
	q := StartQEMU(t, QEMUConfig{Guest: g, Cmdline: Cmdline(Options{}), ConsoleLog: console})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if _, err := WaitLog(ctx, console, q.Done(), "the guest to be ready", func(l Log) bool { return l.Ready && l.ACPID }); err != nil {
		t.Fatal(err)
	}
	// A guest that is busy (a loaded machine, TCG) can miss a press even
	// after acpid is up, as vmhost knows: press again every 2 s.
	for pressed := false; !pressed; {
		if err := q.PowerButton(ctx); err != nil {
			select {
			case <-q.Done(): // it powered off after the previous press
				pressed = true
				continue
			default:
			}
			t.Fatal(err)
		}
		select {
		case <-q.Done():
			pressed = true
		case <-time.After(2 * time.Second):
		case <-ctx.Done():
			t.Fatalf("QEMU still runs after the power button: %v", ctx.Err())
		}
	}
	if err := q.Wait(ctx); err != nil {
		t.Fatalf("QEMU after the power button: %v", err)
	}
	l, err := ReadLog(console)
	if err != nil {
		t.Fatal(err)
	}
	if l.PowerOff != "button" {
		t.Fatalf("console: %s", l.Summary())
	}
}
