package latest

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// recv reads one value or fails after a deadline (it never hangs).
func recv[T any](t *testing.T, ch <-chan T) (T, bool) {
	t.Helper()
	select {
	case v, ok := <-ch:
		return v, ok
	case <-time.After(10 * time.Second):
		t.Fatal("no value and no close within 10s")
		var zero T
		return zero, false
	}
}

// empty fails if ch holds a value or is closed.
func empty[T any](t *testing.T, ch <-chan T, why string) {
	t.Helper()
	select {
	case v, ok := <-ch:
		t.Fatalf("%s: got %v (open %v), want nothing", why, v, ok)
	default:
	}
}

func TestHubCoalescesForASlowReader(t *testing.T) {
	var h Hub[int] // the zero Hub is ready
	ch, cancel := h.Subscribe()
	defer cancel()
	empty(t, ch, "Subscribe")
	for i := 1; i <= 3; i++ {
		h.Publish(i)
	}
	if v, _ := recv(t, ch); v != 3 {
		t.Fatalf("read %d, want the latest value 3", v)
	}
	empty(t, ch, "after the latest value")
}

func TestHubEverySubscriberGetsTheLatest(t *testing.T) {
	var h Hub[int]
	a, cancelA := h.Subscribe()
	defer cancelA()
	b, cancelB := h.Subscribe()
	defer cancelB()
	h.Publish(1)
	if v, _ := recv(t, a); v != 1 {
		t.Fatalf("a read %d, want 1", v)
	}
	h.Publish(2)
	if v, _ := recv(t, a); v != 2 {
		t.Fatalf("a read %d, want 2", v)
	}
	if v, _ := recv(t, b); v != 2 {
		t.Fatalf("b, which read nothing before, read %d, want 2", v)
	}
	if n := h.Len(); n != 2 {
		t.Errorf("Len %d, want 2", n)
	}
}

func TestHubPublishNeverBlocks(t *testing.T) {
	var h Hub[int]
	_, cancel := h.Subscribe() // never read
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 10000; i++ {
			h.Publish(i)
			h.PublishFunc(func() int { return i })
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Publish blocked on a subscriber that does not read")
	}
}

func TestHubSubscribeWithHoldsTheFirstValue(t *testing.T) {
	var h Hub[string]
	ch, cancel := h.SubscribeWith("now")
	defer cancel()
	if v, _ := recv(t, ch); v != "now" {
		t.Fatalf("read %q, want the first value", v)
	}
	h.Publish("later")
	if v, _ := recv(t, ch); v != "later" {
		t.Fatalf("read %q, want later", v)
	}
	// A value published before the first was read replaces it.
	ch2, cancel2 := h.SubscribeWith("old")
	defer cancel2()
	h.Publish("new")
	if v, _ := recv(t, ch2); v != "new" {
		t.Fatalf("read %q, want new", v)
	}
}

func TestHubCancelIsIdempotentAndStopsDelivery(t *testing.T) {
	var h Hub[int]
	ch, cancel := h.Subscribe()
	other, cancelOther := h.Subscribe()
	defer cancelOther()
	h.Publish(1)
	cancel()
	cancel()
	// The value held at cancel may still be read; then the channel is
	// closed.
	for range ch {
	}
	h.Publish(2) // must not send on the closed channel
	if v, _ := recv(t, other); v != 2 {
		t.Fatalf("the other subscriber read %d, want 2", v)
	}
	if n := h.Len(); n != 1 {
		t.Errorf("Len %d after one cancel, want 1", n)
	}
	h.Close()
	cancel() // after Close too
	cancelOther()
}

func TestHubCancelRacingPublishAndClose(t *testing.T) {
	var h Hub[int]
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		ch, cancel := h.Subscribe()
		wg.Add(3)
		go func() { defer wg.Done(); cancel() }()
		go func() { defer wg.Done(); cancel() }()
		go func() {
			defer wg.Done()
			for range ch {
			}
		}()
	}
	wg.Add(2)
	go func() {
		defer wg.Done()
		for i := 0; i < 1000; i++ {
			h.Publish(i)
		}
	}()
	go func() { defer wg.Done(); h.Close() }()
	wg.Wait()
}

func TestHubCloseClosesEverySubscription(t *testing.T) {
	var h Hub[int]
	a, cancelA := h.Subscribe()
	b, cancelB := h.SubscribeWith(7)
	h.Publish(9)
	h.Close()
	h.Close() // idempotent
	for _, ch := range []<-chan int{a, b} {
		if v, ok := recv(t, ch); !ok || v != 9 {
			t.Fatalf("read %d (open %v), want the last value 9 before the close", v, ok)
		}
		if _, ok := recv(t, ch); ok {
			t.Fatal("channel open after Close")
		}
	}
	cancelA()
	cancelB()
	h.Publish(10) // nothing to deliver to, no panic
	h.PublishFunc(func() int { t.Error("PublishFunc called f after Close"); return 0 })

	late, cancelLate := h.Subscribe()
	if _, ok := recv(t, late); ok {
		t.Error("Subscribe after Close: the channel is open")
	}
	cancelLate()
	final, cancelFinal := h.SubscribeWith(11)
	if v, ok := recv(t, final); !ok || v != 11 {
		t.Errorf("SubscribeWith after Close read %d (open %v), want its first value", v, ok)
	}
	if _, ok := recv(t, final); ok {
		t.Error("SubscribeWith after Close: the channel is open after the first value")
	}
	cancelFinal()
	if n := h.Len(); n != 0 {
		t.Errorf("Len %d after Close, want 0", n)
	}
}

// TestHubPublishFuncOrdersConcurrentPublishers: f runs under the Hub's
// lock, so the values reach readers in the order they were made: a reader
// never sees the state go backwards and ends on the newest.
func TestHubPublishFuncOrdersConcurrentPublishers(t *testing.T) {
	var h Hub[int64]
	var state atomic.Int64
	ch, cancel := h.Subscribe()
	var last int64
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		for v := range ch {
			if v < last {
				t.Errorf("state went backwards: %d after %d", v, last)
			}
			last = v
		}
	}()
	const publishers, each = 4, 2000
	var wg sync.WaitGroup
	for p := 0; p < publishers; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				h.PublishFunc(func() int64 { return state.Add(1) })
			}
		}()
	}
	wg.Wait()
	h.Close()
	<-readerDone
	cancel()
	if last != publishers*each {
		t.Fatalf("the reader ended on %d, want the newest state %d", last, publishers*each)
	}
}

func TestHubPublishFuncSkipsWorkWithoutSubscribers(t *testing.T) {
	var h Hub[int]
	h.PublishFunc(func() int { t.Error("f called with no subscriber"); return 0 })
	ch, cancel := h.Subscribe()
	defer cancel()
	h.PublishFunc(func() int { return 5 })
	if v, _ := recv(t, ch); v != 5 {
		t.Fatalf("read %d, want 5", v)
	}
}

func TestMapConvertsAndEndsWithTheSource(t *testing.T) {
	var h Hub[int]
	src, cancelSrc := h.Subscribe()
	var srcCancels atomic.Int64
	out, cancel := Map(src, func() { srcCancels.Add(1); cancelSrc() }, func(v int) string { return string(rune('a' + v)) })
	h.Publish(0)
	if v, _ := recv(t, out); v != "a" {
		t.Fatalf("read %q, want a", v)
	}
	h.Publish(1)
	h.Publish(2)
	// The relay may have taken 1 before 2 came: read until the latest.
	for v := ""; v != "c"; {
		var ok bool
		if v, ok = recv(t, out); !ok {
			t.Fatal("closed before the latest value")
		}
	}
	h.Close()
	if _, ok := recv(t, out); ok {
		t.Fatal("open after the source closed")
	}
	cancel()
	cancel()
	if n := srcCancels.Load(); n != 1 {
		t.Errorf("the source was cancelled %d times, want once", n)
	}
}

func TestMapCancelEndsTheRelay(t *testing.T) {
	var h Hub[int]
	defer h.Close()
	src, cancelSrc := h.Subscribe()
	out, cancel := Map(src, cancelSrc, func(v int) int { return -v })
	h.Publish(3)
	cancel() // waits for the relay goroutine (goleak checks it is gone)
	for range out {
	}
	if n := h.Len(); n != 0 {
		t.Errorf("the source subscription is still open (%d)", n)
	}
}
