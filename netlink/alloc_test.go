package netlink

import (
	"runtime"
	"testing"
	"time"
)

// TestNoAllocationPerFrame runs frames both ways through the link (VM ->
// echoing daemon -> VM) and counts heap allocations of the whole process:
// the harness allocates nothing per frame, so any per-frame allocation in
// the link shows.
func TestNoAllocationPerFrame(t *testing.T) {
	vm, _, _, c := linked(t, Config{})
	go func() {
		dec := NewDecoder(0)
		enc := NewEncoder(c)
		for {
			f, err := dec.ReadFrame(c)
			if err != nil {
				return
			}
			if enc.WriteFrame(f) != nil {
				return
			}
		}
	}()
	frame := make([]byte, 1514)
	buf := make([]byte, MaxFrameSize+1)
	vm.SetReadDeadline(time.Now().Add(time.Minute))
	roundTrips := func(n int) {
		for i := 0; i < n; i++ {
			if _, err := vm.Write(frame); err != nil {
				t.Fatal(err)
			}
			if _, err := vm.Read(buf); err != nil {
				t.Fatal(err)
			}
		}
	}
	roundTrips(500) // warm up
	const n = 5000
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	roundTrips(n)
	runtime.ReadMemStats(&after)
	if allocs := after.Mallocs - before.Mallocs; allocs > n/50 {
		t.Errorf("%d allocations for %d round trips", allocs, n)
	}
}
