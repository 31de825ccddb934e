package netlink

import "testing"

// TestPeerProbeDoesNotAllocate: a check reuses the probe's buffers, so a
// long-running link does not feed the garbage collector twice a second.
// (Linux only: elsewhere the probe is getpeername, whose Go wrapper
// allocates the address.)
func TestPeerProbeDoesNotAllocate(t *testing.T) {
	_, host := vmPair(t)
	rc, err := host.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	p, err := newPeerProbe(rc)
	if err != nil {
		t.Fatalf("no probe on this machine: %v", err)
	}
	defer p.close()
	if n := testing.AllocsPerRun(100, func() {
		if gone, err := p.gone(); gone || err != nil {
			t.Fatalf("gone %v, %v", gone, err)
		}
	}); n != 0 {
		t.Errorf("%v allocations per check, want 0", n)
	}
}
