// Package latest delivers values to slow readers without making the sender
// wait: a channel with a buffer of one holds only the most recent value.
// Put is that delivery; Hub is the subscription bookkeeping built on it
// (subscribe, publish, cancel, close), one for every status subscription
// of the module (the link, the controller, the control API); Map relays a
// subscription converted to another type.
//
// latest imports nothing but the language.
package latest

// Put delivers v on ch, a channel with a buffer of one, replacing a value the
// reader has not taken yet. It never blocks while the caller is the only
// sender on ch (callers serialize their sends, for example under a lock).
func Put[T any](ch chan T, v T) {
	select {
	case ch <- v:
		return
	default:
	}
	// Full: drop the stale value (unless the reader just took it) and retry.
	select {
	case <-ch:
	default:
	}
	select {
	case ch <- v:
	default:
	}
}
