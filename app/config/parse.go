package config

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
	"go.yaml.in/yaml/v3"

	"github.com/vmnetbar/vmnetbar/app/cloudinit"
	"github.com/vmnetbar/vmnetbar/internal/filekind"
	"github.com/vmnetbar/vmnetbar/vmhost"
)

// keys lists the known keys of each mapping of the single-VM form, in
// documentation order (the starter file shows each once).
var keys = map[string][]string{
	"": {"vm", "network", "reconnect", "autostart_vm", "notifications", "log_level", "logout_stop_timeout"},
	"vm": {"image", "disk_size", "cloud_init", "ssh_keys", "user_data", "ssh_address",
		"kernel", "initrd", "cmdline", "cpus", "memory", "disk", "mac", "console_log", "accel", "stop_timeout", "ssh_user"},
	"network":   {"socket", "mtu", "filter", "probe"},
	"reconnect": {"initial_backoff", "max_backoff"},
}

// The vms: form: vmsKey at the top level holds one section per VM, each
// with vmEntryKeys.
const vmsKey = "vms"

var (
	// topKeys are the known top-level keys of either form.
	topKeys = append([]string{vmsKey}, keys[""]...)
	// vmEntryKeys are the known keys of a VM's section under vms:.
	vmEntryKeys = append(slices.Clone(keys["vm"]), "network", "reconnect", "autostart")
	// singleVMKeys are the top-level keys of the single-VM form only.
	singleVMKeys = []string{"vm", "network", "autostart_vm"}
	// vmName is a valid VM name.
	vmName = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`)
)

// vmNameRule says what a VM name may be.
var vmNameRule = fmt.Sprintf("a VM's name is 1 to %d lowercase letters, digits and '-', starting and ending with a letter or digit (it becomes the guest's hostname)", MaxVMNameLen)

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

// isSet reports whether key is set in the file to something other than
// null.
func (p *parser) isSet(key string) bool {
	n := p.vals[key]
	return n != nil && !isNull(n)
}

// vmDraft is a VM being parsed.
type vmDraft struct {
	VM
	// node is the VM's section (nil when the single-VM form has no vm:),
	// for the line of errors about keys it lacks.
	node *yaml.Node
	// own is the VM's own reconnect: section (zero = unset).
	own Reconnect
	// reconPrefix is "reconnect." or "vms.NAME.reconnect.".
	reconPrefix string
}

func newDraft(name, prefix, netPrefix, reconPrefix string) *vmDraft {
	return &vmDraft{
		VM: VM{
			Name: name,
			Machine: Machine{CPUs: DefaultCPUs, Memory: DefaultMemory, Accel: DefaultAccel, StopTimeout: DefaultStopTimeout,
				DiskSize: DefaultDiskSize, CloudInit: true},
			Network:   Network{MTU: DefaultMTU, Filter: true, Probe: true},
			Autostart: true,
			prefix:    prefix, netPrefix: netPrefix,
		},
		reconPrefix: reconPrefix,
	}
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
		Notifications:     true,
		LogLevel:          logrus.InfoLevel,
		LogoutStopTimeout: DefaultLogoutStopTimeout,
		Reconnect:         Reconnect{InitialBackoff: DefaultInitialBackoff, MaxBackoff: DefaultMaxBackoff},
	}
	var top []keyValue
	// A file of comments, a bare "---" or a lone null is empty too.
	if doc.Kind == 0 || len(doc.Content) == 0 || isNull(deref(doc.Content[0])) {
		if !opts.AllowNoVM {
			return nil, nil, &Error{File: file, Err: ErrNoVM,
				Msg: fmt.Sprintf("the file is empty: set at least vm.image%s (%s)", socketHint(opts), ReadmeHint)}
		}
	} else {
		root := deref(doc.Content[0])
		if root.Kind != yaml.MappingNode {
			return nil, nil, p.errf("", root, "the file must be a mapping of keys to values (%s)", ReadmeHint)
		}
		var err error
		if top, err = p.mapping("", root, topKeys); err != nil {
			return nil, nil, err
		}
	}
	if err := p.checkForm(top); err != nil {
		return nil, nil, err
	}
	single := newDraft(DefaultVMName, "vm.", "network.", "reconnect.")
	var drafts []*vmDraft
	c.SingleVMForm = true
	for _, kv := range top {
		var err error
		switch kv.key {
		case vmsKey:
			c.SingleVMForm = false
			drafts, err = p.vms(kv)
		case "vm":
			single.node = kv.val
			err = p.section(kv, keys["vm"], func(e keyValue) error { return p.machineKey(&single.Machine, e) })
		case "network":
			err = p.section(kv, keys["network"], func(e keyValue) error { return p.networkKey(&single.Network, e) })
		case "reconnect":
			err = p.section(kv, keys["reconnect"], func(e keyValue) error { return p.reconnectKey(&c.Reconnect, e) })
		case "autostart_vm":
			err = p.boolean(kv, &single.Autostart)
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
				whyMax: "macOS ends the app about a minute after a logout begins anyway (a VM's stop_timeout bounds a stop from Quit)",
			})
		}
		if err != nil {
			return nil, nil, err
		}
	}
	stateDir := opts.StateDir
	if stateDir == "" {
		stateDir = p.dir
	}
	if c.SingleVMForm {
		if err := p.finishSingle(c, single, stateDir, opts); err != nil {
			return nil, nil, err
		}
	} else if err := p.finishVMs(c, drafts, stateDir, opts); err != nil {
		return nil, nil, err
	}
	c.lines = make(map[string]int, len(p.vals))
	for k, n := range p.vals {
		c.lines[k] = n.Line
	}
	for i := range c.VMs {
		c.VMs[i].file, c.VMs[i].lines = file, c.lines
	}
	return c, &doc, nil
}

// checkForm refuses a file that mixes the single-VM form and vms:.
func (p *parser) checkForm(top []keyValue) error {
	var vms *keyValue
	for i := range top {
		if top[i].key == vmsKey {
			vms = &top[i]
		}
	}
	if vms == nil {
		return nil
	}
	for _, kv := range top {
		if slices.Contains(singleVMKeys, kv.key) {
			hint := "move its keys into a VM's section under vms (as vms." + DefaultVMName + "." + kv.key + ")"
			switch kv.key {
			case "network":
				hint = "move it into each VM's section under vms (as vms." + DefaultVMName + ".network)"
			case "autostart_vm":
				hint = "set autostart in each VM's section under vms instead (as vms." + DefaultVMName + ".autostart)"
			}
			return p.errf(kv.path, kv.keyN, "cannot be used together with vms (line %d): a file configures either one VM (vm, network, autostart_vm) or several (vms): %s",
				vms.keyN.Line, hint)
		}
	}
	return nil
}

// vms parses the vms: section: one section per VM.
func (p *parser) vms(kv keyValue) ([]*vmDraft, error) {
	if isNull(kv.val) {
		return nil, nil
	}
	if kv.val.Kind != yaml.MappingNode {
		return nil, p.errf(kv.path, kv.val, "must be a mapping of VM names to their settings (%s)", ReadmeHint)
	}
	entries, err := p.mapping(kv.path, kv.val, nil)
	if err != nil {
		return nil, err
	}
	var drafts []*vmDraft
	for _, e := range entries {
		name := e.key
		if len(name) > MaxVMNameLen || !vmName.MatchString(name) {
			return nil, p.errf(e.path, e.keyN, "%q is not a valid VM name: %s", name, vmNameRule)
		}
		d := newDraft(name, e.path+".", e.path+".network.", e.path+".reconnect.")
		d.node = e.val
		if !isNull(e.val) && e.val.Kind != yaml.MappingNode {
			return nil, p.errf(e.path, e.val, "must be a mapping of the VM's keys to values (%s)", ReadmeHint)
		}
		err := p.section(e, vmEntryKeys, func(k keyValue) error {
			switch k.key {
			case "network":
				return p.section(k, keys["network"], func(n keyValue) error { return p.networkKey(&d.Network, n) })
			case "reconnect":
				return p.section(k, keys["reconnect"], func(r keyValue) error { return p.reconnectKey(&d.own, r) })
			case "autostart":
				return p.boolean(k, &d.Autostart)
			}
			return p.machineKey(&d.Machine, k)
		})
		if err != nil {
			return nil, err
		}
		drafts = append(drafts, d)
	}
	return drafts, nil
}

// finishSingle finishes the single-VM form: its one VM, or none while
// vm.kernel is unset.
func (p *parser) finishSingle(c *Config, d *vmDraft, stateDir string, opts Options) error {
	noVM := d.Kernel == "" && d.Image == ""
	if noVM && !opts.AllowNoVM {
		e := p.keyErrf("vm.image", "is not set: point it at a distro cloud image (qcow2 or raw; or set vm.kernel to boot a kernel) (%s)", ReadmeHint)
		e.Err = ErrNoVM
		return e
	}
	if d.ConsoleLog == "" {
		// Where it was before a VM had a state directory of its own.
		d.ConsoleLog = filepath.Join(stateDir, "console.log")
	}
	if err := p.finishVM(d, stateDir, noVM, opts); err != nil {
		return err
	}
	if err := p.checkBackoffs(c.Reconnect, "reconnect."); err != nil {
		return err
	}
	d.Reconnect = c.Reconnect
	c.VM, c.Network, c.AutostartVM = d.Machine, d.Network, d.Autostart
	if !noVM {
		c.VMs = []VM{d.VM}
	}
	return nil
}

// finishVMs finishes the vms: form.
func (p *parser) finishVMs(c *Config, drafts []*vmDraft, stateDir string, opts Options) error {
	if len(drafts) == 0 && !opts.AllowNoVM {
		e := p.keyErrf(vmsKey, "has no VM: add one, such as vms.dev with at least kernel%s (%s)", socketHint(opts), ReadmeHint)
		e.Err = ErrNoVM
		return e
	}
	if err := p.checkBackoffs(c.Reconnect, "reconnect."); err != nil {
		return err
	}
	for _, d := range drafts {
		if d.Kernel == "" && d.Image == "" {
			at := d.node
			if n := p.vals[d.prefix+"image"]; n != nil {
				at = n
			}
			return p.errf(d.prefix+"image", at, "is not set: point it at a distro cloud image (qcow2 or raw; or set %skernel to boot a kernel) (%s)", d.prefix, ReadmeHint)
		}
		if d.ConsoleLog == "" {
			d.ConsoleLog = filepath.Join(stateDir, "vms", d.Name, "console.log")
		}
		if err := p.finishVM(d, stateDir, false, opts); err != nil {
			return err
		}
		d.Reconnect = c.Reconnect
		if d.own.InitialBackoff != 0 {
			d.Reconnect.InitialBackoff = d.own.InitialBackoff
		}
		if d.own.MaxBackoff != 0 {
			d.Reconnect.MaxBackoff = d.own.MaxBackoff
		}
		if d.own != (Reconnect{}) {
			if err := p.checkBackoffs(d.Reconnect, d.reconPrefix); err != nil {
				return err
			}
		}
	}
	// Each VM needs an address of its own on the daemon's network.
	seen := map[string]*vmDraft{}
	for _, d := range drafts {
		if d.MAC == nil {
			continue
		}
		if first := seen[d.MAC.String()]; first != nil {
			return p.keyErrf(d.prefix+"mac", "%s is also the MAC address of VM %s (%s, line %d): give VM %s an address of its own, or remove this key to have one generated",
				d.MAC, first.Name, first.prefix+"mac", p.vals[first.prefix+"mac"].Line, d.Name)
		}
		seen[d.MAC.String()] = d
	}
	for _, d := range drafts {
		c.VMs = append(c.VMs, d.VM)
	}
	sort.Slice(c.VMs, func(i, j int) bool { return c.VMs[i].Name < c.VMs[j].Name })
	return nil
}

// finishVM applies a VM's defaults that depend on other keys or the
// machine and checks its keys together. noVM is set for the single-VM
// form without vm.kernel.
func (p *parser) finishVM(d *vmDraft, stateDir string, noVM bool, opts Options) error {
	d.StateDir = filepath.Join(stateDir, "vms", d.Name)
	if err := p.checkBoot(d); err != nil {
		return err
	}
	files := []struct {
		key, path, what string
		flag            int
	}{
		{"image", d.Image, "a distro cloud image (qcow2 or raw)", os.O_RDONLY},
		{"user_data", d.UserData, "your own cloud-init user-data, or remove the key", os.O_RDONLY},
	}
	for i, k := range d.SSHKeys {
		files = append(files, struct {
			key, path, what string
			flag            int
		}{fmt.Sprintf("ssh_keys[%d]", i), k, "an SSH public key (such as ~/.ssh/id_ed25519.pub)", os.O_RDONLY})
	}
	for _, f := range files {
		if f.path == "" {
			continue
		}
		key := d.prefix + f.key
		if strings.HasPrefix(f.key, "ssh_keys[") {
			key = d.prefix + "ssh_keys"
		}
		if err := p.checkFile(key, f.path, f.what, f.flag); err != nil {
			return err
		}
	}
	for _, f := range []struct {
		key, path, what string
		flag            int
	}{
		{"kernel", d.Kernel, "the guest's kernel image", os.O_RDONLY},
		{"initrd", d.Initrd, "the guest's initrd, or remove the key", os.O_RDONLY},
		{"disk", d.Disk, "a raw disk image you can read and write (or a block device), or remove the key", os.O_RDWR},
	} {
		if f.path == "" {
			continue
		}
		if err := p.checkFile(d.prefix+f.key, f.path, f.what, f.flag); err != nil {
			return err
		}
	}
	socketKey := d.netPrefix + "socket"
	if d.Network.Socket == "" {
		for _, s := range opts.SocketCandidates {
			if _, err := os.Stat(s); err == nil {
				d.Network.Socket = s
				break
			}
		}
		if d.Network.Socket == "" {
			// Not installed or not started yet: the link waits for it.
			d.Network.Socket = opts.SocketFallback
		}
		switch {
		case d.Network.Socket != "" || noVM:
			// A file without a VM needs no socket yet.
		case len(opts.SocketCandidates) == 0:
			return p.keyErrf(socketKey, "is not set: point it at your socket_vmnet-compatible daemon's socket")
		default:
			return p.keyErrf(socketKey, "is not set and no socket_vmnet socket exists at %s: install and start socket_vmnet, or set %s",
				strings.Join(opts.SocketCandidates, ", "), socketKey)
		}
	}
	if n := len(d.Network.Socket); n > MaxSocketPathLen {
		return p.keyErrf(socketKey, "%s is %d bytes long, but a socket path can be at most %d bytes (the sun_path limit): use a shorter path to the socket (a symbolic link works)",
			d.Network.Socket, n, MaxSocketPathLen)
	}
	return nil
}

// checkBoot checks that a VM boots one way: from a cloud image (image, with
// its own disk and cloud-init keys) or from a kernel (kernel, initrd,
// cmdline, disk).
func (p *parser) checkBoot(d *vmDraft) error {
	set := func(key string) bool { return p.vals[d.prefix+key] != nil && !isNull(p.vals[d.prefix+key]) }
	if d.Image != "" {
		for _, k := range []string{"kernel", "initrd", "cmdline", "disk"} {
			if set(k) {
				return p.keyErrf(d.prefix+k, "cannot be used together with %simage: a VM boots either a cloud image (its disk is made from the image) or a kernel; remove one of them", d.prefix)
			}
		}
		return nil
	}
	for _, k := range []string{"disk_size", "cloud_init", "ssh_keys", "user_data"} {
		if set(k) && d.Kernel != "" {
			return p.keyErrf(d.prefix+k, "applies only to a VM that boots a cloud image (%simage): remove it, or boot an image instead of %skernel", d.prefix, d.prefix)
		}
	}
	return nil
}

// paths reads a list of file paths (a single path is a list of one).
func (p *parser) paths(kv keyValue, dst *[]string) error {
	n := deref(kv.val)
	if n.Kind == yaml.ScalarNode {
		var one string
		if err := p.path(kv, &one); err != nil || one == "" {
			return err
		}
		*dst = []string{one}
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		return p.errf(kv.path, kv.val, "must be a list of files, e.g. [~/.ssh/id_ed25519.pub]")
	}
	var out []string
	for _, item := range n.Content {
		var one string
		if err := p.path(keyValue{key: kv.key, path: kv.path, val: deref(item)}, &one); err != nil {
			return err
		}
		if one != "" {
			out = append(out, one)
		}
	}
	*dst = out
	return nil
}

// checkBackoffs checks r's backoffs against each other (each is within
// backoffRange, see reconnectKey). prefix is the reconnect: section they
// are checked for ("reconnect." or "vms.NAME.reconnect."): a value that
// section does not set comes from the top-level section, else is the
// default.
func (p *parser) checkBackoffs(r Reconnect, prefix string) error {
	initial, most := r.InitialBackoff, r.MaxBackoff
	if most >= initial {
		return nil
	}
	// source is the key a value comes from, "" for the default.
	source := func(name string) string {
		for _, k := range []string{prefix + name, "reconnect." + name} {
			if p.isSet(k) {
				return k
			}
		}
		return ""
	}
	initKey, maxKey := source("initial_backoff"), source("max_backoff")
	if maxKey == "" {
		return p.keyErrf(initKey, "%s is longer than %smax_backoff (%s, its default): shorten it, or set %smax_backoff to at least %s",
			formatDuration(initial), prefix, formatDuration(most), prefix, formatDuration(initial))
	}
	at := p.lineOf(initKey)
	if initKey == "" {
		initKey, at = prefix+"initial_backoff", " (its default)"
	}
	return p.keyErrf(maxKey, "%s is shorter than %s, %s%s: make it at least as long",
		formatDuration(most), initKey, formatDuration(initial), at)
}

// socketHint is " and network.socket" where network.socket must be set
// (no default socket on this system), else "".
func socketHint(opts Options) string {
	if len(opts.SocketCandidates) == 0 && opts.SocketFallback == "" {
		return " and network.socket"
	}
	return ""
}

// keyValue is one checked mapping entry.
type keyValue struct {
	key  string
	path string // dotted path
	keyN *yaml.Node
	val  *yaml.Node
}

// mapping checks that n is a mapping with unique keys, each in known (any
// plain name when known is nil).
func (p *parser) mapping(path string, n *yaml.Node, known []string) ([]keyValue, error) {
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
		if known != nil && !slices.Contains(known, k.Value) {
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

// section parses the mapping kv holds, whose keys are known, calling each
// for every entry; null is an empty section.
func (p *parser) section(kv keyValue, known []string, each func(keyValue) error) error {
	if isNull(kv.val) {
		return nil
	}
	if kv.val.Kind != yaml.MappingNode {
		return p.errf(kv.path, kv.val, "must be a mapping of keys to values (%s)", ReadmeHint)
	}
	entries, err := p.mapping(kv.path, kv.val, known)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := each(e); err != nil {
			return err
		}
	}
	return nil
}

// machineKey parses one key of a VM's own settings into m.
func (p *parser) machineKey(m *Machine, kv keyValue) error {
	switch kv.key {
	case "kernel":
		return p.path(kv, &m.Kernel)
	case "initrd":
		return p.path(kv, &m.Initrd)
	case "image":
		return p.path(kv, &m.Image)
	case "user_data":
		return p.path(kv, &m.UserData)
	case "cloud_init":
		return p.boolean(kv, &m.CloudInit)
	case "ssh_keys":
		return p.paths(kv, &m.SSHKeys)
	case "ssh_address":
		s, err := p.str(kv)
		if err != nil || s == "" {
			return err
		}
		host, port, err := net.SplitHostPort(s)
		n, perr := strconv.Atoi(port)
		if err != nil || host == "" || perr != nil || n < 1 || n > 65535 {
			return p.errf(kv.path, kv.val, "%q is not HOST:PORT (e.g. 127.0.0.1:2222, or [::1]:2222)", s)
		}
		m.SSHAddress = s
	case "disk_size":
		s, err := p.str(kv)
		if err != nil || s == "" {
			return err
		}
		const allowed = "use a size from 1GiB to 64TiB, e.g. 20GiB"
		size, err := vmhost.ParseSize(s)
		switch {
		case err != nil:
			return p.errf(kv.path, kv.val, "%q is not a size (%s)", s, allowed)
		case size < MinDiskSize || size > MaxDiskSize:
			return p.errf(kv.path, kv.val, "%q is out of range (%s)", s, allowed)
		case size%vmhost.MiB != 0:
			return p.errf(kv.path, kv.val, "%q is not a whole number of MiB (use e.g. %s)", s, vmhost.FormatSize((size/vmhost.MiB+1)*vmhost.MiB))
		}
		m.DiskSize = size
	case "disk":
		return p.path(kv, &m.Disk)
	case "console_log":
		return p.path(kv, &m.ConsoleLog)
	case "cmdline":
		s, err := p.str(kv)
		m.Cmdline = s
		return err
	case "ssh_user":
		s, err := p.str(kv)
		if err != nil || s == "" {
			return err
		}
		if !cloudinit.ValidUser(s) {
			return p.errf(kv.path, kv.val, "%q is not a user name (use %s), or remove the key to use your own login name", s, cloudinit.UserRule)
		}
		m.SSHUser = s
	case "cpus":
		return p.integer(kv, &m.CPUs, 1, MaxCPUs)
	case "memory":
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
		m.Memory = size
	case "mac":
		s, err := p.str(kv)
		if err != nil || s == "" {
			return err
		}
		mac, err := vmhost.ParseMAC(s)
		if err != nil {
			return p.errf(kv.path, kv.val, "%v (or remove the key to have one generated)", err)
		}
		m.MAC = mac
	case "accel":
		s, err := p.str(kv)
		if err != nil || s == "" {
			return err
		}
		switch s {
		case "auto", "kvm", "tcg":
			m.Accel = s
		default:
			return p.errf(kv.path, kv.val, "%q is not an accelerator (use auto, kvm or tcg)", s)
		}
	case "stop_timeout":
		return p.duration(kv, &m.StopTimeout, durationRange{
			min: time.Nanosecond, max: MaxStopTimeout, example: "30s or 2m",
			whyMax: "quitting would wait that long for the guest before forcing it off",
		})
	}
	return nil
}

// networkKey parses one key of a network: section into n.
func (p *parser) networkKey(n *Network, kv keyValue) error {
	switch kv.key {
	case "socket":
		return p.path(kv, &n.Socket)
	case "mtu":
		return p.integer(kv, &n.MTU, MinMTU, MaxMTU)
	case "filter":
		return p.boolean(kv, &n.Filter)
	case "probe":
		return p.boolean(kv, &n.Probe)
	}
	return nil
}

// reconnectKey parses one key of a reconnect: section into r.
func (p *parser) reconnectKey(r *Reconnect, kv keyValue) error {
	switch kv.key {
	case "initial_backoff":
		return p.duration(kv, &r.InitialBackoff, backoffRange)
	case "max_backoff":
		return p.duration(kv, &r.MaxBackoff, backoffRange)
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
		return p.keyErrf(key, "%s is not a regular file (it is %s): point it at %s", path, filekind.Of(st.Mode()), what)
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
