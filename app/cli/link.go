package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/vmnetbar/vmnetbar/app/control"
	"github.com/vmnetbar/vmnetbar/internal/sockcheck"
	"github.com/vmnetbar/vmnetbar/netlink"
)

func init() {
	register(command{
		name:    "link",
		summary: "forward an inherited datagram socket to socket_vmnet, reconnecting",
		run:     runLink,
	})
}

const linkUsage = `usage: vmnetbar link --fd N --socket PATH [--control PATH] [--log-level LEVEL]

Forwards the Ethernet frames of a VM's NIC between an inherited AF_UNIX
SOCK_DGRAM socket (one datagram per frame, as Apple's file-handle network
attachment or QEMU's -netdev dgram use) and socket_vmnet, redialing the
daemon whenever it restarts. Runs until SIGTERM or SIGINT (exit 0) or until
the VM side fails (exit 1).

flags:
`

// runLink runs the standalone link.
func runLink(args []string, env Env) int {
	fs := flag.NewFlagSet("link", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), linkUsage)
		fs.PrintDefaults()
	}
	fdFlag := fs.String("fd", "", "number of the inherited SOCK_DGRAM socket (the VM NIC's host end)")
	socket := fs.String("socket", "", "socket_vmnet's socket path (e.g. /opt/homebrew/var/run/socket_vmnet)")
	ctlPath := fs.String("control", "", "serve the control API on this UNIX socket (default: none)")
	level := fs.String("log-level", "info", "log level: error, warn, info, debug or trace")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ExitOK
		}
		return ExitUsage
	}
	usageErr := func(format string, a ...any) int {
		fmt.Fprintf(env.Stderr, "vmnetbar link: "+format+"\n", a...)
		return ExitUsage
	}
	if fs.NArg() > 0 {
		return usageErr("unexpected argument %q: vmnetbar link takes only flags; run 'vmnetbar link -h'", fs.Arg(0))
	}
	host, err := parseDatagramFD(*fdFlag)
	if err != nil {
		return usageErr("%v", err)
	}
	defer host.Close()
	if *socket == "" {
		return usageErr("missing --socket: pass socket_vmnet's socket path (e.g. --socket /opt/homebrew/var/run/socket_vmnet)")
	}
	// Checked here, before netlink.New, to name the flag.
	if err := netlink.CheckSocketPath(*socket); err != nil {
		return usageErr("--socket %v", err)
	}
	lvl, err := parseLevel(*level)
	if err != nil {
		return usageErr("%v", err)
	}

	log := logrus.New()
	log.SetOutput(env.Stderr)
	log.SetLevel(lvl)

	link, err := netlink.New(host, netlink.Config{Socket: *socket, Logger: log})
	if err != nil {
		return usageErr("%v", err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()

	serveDone := make(chan error, 1)
	serveCtx, stopServe := context.WithCancel(context.Background())
	defer stopServe()
	if *ctlPath != "" {
		l, err := control.Listen(*ctlPath)
		if err != nil {
			fmt.Fprintf(env.Stderr, "vmnetbar link: %v\n", err)
			if errors.Is(err, control.ErrPathTooLong) {
				return ExitUsage
			}
			return ExitFailure
		}
		srv := control.NewServer(control.NewLinkBackend(link), log)
		go func() { serveDone <- srv.Serve(serveCtx, l) }()
		log.WithField("control", *ctlPath).Info("serving the control API")
	} else {
		serveDone <- nil
	}

	log.WithFields(logrus.Fields{"fd": *fdFlag, "daemon": *socket}).Info("link starting")
	runErr := link.Run(ctx)
	stopServe()
	if err := <-serveDone; err != nil {
		log.WithError(err).Warn("control API stopped early")
	}
	if runErr != nil {
		// Run fails only for the VM side ("netlink: VM side of the link
		// failed: ...").
		fmt.Fprintf(env.Stderr, "vmnetbar link: stopping: the VM side (--fd %s) failed: %v\n", *fdFlag, runErr)
		return ExitFailure
	}
	return ExitOK
}

// parseDatagramFD checks that s names an open AF_UNIX SOCK_DGRAM socket of
// this process and returns a file that owns it, named "--fd N" for messages.
// The socket check runs on a duplicate of the descriptor, so a rejected
// descriptor is neither closed nor handed to a file the garbage collector
// would close.
func parseDatagramFD(s string) (*os.File, error) {
	const hint = "the parent process must pass the VM NIC's host end, an AF_UNIX SOCK_DGRAM socket (e.g. one end of socketpair(AF_UNIX, SOCK_DGRAM)), and name its number, e.g. --fd 3"
	if s == "" {
		return nil, fmt.Errorf("missing --fd: %s", hint)
	}
	fd, err := strconv.Atoi(s)
	if err != nil {
		return nil, fmt.Errorf("--fd %q is not a number: %s", s, hint)
	}
	if fd < 0 {
		return nil, fmt.Errorf("--fd %d is negative: %s", fd, hint)
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil {
		return nil, fmt.Errorf("--fd %d is not an open file descriptor in this process (%v): %s", fd, err, hint)
	}
	name := fmt.Sprintf("--fd %d", fd)
	dup, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("%s: cannot duplicate it to check it (%v): %s", name, err, hint)
	}
	check := os.NewFile(uintptr(dup), name)
	err = sockcheck.Datagram(check)
	check.Close()
	if err != nil {
		return nil, fmt.Errorf("%v: %s", err, hint)
	}
	return os.NewFile(uintptr(fd), name), nil
}

// logLevels are the levels --log-level accepts.
var logLevels = []string{"error", "warn", "info", "debug", "trace"}

func parseLevel(s string) (logrus.Level, error) {
	for _, l := range logLevels {
		if strings.EqualFold(s, l) {
			return logrus.ParseLevel(l)
		}
	}
	return 0, fmt.Errorf("unknown --log-level %q: use one of %s", s, strings.Join(logLevels, ", "))
}
