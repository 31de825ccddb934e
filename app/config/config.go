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

	"github.com/vmnetbar/vmnetbar/app/provision"
	"github.com/vmnetbar/vmnetbar/netlink"
	"github.com/vmnetbar/vmnetbar/vmhost"
)

// Config is the parsed configuration file. Every field holds its final
// value: defaults applied, relative paths made absolute.
//
// A file has one of two forms. The single-VM form (vm:, network: and
// autostart_vm at the top level) configures one VM named DefaultVMName,
// or none while vm.kernel is unset (see Options.AllowNoVM). The vms: form
// configures any number of named VMs, each with every key of the vm:
// section plus its own network:, autostart and reconnect: (which
// overrides the top-level reconnect: defaults key by key). A file must
// not mix them.
type Config struct {
	// File is the configuration file this was read from (absolute).
	File string

	// VMs are the VMs the file configures, sorted by name. The single-VM
	// form gives one, named DefaultVMName (none while vm.kernel is unset).
	VMs []VM
	// SingleVMForm is true when the file uses the single-VM form (vm:,
	// network:, autostart_vm) rather than vms:. Errors about a VM's keys
	// then say vm.cpus rather than vms.NAME.cpus.
	SingleVMForm bool

	// Reconnect is the top-level reconnect: section, the defaults of
	// every VM's Reconnect.
	Reconnect Reconnect
	// Notifications enables desktop notifications (notifications, default true).
	Notifications bool
	// LogLevel is the app's log level (log_level, default info).
	LogLevel logrus.Level
	// LogoutStopTimeout bounds the graceful stop of the VMs when the system
	// ends the app (logout, restart, shutdown) before they are forced off
	// (logout_stop_timeout, default 5s); each VM's stop_timeout bounds it
	// too. Quit and SIGTERM wait for the VMs' stop_timeout.
	LogoutStopTimeout time.Duration

	// The single-VM view, for callers written for one VM. In the
	// single-VM form VM, Network and AutostartVM are the vm: and network:
	// sections and autostart_vm even while vm.kernel is unset (defaults
	// applied); in the vms: form they mirror the VM when exactly one is
	// configured and are zero otherwise. MACGenerated is the one VM's.
	// New code uses VMs.
	VM           Machine
	Network      Network
	AutostartVM  bool
	MACGenerated bool

	// lines maps each dotted key set in File to the line of its value.
	lines map[string]int
}

// DefaultVMName is the name of the VM of the single-VM form.
const DefaultVMName = "default"

// VM is one configured VM: a section of vms:, or the single-VM form's
// vm: and network: sections.
type VM struct {
	// Name is the section's name under vms: (DefaultVMName for the
	// single-VM form): 1 to MaxVMNameLen lowercase letters, digits and
	// '-', starting with a letter or digit.
	Name string
	// Machine is the VM's own settings (kernel, cpus, ...). Its MAC is
	// always set: generated and written into the file when absent.
	Machine
	// Network is the VM's network: section (the top-level one in the
	// single-VM form). Two VMs may share a socket: each opens its own
	// connection to the daemon.
	Network Network
	// Reconnect is the VM's effective backoff: its own reconnect: keys,
	// else the top-level ones, else the defaults.
	Reconnect Reconnect
	// Autostart boots the VM when the app starts (vms.NAME.autostart, or
	// autostart_vm in the single-VM form; default true).
	Autostart bool
	// StateDir is the VM's own directory, STATE/vms/NAME (STATE is
	// Options.StateDir), created with mode 0700 by Load. It holds the
	// console log by default, except in the single-VM form, whose console
	// log stays at STATE/console.log, where it always was.
	StateDir string
	// MACGenerated is true when the VM had no mac and Load generated one
	// and wrote it into File.
	MACGenerated bool

	// file, prefix, netPrefix and lines let Locate name the user's keys:
	// prefix is "vm." or "vms.NAME.", netPrefix "network." or
	// "vms.NAME.network.".
	file              string
	prefix, netPrefix string
	lines             map[string]int
}

// Machine is a VM's own settings: the vm: section, or the same keys in a
// section of vms:.
type Machine struct {
	// Image is a distro cloud image, qcow2 or raw (image): the VM boots
	// it with EFI, from a disk of its own made from the image on its
	// first start. A VM has Image or Kernel, never both.
	Image string
	// DiskSize is the size the VM's disk is grown to (disk_size), default
	// 20 GiB; never smaller than the image.
	DiskSize uint64
	// CloudInit: vmnetbar writes a cloud-init seed for the image
	// (cloud_init), default true.
	CloudInit bool
	// SSHKeys are public key files for the guest's user (ssh_keys);
	// none means every ~/.ssh/*.pub, else a key of vmnetbar's own.
	SSHKeys []string
	// UserData is the user's own cloud-init user-data (user_data),
	// merged into vmnetbar's; "" = none.
	UserData string
	// SSHAddress is where SSH reaches the guest, HOST:PORT (ssh_address);
	// "" = port 22 on the guest's address as the link learned it.
	SSHAddress string
	Kernel     string           // kernel: with Image, exactly one is set
	Initrd     string           // initrd, "" = none
	Cmdline    string           // cmdline, "" = the backend's default
	CPUs       int              // cpus, default DefaultCPUs
	Memory     uint64           // memory in bytes, default 1 GiB
	Disk       string           // disk, "" = none
	MAC        net.HardwareAddr // mac, generated once when absent
	ConsoleLog string           // console_log, see VM.StateDir for the default
	Accel      string           // accel: auto, kvm or tcg (QEMU only), default auto
	// SSHUser is the user `vmnetbar ssh` and the menu's SSH command log
	// in as (ssh_user); "" means the host user's login name.
	SSHUser string
	// StopTimeout bounds a graceful stop before the VM is forced off
	// (stop_timeout), default 30s.
	StopTimeout time.Duration
}

// Network is a network: section.
type Network struct {
	// Socket is the daemon's stream socket (socket). On macOS the
	// default is the first existing socket_vmnet socket, else Homebrew's
	// socket for the Mac's architecture (the link waits for it to
	// appear); Linux has none. "" only in the single-VM view of a file
	// that configures no VM.
	Socket string
	// MTU of the VM's NIC (mtu), default 1500.
	MTU int
	// Filter: the link passes the VM only frames for MAC addresses the
	// VM has sent from, besides broadcast and multicast (filter), default
	// true. Off for guests that bridge MACs that have not sent anything.
	Filter bool
	// Probe: the link asks the gateway (one ARP request) when the daemon
	// has been silent for 10 s, to tell a quiet network from a dead one
	// (probe), default true.
	Probe bool
}

// Reconnect is a reconnect: section: the backoff between redials of the
// daemon.
type Reconnect struct {
	InitialBackoff time.Duration // initial_backoff, default 100ms
	MaxBackoff     time.Duration // max_backoff, default 2s
}

// Defaults of optional keys.
const (
	DefaultCPUs           = vmhost.DefaultCPUs
	DefaultMemory         = vmhost.DefaultMemory
	DefaultMTU            = vmhost.DefaultMTU
	DefaultInitialBackoff = netlink.DefaultInitialBackoff
	DefaultMaxBackoff     = netlink.DefaultMaxBackoff
	DefaultAccel          = vmhost.DefaultAccel
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
	// DefaultDiskSize, MinDiskSize and MaxDiskSize bound disk_size.
	DefaultDiskSize = 20 << 30
	MinDiskSize     = 1 << 30
	MaxDiskSize     = 64 << 40
	// MaxSocketPathLen is the longest network.socket path: macOS's
	// sun_path holds 104 bytes including the terminating NUL (Linux's
	// 108); the same limit is used everywhere, as app/control's
	// MaxSocketPathLen does for the control socket.
	MaxSocketPathLen = 103
	// MaxVMNameLen is the longest VM name.
	MaxVMNameLen = 32
)

// ReadmeHint points users at the example configuration.
const ReadmeHint = `see "Configuration" in the README for an example`

// Options are the machine-dependent inputs of Load. The zero value of each
// field means a sensible default.
type Options struct {
	// StateDir holds each VM's state directory (vms/NAME) and the
	// single-VM form's console log. "" means the directory of the
	// configuration file.
	StateDir string
	// SocketCandidates are tried in order when a VM's network.socket is
	// unset; the first that exists is used. Empty (and no SocketFallback)
	// means network.socket is required.
	SocketCandidates []string
	// SocketFallback is network.socket when it is unset and none of
	// SocketCandidates exists: the daemon is not installed or not started
	// yet, and the link waits for its socket. "" means such a file is
	// refused, naming the candidates.
	SocketFallback string
	// AllowNoVM loads a file that configures no VM yet (the single-VM
	// form without vm.kernel, no key set at all as in the starter file,
	// or an empty vms:): the Config has no VMs (see VMConfigured),
	// network.socket is not required and no MAC address is generated.
	// Everything that is set is still checked. Without it such a file is
	// an *Error wrapping ErrNoVM.
	AllowNoVM bool
	// NewMAC generates the MAC written back when a VM has none; nil means
	// vmhost.RandomMAC.
	NewMAC func() (net.HardwareAddr, error)
	// Home expands a leading "~/" in paths; "" means os.UserHomeDir.
	Home string
}

// DefaultOptions are the Options for this machine given its Paths.
func DefaultOptions(p Paths) Options {
	return Options{StateDir: p.StateDir, SocketCandidates: DefaultSocketCandidates(), SocketFallback: DefaultSocketFallback()}
}

// ErrNoVM is wrapped by the *Error of a file that configures no VM: one
// without vm.kernel, with no key set at all (the starter file until the
// user edits it), or with no VM under vms:. Options.AllowNoVM loads such a
// file instead.
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

// Load reads and checks the configuration file at path. Each VM without a
// mac gets one generated, written into its section of the file (comments
// and layout kept); each VM's state directory is created.
//
// The generated addresses are written only over the file as it was read:
// when it changed in between (an editor saved it), it is read again and
// the new version gets the addresses, so no edit is lost.
func Load(path string, opts Options) (*Config, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	for attempt := 1; ; attempt++ {
		last := attempt == maxLoadAttempts
		c, err := loadOnce(abs, opts, last)
		if last || !errors.Is(err, errFileChanged) {
			return c, err
		}
	}
}

// maxLoadAttempts bounds the reads of a file that keeps changing while
// the generated MAC addresses are written into it.
const maxLoadAttempts = 5

// errFileChanged: the file changed between its read and the write-back.
var errFileChanged = errors.New("the file changed while vmnetbar wrote to it")

func loadOnce(abs string, opts Options, last bool) (*Config, error) {
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
	newMAC := opts.NewMAC
	if newMAC == nil {
		newMAC = vmhost.RandomMAC
	}
	out, err := c.generateMACs(data, doc, newMAC)
	if err != nil {
		return nil, err
	}
	if out != nil {
		err := writeFileAtomic(abs, data, out)
		if errors.Is(err, errFileChanged) && !last {
			return nil, err
		}
		if err != nil {
			var keys []string
			for _, v := range c.VMs {
				if v.MACGenerated {
					keys = append(keys, v.prefix+"mac")
				}
			}
			return nil, &Error{File: abs, Key: keys[0], Err: err,
				Msg: fmt.Sprintf("not set, and writing the generated address to the file failed: %v; set %s yourself", err, strings.Join(keys, " and "))}
		}
	}
	for _, v := range c.VMs {
		if err := os.MkdirAll(v.StateDir, 0o700); err != nil {
			return nil, &Error{File: abs, Err: err,
				Msg: fmt.Sprintf("cannot create the state directory of VM %s: %v: make its parent directory writable", v.Name, err)}
		}
	}
	c.mirrorSingleVM()
	return c, nil
}

// generateMACs gives every VM without a MAC address a new one, unique
// among the VMs, and returns data with each written into its VM's section
// (nil when every VM had one). doc is data's node tree; it is used up.
func (c *Config) generateMACs(data []byte, doc *yaml.Node, newMAC func() (net.HardwareAddr, error)) ([]byte, error) {
	used := map[string]bool{}
	for _, v := range c.VMs {
		if v.MAC != nil {
			used[v.MAC.String()] = true
		}
	}
	var out []byte
	for i := range c.VMs {
		v := &c.VMs[i]
		if v.MAC != nil {
			continue
		}
		key := v.prefix + "mac"
		var mac net.HardwareAddr
		var err error
		// A generator that repeats itself gets a few more tries.
		for try := 0; try < 16 && (mac == nil || used[mac.String()]); try++ {
			if mac, err = newMAC(); err != nil {
				return nil, &Error{File: c.File, Key: key, Err: err,
					Msg: fmt.Sprintf("not set, and generating one failed: %v; set it yourself", err)}
			}
		}
		if used[mac.String()] {
			return nil, &Error{File: c.File, Key: key,
				Msg: fmt.Sprintf("not set, and the generator gave only addresses other VMs have (%s); set it yourself", mac)}
		}
		if out == nil {
			out = data
		}
		next, err := insertMAC(out, doc, v.sectionPath(), mac)
		if err == nil {
			err = yaml.Unmarshal(next, doc)
		}
		if err != nil {
			return nil, &Error{File: c.File, Key: key, Err: err,
				Msg: fmt.Sprintf("not set, and writing the generated %s to the file failed: %v; set %s yourself", mac, err, key)}
		}
		out = next
		used[mac.String()] = true
		v.MAC, v.MACGenerated = mac, true
	}
	return out, nil
}

// sectionPath is the path of the VM's section in the file: [vm] or
// [vms NAME].
func (v *VM) sectionPath() []string {
	if v.prefix == "vm." {
		return []string{"vm"}
	}
	return []string{"vms", v.Name}
}

// mirrorSingleVM fills the single-VM view from the only VM of the vms:
// form (the single-VM form has it from parse).
func (c *Config) mirrorSingleVM() {
	if len(c.VMs) == 1 {
		v := c.VMs[0]
		c.VM, c.Network, c.AutostartVM, c.MACGenerated = v.Machine, v.Network, v.Autostart, v.MACGenerated
	}
}

// VMConfigured reports whether the file configures at least one VM. Only
// Options.AllowNoVM loads a file that does not.
func (c *Config) VMConfigured() bool { return len(c.VMs) > 0 }

// Lookup returns the VM named name, or nil.
func (c *Config) Lookup(name string) *VM {
	for i := range c.VMs {
		if c.VMs[i].Name == name {
			return &c.VMs[i]
		}
	}
	return nil
}

// Names are the VMs' names, sorted.
func (c *Config) Names() []string {
	names := make([]string, len(c.VMs))
	for i, v := range c.VMs {
		names[i] = v.Name
	}
	return names
}

// VMConfig is the vmhost configuration of the VM, without its NIC.
//
// A VM with an image boots with EFI from its own disk, with its cloud-init
// seed, EFI variables and machine identifier: files in its state directory
// (see Provision) that its first start makes.
func (v *VM) VMConfig() vmhost.Config {
	if v.Image != "" {
		p := v.Provision("", "")
		cfg := vmhost.Config{
			Boot:        vmhost.BootEFI,
			Disk:        p.DiskPath(),
			EFIVars:     p.EFIVarsPath(),
			MachineID:   p.MachineIDPath(),
			CPUs:        v.CPUs,
			Memory:      v.Memory,
			MAC:         slices.Clone(v.MAC),
			ConsoleLog:  v.ConsoleLog,
			MTU:         v.Network.MTU,
			QEMUOptions: vmhost.QEMUOptions{Accel: v.Accel},
			StopTimeout: v.StopTimeout,
		}
		if v.CloudInit {
			cfg.Seed = p.SeedPath()
		}
		return cfg
	}
	return vmhost.Config{
		Kernel:      v.Kernel,
		Initrd:      v.Initrd,
		Cmdline:     v.Cmdline,
		CPUs:        v.CPUs,
		Memory:      v.Memory,
		Disk:        v.Disk,
		MAC:         slices.Clone(v.MAC),
		ConsoleLog:  v.ConsoleLog,
		MTU:         v.Network.MTU,
		QEMUOptions: vmhost.QEMUOptions{Accel: v.Accel},
		StopTimeout: v.StopTimeout,
	}
}

// Provision is what making the VM's disk and seed from its image needs
// (provision.Prepare): home is the host user's home directory (for
// ~/.ssh/*.pub), sshUser the guest user (ssh_user, defaulted by the
// caller).
func (v *VM) Provision(home, sshUser string) provision.VM {
	return provision.VM{
		Name:      v.Name,
		StateDir:  v.StateDir,
		Image:     v.Image,
		DiskSize:  int64(v.DiskSize),
		CloudInit: v.CloudInit,
		SSHUser:   sshUser,
		SSHKeys:   slices.Clone(v.SSHKeys),
		UserData:  v.UserData,
		MAC:       slices.Clone(v.MAC),
		Home:      home,
	}
}

// LinkConfig is the netlink configuration of the VM's link, without its
// VM end.
func (v *VM) LinkConfig() netlink.Config {
	return netlink.Config{
		Socket:         v.Network.Socket,
		InitialBackoff: v.Reconnect.InitialBackoff,
		MaxBackoff:     v.Reconnect.MaxBackoff,
		MAC:            v.Machine.MAC,
		MTU:            v.Network.MTU,
		NoFilter:       !v.Network.Filter,
		NoProbe:        !v.Network.Probe,
	}
}

// VMConfig is the vmhost configuration of the single-VM view (see
// Config.VM), without its NIC. New code uses VM.VMConfig.
func (c *Config) VMConfig() vmhost.Config {
	if len(c.VMs) == 1 {
		return c.VMs[0].VMConfig()
	}
	v := VM{Machine: c.VM, Network: c.Network}
	return v.VMConfig()
}

// fieldKeys maps the fields of vmhost.Config (as vmhost.FieldError names
// them) to the keys of a VM's section; MTU is in its network: section and
// NIC is no key.
var fieldKeys = map[string]string{
	"Kernel":            "kernel",
	"Boot":              "image",
	"Seed":              "cloud_init",
	"Initrd":            "initrd",
	"Cmdline":           "cmdline",
	"CPUs":              "cpus",
	"Memory":            "memory",
	"Disk":              "disk",
	"MAC":               "mac",
	"ConsoleLog":        "console_log",
	"QEMUOptions.Accel": "accel",
	"StopTimeout":       "stop_timeout",
}

// Locate turns the VM host's errors about this VM's configuration
// (*vmhost.FieldError, as VMConfig().Check() returns them) into *Error
// values naming File, the key the user writes for that field (vm.cpus in
// the single-VM form, vms.NAME.cpus in the vms: form; MTU is
// network.mtu or vms.NAME.network.mtu) and the line where it is set (no
// line when the key is not in the file: its default is at fault). An
// errors.Join of such errors becomes an errors.Join of *Error values, in
// the same order. Any other error (the NIC's, a too old macOS, an *Error)
// is kept as it is; nil stays nil.
func (v *VM) Locate(err error) error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, v.Locate(e))
		}
		return errors.Join(out...)
	}
	var pe *provision.Error
	if errors.As(err, &pe) && pe.Key != "" {
		key := v.prefix + pe.Key
		return &Error{File: v.file, Key: key, Line: v.lines[key], Msg: pe.Msg, Err: err}
	}
	fe, ok := err.(*vmhost.FieldError)
	if !ok {
		return err
	}
	key := v.netPrefix + "mtu"
	if fe.Field != "MTU" {
		name, ok := fieldKeys[fe.Field]
		if !ok {
			return err
		}
		key = v.prefix + name
	}
	return &Error{File: v.file, Key: key, Line: v.lines[key], Msg: fe.Msg, Err: err}
}

// Locate is VM.Locate for the single-VM view: the only VM (or, while the
// single-VM form configures none, its vm: section). With several VMs
// errors are kept as they are: use VM.Locate.
func (c *Config) Locate(err error) error {
	switch {
	case len(c.VMs) == 1:
		return c.VMs[0].Locate(err)
	case len(c.VMs) == 0 && c.SingleVMForm:
		v := VM{file: c.File, prefix: "vm.", netPrefix: "network.", lines: c.lines}
		return v.Locate(err)
	}
	return err
}

// insertMAC returns data with mac set as the mac key of the VM section at
// path ([vm] or [vms NAME]). doc is data's node tree. When the section is
// a block mapping without a mac key, the line is inserted textually so
// every comment, blank line and indent stays as written; otherwise the
// node tree is edited and encoded again.
func insertMAC(data []byte, doc *yaml.Node, path []string, mac net.HardwareAddr) ([]byte, error) {
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil, errors.New("the file is empty")
	}
	parent := deref(doc.Content[0])
	var vm, vmKey *yaml.Node
	for depth, name := range path {
		vm, vmKey = nil, nil
		if parent.Kind != yaml.MappingNode {
			break
		}
		for i := 0; i+1 < len(parent.Content); i += 2 {
			if parent.Content[i].Value == name {
				vmKey, vm = parent.Content[i], parent.Content[i+1]
			}
		}
		if vm == nil || vm.Kind == yaml.AliasNode {
			break
		}
		if depth < len(path)-1 {
			parent = vm
		}
	}
	section := strings.Join(path, ".")
	if vm == nil || vm.Kind == yaml.AliasNode {
		return nil, fmt.Errorf("the %s section is missing or an alias", section)
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

// writeFileAtomic replaces path with data, keeping its permissions, if it
// still holds old; else it returns errFileChanged and leaves it alone. A
// symbolic link is followed, so the file it points to is replaced.
func writeFileAtomic(path string, old, data []byte) error {
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
		// As late as can be: an editor that saved since the read keeps
		// its edit (and the caller reads the file again).
		if now, rerr := os.ReadFile(path); rerr != nil || !bytes.Equal(now, old) {
			err = errFileChanged
		}
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
	}
	return err
}
