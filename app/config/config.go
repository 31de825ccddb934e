package config

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
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

	// MACGenerated is true when vm.mac was absent and Load generated one
	// and wrote it to File.
	MACGenerated bool
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
	// default is the first existing socket_vmnet socket; Linux has none.
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
	// the first that exists is used. Empty means network.socket is
	// required.
	SocketCandidates []string
	// NewMAC generates the MAC written back when vm.mac is absent;
	// nil means vmhost.RandomMAC.
	NewMAC func() (net.HardwareAddr, error)
	// Home expands a leading "~/" in paths; "" means os.UserHomeDir.
	Home string
}

// DefaultOptions are the Options for this machine given its Paths.
func DefaultOptions(p Paths) Options {
	return Options{StateDir: p.StateDir, SocketCandidates: DefaultSocketCandidates()}
}

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
		b.WriteString(": ")
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
	if c.VM.MAC == nil {
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
	"":          {"vm", "network", "reconnect", "autostart_vm", "notifications", "log_level"},
	"vm":        {"kernel", "initrd", "cmdline", "cpus", "memory", "disk", "mac", "console_log", "accel", "stop_timeout"},
	"network":   {"socket", "mtu"},
	"reconnect": {"initial_backoff", "max_backoff"},
}

// parser reads one file.
type parser struct {
	file string
	dir  string
	home string
}

func (p *parser) errf(key string, n *yaml.Node, format string, args ...any) *Error {
	e := &Error{File: p.file, Key: key, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		e.Line = n.Line
	}
	return e
}

func parse(file string, data []byte, opts Options) (*Config, *yaml.Node, error) {
	p := &parser{file: file, dir: filepath.Dir(file), home: opts.Home}
	if p.home == "" {
		p.home, _ = os.UserHomeDir()
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, nil, &Error{File: file, Err: err,
			Msg: fmt.Sprintf("not valid YAML: %s", strings.TrimPrefix(err.Error(), "yaml: "))}
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil, nil, &Error{File: file, Msg: fmt.Sprintf("the file is empty: set at least vm.kernel and network.socket (%s)", ReadmeHint)}
	}
	root := deref(doc.Content[0])
	if root.Kind != yaml.MappingNode {
		return nil, nil, p.errf("", root, "the file must be a mapping of keys to values (%s)", ReadmeHint)
	}

	c := &Config{
		File:          file,
		AutostartVM:   true,
		Notifications: true,
		LogLevel:      logrus.InfoLevel,
		VM:            VM{CPUs: DefaultCPUs, Memory: DefaultMemory, Accel: DefaultAccel, StopTimeout: DefaultStopTimeout},
		Network:       Network{MTU: DefaultMTU},
		Reconnect:     Reconnect{InitialBackoff: DefaultInitialBackoff, MaxBackoff: DefaultMaxBackoff},
	}
	top, err := p.mapping("", root)
	if err != nil {
		return nil, nil, err
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
		}
		if err != nil {
			return nil, nil, err
		}
	}
	if err := p.finish(c, opts, root); err != nil {
		return nil, nil, err
	}
	return c, &doc, nil
}

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
		size, err := vmhost.ParseSize(s)
		if err != nil || size == 0 {
			return p.errf(kv.path, kv.val, "%q is not a size (use e.g. 1GiB or 512MiB)", s)
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
		return p.duration(kv, &c.VM.StopTimeout, "30s or 2m")
	case "reconnect.initial_backoff":
		return p.duration(kv, &c.Reconnect.InitialBackoff, "100ms or 2s")
	case "reconnect.max_backoff":
		return p.duration(kv, &c.Reconnect.MaxBackoff, "100ms or 2s")
	}
	return nil
}

// finish applies the defaults that depend on other keys or the machine and
// checks the keys together.
func (p *parser) finish(c *Config, opts Options, root *yaml.Node) error {
	if c.VM.Kernel == "" {
		return p.errf("vm.kernel", nil, "is not set: point it at the guest's kernel image (%s)", ReadmeHint)
	}
	for _, f := range []struct {
		key, path string
	}{{"vm.kernel", c.VM.Kernel}, {"vm.initrd", c.VM.Initrd}, {"vm.disk", c.VM.Disk}} {
		if f.path == "" {
			continue
		}
		st, err := os.Stat(f.path)
		switch {
		case err != nil && errors.Is(err, fs.ErrNotExist):
			return p.errf(f.key, nil, "%s does not exist: fix the path", f.path)
		case err != nil:
			return &Error{File: p.file, Key: f.key, Err: err, Msg: fmt.Sprintf("cannot use %s: %v", f.path, err)}
		case st.IsDir():
			return p.errf(f.key, nil, "%s is a directory: point it at a file", f.path)
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
		if len(opts.SocketCandidates) == 0 {
			return p.errf("network.socket", nil, "is not set: point it at your socket_vmnet-compatible daemon's socket")
		}
		for _, s := range opts.SocketCandidates {
			if _, err := os.Stat(s); err == nil {
				c.Network.Socket = s
				break
			}
		}
		if c.Network.Socket == "" {
			return p.errf("network.socket", nil, "is not set and no socket_vmnet socket exists at %s: install and start socket_vmnet, or set network.socket",
				strings.Join(opts.SocketCandidates, ", "))
		}
	}
	if c.Reconnect.MaxBackoff < c.Reconnect.InitialBackoff {
		return p.errf("reconnect.max_backoff", nil, "%s is less than reconnect.initial_backoff (%s): make it at least as long",
			c.Reconnect.MaxBackoff, c.Reconnect.InitialBackoff)
	}
	return nil
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
	if err != nil {
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

func (p *parser) duration(kv keyValue, dst *time.Duration, example string) error {
	s, err := p.str(kv)
	if err != nil || s == "" {
		return err
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return p.errf(kv.path, kv.val, "%q is not a positive duration (use e.g. %s)", s, example)
	}
	*dst = d
	return nil
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
