package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/vmnetbar/vmnetbar/app/control"
	"github.com/vmnetbar/vmnetbar/app/internal/human"
	"github.com/vmnetbar/vmnetbar/netlink"
)

// statusRefresh is how often the headless printer looks at the traffic
// counters, which change without a status notification.
const statusRefresh = 10 * time.Second

// printStatusLines writes one line per status change of b to w until ctx
// ends or b shuts down:
//
//	2026-11-25T22:30:01Z vm=running link=up reconnects=2 tx=1.2MB rx=3.4MB drops=0
//
// Every refresh (0: never) it also prints the status if the line changed,
// so the traffic counters move while the states stay. When a write to w
// fails (its reader went away) it logs that once and prints no more, but
// still returns only when ctx ends or b shuts down: a closed standard
// output never ends the app.
func printStatusLines(ctx context.Context, w io.Writer, b control.Backend, now func() time.Time, refresh time.Duration, log logrus.FieldLogger) {
	sub, cancel := b.Subscribe()
	defer cancel()
	var tick <-chan time.Time
	if refresh > 0 {
		t := time.NewTicker(refresh)
		defer t.Stop()
		tick = t.C
	}
	last := ""
	emit := func(st control.Status) {
		line := statusLine(st)
		if line == last {
			return
		}
		last = line
		if w == nil {
			return
		}
		if _, err := fmt.Fprintf(w, "%s %s\n", now().UTC().Format(time.RFC3339), line); err != nil {
			log.WithError(err).Warn("standard output is closed: no more status lines (vmnetbar and the VM keep running; 'vmnetbar watch' follows the status)")
			w = nil
		}
	}
	emit(b.Status())
	for {
		select {
		case <-ctx.Done():
			return
		case st, ok := <-sub:
			if !ok {
				return
			}
			emit(st)
		case <-tick:
			emit(b.Status())
		}
	}
}

// statusLine is the headless form of a status.
func statusLine(st control.Status) string {
	var b strings.Builder
	if st.VM != nil && st.VM.NotConfigured {
		b.WriteString("vm=not-configured ")
	} else if st.VM != nil {
		fmt.Fprintf(&b, "vm=%s ", st.VM.State)
	}
	l := st.Link
	fmt.Fprintf(&b, "link=%s reconnects=%d tx=%s rx=%s drops=%d",
		l.State, l.Reconnects, human.CompactBytes(l.TxBytes), human.CompactBytes(l.RxBytes), l.Dropped.Total())
	if st.VM != nil && st.VM.Error != "" {
		fmt.Fprintf(&b, " error=%q", st.VM.Error)
	}
	if l.Guest.IPv4.IsValid() {
		fmt.Fprintf(&b, " ip=%s", l.Guest.IPv4)
	}
	if path, ok := waitingForDaemon(l); ok {
		fmt.Fprintf(&b, " waiting_for=%q", path)
	} else if l.LastError != "" && l.State != netlink.StateUp {
		fmt.Fprintf(&b, " link_error=%q", l.LastError)
	}
	if st.VM != nil && st.VM.Note != "" {
		fmt.Fprintf(&b, " note=%q", st.VM.Note)
	}
	return b.String()
}

// waitingForDaemon returns the daemon's socket when the link is dialing and
// the socket does not exist yet (or nobody listens on it).
func waitingForDaemon(l netlink.Status) (string, bool) {
	return human.WaitingForDaemon(l.State == netlink.StateConnecting || l.State == netlink.StateReconnecting, l.LastError)
}
