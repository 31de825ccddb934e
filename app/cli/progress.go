package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vmnetbar/vmnetbar/app/control"
	"github.com/vmnetbar/vmnetbar/app/model"
	"github.com/vmnetbar/vmnetbar/vmhost"
)

// What the client commands show on a terminal while they wait: 'start'
// a progress bar while the VM's disk is made from its image, 'ssh' a
// spinner until the guest takes SSH connections. Both are drawn on one
// line of standard error that is redrawn in place and cleared at the end,
// and only when standard error is a terminal: a script or a log gets
// nothing of them.

// spinEvery is how often a spinner turns.
const spinEvery = 120 * time.Millisecond

// spinFrames are a spinner's frames.
var spinFrames = []string{"|", "/", "-", `\`}

// barWidth is the number of cells of a progress bar.
const barWidth = 30

// progressBar renders a step of a VM's start: "preparing disk [#####   ]
// 42 %" (barWidth cells). A percentage out of 0..100 is clamped.
func progressBar(p model.Progress) string {
	pct := min(max(p.Percent, 0), 100)
	filled := pct * barWidth / 100
	return fmt.Sprintf("%s [%s%s] %d %%", p.Task, strings.Repeat("#", filled), strings.Repeat(" ", barWidth-filled), pct)
}

// sshWaitText says what a wait for the SSH of v's guest waits on:
// "waiting for dev's SSH (preparing disk 42 %)", "(starting)", "(waiting
// for the guest's address)" or "(booting)" (the guest has an address, its
// SSH port does not accept yet; for a VM that boots a kernel, whose guest
// may run no SSH server, "(nothing accepts on 192.168.105.3:22 yet)").
func sshWaitText(v model.VMStatus) string {
	return fmt.Sprintf("waiting for %s's SSH (%s)", v.Name, sshWaitReason(v))
}

// sshWaitReason is the part of sshWaitText in parentheses.
func sshWaitReason(v model.VMStatus) string {
	switch {
	case v.VM.Progress != nil:
		pct := min(max(v.VM.Progress.Percent, 0), 100)
		return fmt.Sprintf("%s %d %%", v.VM.Progress.Task, pct)
	case v.VM.State == vmhost.StateStarting:
		return "starting"
	}
	dest, ok := sshDestination(v)
	switch {
	case !ok:
		return "waiting for the guest's address"
	case v.VM.Image == "":
		return "nothing accepts on " + dest + " yet"
	}
	return "booting"
}

// liveLine is one line of a terminal that is redrawn in place. On
// anything but a terminal it writes nothing.
type liveLine struct {
	w     io.Writer
	tty   bool
	shown bool
}

// newLiveLine returns a live line on w, which draws only when w is a
// terminal.
func newLiveLine(w io.Writer) *liveLine {
	return &liveLine{w: w, tty: isTerminal(w)}
}

// show replaces the line with s.
func (l *liveLine) show(s string) {
	if !l.tty {
		return
	}
	fmt.Fprintf(l.w, "\r%s\x1b[K", s)
	l.shown = true
}

// clear removes the line, so that what comes next starts a clean line.
func (l *liveLine) clear() {
	if l.shown {
		fmt.Fprint(l.w, "\r\x1b[K")
		l.shown = false
	}
}

// followVM follows the status of the VM called name (its first status
// comes at once) until done says it is what the caller waits for, or ctx
// ends, or the stream fails. It calls each on every status that does not
// end the wait and, when tick is not nil, on every tick with the latest
// status (a spinner's turn). It returns the last status it saw and nil
// when done said so, else the error that ended the wait (ctx.Err() when
// ctx ended, *errVMGone when the VM was removed). The goroutine it starts
// has ended when it returns.
func followVM(ctx context.Context, cl *control.Client, v model.VMStatus, tick <-chan time.Time,
	done func(model.VMStatus) bool, each func(model.VMStatus)) (model.VMStatus, error) {
	wctx, cancel := context.WithCancel(ctx)
	latest := make(chan model.VMStatus, 1)
	errc := make(chan error, 1)
	name := v.Name // v is the caller's from here on
	go func() {
		errc <- cl.Watch(wctx, func(o model.Overview) error {
			nv, ok := o.Lookup(name) // "": a standalone link's, or an old app's one VM
			if !ok {
				return &errVMGone{name}
			}
			select { // only the newest status matters
			case <-latest:
			default:
			}
			latest <- nv
			return nil
		})
	}()
	defer func() {
		cancel()
		if errc != nil {
			<-errc
		}
	}()
	for {
		select {
		case nv := <-latest:
			v = nv
			if done(v) {
				return v, nil
			}
			each(v)
		case <-tick:
			each(v)
		case err := <-errc:
			errc = nil
			// A status that came just before the stream ended counts.
			select {
			case nv := <-latest:
				if v = nv; done(v) {
					return v, nil
				}
			default:
			}
			if ctx.Err() != nil {
				return v, ctx.Err()
			}
			return v, err
		}
	}
}

// readerIsTerminal reports whether r is a terminal (standard input from a
// keyboard, not a pipe or a file).
func readerIsTerminal(r io.Reader) bool {
	f, ok := r.(interface{ Fd() uintptr })
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), ioctlReadTermios)
	return err == nil
}
