package e2e

import (
	"context"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/vmnetbar/vmnetbar/internal/testdaemon"
	"github.com/vmnetbar/vmnetbar/internal/testguest"
	"github.com/vmnetbar/vmnetbar/netlink"
	"github.com/vmnetbar/vmnetbar/vmhost"
)

// guestRig is the test guest booted through vmhost with its NIC on a
// netlink link to gvproxy (internal/testdaemon), a frameTap between the
// link and gvproxy recording the frames on the daemon's stream.
type guestRig struct {
	console string
	mac     net.HardwareAddr
	daemon  *testdaemon.Daemon
	tap     *frameTap
	link    *netlink.Link
	vm      vmhost.VM
}

// startGuestRig boots the guest with opts. The test's cleanup stops the VM
// (gracefully, then forced), the link, the tap and gvproxy, in that order,
// and fails the test if any of its processes is left.
func startGuestRig(t *testing.T, opts testguest.Options) *guestRig {
	t.Helper()
	guest := needGuest(t)
	dir := guestDir(t, "vnbga")
	log := testLogger(t)
	var err error
	r := &guestRig{console: filepath.Join(dir, "console.log")}
	r.daemon = testdaemon.Start(t, dir)
	r.tap = startTap(t, dir, r.daemon.SocketPath())

	if r.mac, err = vmhost.RandomMAC(); err != nil {
		t.Fatal(err)
	}
	vmEnd, hostEnd, err := netlink.NewSocketPair()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hostEnd.Close() })
	// As the app does: the VM's MAC from its configuration.
	r.link, err = netlink.New(hostEnd, netlink.Config{Socket: r.tap.Path(), MAC: r.mac, Logger: log.WithField("part", "link")})
	if err != nil {
		vmEnd.Close()
		t.Fatal(err)
	}
	linkCtx, stopLink := context.WithCancel(context.Background())
	linkDone := make(chan error, 1)
	go func() { linkDone <- r.link.Run(linkCtx) }()
	t.Cleanup(func() {
		stopLink()
		if err := <-linkDone; err != nil {
			t.Errorf("link Run: %v", err)
		}
	})

	r.vm, err = vmhost.New(vmhost.Config{
		Kernel:      guest.Kernel,
		Initrd:      guest.Initrd,
		Cmdline:     testguest.Cmdline(opts),
		CPUs:        1,
		Memory:      256 * vmhost.MiB,
		MAC:         r.mac,
		ConsoleLog:  r.console,
		QEMUOptions: vmhost.QEMUOptions{Accel: "tcg"},
		NIC:         vmEnd,
	}, log.WithField("part", "vm"))
	if err != nil {
		vmEnd.Close()
		t.Fatal(err)
	}
	startCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := r.vm.Start(startCtx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := r.vm.Stop(ctx, 10*time.Second); err != nil {
			t.Errorf("stopping the VM: %v", err)
		}
	})
	return r
}

// consoleProbe reads the guest's console log for a poll loop: when a line
// first shows, the times around the read that found it and the one before
// bound when it appeared.
type consoleProbe struct {
	path string
	// lastMiss: the start of the last read that did not find the line (the
	// line appeared after it); found: the end of the first read that did.
	lastMiss, found time.Time
	log             testguest.Log
}

// poll reads the log once and reports whether want holds for it (now or
// at an earlier poll).
func (c *consoleProbe) poll(t *testing.T, want func(testguest.Log) bool) bool {
	t.Helper()
	if !c.found.IsZero() {
		return true
	}
	before := time.Now()
	l, err := testguest.ReadLog(c.path)
	if err != nil {
		t.Fatal(err)
	}
	after := time.Now()
	c.log = l
	if want(l) {
		c.found = after
		return true
	}
	c.lastMiss = before
	return false
}
