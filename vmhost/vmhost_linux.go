package vmhost

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
)

// QEMUEnv names the environment variable that, when set, is the path of
// the qemu-system binary to run instead of the one found on PATH.
const QEMUEnv = "VMNETBAR_QEMU"

// qemuBootTimeout bounds how long QEMU may take to answer on its QMP
// socket after it was started; past it the boot has failed.
const qemuBootTimeout = 60 * time.Second

// powerButtonRepeat is how often a stop presses the guest's power button
// again while it waits. A guest that is still booting has no ACPI button
// driver yet and misses a press, so one press could make every stop
// during boot wait for the full stop timeout.
const powerButtonRepeat = time.Second

// noteWaitQMP is the note (Event.Note) while a stop waits for QEMU; then
// it waits with noteWaitButton.
const noteWaitQMP = "waiting for QEMU to come up before pressing the guest's power button"

// qemuNICFD and qemuQMPFD are the child's descriptors for the NIC and the
// QMP connection (ExtraFiles start at 3).
const (
	qemuNICFD = 3
	qemuQMPFD = 4
)

// qemuTarget is the qemu-system binary for the host architecture and the
// Debian package that provides it.
func qemuTarget() (bin, pkg string, err error) {
	switch runtime.GOARCH {
	case "amd64":
		return "qemu-system-x86_64", "qemu-system-x86", nil
	case "arm64":
		return "qemu-system-aarch64", "qemu-system-arm", nil
	}
	return "", "", fmt.Errorf("no QEMU target for the %s architecture: vmnetbar runs VMs on amd64 and arm64 hosts", runtime.GOARCH)
}

// findQEMU returns the path of the qemu-system binary: $VMNETBAR_QEMU when
// set, else the host architecture's binary on PATH.
func findQEMU(getenv func(string) string) (string, error) {
	if p := getenv(QEMUEnv); p != "" {
		path, err := exec.LookPath(p)
		if err != nil {
			return "", fmt.Errorf("%s is %q, which is not an executable file (%v): point it at a qemu-system binary or unset it", QEMUEnv, p, err)
		}
		return path, nil
	}
	bin, pkg, err := qemuTarget()
	if err != nil {
		return "", err
	}
	path, err := exec.LookPath(bin)
	if err != nil {
		return "", fmt.Errorf("%s was not found on PATH: install QEMU (Debian/Ubuntu: apt-get install %s) or set %s to its path", bin, pkg, QEMUEnv)
	}
	return path, nil
}

// New validates cfg and returns a QEMU-backed VM, not yet started. The
// qemu-system binary is $VMNETBAR_QEMU or the host architecture's binary
// on PATH.
func New(cfg Config, log logrus.FieldLogger) (VM, error) {
	return newQEMU(cfg, log, os.Getenv)
}

func newQEMU(cfg Config, log logrus.FieldLogger, getenv func(string) string) (*qemuVM, error) {
	if log == nil {
		return nil, errors.New("vmhost.New: a logger is required")
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid VM configuration:\n%w", err)
	}
	bin, err := findQEMU(getenv)
	if err != nil {
		return nil, err
	}
	log = log.WithField("vm", "qemu")
	var fw firmware
	if cfg.efi() {
		if fw, err = hostFirmware(); err != nil {
			return nil, err
		}
		created, err := ensureEFIVars(cfg.EFIVars, fw.Vars)
		if err != nil {
			return nil, err
		}
		if created {
			log.WithFields(logrus.Fields{"path": cfg.EFIVars, "template": fw.Vars}).Info("created the VM's EFI variable store")
		}
	}
	return &qemuVM{
		cfg:          cfg.withDefaults(),
		bin:          bin,
		arch:         runtime.GOARCH,
		fwCode:       fw.Code,
		log:          log,
		m:            newMachine(log, nil),
		bootTimeout:  qemuBootTimeout,
		buttonRepeat: powerButtonRepeat,
		stopCh:       make(chan struct{}),
	}, nil
}

// qemuVM runs one QEMU process.
//
// QEMU runs in a process group of its own, so that the signals a terminal
// sends to its foreground group (Ctrl-C, Ctrl-\, a hangup) reach vmnetbar
// only, which stops the guest gracefully; it still gets SIGKILL when
// vmnetbar dies (Pdeathsig). QMP runs over a socketpair QEMU inherits
// (its fd 4): no socket file, so no directory to create or leave behind.
//
// Goroutines: Start launches the supervisor (supervise), which owns the
// process from then on. The supervisor starts the QMP connector and, once
// connected, the QMP reader; it stops both before it returns. exec's own
// stderr copier ends with the process. The supervisor returns after the
// process has been reaped, the NIC closed and the state made final.
type qemuVM struct {
	cfg          Config // defaults applied
	bin          string
	arch         string // the guest's architecture: the host's (GOARCH)
	fwCode       string // BootEFI: the firmware's code (read-only pflash)
	log          logrus.FieldLogger
	m            *machine
	bootTimeout  time.Duration
	buttonRepeat time.Duration // between power button presses while stopping

	mu     sync.Mutex
	stopCh chan struct{} // closed by the first Stop; m has its deadline

	// Set by Start before the supervisor runs.
	cmd    *exec.Cmd
	qmp    net.Conn // our end of the QMP socketpair; the connector owns it
	stderr *tailWriter

	forced atomic.Bool // the stop timeout passed and QEMU was killed
}

var _ VM = (*qemuVM)(nil)

// qemuArgs builds QEMU's command line for a guest of the architecture
// arch (GOARCH); fwCode is the UEFI firmware's code for BootEFI. The NIC is
// the child's fd 3, the QMP connection (a connected stream socket) its fd
// 4.
//
// BootEFI: a q35 machine (virt on arm64) with the firmware's code as
// read-only pflash and the VM's own variable store (EFIVars) as writable
// pflash; the disk is a virtio-blk device with bootindex 0, so that the
// firmware boots it first, and the NIC has no option ROM, so that the
// firmware never tries a network boot (and waits for none).
func qemuArgs(cfg Config, kvm bool, arch, fwCode string) []string {
	a := []string{
		"-nodefaults", "-no-user-config",
		"-name", "vmnetbar",
		"-display", "none",
		"-no-reboot",
	}
	switch {
	case arch == "arm64":
		a = append(a, "-machine", "virt")
	case cfg.efi():
		a = append(a, "-machine", "q35")
	}
	if kvm {
		a = append(a, "-accel", "kvm", "-cpu", "host")
	} else {
		a = append(a, "-accel", "tcg")
		if arch == "arm64" {
			a = append(a, "-cpu", "max")
		}
	}
	a = append(a,
		"-smp", strconv.Itoa(cfg.CPUs),
		"-m", strconv.FormatUint(cfg.Memory/MiB, 10)+"M",
	)
	if cfg.efi() {
		a = append(a,
			"-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+qemuEscape(fwCode),
			"-drive", "if=pflash,format=raw,unit=1,file="+qemuEscape(cfg.EFIVars))
	} else {
		a = append(a, "-kernel", cfg.Kernel)
		if cfg.Initrd != "" {
			a = append(a, "-initrd", cfg.Initrd)
		}
		a = append(a, "-append", cfg.Cmdline)
	}
	if cfg.ConsoleLog != "" {
		a = append(a,
			"-chardev", "file,id=console0,append=on,path="+qemuEscape(cfg.ConsoleLog),
			"-serial", "chardev:console0")
	} else {
		a = append(a, "-serial", "null")
	}
	nic := "virtio-net-pci,netdev=n0,mac=" + cfg.MAC.String()
	if cfg.MTU != DefaultMTU {
		nic += ",host_mtu=" + strconv.Itoa(cfg.MTU)
	}
	if cfg.efi() {
		nic += ",romfile="
	}
	a = append(a,
		"-netdev", "dgram,id=n0,local.type=fd,local.str="+strconv.Itoa(qemuNICFD),
		"-device", nic,
		"-device", "virtio-rng-pci",
	)
	switch {
	case cfg.efi():
		// Write-back caching with the guest's flushes passed on to the
		// host file (fsync), as the macOS backend does; discarded blocks
		// become holes, so the sparse disk stays sparse.
		a = append(a,
			"-drive", "if=none,id=disk0,format=raw,cache=writeback,discard=unmap,file="+qemuEscape(cfg.Disk),
			"-device", "virtio-blk-pci,drive=disk0,bootindex=0")
	case cfg.Disk != "":
		a = append(a, "-drive", "if=virtio,format=raw,file="+qemuEscape(cfg.Disk))
	}
	if cfg.Seed != "" {
		a = append(a,
			"-drive", "if=none,id=seed0,format=raw,readonly=on,file="+qemuEscape(cfg.Seed),
			"-device", "virtio-blk-pci,drive=seed0")
	}
	a = append(a,
		"-chardev", "socket,id=qmp,fd="+strconv.Itoa(qemuQMPFD),
		"-mon", "chardev=qmp,mode=control")
	return a
}

// qemuEscape escapes a value for QEMU's key=value,... option syntax, in
// which a comma is written as two.
func qemuEscape(s string) string { return strings.ReplaceAll(s, ",", ",,") }

// useKVM resolves the accelerator: kvm when asked, or for auto when
// /dev/kvm is usable; tcg otherwise.
func useKVM(accel string) bool {
	switch accel {
	case "kvm":
		return true
	case "tcg":
		return false
	}
	return kvmUsable() == nil
}

// Start launches QEMU and returns once the process runs; the VM is then
// starting. It becomes running when QEMU answers on QMP with the guest
// running; a QEMU that exits or never answers makes it error, with QEMU's
// exit status and last stderr lines as the cause. ctx bounds only the
// launch: the VM outlives it.
func (v *qemuVM) Start(ctx context.Context) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if !v.m.claimStart() {
		return errAlreadyUsed
	}
	if err := ctx.Err(); err != nil {
		v.m.end()
		v.closeNIC()
		return err
	}
	if err := v.m.set(StateStarting, nil); err != nil {
		return err
	}
	if err := v.launch(); err != nil {
		v.closeNIC()
		v.m.set(StateError, err)
		return err
	}
	go v.supervise()
	return nil
}

// launch starts the process with the NIC and its end of a new QMP
// socketpair.
func (v *qemuVM) launch() error {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("creating QEMU's QMP socketpair: %w", err)
	}
	ours := os.NewFile(uintptr(fds[0]), "qmp")
	theirs := os.NewFile(uintptr(fds[1]), "qmp-qemu")
	defer theirs.Close() // QEMU has its own copy once it runs
	conn, err := net.FileConn(ours)
	ours.Close() // conn has its own descriptor
	if err != nil {
		return fmt.Errorf("creating QEMU's QMP socketpair: %w", err)
	}

	kvm := useKVM(v.cfg.Accel)
	args := qemuArgs(v.cfg, kvm, v.arch, v.fwCode)
	cmd := exec.Command(v.bin, args...)
	cmd.ExtraFiles = []*os.File{v.cfg.NIC, theirs} // fds 3 and 4
	v.stderr = newTailWriter(8 << 10)
	cmd.Stdout = v.stderr
	cmd.Stderr = v.stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// A process group of its own: the terminal's Ctrl-C, Ctrl-\
		// and hangup go to vmnetbar's group only, and vmnetbar stops
		// the guest gracefully.
		Setpgid: true,
		// QEMU must not outlive vmnetbar.
		Pdeathsig: syscall.SIGKILL,
	}
	// Wait returns even if a stray child holds QEMU's output pipe.
	cmd.WaitDelay = 2 * time.Second
	v.log.WithField("cmd", v.bin+" "+strings.Join(args, " ")).Debug("starting QEMU")
	if err := cmd.Start(); err != nil {
		conn.Close()
		return fmt.Errorf("starting %s: %w", v.bin, err)
	}
	v.cmd, v.qmp = cmd, conn
	v.log.WithFields(logrus.Fields{"pid": cmd.Process.Pid, "kvm": kvm}).Info("QEMU started")
	return nil
}

// qmpResult is what the connector hands the supervisor.
type qmpResult struct {
	conn    *qmpConn
	running bool
}

// supervise owns the running process: it connects QMP, tracks the run
// state, carries out Stop (system_powerdown, repeated every buttonRepeat
// with a note on the state, then a kill at the stop's deadline, which a
// later Stop may bring forward) and, when the process has been reaped,
// makes the state final.
func (v *qemuVM) supervise() {
	exited := make(chan error, 1)
	go func() { exited <- v.cmd.Wait() }()

	connCtx, quit := context.WithCancel(context.Background())
	defer quit()
	connected := make(chan qmpResult, 1)
	var connWG sync.WaitGroup
	connWG.Add(1)
	go func() {
		defer connWG.Done()
		v.connectQMP(connCtx, connected)
	}()

	boot := time.NewTimer(v.bootTimeout)
	defer boot.Stop()
	var (
		q        *qmpConn
		events   <-chan qmpEvent
		kill     <-chan time.Time
		killT    *time.Timer
		press    <-chan time.Time // the next power button press
		pressT   *time.Ticker
		stopCh   = v.stopCh
		stopping bool
		forced   bool
		bootErr  error
	)
	defer func() {
		if killT != nil {
			killT.Stop()
		}
		if pressT != nil {
			pressT.Stop()
		}
	}()
	// startPressing presses the power button now and then every
	// buttonRepeat until the guest is down or forced off.
	startPressing := func() {
		v.powerdown(q, true)
		pressT = time.NewTicker(v.buttonRepeat)
		press = pressT.C
	}
	for {
		select {
		case waitErr := <-exited:
			quit()
			connWG.Wait()
			select {
			case r := <-connected:
				q = r.conn
			default:
			}
			if q != nil {
				q.close()
			}
			v.finish(waitErr, forced, bootErr)
			return

		case r := <-connected:
			boot.Stop()
			q, events = r.conn, r.conn.Events()
			if r.running {
				v.m.setIf(StateStarting, StateRunning, nil)
			}
			if stopping && !forced {
				startPressing()
			}

		case ev, ok := <-events:
			if !ok {
				events = nil
				v.log.Debug("QMP connection closed")
				continue
			}
			v.log.WithField("event", ev.Name).Debug("QMP event")
			if ev.Name == "RESUME" {
				v.m.setIf(StateStarting, StateRunning, nil)
			}

		case <-stopCh:
			stopCh, stopping = nil, true
			boot.Stop() // from now on the stop timeout bounds the wait
			remaining, _ := v.m.stopDeadline()
			killT = time.NewTimer(remaining)
			kill = killT.C
			if q != nil {
				startPressing()
			} else {
				v.m.setNote(StateStopping, noteWaitQMP)
				v.log.Info("QMP not connected yet: the power button is pressed once it is, and the VM is forced off after the stop timeout")
			}

		case <-press:
			// The guest is still up: it may have missed the press
			// (no ACPI button driver yet while it boots).
			if q.isDone() {
				press = nil // QEMU is going away: the kill timer stays
				continue
			}
			_, timeout := v.m.stopDeadline()
			v.m.setNote(StateStopping, noteWaitButton+"; it is forced off after "+timeout.String())
			v.powerdown(q, false)

		case <-v.m.stopSooner:
			// A later Stop asked for an earlier kill.
			if kill != nil {
				remaining, _ := v.m.stopDeadline()
				killT.Reset(remaining)
			}

		case <-kill:
			kill, press = nil, nil
			forced = true
			v.forced.Store(true)
			v.log.Warn("the guest did not power off in time: killing QEMU")
			v.cmd.Process.Kill()

		case <-boot.C:
			bootErr = fmt.Errorf("QEMU did not answer on its QMP socket within %v", v.bootTimeout)
			v.log.WithError(bootErr).Warn("killing QEMU")
			v.cmd.Process.Kill()
		}
	}
}

// powerdown asks the guest to power off (an ACPI power button press);
// first says whether this is the stop's first press.
func (v *qemuVM) powerdown(q *qmpConn, first bool) {
	if err := q.send("system_powerdown"); err != nil {
		v.log.WithError(err).Warn("pressing the guest's power button failed: it is forced off after the stop timeout")
		return
	}
	if first {
		v.log.Info("asked the guest to power off (pressed its power button)")
	} else {
		v.log.Debug("pressed the guest's power button again")
	}
}

// connectQMP negotiates QMP on the inherited socketpair and reports the
// connection and whether the guest runs. It gives up when ctx ends (the
// process has exited) or QEMU does not answer within the boot timeout; it
// closes the connection unless it hands it over.
func (v *qemuVM) connectQMP(ctx context.Context, out chan<- qmpResult) {
	conn := v.qmp
	// Unblock the handshake when the process has exited.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	q, err := newQMPConn(conn, time.Now().Add(v.bootTimeout)) // closes conn on error
	if !stop() && err == nil {
		q.close()
		err = ctx.Err()
	}
	if err != nil {
		v.log.WithError(err).Debug("QMP did not come up")
		return
	}
	qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	st, err := q.queryStatus(qctx)
	cancel()
	if err != nil {
		v.log.WithError(err).Debug("QMP query-status failed")
	}
	v.log.WithField("status", st).Debug("QMP connected")
	out <- qmpResult{conn: q, running: st == "running"}
}

// finish runs once the process has been reaped: it closes the NIC and
// makes the state final.
func (v *qemuVM) finish(waitErr error, forced bool, bootErr error) {
	v.closeNIC()
	st, _ := v.m.get()
	log := v.log.WithField("exit", exitDescription(waitErr))
	switch {
	case bootErr != nil:
		v.m.set(StateError, v.withStderr(bootErr))
	case forced:
		log.Info("QEMU was forced off")
		v.m.set(StateStopped, nil)
	case waitErr == nil:
		if st == StateStopping {
			log.Info("the guest powered off")
		} else {
			log.Info("the guest powered off by itself (or rebooted: QEMU runs with -no-reboot)")
		}
		v.m.set(StateStopped, nil)
	default:
		v.m.set(StateError, v.withStderr(fmt.Errorf("QEMU %s", exitDescription(waitErr))))
	}
}

// withStderr appends QEMU's last stderr lines to err.
func (v *qemuVM) withStderr(err error) error {
	if tail := v.stderr.lastLines(10); tail != "" {
		return fmt.Errorf("%w: %s", err, tail)
	}
	return err
}

// exitDescription says how the process ended.
func exitDescription(err error) string {
	var ee *exec.ExitError
	switch {
	case err == nil:
		return "exited with status 0"
	case errors.As(err, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return "was killed by signal " + ws.Signal().String()
		}
		return "exited with status " + strconv.Itoa(ee.ExitCode())
	}
	return "failed: " + err.Error()
}

func (v *qemuVM) closeNIC() {
	if err := v.cfg.NIC.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
		v.log.WithError(err).Debug("closing the NIC")
	}
}

// Stop asks the guest to power off (QMP system_powerdown: the ACPI power
// button), waits up to timeout (0 = Config.StopTimeout) and then kills
// QEMU. While it waits it presses the button again every second, since a
// guest that is still booting misses presses, and notes that on the
// stopping state (Event.Note). The kill happens at the deadline even when
// ctx ends first. A Stop while a stop is under way kills QEMU at its own
// deadline when that is earlier (the earliest deadline wins). Stopping a
// VM that was never started ends it (and closes the NIC).
func (v *qemuVM) Stop(ctx context.Context, timeout time.Duration) error {
	if timeout <= 0 {
		timeout = v.cfg.StopTimeout
	}
	v.mu.Lock() // a Start under way launches first
	unstarted := v.m.endUnstarted()
	v.mu.Unlock()
	if unstarted {
		v.closeNIC()
		return nil
	}
	if v.m.beginStop(timeout) {
		close(v.stopCh)
	}
	return v.m.wait(ctx)
}

// State returns the current state and, for StateError, its cause.
func (v *qemuVM) State() (State, error) { return v.m.get() }

// Events delivers every state change; see VM.
func (v *qemuVM) Events() <-chan Event { return v.m.events }

// Done is closed when the VM has ended.
func (v *qemuVM) Done() <-chan struct{} { return v.m.done }

// pid returns QEMU's process id, 0 before Start.
func (v *qemuVM) pid() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.cmd == nil || v.cmd.Process == nil {
		return 0
	}
	return v.cmd.Process.Pid
}
