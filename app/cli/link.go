package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/vmnetbar/vmnetbar/app/control"
	"github.com/vmnetbar/vmnetbar/internal/sockcheck"
	"github.com/vmnetbar/vmnetbar/netlink"
)

// newLinkCmd is 'vmnetbar link'.
func newLinkCmd(env Env, code *int) *cobra.Command {
	var f linkFlags
	cmd := &cobra.Command{
		Use:                   "link --fd N --socket PATH [--mac MAC] [--mtu N] [--no-filter] [--no-probe] [--control PATH] [--log-level LEVEL]",
		Short:                 "forward an inherited datagram socket to socket_vmnet, reconnecting",
		Long:                  linkLong,
		Args:                  noArgs,
		ValidArgsFunction:     cobra.NoFileCompletions,
		DisableFlagsInUseLine: true,
		RunE:                  runs(code, func(*cobra.Command, []string) int { return runLink(f, env) }),
	}
	fs := cmd.Flags()
	fs.StringVar(&f.fd, "fd", "", "number `N` of the inherited SOCK_DGRAM socket (the VM NIC's host end)")
	fs.StringVar(&f.socket, "socket", "", "socket_vmnet's socket `PATH` (e.g. /opt/homebrew/var/run/socket_vmnet)")
	fs.StringVar(&f.mac, "mac", "", "the VM's `MAC` address (default: learned from the first frame the VM sends)")
	fs.IntVar(&f.mtu, "mtu", netlink.DefaultMTU, "the VM's `MTU`: larger frames from the VM are dropped, as socket_vmnet would drop the link for them")
	fs.BoolVar(&f.noFilter, "no-filter", false, "pass frames from the daemon to MACs the VM never sent from (for guests that bridge)")
	fs.BoolVar(&f.noProbe, "no-probe", false, "never ask the gateway whether the network answers (one ARP request after 10 s of silence from the daemon)")
	_ = cmd.RegisterFlagCompletionFunc("fd", cobra.NoFileCompletions)
	addControlFlag(cmd, &f.control, "serve the control API on the UNIX socket at `PATH` (default: none)")
	addLogLevelFlag(cmd, &f.logLevel, "info", "log `LEVEL`: error, warn, info, debug or trace")
	return cmd
}

const linkLong = `Forwards the Ethernet frames of a VM's NIC between an inherited AF_UNIX
SOCK_DGRAM socket (one datagram per frame, as Apple's file-handle network
attachment or QEMU's -netdev dgram use) and socket_vmnet, redialing the
daemon whenever it restarts. Runs until SIGTERM or SIGINT (exit 0) or until
the VM side fails (exit 1).`

// linkFlags are the flags of 'vmnetbar link'.
type linkFlags struct {
	fd, socket, control, logLevel, mac string
	mtu                                int
	noFilter, noProbe                  bool
}

// runLink runs the standalone link.
func runLink(f linkFlags, env Env) int {
	usageErr := func(format string, a ...any) int {
		fmt.Fprintf(env.Stderr, "vmnetbar link: "+format+"\n", a...)
		return ExitUsage
	}
	host, err := parseDatagramFD(f.fd)
	if err != nil {
		return usageErr("%v", err)
	}
	defer host.Close()
	if f.socket == "" {
		return usageErr("missing --socket: pass socket_vmnet's socket path (e.g. --socket /opt/homebrew/var/run/socket_vmnet)")
	}
	// Checked here, before netlink.New, to name the flag.
	if err := netlink.CheckSocketPath(f.socket); err != nil {
		return usageErr("--socket %v", err)
	}
	lvl, err := parseLevel(f.logLevel)
	if err != nil {
		return usageErr("%v", err)
	}
	var mac net.HardwareAddr
	if f.mac != "" {
		if mac, err = net.ParseMAC(f.mac); err != nil || len(mac) != 6 || mac[0]&1 != 0 {
			return usageErr("--mac %q is not a unicast Ethernet address: pass the VM's MAC, e.g. --mac 52:54:00:12:34:56, or leave it out", f.mac)
		}
	}
	if err := netlink.CheckMTU(f.mtu); err != nil || f.mtu == 0 {
		return usageErr("--mtu %d is out of range: use %d..%d (socket_vmnet takes %d)", f.mtu, netlink.MinMTU, netlink.MaxMTU, netlink.DefaultMTU)
	}

	log := logrus.New()
	log.SetOutput(env.Stderr)
	log.SetLevel(lvl)

	link, err := netlink.New(host, netlink.Config{Socket: f.socket, Logger: log, MAC: mac, MTU: f.mtu, NoFilter: f.noFilter, NoProbe: f.noProbe})
	if err != nil {
		return usageErr("%v", err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	// A hangup of the hypervisor's terminal or a closed log reader must
	// not cut the VM's network: SIGHUP and SIGPIPE are ignored.
	ignored := make(chan os.Signal, 1)
	signal.Notify(ignored, syscall.SIGHUP, syscall.SIGPIPE)
	defer signal.Stop(ignored)

	serveDone := make(chan error, 1)
	serveCtx, stopServe := context.WithCancel(context.Background())
	defer stopServe()
	if f.control != "" {
		l, err := control.Listen(f.control)
		if err != nil {
			fmt.Fprintf(env.Stderr, "vmnetbar link: %v\n", err)
			if errors.Is(err, control.ErrPathTooLong) || errors.Is(err, control.ErrNotPrivate) {
				return ExitUsage
			}
			return ExitFailure
		}
		srv := control.NewLinkServer(link, log)
		go func() { serveDone <- srv.Serve(serveCtx, l) }()
		log.WithField("control", f.control).Info("serving the control API")
	} else {
		serveDone <- nil
	}

	log.WithFields(logrus.Fields{"fd": f.fd, "daemon": f.socket}).Info("link starting")
	runErr := link.Run(ctx)
	stopServe()
	if err := <-serveDone; err != nil {
		log.WithError(err).Warn("control API stopped early")
	}
	if runErr != nil {
		// Run fails only for the VM side ("netlink: VM side of the link
		// failed: ...").
		fmt.Fprintf(env.Stderr, "vmnetbar link: stopping: the VM side (--fd %s) failed: %v\n", f.fd, runErr)
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
