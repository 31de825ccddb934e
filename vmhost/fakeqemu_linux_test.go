package vmhost

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
)

// The test binary plays two more roles, chosen by the environment before
// any test runs:
//
//   - VMHOST_FAKE_QEMU=qmp: a QEMU that speaks QMP on its fd 4 (as vmhost
//     passes it), reports the guest running, appends "press" to
//     $VMHOST_FAKE_OUT for each system_powerdown and exits 0 on press
//     number $VMHOST_FAKE_PRESSES (never when unset). It catches SIGHUP,
//     SIGINT, SIGQUIT and SIGTERM and, on SIGUSR1, appends the line
//     "signals: NAMES" with those received so far (in order; signals sent
//     before the SIGUSR1 are handled before it).
//   - VMHOST_TEST_HELPER=signals: a vmnetbar that boots a VM on that fake
//     QEMU and prints "qemu PID" once it runs; it prints "got NAME" for
//     each SIGHUP, SIGINT or SIGQUIT it gets (and keeps going), and when
//     its stdin closes it stops the VM and prints "stopped STATE".
func init() {
	if os.Getenv("VMHOST_FAKE_QEMU") == "qmp" {
		os.Exit(fakeQEMUMain())
	}
	if os.Getenv("VMHOST_TEST_HELPER") == "signals" {
		os.Exit(signalHelperMain())
	}
}

func fakeQEMUMain() int {
	sigs := make(chan os.Signal, 16) // one channel: signals keep their order
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGTERM, syscall.SIGUSR1)
	out := os.Getenv("VMHOST_FAKE_OUT")
	record := func(line string) {
		f, err := os.OpenFile(out, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			fmt.Fprintln(os.Stderr, "fake qemu:", err)
			return
		}
		fmt.Fprintln(f, line)
		f.Close()
	}
	exitAt, _ := strconv.Atoi(os.Getenv("VMHOST_FAKE_PRESSES"))

	conn, err := net.FileConn(os.NewFile(uintptr(qemuQMPFD), "qmp"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "fake qemu: fd 4 is no QMP socket:", err)
		return 1
	}
	conn.Write([]byte(`{"QMP": {"version": {}, "capabilities": []}}` + "\n"))
	cmds := make(chan map[string]any)
	go func() {
		sc := bufio.NewScanner(conn)
		for sc.Scan() {
			var cmd map[string]any
			if json.Unmarshal(sc.Bytes(), &cmd) == nil {
				cmds <- cmd
			}
		}
		close(cmds)
	}()
	reply := func(cmd map[string]any, ret any) {
		b, _ := json.Marshal(map[string]any{"return": ret, "id": cmd["id"]})
		conn.Write(append(b, '\n'))
	}
	var got []string
	presses := 0
	for {
		select {
		case s := <-sigs:
			if s == syscall.SIGUSR1 {
				record("signals: " + strings.Join(got, ","))
			} else {
				got = append(got, unix.SignalName(s.(syscall.Signal)))
			}
		case cmd, ok := <-cmds:
			if !ok {
				cmds = nil // vmnetbar hung up: wait to be killed
				continue
			}
			switch cmd["execute"] {
			case "query-status":
				reply(cmd, map[string]any{"status": "running", "running": true})
			case "system_powerdown":
				presses++
				record("press")
				reply(cmd, map[string]any{})
				if presses == exitAt {
					return 0
				}
			default:
				reply(cmd, map[string]any{})
			}
		}
	}
}

func signalHelperMain() int {
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "signal helper:", err)
		return 1
	}
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGINT, syscall.SIGQUIT)
	exe, err := os.Executable()
	if err != nil {
		return fail(err)
	}
	os.Unsetenv("VMHOST_TEST_HELPER")
	os.Setenv("VMHOST_FAKE_QEMU", "qmp")
	os.Setenv("VMHOST_FAKE_PRESSES", "1")

	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fail(err)
	}
	hostEnd := os.NewFile(uintptr(fds[1]), "host-end")
	defer hostEnd.Close()
	log := logrus.New()
	log.SetOutput(os.Stderr)
	log.SetLevel(logrus.DebugLevel)
	cfg := Config{
		Kernel:      exe, // any readable, non-empty file: the fake boots nothing
		Memory:      128 * MiB,
		MAC:         net.HardwareAddr{0x52, 0x54, 0, 0x12, 0x34, 0x56},
		QEMUOptions: QEMUOptions{Accel: "tcg"},
		NIC:         os.NewFile(uintptr(fds[0]), "vm-end"),
	}
	v, err := newQEMU(cfg, log, func(k string) string {
		if k == QEMUEnv {
			return exe
		}
		return ""
	})
	if err != nil {
		return fail(err)
	}
	if err := v.Start(context.Background()); err != nil {
		return fail(err)
	}
	deadline := time.After(30 * time.Second)
	for running := false; !running; {
		select {
		case ev := <-v.Events():
			running = ev.State == StateRunning
		case <-deadline:
			return fail(fmt.Errorf("the VM did not run within 30s"))
		}
	}
	fmt.Printf("qemu %d\n", v.pid())

	stdin := make(chan struct{})
	go func() {
		io.Copy(io.Discard, os.Stdin)
		close(stdin)
	}()
	for {
		select {
		case s := <-sigs:
			fmt.Printf("got %s\n", unix.SignalName(s.(syscall.Signal)))
		case <-stdin:
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if err := v.Stop(ctx, 10*time.Second); err != nil {
				return fail(err)
			}
			st, _ := v.State()
			fmt.Printf("stopped %s\n", st)
			return 0
		}
	}
}
