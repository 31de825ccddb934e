package config

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
)

// readmeExample is the example of README.md's "## Configuration".
func readmeExample(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)## Configuration\n.*?```yaml\n(.*?)```").FindSubmatch(data)
	if m == nil {
		t.Fatal("no YAML example under ## Configuration in README.md")
	}
	return string(m[1])
}

// The README's example (the single-VM form) is one VM named default,
// booting a cloud image.
func TestReadmeExampleIsOneDefaultVM(t *testing.T) {
	f := newFixture(t)
	text := readmeExample(t)
	image, userData, pub := filepath.Join(f.dir, "debian.qcow2"), filepath.Join(f.dir, "my-user-data.yaml"), filepath.Join(f.dir, "id.pub")
	for _, p := range []string{image, userData, pub} {
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for old, new := range map[string]string{
		"~/Downloads/debian-12-genericcloud-arm64.qcow2": image, "~/.ssh/id_ed25519.pub": pub,
		"/path/to/vmlinuz": f.kernel, "/path/to/initrd.gz": f.initrd, "/path/to/disk.raw": f.disk,
		"/opt/homebrew/var/run/socket_vmnet": f.sock,
	} {
		text = strings.ReplaceAll(text, old, new)
	}
	c, err := Load(f.write(t, text), f.opts())
	if err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	if len(c.VMs) != 1 || !c.SingleVMForm {
		t.Fatalf("VMs %+v", c.VMs)
	}
	v := c.VMs[0]
	if v.Name != DefaultVMName || v.Image != image || v.UserData != userData || len(v.SSHKeys) != 1 || v.SSHKeys[0] != pub ||
		v.SSHAddress != "127.0.0.1:2222" || v.DiskSize != 20<<30 || !v.CloudInit || v.SSHUser != "debian" || v.CPUs != 2 || v.Memory != 1<<30 || v.MAC.String() != "52:54:00:12:34:56" ||
		v.ConsoleLog != filepath.Join(f.dir, "console.log") || v.Network != (Network{f.sock, 1500, true, true}) ||
		v.Reconnect != (Reconnect{100 * time.Millisecond, 2 * time.Second}) || !v.Autostart ||
		v.StateDir != filepath.Join(f.state, "vms", "default") || v.MACGenerated {
		t.Fatalf("VM %+v", v)
	}
	// The single-VM view is that VM.
	if !reflect.DeepEqual(c.VM, v.Machine) || c.Network != v.Network || !c.AutostartVM || !reflect.DeepEqual(c.VMConfig(), v.VMConfig()) {
		t.Fatalf("single-VM view %+v", c)
	}
	if st, err := os.Stat(v.StateDir); err != nil || !st.IsDir() || st.Mode().Perm() != 0o700 {
		t.Fatalf("state directory: %v %v", st, err)
	}
}

const twoVMs = `# my VMs
vms:
  dev:
    # the kernel
    kernel: vmlinuz   # built by hand
    cpus: 1
    network:
      socket: daemon.sock
      mtu: 9000
    reconnect:
      max_backoff: 5s
  build:
    kernel: vmlinuz
    mac: "52:54:00:12:34:56"
    autostart: false
    console_log: build.log
    network: {socket: daemon.sock}
reconnect:
  initial_backoff: 50ms
notifications: false
log_level: debug
logout_stop_timeout: 7s
`

func TestLoadVMs(t *testing.T) {
	f := newFixture(t)
	p := f.write(t, twoVMs)
	c, err := Load(p, f.opts())
	if err != nil {
		t.Fatal(err)
	}
	if c.SingleVMForm || !reflect.DeepEqual(c.Names(), []string{"build", "dev"}) {
		t.Fatalf("form single=%v names %v", c.SingleVMForm, c.Names())
	}
	build, dev := c.Lookup("build"), c.Lookup("dev")
	if build.MACGenerated || build.MAC.String() != "52:54:00:12:34:56" || build.Autostart ||
		build.ConsoleLog != filepath.Join(f.dir, "build.log") || build.Network != (Network{f.sock, 1500, true, true}) ||
		build.Reconnect != (Reconnect{50 * time.Millisecond, 2 * time.Second}) || build.CPUs != DefaultCPUs {
		t.Errorf("build %+v", *build)
	}
	if !dev.MACGenerated || dev.MAC.String() != fixedMAC.String() || !dev.Autostart ||
		dev.ConsoleLog != filepath.Join(f.state, "vms", "dev", "console.log") || dev.Network != (Network{f.sock, 9000, true, true}) ||
		dev.Reconnect != (Reconnect{50 * time.Millisecond, 5 * time.Second}) || dev.CPUs != 1 ||
		dev.StateDir != filepath.Join(f.state, "vms", "dev") {
		t.Errorf("dev %+v", *dev)
	}
	if c.Notifications || c.LogLevel != logrus.DebugLevel || c.LogoutStopTimeout != 7*time.Second ||
		c.Reconnect != (Reconnect{50 * time.Millisecond, 2 * time.Second}) {
		t.Errorf("globals %+v", c)
	}
	for _, v := range c.VMs {
		if st, err := os.Stat(v.StateDir); err != nil || st.Mode().Perm() != 0o700 {
			t.Errorf("state directory of %s: %v", v.Name, err)
		}
	}
	if lc := dev.LinkConfig(); lc.MTU != 9000 || lc.MAC.String() != dev.Machine.MAC.String() || len(lc.MAC) != 6 {
		t.Errorf("link config MTU %d, MAC %v; want the VM's 9000 and %v", lc.MTU, lc.MAC, dev.Machine.MAC)
	}
	if dev.VMConfig().MTU != 9000 || dev.LinkConfig().MaxBackoff != 5*time.Second || dev.LinkConfig().Socket != f.sock {
		t.Errorf("vmhost/netlink configs %+v %+v", dev.VMConfig(), dev.LinkConfig())
	}
	// Several VMs: the single-VM view is empty.
	if c.VM.Kernel != "" || c.Network.Socket != "" {
		t.Errorf("single-VM view with two VMs: %+v %+v", c.VM, c.Network)
	}
	// The MAC went into dev's section, comments and layout kept.
	got, _ := os.ReadFile(p)
	want := strings.Replace(twoVMs, "  dev:\n", "  dev:\n    mac: \"52:54:00:aa:bb:cc\"  # generated by vmnetbar\n", 1)
	if string(got) != want {
		t.Fatalf("file is now\n%s\nwant\n%s", got, want)
	}
	again, err := Load(p, Options{StateDir: f.state, NewMAC: func() (net.HardwareAddr, error) { return nil, errors.New("must not be called") }})
	if err != nil || again.Lookup("dev").MACGenerated {
		t.Fatalf("second load: %v", err)
	}
	if d := Compare(c, again); d.Global || len(d.Names(Unchanged)) != 2 {
		t.Errorf("loading again changed %+v", d)
	}
}

// Two VMs without a MAC get two different ones, each in its own section.
func TestLoadVMsGeneratesDistinctMACs(t *testing.T) {
	f := newFixture(t)
	p := f.write(t, "vms:\n  a:\n    kernel: vmlinuz\n    network: {socket: daemon.sock}\n  b:\n    kernel: vmlinuz\n    network: {socket: daemon.sock}\n")
	o := f.opts()
	calls := 0
	o.NewMAC = func() (net.HardwareAddr, error) {
		calls++
		if calls <= 2 {
			return fixedMAC, nil // repeats itself once
		}
		return net.HardwareAddr{0x52, 0x54, 0, 0, 0, byte(calls)}, nil
	}
	c, err := Load(p, o)
	if err != nil {
		t.Fatal(err)
	}
	a, b := c.Lookup("a"), c.Lookup("b")
	if a.MAC.String() == b.MAC.String() || !a.MACGenerated || !b.MACGenerated {
		t.Fatalf("MACs %s %s", a.MAC, b.MAC)
	}
	again, err := Load(p, f.opts())
	if err != nil || again.Lookup("a").MAC.String() != a.MAC.String() || again.Lookup("b").MAC.String() != b.MAC.String() {
		t.Fatalf("read back: %v", err)
	}
}

func TestLoadVMsErrors(t *testing.T) {
	f := newFixture(t)
	file := filepath.Join(f.dir, "config.yaml")
	vm := func(name string) string {
		return "  " + name + ":\n    kernel: vmlinuz\n    network:\n      socket: daemon.sock\n"
	}
	tests := []struct{ name, text, want string }{
		{"mixed vm", "vms:\n" + vm("dev") + "vm:\n  kernel: vmlinuz\n", "line 6: vm: cannot be used together with vms (line 1): a file configures either one VM"},
		{"mixed network", "network:\n  socket: s\nvms:\n" + vm("dev"), "line 1: network: cannot be used together with vms (line 3)"},
		{"mixed autostart_vm", "vms:\n" + vm("dev") + "autostart_vm: true\n", "autostart_vm: cannot be used together with vms"},
		{"name upper", "vms:\n" + vm("Dev"), `line 2: vms.Dev: "Dev" is not a valid VM name: a VM's name is 1 to 32 lowercase letters, digits and '-', starting and ending with a letter or digit (it becomes the guest's hostname)`},
		{"name trailing dash", "vms:\n" + vm("dev-"), `vms.dev-: "dev-" is not a valid VM name`},
		{"name underscore", "vms:\n" + vm("my_vm"), `vms.my_vm: "my_vm" is not a valid VM name`},
		{"name leading dash", "vms:\n" + vm("-x"), `"-x" is not a valid VM name`},
		{"name too long", "vms:\n" + vm(strings.Repeat("a", 33)), "is not a valid VM name"},
		{"name twice", "vms:\n" + vm("dev") + vm("dev"), "line 6: vms.dev: set twice"},
		{"unknown key", "vms:\n" + vm("dev") + "    autostart_vm: true\n", `unknown key "vms.dev.autostart_vm" in vms.dev (known keys: image, disk_size,`},
		{"bad cpus", "vms:\n" + vm("dev") + "    cpus: 0\n", "line 6: vms.dev.cpus: 0 is out of range"},
		{"bad mtu", "vms:\n" + vm("dev") + "      mtu: 1\n", "line 6: vms.dev.network.mtu: 1 is out of range"},
		{"kernel missing", "vms:\n  dev:\n    cpus: 1\n", "line 3: vms.dev.image is not set"},
		{"empty VM", "vms:\n  dev:\n", "line 2: vms.dev.image is not set"},
		{"socket missing", "vms:\n  dev:\n    kernel: vmlinuz\n", "vms.dev.network.socket is not set"},
		{"kernel not found", "vms:\n  dev:\n    kernel: nope\n", "line 3: vms.dev.kernel: " + filepath.Join(f.dir, "nope") + " does not exist"},
		{"not a mapping", "vms: [a]\n", "line 1: vms: must be a mapping of VM names"},
		{"VM not a mapping", "vms:\n  dev: 3\n", "line 2: vms.dev: must be a mapping"},
		{"duplicate MAC", "vms:\n" + vm("dev") + "    mac: 52:54:00:00:00:01\n" + vm("build") + "    mac: 52:54:00:00:00:01\n",
			"line 11: vms.build.mac: 52:54:00:00:00:01 is also the MAC address of VM dev (vms.dev.mac, line 6): give VM build an address of its own"},
		{"own backoff order", "vms:\n" + vm("dev") + "    reconnect:\n      initial_backoff: 3s\n",
			"line 7: vms.dev.reconnect.initial_backoff: 3s is longer than vms.dev.reconnect.max_backoff (2s, its default)"},
		{"own max below top initial", "reconnect:\n  initial_backoff: 1s\nvms:\n" + vm("dev") + "    reconnect:\n      max_backoff: 500ms\n",
			"line 9: vms.dev.reconnect.max_backoff: 500ms is shorter than reconnect.initial_backoff, 1s (line 2)"},
		{"no VM", "vms:\n", "line 1: vms: has no VM: add one"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(f.write(t, tt.text), f.opts())
			var ce *Error
			if !errors.As(err, &ce) || !strings.HasPrefix(err.Error(), "config "+file+": ") {
				t.Fatalf("got %v (%T), want a *config.Error naming the file", err, err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error\n  %s\ndoes not contain\n  %s", err, tt.want)
			}
		})
	}
}

// vms: with no VM is "no VM configured": ErrNoVM, or with AllowNoVM a
// Config without VMs.
func TestVMsWithoutVM(t *testing.T) {
	f := newFixture(t)
	for _, text := range []string{"vms:\n", "vms: {}\n"} {
		p := f.write(t, text)
		if _, err := Load(p, f.opts()); !errors.Is(err, ErrNoVM) {
			t.Errorf("%q: %v, want ErrNoVM", text, err)
		}
		o := f.opts()
		o.AllowNoVM = true
		c, err := Load(p, o)
		if err != nil || c.VMConfigured() || c.SingleVMForm {
			t.Errorf("%q with AllowNoVM: %+v, %v", text, c, err)
		}
	}
}

func TestCompare(t *testing.T) {
	mk := func(name string, mod func(*VM)) VM {
		v := VM{Name: name, Machine: Machine{Kernel: "/k", CPUs: 2, MAC: net.HardwareAddr{0x52, 0x54, 0, 0, 0, 1}},
			Network: Network{"/s", 1500, true, true}, Reconnect: Reconnect{time.Second, 2 * time.Second}, Autostart: true, StateDir: "/st/" + name}
		if mod != nil {
			mod(&v)
		}
		return v
	}
	cfg := func(vms ...VM) *Config {
		return &Config{VMs: vms, Notifications: true, Reconnect: Reconnect{time.Second, 2 * time.Second}}
	}
	base := cfg(mk("a", nil), mk("b", nil))
	tests := []struct {
		name     string
		old, new *Config
		want     []VMDiff
		global   bool
	}{
		{"same", base, cfg(mk("a", nil), mk("b", nil)), []VMDiff{{"a", Unchanged}, {"b", Unchanged}}, false},
		{"added", base, cfg(mk("a", nil), mk("b", nil), mk("c", nil)), []VMDiff{{"a", Unchanged}, {"b", Unchanged}, {"c", Added}}, false},
		{"removed", base, cfg(mk("b", nil)), []VMDiff{{"a", Removed}, {"b", Unchanged}}, false},
		{"cpus", base, cfg(mk("a", func(v *VM) { v.CPUs = 4 }), mk("b", nil)), []VMDiff{{"a", Changed}, {"b", Unchanged}}, false},
		{"mac", base, cfg(mk("a", nil), mk("b", func(v *VM) { v.MAC = net.HardwareAddr{0x52, 0x54, 0, 0, 0, 2} })), []VMDiff{{"a", Unchanged}, {"b", Changed}}, false},
		{"mac generated is no change", base, cfg(mk("a", func(v *VM) { v.MACGenerated = true }), mk("b", nil)), []VMDiff{{"a", Unchanged}, {"b", Unchanged}}, false},
		{"socket", base, cfg(mk("a", func(v *VM) { v.Network.Socket = "/t" }), mk("b", nil)), []VMDiff{{"a", Changed}, {"b", Unchanged}}, false},
		{"backoff", base, cfg(mk("a", func(v *VM) { v.Reconnect.MaxBackoff = time.Minute }), mk("b", nil)), []VMDiff{{"a", Changed}, {"b", Unchanged}}, false},
		{"autostart", base, cfg(mk("a", func(v *VM) { v.Autostart = false }), mk("b", nil)), []VMDiff{{"a", Changed}, {"b", Unchanged}}, false},
		{"renamed", base, cfg(mk("a", nil), mk("c", nil)), []VMDiff{{"a", Unchanged}, {"b", Removed}, {"c", Added}}, false},
		{"notifications", base, func() *Config { c := cfg(mk("a", nil), mk("b", nil)); c.Notifications = false; return c }(),
			[]VMDiff{{"a", Unchanged}, {"b", Unchanged}}, true},
		{"log level", base, func() *Config { c := cfg(mk("a", nil), mk("b", nil)); c.LogLevel = logrus.TraceLevel; return c }(),
			[]VMDiff{{"a", Unchanged}, {"b", Unchanged}}, true},
		{"top-level reconnect", base, func() *Config { c := cfg(mk("a", nil), mk("b", nil)); c.Reconnect.MaxBackoff = time.Minute; return c }(),
			[]VMDiff{{"a", Unchanged}, {"b", Unchanged}}, true},
		{"from nothing", nil, base, []VMDiff{{"a", Added}, {"b", Added}}, true},
		{"to nothing", base, cfg(), []VMDiff{{"a", Removed}, {"b", Removed}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Compare(tt.old, tt.new)
			if !reflect.DeepEqual(d.VMs, tt.want) || d.Global != tt.global {
				t.Fatalf("got %+v, want %+v global %v", d, tt.want, tt.global)
			}
		})
	}
	if Added.String() != "added" || Change(9).String() != "Change(9)" {
		t.Error("Change names")
	}
}
