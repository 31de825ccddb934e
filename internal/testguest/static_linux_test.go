package testguest_test

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vmnetbar/vmnetbar/internal/testdaemon"
	"github.com/vmnetbar/vmnetbar/internal/testguest"
)

// TestStaticAddress boots the guest with a static address on gvproxy (QEMU's
// own stream client, no DHCP): it configures the address and route, says so
// on the console and its pings to the gateway come back.
func TestStaticAddress(t *testing.T) {
	t.Parallel()
	g := testguest.Ensure(t)
	dir, err := os.MkdirTemp("", "vnbtg") // short: the socket path must fit
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	d := testdaemon.Start(t, dir)
	console := filepath.Join(t.TempDir(), "console.log")
	q := testguest.StartQEMU(t, testguest.QEMUConfig{
		Guest: g,
		Cmdline: testguest.Cmdline(testguest.Options{
			Static:        netip.MustParsePrefix("192.168.127.50/24"),
			StaticGateway: netip.MustParseAddr("192.168.127.1"),
			Pings:         2, Interval: 200 * time.Millisecond, PowerOff: true,
		}),
		ConsoleLog: console,
		NetArgs: []string{
			"-netdev", "stream,id=n0,server=off,addr.type=unix,addr.path=" + d.SocketPath(),
			"-device", "virtio-net-pci,netdev=n0",
		},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := q.Wait(ctx); err != nil {
		t.Fatalf("QEMU: %v", err)
	}
	raw, err := os.ReadFile(console)
	if err != nil {
		t.Fatal(err)
	}
	l := testguest.ParseLog(raw)
	if !l.Static || l.Addr != "192.168.127.50/24" || l.Gateway != "192.168.127.1" || l.OKPings() != 2 || !l.PingsDone || len(l.Errors) > 0 {
		t.Fatalf("console: %s", l.Summary())
	}
	if strings.Contains(string(raw), "VMNETBAR-DHCP") {
		t.Errorf("the guest ran DHCP although it has a static address")
	}
}

// TestStaticAddressInvalid: a vmnetbar.static value that is not
// ADDRESS/PREFIXLEN[,GATEWAY] is reported on the console and configures
// nothing: no address, no pings, and the guest still gets ready.
func TestStaticAddressInvalid(t *testing.T) {
	t.Parallel()
	g := testguest.Ensure(t)
	// A NIC with nothing behind it: one end of a datagram socketpair.
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_DGRAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	vmEnd, hostEnd := os.NewFile(uintptr(fds[0]), "vm"), os.NewFile(uintptr(fds[1]), "host")
	t.Cleanup(func() { hostEnd.Close() })
	console := filepath.Join(t.TempDir(), "console.log")
	q := testguest.StartQEMU(t, testguest.QEMUConfig{
		Guest:      g,
		Cmdline:    testguest.Cmdline(testguest.Options{Pings: 2, PowerOff: true}) + " vmnetbar.static=192.168.127.50",
		ConsoleLog: console,
		NetArgs: []string{
			"-netdev", "dgram,id=n0,local.type=fd,local.str=3",
			"-device", "virtio-net-pci,netdev=n0",
		},
		ExtraFiles: []*os.File{vmEnd},
	})
	vmEnd.Close() // QEMU has its copy
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := q.Wait(ctx); err != nil {
		t.Fatalf("QEMU: %v", err)
	}
	l, err := testguest.ReadLog(console)
	if err != nil {
		t.Fatal(err)
	}
	if l.Static || l.Addr != "" || !l.Ready || len(l.Pings) != 0 || l.PowerOff != "cmdline" {
		t.Fatalf("console: %s", l.Summary())
	}
	if len(l.Errors) != 1 || !strings.Contains(l.Errors[0], "vmnetbar.static=192.168.127.50 is not ADDRESS/PREFIXLEN") {
		t.Fatalf("errors on the console: %q, want one naming vmnetbar.static", l.Errors)
	}
}
