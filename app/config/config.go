package config

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
	"go.yaml.in/yaml/v3"

	"github.com/vmnetbar/vmnetbar/netlink"
	"github.com/vmnetbar/vmnetbar/vmhost"
)

// Config is the parsed configuration file. Every field holds its final
// value: defaults applied, relative paths made absolute.
type Config struct {
	// File is the configuration file this was read from (absolute).
	File string

	VM        VM
	Network   Network
	Reconnect Reconnect

	// AutostartVM boots the VM when the app starts (autostart_vm, default true).
	AutostartVM bool
	// Notifications enables desktop notifications (notifications, default true).
	Notifications bool
	// LogLevel is the app's log level (log_level, default info).
	LogLevel logrus.Level
	// LogoutStopTimeout bounds the graceful stop of the VM when the system
	// ends the app (logout, restart, shutdown) before the VM is forced off
	// (logout_stop_timeout, default 5s); vm.stop_timeout bounds it too.
	// Quit and SIGTERM wait for vm.stop_timeout.
	LogoutStopTimeout time.Duration

	// MACGenerated is true when vm.mac was absent and Load generated one
	// and wrote it to File.
	MACGenerated bool

	// lines maps each dotted key set in File to the line of its value.
	lines map[string]int
}

// VM is the vm: section.
type VM struct {
	Kernel     string           // vm.kernel, required
	Initrd     string           // vm.initrd, "" = none
	Cmdline    string           // vm.cmdline, "" = the backend's default
	CPUs       int              // vm.cpus, default 2
	Memory     uint64           // vm.memory in bytes, default 1 GiB
	Disk       string           // vm.disk, "" = none
	MAC        net.HardwareAddr // vm.mac, generated once when absent
	ConsoleLog string           // vm.console_log, default STATE_DIR/console.log
	Accel      string           // vm.accel: auto, kvm or tcg (QEMU only), default auto
	// StopTimeout bounds a graceful stop before the VM is forced off
	// (vm.stop_timeout), default 30s.
	StopTimeout time.Duration
}

// Network is the network: section.
type Network struct {
	// Socket is the daemon's stream socket (network.socket). On macOS the
	// default is the first existing socket_vmnet socket, else Homebrew's
	// socket for the Mac's architecture (the link waits for it to
	// appear); Linux has none. "" only when the file configures no VM and
	// Options.AllowNoVM is set.
	Socket string
	// MTU of the VM's NIC (network.mtu), default 1500.
	MTU int
}

// Reconnect is the reconnect: section: the backoff between redials of the
// daemon.
type Reconnect struct {
	InitialBackoff time.Duration // reconnect.initial_backoff, default 100ms
	MaxBackoff     time.Duration // reconnect.max_backoff, default 2s
}

// Defaults of optional keys.
const (
	DefaultCPUs           = 2
	DefaultMemory         = vmhost.DefaultMemory
	DefaultMTU            = vmhost.DefaultMTU
	DefaultInitialBackoff = netlink.DefaultInitialBackoff
	DefaultMaxBackoff     = netlink.DefaultMaxBackoff
	DefaultAccel          = "auto"
	DefaultStopTimeout    = vmhost.DefaultStopTimeout
	// MinMTU and MaxMTU bound network.mtu; they are the VM host's limits
	// (the IPv6 minimum up to the largest frame the daemon carries).
	MinMTU = vmhost.MinMTU
	MaxMTU = vmhost.MaxMTU
	// MaxCPUs bounds vm.cpus; the hypervisor may allow fewer.
	MaxCPUs = 256
	// MinMemory is the smallest vm.memory; the largest is the host's
	// (checked by the VM host when the VM starts).
	MinMemory = vmhost.MinMemory
	// MaxStopTimeout bounds vm.stop_timeout: quitting waits that long for
	// the guest before forcing it off.
	MaxStopTimeout = time.Hour
	// DefaultLogoutStopTimeout is logout_stop_timeout's default.
	DefaultLogoutStopTimeout = 5 * time.Second
	// MaxLogoutStopTimeout bounds logout_stop_timeout: macOS ends an app
	// that holds up a logout after about a minute anyway (launchd's
	// ExitTimeOut of the login item is 60s).
	MaxLogoutStopTimeout = time.Minute
	// MinInitialBackoff bounds reconnect.initial_backoff and
	// reconnect.max_backoff from below: a shorter wait between redials
	// spins a CPU core and floods the log while the daemon is down. It is
	// the netlink package's own minimum.
	MinInitialBackoff = netlink.MinInitialBackoff
	// MaxMaxBackoff bounds reconnect.max_backoff (and so
	// reconnect.initial_backoff): with a longer wait the link would stay
	// down for that long after the daemon is back.
	MaxMaxBackoff = time.Minute
	// MaxSocketPathLen is the longest network.socket path: macOS's
	// sun_path holds 104 bytes including the terminating NUL (Linux's
	// 108); the same limit is used everywhere, as app/control's
	// MaxSocketPathLen does for the control socket.
	MaxSocketPathLen = 103
)

// ReadmeHint points users at the example configuration.
const ReadmeHint = `see "Configuration" in the README for an example`

// Options are the machine-dependent inputs of Load. The zero value of each
// field means a sensible default.
type Options struct {
	// StateDir holds the console log when vm.console_log is unset. ""
	// means the directory of the configuration file.
	StateDir string
	// SocketCandidates are tried in order when network.socket is unset;
	// the first that exists is used. Empty (and no SocketFallback) means
	// network.socket is required.
	SocketCandidates []string
	// SocketFallback is network.socket when it is unset and none of
	// SocketCandidates exists: the daemon is not installed or not started
	// yet, and the link waits for its socket. "" means such a file is
	// refused, naming the candidates.
	SocketFallback string
	// AllowNoVM loads a file that configures no VM yet (vm.kernel unset,
	// or no key set at all, as in the starter file): the Config has an
	// empty VM.Kernel (see VMConfigured), network.socket is not required
	// and no MAC address is generated. Everything that is set is still
	// checked. Without it such a file is an *Error wrapping ErrNoVM.
	AllowNoVM bool
	// NewMAC generates the MAC written back when vm.mac is absent;
	// nil means vmhost.RandomMAC.
	NewMAC func() (net.HardwareAddr, error)
	// Home expands a leading "~/" in paths; "" means os.UserHomeDir.
	Home string
}

// DefaultOptions are the Options for this machine given its Paths.
func DefaultOptions(p Paths) Options {
	return Options{StateDir: p.StateDir, SocketCandidates: DefaultSocketCandidates(), SocketFallback: DefaultSocketFallback()}
}

// ErrNoVM is wrapped by the *Error of a file that configures no VM: one
// without vm.kernel, or with no key set at all (the starter file until the
// user edits it). Options.AllowNoVM loads such a file instead.
var ErrNoVM = errors.New("no VM configured")

// Error is a problem with the configuration file. Its message names the
// file, the key and what to do.
type Error struct {
	File string
	Key  string // dotted key, "" for the whole file
	Line int    // 1-based, 0 if unknown
	Msg  string
	Err  error // the underlying error, if any
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "config %s: ", e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", e.Line)
	}
	if e.Key != "" {
		b.WriteString(e.Key)
		// "vm.kernel is not set", but "vm.cpus: 0 is out of range".
		if strings.HasPrefix(e.Msg, "is ") {
			b.WriteString(" ")
		} else {
			b.WriteString(": ")
		}
	}
	b.WriteString(e.Msg)
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Load reads and checks the configuration file at path. When vm.mac is
// absent it generates one and writes it into the file.
func Load(path string, opts Options) (*Config, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	data, err := os.ReadFile(abs)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, &Error{File: abs, Err: err,
				Msg: fmt.Sprintf("the file does not exist: create it (%s) or pass --config FILE", ReadmeHint)}
		}
		return nil, &Error{File: abs, Err: err, Msg: err.Error()}
	}
	c, doc, err := parse(abs, data, opts)
	if err != nil {
		return nil, err
	}
	if c.VM.MAC == nil && c.VMConfigured() {
		newMAC := opts.NewMAC
		if newMAC == nil {
			newMAC = vmhost.RandomMAC
		}
		mac, err := newMAC()
		if err != nil {
			return nil, &Error{File: abs, Key: "vm.mac", Err: err,
				Msg: fmt.Sprintf("not set, and generating one failed: %v; set it yourself", err)}
		}
		out, err := insertMAC(data, doc, mac)
		if err == nil {
			err = writeFileAtomic(abs, out)
		}
		if err != nil {
			return nil, &Error{File: abs, Key: "vm.mac", Err: err,
				Msg: fmt.Sprintf("not set, and writing the generated %s to the file failed: %v; set vm.mac yourself", mac, err)}
		}
		c.VM.MAC = mac
		c.MACGenerated = true
	}
	return c, nil
}

// keys lists the known keys of each mapping, in documentation order.
var keys = map[string][]string{
	"":          {"vm", "network", "reconnect", "autostart_vm", "notifications", "log_level", "logout_stop_timeout"},
	"vm":        {"kernel", "initrd", "cmdline", "cpus", "memory", "disk", "mac", "console_log", "accel", "stop_timeout"},
	"network":   {"socket", "mtu"},
	"reconnect": {"initial_backoff", "max_backoff"},
}

// parser reads one file.
type parser struct {
	file string
	dir  string
	home string
	// vals maps each dotted key seen to its value node.
	vals map[string]*yaml.Node
}

func (p *parser) errf(key string, n *yaml.Node, format string, args ...any) *Error {
	e := &Error{File: p.file, Key: key, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		e.Line = n.Line
	}
	return e
}

// keyErrf is errf on the line of key's value (no line when the key is not
// in the file).
func (p *parser) keyErrf(key string, format string, args ...any) *Error {
	return p.errf(key, p.vals[key], format, args...)
}

// lineOf describes where key is set: " (line N)", or "" when it is not.
func (p *parser) lineOf(key string) string {
	if n := p.vals[key]; n != nil {
		return fmt.Sprintf(" (line %d)", n.Line)
	}
	return ""
}

func parse(file string, data []byte, opts Options) (*Config, *yaml.Node, error) {
	p := &parser{file: file, dir: filepath.Dir(file), home: opts.Home, vals: map[string]*yaml.Node{}}
	if p.home == "" {
		p.home, _ = os.UserHomeDir()
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, nil, yamlError(file, data, err)
	}
	c := &Config{
		File:              file,
		AutostartVM:       true,
		Notifications:     true,
		LogLevel:          logrus.InfoLevel,
		LogoutStopTimeout: DefaultLogoutStopTimeout,
		VM:                VM{CPUs: DefaultCPUs, Memory: DefaultMemory, Accel: DefaultAccel, StopTimeout: DefaultStopTimeout},
		Network:           Network{MTU: DefaultMTU},
		Reconnect:         Reconnect{InitialBackoff: DefaultInitialBackoff, MaxBackoff: DefaultMaxBackoff},
	}
	var top []keyValue
	// A file of comments, a bare "---" or a lone null is empty too.
	if doc.Kind == 0 || len(doc.Content) == 0 || isNull(deref(doc.Content[0])) {
		if !opts.AllowNoVM {
			return nil, nil, &Error{File: file, Err: ErrNoVM,
				Msg: fmt.Sprintf("the file is empty: set at least vm.kernel%s (%s)", socketHint(opts), ReadmeHint)}
		}
	} else {
		root := deref(doc.Content[0])
		if root.Kind != yaml.MappingNode {
			return nil, nil, p.errf("", root, "the file must be a mapping of keys to values (%s)", ReadmeHint)
		}
		var err error
		if top, err = p.mapping("", root); err != nil {
			return nil, nil, err
		}
	}
	for _, kv := range top {
		var err error
		switch kv.key {
		case "vm", "network", "reconnect":
			err = p.section(c, kv)
		case "autostart_vm":
			err = p.boolean(kv, &c.AutostartVM)
		case "notifications":
			err = p.boolean(kv, &c.Notifications)
		case "log_level":
			var s string
			if s, err = p.str(kv); err == nil && s != "" {
				lvl, perr := logrus.ParseLevel(s)
				if perr != nil {
					err = p.errf(kv.path, kv.val, "%q is not a log level (use panic, fatal, error, warn, info, debug or trace)", s)
				}
				c.LogLevel = lvl
			}
		case "logout_stop_timeout":
			err = p.duration(kv, &c.LogoutStopTimeout, durationRange{
				min: time.Nanosecond, max: MaxLogoutStopTimeout, example: "5s or 20s",
				whyMax: "macOS ends the app about a minute after a logout begins anyway (vm.stop_timeout bounds a stop from Quit)",
			})
		}
		if err != nil {
			return nil, nil, err
		}
	}
	if err := p.finish(c, opts); err != nil {
		return nil, nil, err
	}
	c.lines = make(map[string]int, len(p.vals))
	for k, n := range p.vals {
		c.lines[k] = n.Line
	}
	return c, &doc, nil
}

// socketHint is " and network.socket" where network.socket must be set
// (no default socket on this system), else "".
func socketHint(opts Options) string {
	if len(opts.SocketCandidates) == 0 && opts.SocketFallback == "" {
		return " and network.socket"
	}
	return ""
}

// VMConfigured reports whether the file configures a VM (vm.kernel is
// set). Only Options.AllowNoVM loads a file that does not.
func (c *Config) VMConfigured() bool { return c.VM.Kernel != "" }

// keyValue is one checked mapping entry.
type keyValue struct {
	key  string
	path string // dotted path
	keyN *yaml.Node
	val  *yaml.Node
}

// mapping checks that n is a mapping with known, unique keys.
func (p *parser) mapping(path string, n *yaml.Node) ([]keyValue, error) {
	known := keys[path]
	var out []keyValue
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := deref(n.Content[i]), deref(n.Content[i+1])
		full := k.Value
		if path != "" {
			full = path + "." + k.Value
		}
		if k.Kind != yaml.ScalarNode {
			return nil, p.errf(path, k, "keys must be plain names")
		}
		if !slices.Contains(known, k.Value) {
			where := "at the top level"
			if path != "" {
				where = "in " + path
			}
			return nil, p.errf("", k, "unknown key %q %s (known keys: %s)", full, where, strings.Join(known, ", "))
		}
		if seen[k.Value] {
			return nil, p.errf(full, k, "set twice: keep one")
		}
		seen[k.Value] = true
		p.vals[full] = v
		out = append(out, keyValue{key: k.Value, path: full, keyN: k, val: v})
	}
	return out, nil
}

func (p *parser) section(c *Config, kv keyValue) error {
	if isNull(kv.val) {
		return nil
	}
	if kv.val.Kind != yaml.MappingNode {
		return p.errf(kv.path, kv.val, "must be a mapping of keys to values (%s)", ReadmeHint)
	}
	entries, err := p.mapping(kv.path, kv.val)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := p.leaf(c, e); err != nil {
			return err
		}
	}
	return nil
}

// leaf parses one key of a section.
func (p *parser) leaf(c *Config, kv keyValue) error {
	switch kv.path {
	case "vm.kernel":
		return p.path(kv, &c.VM.Kernel)
	case "vm.initrd":
		return p.path(kv, &c.VM.Initrd)
	case "vm.disk":
		return p.path(kv, &c.VM.Disk)
	case "vm.console_log":
		return p.path(kv, &c.VM.ConsoleLog)
	case "network.socket":
		return p.path(kv, &c.Network.Socket)
	case "vm.cmdline":
		s, err := p.str(kv)
		c.VM.Cmdline = s
		return err
	case "vm.cpus":
		return p.integer(kv, &c.VM.CPUs, 1, MaxCPUs)
	case "network.mtu":
		return p.integer(kv, &c.Network.MTU, MinMTU, MaxMTU)
	case "vm.memory":
		s, err := p.str(kv)
		if err != nil || s == "" {
			return err
		}
		const allowed = "use a size from 64MiB up to the host's memory, e.g. 1GiB or 512MiB"
		size, err := vmhost.ParseSize(s)
		switch {
		case err != nil && strings.Contains(err.Error(), "too large"):
			return p.errf(kv.path, kv.val, "%q is too large (%s)", s, allowed)
		case err != nil:
			return p.errf(kv.path, kv.val, "%q is not a size (%s)", s, allowed)
		case size < MinMemory:
			return p.errf(kv.path, kv.val, "%q is too small (%s)", s, allowed)
		case size%vmhost.MiB != 0:
			return p.errf(kv.path, kv.val, "%q is not a whole number of MiB (use e.g. %s)", s, vmhost.FormatSize((size/vmhost.MiB+1)*vmhost.MiB))
		}
		c.VM.Memory = size
	case "vm.mac":
		s, err := p.str(kv)
		if err != nil || s == "" {
			return err
		}
		mac, err := vmhost.ParseMAC(s)
		if err != nil {
			return p.errf(kv.path, kv.val, "%v (or remove the key to have one generated)", err)
		}
		c.VM.MAC = mac
	case "vm.accel":
		s, err := p.str(kv)
		if err != nil || s == "" {
			return err
		}
		switch s {
		case "auto", "kvm", "tcg":
			c.VM.Accel = s
		default:
			return p.errf(kv.path, kv.val, "%q is not an accelerator (use auto, kvm or tcg)", s)
		}
	case "vm.stop_timeout":
		return p.duration(kv, &c.VM.StopTimeout, durationRange{
			min: time.Nanosecond, max: MaxStopTimeout, example: "30s or 2m",
			whyMax: "quitting would wait that long for the guest before forcing it off",
		})
	case "reconnect.initial_backoff":
		return p.duration(kv, &c.Reconnect.InitialBackoff, backoffRange)
	case "reconnect.max_backoff":
		return p.duration(kv, &c.Reconnect.MaxBackoff, backoffRange)
	}
	return nil
}

// finish applies the defaults that depend on other keys or the machine and
// checks the keys together.
func (p *parser) finish(c *Config, opts Options) error {
	noVM := c.VM.Kernel == ""
	if noVM && !opts.AllowNoVM {
		e := p.keyErrf("vm.kernel", "is not set: point it at the guest's kernel image (%s)", ReadmeHint)
		e.Err = ErrNoVM
		return e
	}
	for _, f := range []struct {
		key, path, what string
		flag            int
	}{
		{"vm.kernel", c.VM.Kernel, "the guest's kernel image", os.O_RDONLY},
		{"vm.initrd", c.VM.Initrd, "the guest's initrd, or remove the key", os.O_RDONLY},
		{"vm.disk", c.VM.Disk, "a raw disk image you can read and write (or a block device), or remove the key", os.O_RDWR},
	} {
		if f.path == "" {
			continue
		}
		if err := p.checkFile(f.key, f.path, f.what, f.flag); err != nil {
			return err
		}
	}
	if c.VM.ConsoleLog == "" {
		dir := opts.StateDir
		if dir == "" {
			dir = p.dir
		}
		c.VM.ConsoleLog = filepath.Join(dir, "console.log")
	}
	if c.Network.Socket == "" {
		for _, s := range opts.SocketCandidates {
			if _, err := os.Stat(s); err == nil {
				c.Network.Socket = s
				break
			}
		}
		if c.Network.Socket == "" {
			// Not installed or not started yet: the link waits for it.
			c.Network.Socket = opts.SocketFallback
		}
		switch {
		case c.Network.Socket != "" || noVM:
			// A file without a VM needs no socket yet.
		case len(opts.SocketCandidates) == 0:
			return p.keyErrf("network.socket", "is not set: point it at your socket_vmnet-compatible daemon's socket")
		default:
			return p.keyErrf("network.socket", "is not set and no socket_vmnet socket exists at %s: install and start socket_vmnet, or set network.socket",
				strings.Join(opts.SocketCandidates, ", "))
		}
	}
	if n := len(c.Network.Socket); n > MaxSocketPathLen {
		return p.keyErrf("network.socket", "%s is %d bytes long, but a socket path can be at most %d bytes (the sun_path limit): use a shorter path to the socket (a symbolic link works)",
			c.Network.Socket, n, MaxSocketPathLen)
	}
	// Each backoff is within backoffRange (see leaf); here they are
	// checked against each other.
	if initial, most := c.Reconnect.InitialBackoff, c.Reconnect.MaxBackoff; most < initial {
		if p.vals["reconnect.max_backoff"] == nil {
			return p.keyErrf("reconnect.initial_backoff", "%s is longer than reconnect.max_backoff (%s, its default): shorten it, or set reconnect.max_backoff to at least %s",
				formatDuration(initial), formatDuration(most), formatDuration(initial))
		}
		at := p.lineOf("reconnect.initial_backoff")
		if at == "" {
			at = " (its default)"
		}
		return p.keyErrf("reconnect.max_backoff", "%s is shorter than reconnect.initial_backoff, %s%s: make it at least as long",
			formatDuration(most), formatDuration(initial), at)
	}
	return nil
}

// checkFile checks that path, the value of key, is a non-empty regular
// file that can be opened with flag; with O_RDWR (a disk) a block device
// will do too. what says what key should point at. It never blocks on a
// named pipe.
func (p *parser) checkFile(key, path, what string, flag int) error {
	st, err := os.Stat(path)
	blockOK := flag&os.O_RDWR != 0
	isBlock := st != nil && st.Mode()&fs.ModeDevice != 0 && st.Mode()&fs.ModeCharDevice == 0
	switch {
	case err != nil && errors.Is(err, fs.ErrNotExist):
		return p.keyErrf(key, "%s does not exist: fix the path", path)
	case err != nil:
		e := p.keyErrf(key, "cannot use %s: %v", path, err)
		e.Err = err
		return e
	case st.IsDir():
		return p.keyErrf(key, "%s is a directory: point it at %s", path, what)
	case blockOK && isBlock:
	case !st.Mode().IsRegular():
		return p.keyErrf(key, "%s is not a regular file (it is a %s): point it at %s", path, fileKind(st.Mode()), what)
	case st.Size() == 0:
		return p.keyErrf(key, "%s is empty (0 bytes): point it at %s", path, what)
	}
	// O_NONBLOCK: a named pipe swapped in after the Stat does not block.
	f, err := os.OpenFile(path, flag|syscall.O_NONBLOCK, 0)
	if err != nil {
		access := "read"
		if flag&os.O_RDWR != 0 {
			access = "read and written"
		}
		e := p.keyErrf(key, "cannot use %s: %v", path, err)
		if errors.Is(err, fs.ErrPermission) {
			e = p.keyErrf(key, "%s cannot be %s (permission denied): fix its permissions, or point it at %s", path, access, what)
		}
		e.Err = err
		return e
	}
	_ = f.Close() // opened read-only or not written: nothing to lose
	return nil
}

// fileKind names the type of a file that is not a regular file.
func fileKind(m fs.FileMode) string {
	switch {
	case m&fs.ModeCharDevice != 0:
		return "character device"
	case m&fs.ModeDevice != 0:
		return "block device"
	case m&fs.ModeNamedPipe != 0:
		return "named pipe"
	case m&fs.ModeSocket != 0:
		return "socket"
	}
	return "special file"
}

// deref follows YAML aliases.
func deref(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// str reads a scalar; null is "".
func (p *parser) str(kv keyValue) (string, error) {
	if kv.val.Kind != yaml.ScalarNode {
		return "", p.errf(kv.path, kv.val, "must be a single value, not a list or mapping")
	}
	if isNull(kv.val) {
		return "", nil
	}
	return kv.val.Value, nil
}

// path reads a file path: "~/" is the home directory, a relative path is
// relative to the configuration file's directory.
func (p *parser) path(kv keyValue, dst *string) error {
	s, err := p.str(kv)
	if err != nil || s == "" {
		return err
	}
	if s == "~" || strings.HasPrefix(s, "~/") {
		if p.home == "" {
			return p.errf(kv.path, kv.val, "%q starts with ~ but the home directory is unknown: write the full path", s)
		}
		s = filepath.Join(p.home, strings.TrimPrefix(s, "~"))
	}
	if !filepath.IsAbs(s) {
		s = filepath.Join(p.dir, s)
	}
	*dst = filepath.Clean(s)
	return nil
}

func (p *parser) integer(kv keyValue, dst *int, lo, hi int) error {
	s, err := p.str(kv)
	if err != nil || s == "" {
		return err
	}
	v, err := strconv.Atoi(s)
	switch {
	case errors.Is(err, strconv.ErrRange) && strings.HasPrefix(s, "-"):
		return p.errf(kv.path, kv.val, "%s is too small (use a number from %d to %d)", s, lo, hi)
	case errors.Is(err, strconv.ErrRange):
		return p.errf(kv.path, kv.val, "%s is too large (use a number from %d to %d)", s, lo, hi)
	case err != nil:
		return p.errf(kv.path, kv.val, "%q is not a whole number (use a number from %d to %d)", s, lo, hi)
	}
	if v < lo || v > hi {
		return p.errf(kv.path, kv.val, "%d is out of range (use a number from %d to %d)", v, lo, hi)
	}
	*dst = v
	return nil
}

func (p *parser) boolean(kv keyValue, dst *bool) error {
	s, err := p.str(kv)
	if err != nil || s == "" {
		return err
	}
	switch strings.ToLower(s) {
	case "true", "yes", "on":
		*dst = true
	case "false", "no", "off":
		*dst = false
	default:
		return p.errf(kv.path, kv.val, "%q is not true or false", s)
	}
	return nil
}

// durationRange bounds a duration key.
type durationRange struct {
	min, max       time.Duration
	example        string // "30s or 2m"
	whyMin, whyMax string // why shorter or longer is refused
}

// backoffRange bounds reconnect.initial_backoff and reconnect.max_backoff.
var backoffRange = durationRange{
	min: MinInitialBackoff, max: MaxMaxBackoff, example: "100ms or 2s",
	whyMin: "a shorter wait spins a CPU core and floods the log while the daemon is down",
	whyMax: "the link would stay down that long after the daemon is back",
}

// durationSyntax matches what time.ParseDuration accepts, whatever the
// value: when it matches and ParseDuration fails, the value overflows.
var durationSyntax = regexp.MustCompile(`^[-+]?((\d+(\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h))+$`)

func (p *parser) duration(kv keyValue, dst *time.Duration, r durationRange) error {
	s, err := p.str(kv)
	if err != nil || s == "" {
		return err
	}
	why := func(reason string) string {
		if reason == "" {
			return ""
		}
		return ": " + reason
	}
	allowed := fmt.Sprintf("a duration from %s to %s", formatDuration(r.min), formatDuration(r.max))
	if r.min <= time.Nanosecond {
		allowed = "a positive duration up to " + formatDuration(r.max)
	}
	d, err := time.ParseDuration(s)
	switch {
	case err != nil && durationSyntax.MatchString(s) && !strings.HasPrefix(s, "-"):
		return p.errf(kv.path, kv.val, "%q is too long (use %s, e.g. %s)", s, allowed, r.example)
	case err != nil || d <= 0:
		return p.errf(kv.path, kv.val, "%q is not a positive duration (use %s, e.g. %s)", s, allowed, r.example)
	case d < r.min:
		return p.errf(kv.path, kv.val, "%q is too short: use at least %s%s", s, formatDuration(r.min), why(r.whyMin))
	case d > r.max:
		return p.errf(kv.path, kv.val, "%q is too long: use at most %s%s", s, formatDuration(r.max), why(r.whyMax))
	}
	*dst = d
	return nil
}

// formatDuration writes d as a user would: 1h and 1m rather than 1h0m0s
// and 1m0s.
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// VMConfig is the vmhost configuration of the VM, without its NIC.
func (c *Config) VMConfig() vmhost.Config {
	return vmhost.Config{
		Kernel:      c.VM.Kernel,
		Initrd:      c.VM.Initrd,
		Cmdline:     c.VM.Cmdline,
		CPUs:        c.VM.CPUs,
		Memory:      c.VM.Memory,
		Disk:        c.VM.Disk,
		MAC:         slices.Clone(c.VM.MAC),
		ConsoleLog:  c.VM.ConsoleLog,
		MTU:         c.Network.MTU,
		Accel:       c.VM.Accel,
		StopTimeout: c.VM.StopTimeout,
	}
}

// Locate turns errors about this configuration whose messages start with
// a dotted key, such as vmhost.Config's checks ("vm.cpus is 64: it must be
// between 1 and 8 (the host's CPU count)", "vm.kernel: ..."), into *Error
// values naming File and the line where that key is set (no line when the
// key is not in the file: its default is at fault). An errors.Join of such
// errors becomes an errors.Join of *Error values, in the same order. An
// error that does not start with a known key, or is an *Error already, is
// kept as it is; nil stays nil.
func (c *Config) Locate(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := err.(*Error); ok {
		return err
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, c.Locate(e))
		}
		return errors.Join(out...)
	}
	msg := err.Error()
	for section, names := range keys {
		for _, name := range names {
			key := name
			if section != "" {
				key = section + "." + name
			} else if keys[name] != nil {
				continue // a section, not a key
			}
			rest, ok := strings.CutPrefix(msg, key)
			if !ok || rest == "" || (rest[0] != ':' && rest[0] != ' ') {
				continue
			}
			rest = strings.TrimSpace(strings.TrimPrefix(rest, ":"))
			return &Error{File: c.File, Key: key, Line: c.lines[key], Msg: rest, Err: err}
		}
	}
	return err
}

// insertMAC returns data with vm.mac set to mac. doc is data's node tree.
// When vm is a block mapping without a mac key, the line is inserted
// textually so every comment, blank line and indent stays as written;
// otherwise the node tree is edited and encoded again.
func insertMAC(data []byte, doc *yaml.Node, mac net.HardwareAddr) ([]byte, error) {
	root := deref(doc.Content[0])
	var vm *yaml.Node
	var vmKey *yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value == "vm" {
			vmKey, vm = root.Content[i], root.Content[i+1]
		}
	}
	if vm == nil || vm.Kind == yaml.AliasNode {
		return nil, errors.New("the vm section is missing or an alias")
	}
	var macVal *yaml.Node
	for i := 0; i+1 < len(vm.Content); i += 2 {
		if vm.Content[i].Value == "mac" {
			macVal = vm.Content[i+1]
		}
	}
	value := strconv.Quote(mac.String())
	if macVal == nil && vm.Kind == yaml.MappingNode && vm.Style&yaml.FlowStyle == 0 && len(vm.Content) > 0 &&
		vm.Content[0].Line > vmKey.Line && !bytes.Contains(data, []byte("\r")) {
		first := vm.Content[0]
		lines := bytes.SplitAfter(data, []byte("\n"))
		at := first.Line - 1
		// Keep comment lines directly above the first key with that key.
		for at > vmKey.Line && bytes.HasPrefix(bytes.TrimLeft(lines[at-1], " \t"), []byte("#")) {
			at--
		}
		line := []byte(strings.Repeat(" ", first.Column-1) + "mac: " + value + "  # generated by vmnetbar\n")
		out := make([]byte, 0, len(data)+len(line))
		for _, l := range lines[:at] {
			out = append(out, l...)
		}
		out = append(out, line...)
		for _, l := range lines[at:] {
			out = append(out, l...)
		}
		var check yaml.Node
		if err := yaml.Unmarshal(out, &check); err == nil {
			return out, nil
		}
	}
	// Edit the tree and encode it again.
	if vm.Kind != yaml.MappingNode {
		vm.Kind, vm.Tag, vm.Value, vm.Style = yaml.MappingNode, "!!map", "", 0
	}
	if macVal != nil {
		macVal.Kind, macVal.Tag, macVal.Value, macVal.Style = yaml.ScalarNode, "!!str", mac.String(), yaml.DoubleQuotedStyle
	} else {
		val := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: mac.String(), Style: yaml.DoubleQuotedStyle}
		if vm.Style&yaml.FlowStyle == 0 {
			val.LineComment = "# generated by vmnetbar"
		}
		vm.Content = append(vm.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: "mac"}, val)
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// writeFileAtomic replaces path with data, keeping its permissions. A
// symbolic link is followed, so the file it points to is replaced.
func writeFileAtomic(path string, data []byte) error {
	if real, err := filepath.EvalSymlinks(path); err == nil {
		path = real
	}
	mode := fs.FileMode(0o644)
	if st, err := os.Stat(path); err == nil {
		mode = st.Mode().Perm()
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".config-*.yaml")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(mode)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
	}
	return err
}
