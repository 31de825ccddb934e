package latest

import "sync"

// Hub hands values to subscribers that read at their own pace: each
// subscription is a channel with a buffer of one that holds the latest
// value not read yet (a slow reader gets the newest value, never a
// backlog), and Publish never waits for a reader.
//
// The zero Hub is ready to use. A Hub starts no goroutine. Values reach a
// subscriber in the order Publish or PublishFunc was called; a caller that
// publishes from several goroutines serializes them itself (for example by
// publishing under the lock that guards the state it publishes) or uses
// PublishFunc, which computes the value under the Hub's lock.
type Hub[T any] struct {
	mu     sync.Mutex
	subs   map[chan T]struct{}
	closed bool
}

// Subscribe returns a channel that receives every value published from now
// on (coalesced), and cancel. cancel closes the channel and may be called
// any number of times, from any goroutine. After Close, Subscribe returns a
// closed channel.
func (h *Hub[T]) Subscribe() (<-chan T, func()) {
	return h.subscribe(false, *new(T))
}

// SubscribeWith is Subscribe with first already in the channel, for a
// reader that wants the current value at once. The caller makes first and
// calls SubscribeWith under the lock it publishes under, so no value is
// missed between the two. After Close the channel holds first and is
// closed.
func (h *Hub[T]) SubscribeWith(first T) (<-chan T, func()) {
	return h.subscribe(true, first)
}

func (h *Hub[T]) subscribe(withFirst bool, first T) (<-chan T, func()) {
	ch := make(chan T, 1)
	if withFirst {
		ch <- first
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		close(ch)
		return ch, func() {}
	}
	if h.subs == nil {
		h.subs = map[chan T]struct{}{}
	}
	h.subs[ch] = struct{}{}
	return ch, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if _, ok := h.subs[ch]; ok {
			delete(h.subs, ch)
			close(ch)
		}
	}
}

// Publish hands v to every subscriber, replacing a value it has not read
// yet. It never blocks (beyond the Hub's short lock). After Close it does
// nothing.
func (h *Hub[T]) Publish(v T) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.subs {
		Put(ch, v)
	}
}

// PublishFunc publishes the value f returns. f is called only when there
// is a subscriber, under the Hub's lock: concurrent PublishFuncs deliver
// their values in the order f was called, so the last value a subscriber
// gets is the newest state. f must not use the Hub; the locks f takes come
// after the Hub's in the caller's lock order.
func (h *Hub[T]) PublishFunc(f func() T) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.subs) == 0 {
		return
	}
	v := f()
	for ch := range h.subs {
		Put(ch, v)
	}
}

// Close closes every subscription's channel, after the value it holds, and
// makes later Subscribes return closed channels and later Publishes do
// nothing. It is idempotent.
func (h *Hub[T]) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for ch := range h.subs {
		close(ch)
		delete(h.subs, ch)
	}
}

// Len returns the number of open subscriptions.
func (h *Hub[T]) Len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs)
}

// Map relays the values of src, converted by f, to a new coalescing
// channel (for a caller that offers a subscription in another type). Its
// goroutine ends, and the returned channel is closed, when src is closed
// or on cancel. cancel also cancels src (cancelSrc), waits for the
// goroutine to end and is idempotent.
func Map[S, T any](src <-chan S, cancelSrc func(), f func(S) T) (<-chan T, func()) {
	out := make(chan T, 1)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(out)
		for {
			select {
			case <-stop:
				return
			case v, ok := <-src:
				if !ok {
					return
				}
				Put(out, f(v))
			}
		}
	}()
	var once sync.Once
	return out, func() {
		once.Do(func() {
			close(stop)
			cancelSrc()
			<-done
		})
	}
}
