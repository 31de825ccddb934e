package control

import (
	"bytes"
	"errors"
	"net/http"
	"time"

	"github.com/sirupsen/logrus"
)

// feed is what a watch stream shows: a status of type T now, its changes,
// and how one is written as a line of JSON.
type feed[T any] struct {
	// status returns the status now.
	status func() T
	// subscribe delivers changes (coalesced) until cancel; the channel
	// is closed on cancel and when the source shuts down.
	subscribe func() (<-chan T, func())
	// encode writes one status as JSON.
	encode func(T) ([]byte, error)
}

// serveWatch streams f's status now, then every change, as
// newline-delimited JSON, until the client goes or the server stops. A
// stream that ends because the server stops or the source shuts down ends
// with the status then, so a watcher's last line is the last word.
func serveWatch[T any](w http.ResponseWriter, r *http.Request, log logrus.FieldLogger, f feed[T]) {
	updates, cancel := f.subscribe()
	defer cancel()
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	var last []byte
	send := func(st T) error {
		b, err := f.encode(st)
		if err != nil {
			return err
		}
		if bytes.Equal(b, last) {
			return nil // nothing changed since the last line
		}
		last = b
		if err := rc.SetWriteDeadline(time.Now().Add(watchWriteTimeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
			return err
		}
		if _, err := w.Write(append(b, '\n')); err != nil {
			return err
		}
		return rc.Flush()
	}
	// sendLast sends the status now on a stream that is ending, unless the
	// client already has it.
	sendLast := func() {
		if err := send(f.status()); err != nil {
			log.WithError(err).Debug("control: watch client gone before the last status")
		}
	}
	if err := send(f.status()); err != nil {
		log.WithError(err).Debug("control: watch client gone")
		return
	}
	for {
		select {
		case <-r.Context().Done():
			if !serverStopping(r) {
				return // the client left
			}
			// An update may be pending: the select chooses at random
			// among ready cases. Whatever it was, the status now is the
			// last word.
			sendLast()
			return
		case st, ok := <-updates:
			if !ok {
				sendLast() // the source shut down
				return
			}
			if err := send(st); err != nil {
				log.WithError(err).Debug("control: watch client gone")
				return
			}
		}
	}
}
