package cli

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/vmnetbar/vmnetbar/app/internal/human"
	"github.com/vmnetbar/vmnetbar/app/model"
	"github.com/vmnetbar/vmnetbar/netlink"
)

// statusRefresh is how often the headless printer looks at the traffic
// counters, which change without a status notification.
const statusRefresh = 10 * time.Second

// overviewSource is what the headless printer follows: the app's VMs
// (model.Machines, which *controller.Controller implements).
type overviewSource interface {
	Status() model.Overview
	Subscribe() (<-chan model.Overview, func())
}

// printStatusLines writes one line per status change of b to w until ctx
// ends or b shuts down. With one VM the line is its status:
//
//	2026-11-25T22:30:01Z vm=running link=up reconnects=2 tx=1.2MB rx=3.4MB drops=0 ip=192.168.105.3 ssh=ready
//
// (ssh= while the VM runs, preparing=42% while its start makes its disk
// from its image). With several, one line per VM that changed, prefixed
// by its name; a VM removed by a reload gets a last line, and no VMs at
// all one line:
//
//	2026-11-25T22:30:01Z name=dev vm=running link=up reconnects=2 tx=1.2MB rx=3.4MB drops=0
//	2026-11-25T22:30:05Z name=build removed
//	2026-11-25T22:30:09Z no VMs configured
//
// Every refresh (0: never) it also prints the lines that changed, so the
// traffic counters move while the states stay. When a write to w fails
// (its reader went away) it logs that once and prints no more, but still
// returns only when ctx ends or b shuts down: a closed standard output
// never ends the app.
func printStatusLines(ctx context.Context, w io.Writer, b overviewSource, now func() time.Time, refresh time.Duration, log logrus.FieldLogger) {
	sub, cancel := b.Subscribe()
	defer cancel()
	var tick <-chan time.Time
	if refresh > 0 {
		t := time.NewTicker(refresh)
		defer t.Stop()
		tick = t.C
	}
	last := map[string]string{}
	emit := func(o model.Overview) {
		for _, line := range overviewLines(o, last) {
			if w == nil {
				return
			}
			if _, err := fmt.Fprintf(w, "%s %s\n", now().UTC().Format(time.RFC3339), line); err != nil {
				log.WithError(err).Warn("standard output is closed: no more status lines (vmnetbar and the VMs keep running; 'vmnetbar watch' follows the status)")
				w = nil
			}
		}
	}
	emit(b.Status())
	for {
		select {
		case <-ctx.Done():
			return
		case o, ok := <-sub:
			if !ok {
				return
			}
			emit(o)
		case <-tick:
			emit(b.Status())
		}
	}
}

// overviewLines returns the status lines of o that differ from the ones
// last printed, and records them in last (by VM name; "" for the line
// that says there are no VMs). See printStatusLines for the forms.
func overviewLines(o model.Overview, last map[string]string) []string {
	var out []string
	put := func(key, line string) {
		if last[key] != line {
			last[key] = line
			out = append(out, line)
		}
	}
	if len(o.VMs) == 0 {
		maps.DeleteFunc(last, func(k, _ string) bool { return k != "" })
		put("", "no VMs configured")
		return out
	}
	delete(last, "")
	for name := range last {
		if _, ok := o.Lookup(name); !ok {
			delete(last, name)
			out = append(out, "name="+name+" removed")
		}
	}
	slices.Sort(out) // removals in name order
	for _, v := range o.VMs {
		line := statusLine(v.Status())
		if len(o.VMs) > 1 {
			line = "name=" + v.Name + " " + line
		}
		put(v.Name, line)
	}
	return out
}

// statusLine is the headless form of a status.
func statusLine(st model.Status) string {
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
	if ip := st.LiveGuest().IPv4; ip.IsValid() {
		fmt.Fprintf(&b, " ip=%s", ip)
	}
	if st.VM != nil && (st.VM.SSH == model.SSHReady || st.VM.SSH == model.SSHWaiting) {
		fmt.Fprintf(&b, " ssh=%s", st.VM.SSH)
	}
	if st.VM != nil && st.VM.Progress != nil {
		fmt.Fprintf(&b, " preparing=%d%%", min(max(st.VM.Progress.Percent, 0), 100))
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
