package config

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"go.uber.org/goleak"
	"go.yaml.in/yaml/v3"

	"github.com/vmnetbar/vmnetbar/vmhost"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var fixedMAC = net.HardwareAddr{0x52, 0x54, 0x00, 0xaa, 0xbb, 0xcc}

// fixture is a config directory holding a kernel, an initrd and a disk.
type fixture struct {
	dir, kernel, initrd, disk, sock, state string
}

func newFixture(t *testing.T) fixture {
	t.Helper()
	dir := t.TempDir()
	f := fixture{dir: dir,
		kernel: filepath.Join(dir, "vmlinuz"),
		initrd: filepath.Join(dir, "initrd.gz"),
		disk:   filepath.Join(dir, "disk.raw"),
		sock:   filepath.Join(dir, "daemon.sock"),
		state:  filepath.Join(dir, "state"),
	}
	for _, p := range []string{f.kernel, f.initrd, f.disk, f.sock} {
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func (f fixture) opts() Options {
	return Options{StateDir: f.state, Home: "/home/u",
		NewMAC: func() (net.HardwareAddr, error) { return fixedMAC, nil }}
}

// write writes a config file and returns its path. "KERNEL" in text is
// replaced by a line setting vm.kernel to the fixture's kernel.
func (f fixture) write(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(f.dir, "config.yaml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const minimal = "vm:\n  kernel: vmlinuz\n  mac: \"52:54:00:12:34:56\"\nnetwork:\n  socket: daemon.sock\n"

func TestLoadDefaults(t *testing.T) {
	f := newFixture(t)
	c, err := Load(f.write(t, minimal), f.opts())
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		File:         filepath.Join(f.dir, "config.yaml"),
		SingleVMForm: true,
		VM: Machine{Kernel: f.kernel, CPUs: 2, Memory: 1 << 30, MAC: net.HardwareAddr{0x52, 0x54, 0, 0x12, 0x34, 0x56},
			ConsoleLog: f.state + "/console.log", Accel: "auto", StopTimeout: 30 * time.Second, DiskSize: 20 << 30, CloudInit: true},
		Network:           Network{Socket: f.sock, MTU: 1500, Filter: true, Probe: true},
		Reconnect:         Reconnect{InitialBackoff: 100 * time.Millisecond, MaxBackoff: 2 * time.Second},
		AutostartVM:       true,
		Notifications:     true,
		LogLevel:          logrus.InfoLevel,
		LogoutStopTimeout: 5 * time.Second,
	}
	if got := *c; !equalConfig(got, want) {
		t.Fatalf("got  %+v\nwant %+v", got, want)
	}
}

func equalConfig(a, b Config) bool {
	if a.VM.MAC.String() != b.VM.MAC.String() {
		return false
	}
	a.VM.MAC, b.VM.MAC = nil, nil
	return a.File == b.File && reflect.DeepEqual(a.VM, b.VM) && a.Network == b.Network && a.Reconnect == b.Reconnect &&
		a.AutostartVM == b.AutostartVM && a.Notifications == b.Notifications && a.LogLevel == b.LogLevel &&
		a.MACGenerated == b.MACGenerated && a.LogoutStopTimeout == b.LogoutStopTimeout && a.SingleVMForm == b.SingleVMForm
}

func TestLoadKeys(t *testing.T) {
	f := newFixture(t)
	base := "vm:\n  kernel: vmlinuz\n  mac: \"52:54:00:12:34:56\"\n"
	net := "network:\n  socket: daemon.sock\n"
	tests := []struct {
		name  string
		text  string
		check func(c *Config) bool
	}{
		{"initrd relative", base + "  initrd: initrd.gz\n" + net, func(c *Config) bool { return c.VM.Initrd == f.initrd }},
		{"initrd absolute", base + "  initrd: " + f.initrd + "\n" + net, func(c *Config) bool { return c.VM.Initrd == f.initrd }},
		{"cmdline", base + "  cmdline: \"console=hvc0 quiet\"\n" + net, func(c *Config) bool { return c.VM.Cmdline == "console=hvc0 quiet" }},
		{"cpus", base + "  cpus: 4\n" + net, func(c *Config) bool { return c.VM.CPUs == 4 }},
		{"memory GiB", base + "  memory: 2GiB\n" + net, func(c *Config) bool { return c.VM.Memory == 2<<30 }},
		{"memory MiB", base + "  memory: 512MiB\n" + net, func(c *Config) bool { return c.VM.Memory == 512<<20 }},
		{"disk", base + "  disk: ./disk.raw\n" + net, func(c *Config) bool { return c.VM.Disk == f.disk }},
		{"mac dashes", "vm:\n  kernel: vmlinuz\n  mac: 52-54-00-00-00-01\n" + net,
			func(c *Config) bool { return c.VM.MAC.String() == "52:54:00:00:00:01" && !c.MACGenerated }},
		{"console_log relative", base + "  console_log: logs/console.log\n" + net,
			func(c *Config) bool { return c.VM.ConsoleLog == filepath.Join(f.dir, "logs", "console.log") }},
		{"console_log home", base + "  console_log: ~/console.log\n" + net,
			func(c *Config) bool { return c.VM.ConsoleLog == "/home/u/console.log" }},
		{"accel tcg", base + "  accel: tcg\n" + net, func(c *Config) bool { return c.VM.Accel == "tcg" }},
		{"accel kvm", base + "  accel: kvm\n" + net, func(c *Config) bool { return c.VM.Accel == "kvm" }},
		{"stop_timeout", base + "  stop_timeout: 1m30s\n" + net, func(c *Config) bool { return c.VM.StopTimeout == 90*time.Second }},
		{"socket absolute", base + "network:\n  socket: /run/x.sock\n", func(c *Config) bool { return c.Network.Socket == "/run/x.sock" }},
		{"mtu", base + net + "  mtu: 9000\n", func(c *Config) bool { return c.Network.MTU == 9000 }},
		{"backoff", base + net + "reconnect:\n  initial_backoff: 50ms\n  max_backoff: 5s\n",
			func(c *Config) bool { return c.Reconnect == Reconnect{50 * time.Millisecond, 5 * time.Second} }},
		{"backoff limits", base + net + "reconnect:\n  initial_backoff: 10ms\n  max_backoff: 1m\n",
			func(c *Config) bool { return c.Reconnect == Reconnect{10 * time.Millisecond, time.Minute} }},
		{"backoff equal", base + net + "reconnect:\n  initial_backoff: 10ms\n  max_backoff: 10ms\n",
			func(c *Config) bool { return c.Reconnect == Reconnect{10 * time.Millisecond, 10 * time.Millisecond} }},
		{"stop_timeout limit", base + "  stop_timeout: 1h\n" + net, func(c *Config) bool { return c.VM.StopTimeout == time.Hour }},
		{"memory smallest", base + "  memory: 64MiB\n" + net, func(c *Config) bool { return c.VM.Memory == 64<<20 }},
		{"socket at the limit", base + "network:\n  socket: /" + strings.Repeat("s", 102) + "\n",
			func(c *Config) bool { return c.Network.Socket == "/"+strings.Repeat("s", 102) }},
		{"autostart off", base + net + "autostart_vm: false\n", func(c *Config) bool { return !c.AutostartVM }},
		{"notifications off", base + net + "notifications: no\n", func(c *Config) bool { return !c.Notifications }},
		{"log_level", base + net + "log_level: debug\n", func(c *Config) bool { return c.LogLevel == logrus.DebugLevel }},
		{"logout_stop_timeout", base + net + "logout_stop_timeout: 20s\n", func(c *Config) bool { return c.LogoutStopTimeout == 20*time.Second }},
		{"logout_stop_timeout limit", base + net + "logout_stop_timeout: 1m\n", func(c *Config) bool { return c.LogoutStopTimeout == time.Minute }},
		{"mtu largest", base + net + fmt.Sprintf("  mtu: %d\n", MaxMTU), func(c *Config) bool { return c.Network.MTU == MaxMTU }},
		{"null values keep defaults", base + "  cpus:\n  memory: ~\n" + net + "reconnect:\nautostart_vm: null\n",
			func(c *Config) bool { return c.VM.CPUs == 2 && c.VM.Memory == 1<<30 && c.AutostartVM }},
		{"comments everywhere", "# top\n" + base + "  # inside\n" + net + "# end\n", func(c *Config) bool { return c.VM.Kernel == f.kernel }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(f.write(t, tt.text), f.opts())
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(c) {
				t.Fatalf("unexpected config %+v", c)
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	f := newFixture(t)
	file := filepath.Join(f.dir, "config.yaml")
	vm := "vm:\n  kernel: vmlinuz\n  mac: \"52:54:00:12:34:56\"\n"
	net := "network:\n  socket: daemon.sock\n"
	tests := []struct {
		name, text, want string
	}{
		{"empty", "", "the file is empty"},
		{"comment only", "# nothing\n", "the file is empty"},
		{"document marker only", "---", "the file is empty"},
		{"null only", "~\n", "the file is empty"},
		{"not yaml", "vm: [\n", "not valid YAML"},
		{"not a mapping", "- a\n- b\n", "must be a mapping"},
		{"unknown top key", vm + net + "autostart: true\n", `line 6: unknown key "autostart" at the top level (known keys: vms, vm, network, reconnect, autostart_vm, notifications, log_level, logout_stop_timeout)`},
		{"unknown vm key", vm + "  memroy: 1GiB\n" + net, `line 4: unknown key "vm.memroy" in vm (known keys: image, disk_size,`},
		{"unknown network key", vm + net + "  port: 3\n", `unknown key "network.port" in network`},
		{"unknown reconnect key", vm + net + "reconnect:\n  backoff: 1s\n", `unknown key "reconnect.backoff"`},
		{"duplicate key", vm + "  cpus: 1\n  cpus: 2\n" + net, "vm.cpus: set twice"},
		{"section not mapping", "vm: vmlinuz\n" + net, "vm: must be a mapping"},
		{"kernel missing", "vm:\n  cpus: 1\n" + net, "vm.image is not set: point it at a distro cloud image"},
		{"no vm", net, "vm.image is not set"},
		{"kernel not found", "vm:\n  kernel: nope\n" + net, "line 2: vm.kernel: " + filepath.Join(f.dir, "nope") + " does not exist"},
		{"kernel is dir", "vm:\n  kernel: .\n" + net, "is a directory"},
		{"initrd not found", vm + "  initrd: /nonexistent/initrd\n" + net, "vm.initrd: /nonexistent/initrd does not exist"},
		{"disk not found", vm + "  disk: d.raw\n" + net, "vm.disk: "},
		{"kernel a list", "vm:\n  kernel: [a, b]\n" + net, "vm.kernel: must be a single value"},
		{"cpus words", vm + "  cpus: two\n" + net, `line 4: vm.cpus: "two" is not a whole number (use a number from 1 to 256)`},
		{"cpus zero", vm + "  cpus: 0\n" + net, "vm.cpus: 0 is out of range"},
		{"cpus huge", vm + "  cpus: 1000\n" + net, "vm.cpus: 1000 is out of range"},
		{"cpus overflows", vm + "  cpus: 99999999999999999999\n" + net, "line 4: vm.cpus: 99999999999999999999 is too large (use a number from 1 to 256)"},
		{"cpus overflows negative", vm + "  cpus: -99999999999999999999\n" + net, "line 4: vm.cpus: -99999999999999999999 is too small (use a number from 1 to 256)"},
		{"memory bad", vm + "  memory: 1GB x\n" + net, `line 4: vm.memory: "1GB x" is not a size (use a size from 64MiB up to the host's memory, e.g. 1GiB or 512MiB)`},
		{"memory zero", vm + "  memory: 0\n" + net, `line 4: vm.memory: "0" is too small (use a size from 64MiB up to the host's memory, e.g. 1GiB or 512MiB)`},
		{"memory small", vm + "  memory: 63MiB\n" + net, `line 4: vm.memory: "63MiB" is too small (use a size from 64MiB`},
		{"memory not MiB", vm + "  memory: 100000000\n" + net, `line 4: vm.memory: "100000000" is not a whole number of MiB (use e.g. 96MiB)`},
		{"memory too large", vm + "  memory: 99999999999GiB\n" + net, `line 4: vm.memory: "99999999999GiB" is too large (use a size from 64MiB up to the host's memory, e.g. 1GiB or 512MiB)`},
		{"mac bad", "vm:\n  kernel: vmlinuz\n  mac: zz\n" + net, `vm.mac: invalid MAC address "zz"`},
		{"mac multicast", "vm:\n  kernel: vmlinuz\n  mac: 01:00:5e:00:00:01\n" + net, "vm.mac: MAC address 01:00:5e:00:00:01 is a multicast address"},
		{"accel bad", vm + "  accel: hvf\n" + net, `vm.accel: "hvf" is not an accelerator (use auto, kvm or tcg)`},
		{"stop_timeout bad", vm + "  stop_timeout: soon\n" + net, `line 4: vm.stop_timeout: "soon" is not a positive duration (use a positive duration up to 1h, e.g. 30s or 2m)`},
		{"stop_timeout overflows", vm + "  stop_timeout: 9999999999h\n" + net, `line 4: vm.stop_timeout: "9999999999h" is too long (use a positive duration up to 1h, e.g. 30s or 2m)`},
		{"stop_timeout long", vm + "  stop_timeout: 61m\n" + net, `line 4: vm.stop_timeout: "61m" is too long: use at most 1h: quitting would wait that long`},
		{"stop_timeout zero", vm + "  stop_timeout: 0s\n" + net, `vm.stop_timeout: "0s" is not a positive duration`},
		{"socket missing linux", vm, "network.socket is not set: point it at your socket_vmnet-compatible daemon's socket"},
		{"mtu small", vm + net + "  mtu: 100\n", fmt.Sprintf("network.mtu: 100 is out of range (use a number from 1280 to %d)", MaxMTU)},
		{"mtu big", vm + net + "  mtu: 70000\n", "network.mtu: 70000 is out of range"},
		{"image and kernel", vm + "  image: vmlinuz\n" + net, "vm.kernel: cannot be used together with vm.image"},
		{"image and disk", "vm:\n  image: vmlinuz\n  disk: disk.raw\n" + net, "vm.disk: cannot be used together with vm.image"},
		{"image missing file", "vm:\n  image: nothere.qcow2\n" + net, "nothere.qcow2 does not exist: fix the path"},
		{"cloud_init with kernel", vm + "  cloud_init: false\n" + net, "vm.cloud_init: applies only to a VM that boots a cloud image"},
		{"disk_size small", "vm:\n  image: vmlinuz\n  disk_size: 100MiB\n" + net, `vm.disk_size: "100MiB" is out of range (use a size from 1GiB to 64TiB`},
		{"disk_size huge", "vm:\n  image: vmlinuz\n  disk_size: 100TiB\n" + net, `vm.disk_size: "100TiB" is out of range`},
		{"disk_size words", "vm:\n  image: vmlinuz\n  disk_size: big\n" + net, `vm.disk_size: "big" is not a size`},
		{"ssh_address no port", "vm:\n  image: vmlinuz\n  ssh_address: 127.0.0.1\n" + net, `vm.ssh_address: "127.0.0.1" is not HOST:PORT`},
		{"ssh_address port 0", "vm:\n  image: vmlinuz\n  ssh_address: 127.0.0.1:0\n" + net, `vm.ssh_address: "127.0.0.1:0" is not HOST:PORT`},
		{"ssh_keys mapping", "vm:\n  image: vmlinuz\n  ssh_keys: {a: b}\n" + net, "vm.ssh_keys: must be a list of files"},
		{"ssh_keys missing file", "vm:\n  image: vmlinuz\n  ssh_keys: [nothere.pub]\n" + net, "nothere.pub does not exist"},
		{"user_data missing", "vm:\n  image: vmlinuz\n  user_data: nothere\n" + net, "nothere does not exist"},
		{"filter not a bool", vm + net + "  filter: maybe\n", `network.filter: "maybe" is not true or false`},
		{"probe not a bool", vm + net + "  probe: 2\n", `network.probe: "2" is not true or false`},
		{"ssh_user upper case", vm + "  ssh_user: Root\n" + net, `vm.ssh_user: "Root" is not a user name`},
		{"ssh_user too long", vm + "  ssh_user: " + strings.Repeat("a", 33) + "\n" + net, "is not a user name"},
		{"ssh_user a number", vm + "  ssh_user: \"1000\"\n" + net, `"1000" is not a user name (use 1 to 32 lowercase letters, digits, '_', '.' and '-'`},
		// MTU + 18 (Ethernet header and VLAN tag) must fit a 65535-byte frame.
		{"mtu frame too big", vm + net + fmt.Sprintf("  mtu: %d\n", 65535-18+1), fmt.Sprintf("network.mtu: %d is out of range (use a number from 1280 to %d)", 65535-18+1, 65535-18)},
		{"mtu words", vm + net + "  mtu: big\n", `network.mtu: "big" is not a whole number`},
		{"mtu overflows", vm + net + "  mtu: 99999999999999999999\n", fmt.Sprintf("line 6: network.mtu: 99999999999999999999 is too large (use a number from 1280 to %d)", MaxMTU)},
		{"socket too long", vm + "network:\n  socket: /" + strings.Repeat("s", 103) + "\n",
			"line 5: network.socket: /" + strings.Repeat("s", 103) + " is 104 bytes long, but a socket path can be at most 103 bytes (the sun_path limit): use a shorter path"},
		{"socket relative too long", vm + "network:\n  socket: " + strings.Repeat("s", 103-len(f.dir)) + "\n",
			"line 5: network.socket: " + filepath.Join(f.dir, strings.Repeat("s", 103-len(f.dir))) + " is 104 bytes long"},
		{"backoff bad", vm + net + "reconnect:\n  initial_backoff: fast\n", `line 7: reconnect.initial_backoff: "fast" is not a positive duration (use a duration from 10ms to 1m, e.g. 100ms or 2s)`},
		{"backoff negative", vm + net + "reconnect:\n  max_backoff: -1s\n", `line 7: reconnect.max_backoff: "-1s" is not a positive duration`},
		{"backoff 1ns", vm + net + "reconnect:\n  initial_backoff: 1ns\n",
			`line 7: reconnect.initial_backoff: "1ns" is too short: use at least 10ms: a shorter wait spins a CPU core and floods the log while the daemon is down`},
		{"backoff 9ms", vm + net + "reconnect:\n  initial_backoff: 9ms\n", `line 7: reconnect.initial_backoff: "9ms" is too short: use at least 10ms`},
		{"max backoff short", vm + net + "reconnect:\n  initial_backoff: 10ms\n  max_backoff: 9.5ms\n", `line 8: reconnect.max_backoff: "9.5ms" is too short: use at least 10ms`},
		{"max backoff long", vm + net + "reconnect:\n  max_backoff: 61s\n",
			`line 7: reconnect.max_backoff: "61s" is too long: use at most 1m: the link would stay down that long after the daemon is back`},
		{"initial backoff long", vm + net + "reconnect:\n  initial_backoff: 2m\n  max_backoff: 3m\n", `line 7: reconnect.initial_backoff: "2m" is too long: use at most 1m`},
		{"backoff overflows", vm + net + "reconnect:\n  max_backoff: 9999999999h\n", `line 7: reconnect.max_backoff: "9999999999h" is too long (use a duration from 10ms to 1m, e.g. 100ms or 2s)`},
		{"backoff order", vm + net + "reconnect:\n  initial_backoff: 3s\n  max_backoff: 1s\n",
			"line 8: reconnect.max_backoff: 1s is shorter than reconnect.initial_backoff, 3s (line 7): make it at least as long"},
		{"backoff order, default max", vm + net + "reconnect:\n  initial_backoff: 3s\n",
			"line 7: reconnect.initial_backoff: 3s is longer than reconnect.max_backoff (2s, its default): shorten it, or set reconnect.max_backoff to at least 3s"},
		{"backoff order, default initial", vm + net + "reconnect:\n  max_backoff: 50ms\n",
			"line 7: reconnect.max_backoff: 50ms is shorter than reconnect.initial_backoff, 100ms (its default): make it at least as long"},
		{"autostart bad", vm + net + "autostart_vm: maybe\n", `autostart_vm: "maybe" is not true or false`},
		{"notifications bad", vm + net + "notifications: 2\n", `notifications: "2" is not true or false`},
		{"log_level bad", vm + net + "log_level: loud\n", `log_level: "loud" is not a log level`},
		{"logout_stop_timeout bad", vm + net + "logout_stop_timeout: soon\n", `line 6: logout_stop_timeout: "soon" is not a positive duration (use a positive duration up to 1m, e.g. 5s or 20s)`},
		{"logout_stop_timeout zero", vm + net + "logout_stop_timeout: 0s\n", `line 6: logout_stop_timeout: "0s" is not a positive duration`},
		{"logout_stop_timeout long", vm + net + "logout_stop_timeout: 61s\n", `line 6: logout_stop_timeout: "61s" is too long: use at most 1m: macOS ends the app about a minute after a logout begins anyway`},
		{"key a mapping", vm + net + "? [a]\n: b\n", "keys must be plain names"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(f.write(t, tt.text), f.opts())
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "config "+file+": ") {
				t.Errorf("error does not name the file: %s", msg)
			}
			if !strings.Contains(msg, tt.want) {
				t.Errorf("error\n  %s\ndoes not contain\n  %s", msg, tt.want)
			}
			var ce *Error
			if !errors.As(err, &ce) {
				t.Errorf("error is %T, not *Error", err)
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "config.yaml")
	_, err := Load(p, Options{})
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("got %v, want a not-exist error", err)
	}
	for _, want := range []string{p, "does not exist: create it", "README"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q does not mention %q", err, want)
		}
	}
}

func TestSocketCandidates(t *testing.T) {
	f := newFixture(t)
	text := "vm:\n  kernel: vmlinuz\n  mac: \"52:54:00:12:34:56\"\n"
	p := f.write(t, text)
	missing := filepath.Join(f.dir, "missing.sock")

	o := f.opts()
	o.SocketCandidates = []string{missing, f.sock, f.kernel}
	c, err := Load(p, o)
	if err != nil {
		t.Fatal(err)
	}
	if c.Network.Socket != f.sock {
		t.Fatalf("socket %q, want the first existing candidate %q", c.Network.Socket, f.sock)
	}

	o.SocketCandidates = []string{missing}
	_, err = Load(p, o)
	if err == nil || !strings.Contains(err.Error(), "network.socket is not set and no socket_vmnet socket exists at "+missing) {
		t.Fatalf("got %v", err)
	}

	// socket_vmnet not installed or not started yet: the fallback (macOS:
	// Homebrew's socket for the architecture), which the link waits for.
	o.SocketFallback = HomebrewSocket("arm64")
	c, err = Load(p, o)
	if err != nil {
		t.Fatalf("no candidate exists, with a fallback: %v", err)
	}
	if c.Network.Socket != "/opt/homebrew/var/run/socket_vmnet" {
		t.Fatalf("socket %q, want the fallback", c.Network.Socket)
	}
	// An existing candidate still comes first.
	o.SocketCandidates = []string{missing, f.sock}
	if c, err = Load(p, o); err != nil || c.Network.Socket != f.sock {
		t.Fatalf("socket %q (%v), want the existing candidate %q", c.Network.Socket, err, f.sock)
	}
}

func TestMACWrittenBack(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name, in, want string
	}{
		{
			name: "inserted as a line, layout kept",
			in:   "# my VM\nvm:\n    # the kernel\n    kernel: vmlinuz   # built by hand\n\n    cpus: 2\n\nnetwork:\n    socket: daemon.sock\n",
			want: "# my VM\nvm:\n    mac: \"52:54:00:aa:bb:cc\"  # generated by vmnetbar\n    # the kernel\n    kernel: vmlinuz   # built by hand\n\n    cpus: 2\n\nnetwork:\n    socket: daemon.sock\n",
		},
		{
			name: "empty value replaced",
			in:   "vm:\n  kernel: vmlinuz # k\n  mac:\nnetwork: {socket: daemon.sock}\n",
			want: "vm:\n  kernel: vmlinuz # k\n  mac: \"52:54:00:aa:bb:cc\"\nnetwork: {socket: daemon.sock}\n",
		},
		{
			name: "flow mapping",
			in:   "vm: {kernel: vmlinuz}\nnetwork: {socket: daemon.sock}\n",
			want: "vm: {kernel: vmlinuz, mac: \"52:54:00:aa:bb:cc\"}\nnetwork: {socket: daemon.sock}\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := f.write(t, tt.in)
			if err := os.Chmod(p, 0o640); err != nil {
				t.Fatal(err)
			}
			c, err := Load(p, f.opts())
			if err != nil {
				t.Fatal(err)
			}
			if !c.MACGenerated || !bytes.Equal(c.VM.MAC, fixedMAC) {
				t.Fatalf("MAC %s generated=%v", c.VM.MAC, c.MACGenerated)
			}
			got, _ := os.ReadFile(p)
			if string(got) != tt.want {
				t.Fatalf("file is now\n%s\nwant\n%s", got, tt.want)
			}
			if st, _ := os.Stat(p); st.Mode().Perm() != 0o640 {
				t.Errorf("mode %v, want 0640 kept", st.Mode().Perm())
			}
			// Loading again reads the same MAC and writes nothing.
			again, err := Load(p, Options{Home: "/h", NewMAC: func() (net.HardwareAddr, error) {
				return nil, errors.New("must not be called")
			}})
			if err != nil {
				t.Fatal(err)
			}
			if again.MACGenerated || !bytes.Equal(again.VM.MAC, fixedMAC) {
				t.Fatalf("second load: MAC %s generated=%v", again.VM.MAC, again.MACGenerated)
			}
		})
	}
}

func TestMACRandomByDefault(t *testing.T) {
	f := newFixture(t)
	p := f.write(t, "vm:\n  kernel: vmlinuz\nnetwork:\n  socket: daemon.sock\n")
	c, err := Load(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.VM.MAC) != 6 || c.VM.MAC[0]&1 != 0 || c.VM.MAC[0]&2 == 0 {
		t.Fatalf("generated MAC %s is not locally administered unicast", c.VM.MAC)
	}
	var doc struct{ VM struct{ MAC string } }
	data, _ := os.ReadFile(p)
	if err := yaml.Unmarshal(data, &doc); err != nil || doc.VM.MAC != c.VM.MAC.String() {
		t.Fatalf("file has mac %q (%v), want %s", doc.VM.MAC, err, c.VM.MAC)
	}
}

func TestMACWriteFails(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root can write to read-only directories")
	}
	f := newFixture(t)
	p := f.write(t, "vm:\n  kernel: vmlinuz\nnetwork:\n  socket: daemon.sock\n")
	if err := os.Chmod(f.dir, 0o500); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(f.dir, 0o700) })
	_, err := Load(p, f.opts())
	if err == nil || !strings.Contains(err.Error(), "vm.mac: not set, and writing the generated") {
		t.Fatalf("got %v", err)
	}
}

// TestMACWriteBackKeepsAnEditorsSave: the file saved by an editor between
// vmnetbar's read and its write-back of a generated MAC keeps the edit
// (the new version is read again and gets the address); a file that keeps
// changing is left as the editor saved it, with an error saying what to do.
func TestMACWriteBackKeepsAnEditorsSave(t *testing.T) {
	f := newFixture(t)
	p := f.write(t, "vm:\n  kernel: vmlinuz\nnetwork:\n  socket: daemon.sock\n")
	edited := "# the user's edit\nvm:\n  kernel: vmlinuz\n  cpus: 3\nnetwork:\n  socket: daemon.sock\n"
	o := f.opts()
	calls := 0
	o.NewMAC = func() (net.HardwareAddr, error) {
		calls++
		if calls == 1 { // the editor saves while the address is made
			if err := os.WriteFile(p, []byte(edited), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		return fixedMAC, nil
	}
	c, err := Load(p, o)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(p)
	if calls != 2 || c.VMs[0].CPUs != 3 || !strings.Contains(string(data), "# the user's edit") ||
		!strings.Contains(string(data), "cpus: 3") || !strings.Contains(string(data), fixedMAC.String()) {
		t.Fatalf("%d generations, cpus %d; file:\n%s", calls, c.VMs[0].CPUs, data)
	}

	// An editor that saves on every read: the file keeps its last save.
	p = f.write(t, "vm:\n  kernel: vmlinuz\nnetwork:\n  socket: daemon.sock\n")
	calls = 0
	o.NewMAC = func() (net.HardwareAddr, error) {
		calls++
		text := fmt.Sprintf("vm:\n  kernel: vmlinuz\n  cpus: %d\nnetwork:\n  socket: daemon.sock\n", calls)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return fixedMAC, nil
	}
	_, err = Load(p, o)
	data, _ = os.ReadFile(p)
	if err == nil || !strings.Contains(err.Error(), "vm.mac: not set") || !strings.Contains(err.Error(), "changed") ||
		calls != maxLoadAttempts || strings.Contains(string(data), "mac:") || !strings.Contains(string(data), fmt.Sprintf("cpus: %d", calls)) {
		t.Fatalf("%d generations, error %v; file:\n%s", calls, err, data)
	}
	if left, _ := filepath.Glob(filepath.Join(f.dir, ".config-*")); len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
}

func TestMACGeneratorFails(t *testing.T) {
	f := newFixture(t)
	p := f.write(t, "vm:\n  kernel: vmlinuz\nnetwork:\n  socket: daemon.sock\n")
	o := f.opts()
	o.NewMAC = func() (net.HardwareAddr, error) { return nil, errors.New("no entropy") }
	_, err := Load(p, o)
	if err == nil || !strings.Contains(err.Error(), "vm.mac: not set, and generating one failed: no entropy") {
		t.Fatalf("got %v", err)
	}
}

func TestVMConfig(t *testing.T) {
	f := newFixture(t)
	c, err := Load(f.write(t, minimal+"  mtu: 9000\n"), f.opts())
	if err != nil {
		t.Fatal(err)
	}
	v := c.VMConfig()
	if v.Kernel != f.kernel || v.CPUs != 2 || v.Memory != 1<<30 || v.MTU != 9000 || v.Accel != "auto" ||
		v.ConsoleLog != f.state+"/console.log" || v.StopTimeout != 30*time.Second || v.MAC.String() != "52:54:00:12:34:56" || v.NIC != nil {
		t.Fatalf("VMConfig %+v", v)
	}
	v.MAC[0] = 0xff
	if c.VM.MAC[0] == 0xff {
		t.Fatal("VMConfig shares the MAC slice")
	}
}

func TestPaths(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	tests := []struct {
		name string
		env  map[string]string
		want Paths
	}{
		{"defaults", nil, Paths{
			ConfigFile: "/home/u/.config/vmnetbar/config.yaml",
			StateDir:   "/home/u/.local/state/vmnetbar",
			LogDir:     "/home/u/.local/state/vmnetbar",
		}},
		{"xdg", map[string]string{"XDG_CONFIG_HOME": "/c", "XDG_STATE_HOME": "/s", "XDG_RUNTIME_DIR": "/r"}, Paths{
			ConfigFile: "/c/vmnetbar/config.yaml",
			StateDir:   "/s/vmnetbar",
			LogDir:     "/s/vmnetbar",
		}},
		{"relative ignored", map[string]string{"XDG_CONFIG_HOME": "c", "XDG_STATE_HOME": "s", "XDG_RUNTIME_DIR": "r"}, Paths{
			ConfigFile: "/home/u/.config/vmnetbar/config.yaml",
			StateDir:   "/home/u/.local/state/vmnetbar",
			LogDir:     "/home/u/.local/state/vmnetbar",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := xdgPaths(env(tt.env), "/home/u")
			if err != nil || got != tt.want {
				t.Fatalf("got %+v, %v\nwant %+v", got, err, tt.want)
			}
		})
	}
	if _, err := xdgPaths(env(nil), ""); err == nil || !strings.Contains(err.Error(), "XDG_CONFIG_HOME nor HOME") {
		t.Fatalf("no home: %v", err)
	}
	mac, err := macPaths("/Users/u")
	want := Paths{
		ConfigFile: "/Users/u/Library/Application Support/vmnetbar/config.yaml",
		StateDir:   "/Users/u/Library/Application Support/vmnetbar",
		LogDir:     "/Users/u/Library/Logs/vmnetbar",
	}
	if err != nil || mac != want {
		t.Fatalf("mac paths %+v, %v", mac, err)
	}
	if mac.LogFile() != "/Users/u/Library/Logs/vmnetbar/vmnetbar.log" {
		t.Fatalf("log file %s", mac.LogFile())
	}
	if _, err := macPaths(""); err == nil {
		t.Fatal("macPaths without home: no error")
	}
	for _, tt := range []struct {
		goarch string
		want   []string
	}{
		{"arm64", []string{"/opt/homebrew/var/run/socket_vmnet", "/usr/local/var/run/socket_vmnet", "/var/run/socket_vmnet"}},
		{"amd64", []string{"/usr/local/var/run/socket_vmnet", "/opt/homebrew/var/run/socket_vmnet", "/var/run/socket_vmnet"}},
	} {
		if c := macSocketCandidates(tt.goarch); !reflect.DeepEqual(c, tt.want) {
			t.Errorf("candidates on %s: %v, want %v", tt.goarch, c, tt.want)
		}
		if s := HomebrewSocket(tt.goarch); s != tt.want[0] {
			t.Errorf("HomebrewSocket(%s) = %s, want %s", tt.goarch, s, tt.want[0])
		}
	}
}

func TestDefaultPathsFollowXDG(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", "/tmp/x/c")
	t.Setenv("XDG_STATE_HOME", "/tmp/x/s")
	p, err := DefaultPaths()
	if err != nil {
		t.Fatal(err)
	}
	if p.ConfigFile != "/tmp/x/c/vmnetbar/config.yaml" || p.StateDir != "/tmp/x/s/vmnetbar" {
		t.Fatalf("%+v", p)
	}
	if o := DefaultOptions(p); o.StateDir != p.StateDir || len(o.SocketCandidates) != 0 || o.SocketFallback != "" || o.AllowNoVM {
		t.Fatalf("options %+v", o)
	}
}

func TestMACWrittenThroughSymlink(t *testing.T) {
	f := newFixture(t)
	real := filepath.Join(f.dir, "real.yaml")
	if err := os.WriteFile(real, []byte("vm:\n  kernel: vmlinuz\nnetwork:\n  socket: daemon.sock\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(f.dir, "config.yaml")
	if err := os.Symlink("real.yaml", link); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(link, f.opts()); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Lstat(link); err != nil || st.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("the symbolic link was replaced: %v %v", st.Mode(), err)
	}
	data, _ := os.ReadFile(real)
	if !strings.Contains(string(data), `mac: "52:54:00:aa:bb:cc"`) {
		t.Fatalf("target not updated:\n%s", data)
	}
}

// TestLoadFileKinds: vm.kernel and vm.initrd must be non-empty regular
// files, vm.disk a non-empty regular file or a block device; anything else
// is refused at load, on the key's line, and never blocks.
func TestLoadFileKinds(t *testing.T) {
	f := newFixture(t)
	empty := filepath.Join(f.dir, "empty")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(f.dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	base := "vm:\n  mac: \"52:54:00:12:34:56\"\n"
	net := "network:\n  socket: daemon.sock\n"
	tests := []struct {
		name, text, want string
	}{
		{"kernel empty", base + "  kernel: empty\n" + net,
			"line 3: vm.kernel: " + empty + " is empty (0 bytes): point it at the guest's kernel image"},
		{"kernel /dev/null", base + "  kernel: /dev/null\n" + net,
			"line 3: vm.kernel: /dev/null is not a regular file (it is a character device): point it at the guest's kernel image"},
		{"kernel fifo", base + "  kernel: fifo\n" + net,
			"line 3: vm.kernel: " + fifo + " is not a regular file (it is a named pipe)"},
		{"initrd empty", base + "  kernel: vmlinuz\n  initrd: empty\n" + net,
			"line 4: vm.initrd: " + empty + " is empty (0 bytes): point it at the guest's initrd, or remove the key"},
		{"initrd /dev/null", base + "  kernel: vmlinuz\n  initrd: /dev/null\n" + net,
			"line 4: vm.initrd: /dev/null is not a regular file (it is a character device)"},
		{"disk empty", base + "  kernel: vmlinuz\n\n  disk: empty\n" + net,
			"line 5: vm.disk: " + empty + " is empty (0 bytes): point it at a raw disk image you can read and write (or a block device), or remove the key"},
		{"disk /dev/null", base + "  kernel: vmlinuz\n  disk: /dev/null\n" + net,
			"line 4: vm.disk: /dev/null is not a regular file (it is a character device)"},
		{"disk directory", base + "  kernel: vmlinuz\n  disk: /\n" + net, "line 4: vm.disk: / is a directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(f.write(t, tt.text), f.opts())
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("got %v (%T), want a *config.Error", err, err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error\n  %s\ndoes not contain\n  %s", err, tt.want)
			}
		})
	}
}

func TestLoadUnreadableFiles(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root can read and write any file")
	}
	f := newFixture(t)
	for _, p := range []string{f.kernel, f.disk} {
		if err := os.Chmod(p, 0o400); err != nil {
			t.Fatal(err)
		}
	}
	net := "network:\n  socket: daemon.sock\n"
	_, err := Load(f.write(t, "vm:\n  disk: disk.raw\n  kernel: vmlinuz\n  mac: \"52:54:00:12:34:56\"\n"+net), f.opts())
	if want := "line 2: vm.disk: " + f.disk + " cannot be read and written (permission denied)"; err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("got %v, want %s", err, want)
	}
	if err := os.Chmod(f.kernel, 0); err != nil {
		t.Fatal(err)
	}
	_, err = Load(f.write(t, "vm:\n  kernel: vmlinuz\n  mac: \"52:54:00:12:34:56\"\n"+net), f.opts())
	if want := "line 2: vm.kernel: " + f.kernel + " cannot be read (permission denied)"; err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("got %v, want %s", err, want)
	}
}

// TestLocate: the VM host's errors name its fields; Locate gives them the
// file, the key the user wrote and its line.
func TestLocate(t *testing.T) {
	f := newFixture(t)
	c, err := Load(f.write(t, minimal[:len("vm:\n")]+"  cpus: 64\n"+minimal[len("vm:\n"):]), f.opts())
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(f.dir, "config.yaml")
	other := errors.New("NIC is not set")
	joined := errors.Join(
		&vmhost.FieldError{Field: "CPUs", Msg: "is 64: it must be between 1 and 2 (the host's CPU count)"},
		&vmhost.FieldError{Field: "Kernel", Msg: "permission denied: set it to the path of a readable Linux kernel image", Err: fs.ErrPermission},
		&vmhost.FieldError{Field: "Memory", Msg: "is 1GiB: the largest allowed is 512MiB"},
		&vmhost.FieldError{Field: "MTU", Msg: "is 1500: it must be between 1500 and 1500"},
		&vmhost.FieldError{Field: "QEMUOptions.Accel", Msg: "is kvm but /dev/kvm is missing: use auto or tcg"},
		other,
	)
	got := c.Locate(joined)
	want := []string{
		"config " + file + ": line 2: vm.cpus is 64: it must be between 1 and 2 (the host's CPU count)",
		"config " + file + ": line 3: vm.kernel: permission denied: set it to the path of a readable Linux kernel image",
		"config " + file + ": vm.memory is 1GiB: the largest allowed is 512MiB",
		"config " + file + ": network.mtu is 1500: it must be between 1500 and 1500",
		"config " + file + ": vm.accel is kvm but /dev/kvm is missing: use auto or tcg",
		"NIC is not set",
	}
	if got.Error() != strings.Join(want, "\n") {
		t.Fatalf("got\n%s\nwant\n%s", got, strings.Join(want, "\n"))
	}
	if !errors.Is(got, fs.ErrPermission) || !errors.Is(got, other) {
		t.Error("the original errors are not wrapped")
	}
	var ce *Error
	if !errors.As(got, &ce) || ce.Key != "vm.cpus" || ce.Line != 2 {
		t.Errorf("first *Error %+v", ce)
	}
	if c.Locate(nil) != nil {
		t.Error("Locate(nil) is not nil")
	}
	if e := c.Locate(other); e != other {
		t.Errorf("an error without a field became %v", e)
	}
	unknown := &vmhost.FieldError{Field: "Nope", Msg: "no"}
	if e := c.Locate(unknown); e != unknown {
		t.Errorf("an unknown field became %v", e)
	}
}

// The vms: form: Locate names vms.NAME.KEY, and vms.NAME.network.mtu for
// the MTU; the real check's errors come out on the lines of the keys.
func TestLocateVMs(t *testing.T) {
	f := newFixture(t)
	text := "vms:\n  dev:\n    kernel: vmlinuz\n    mac: \"52:54:00:12:34:56\"\n    cpus: 256\n    network:\n      socket: daemon.sock\n      mtu: 1500\n"
	c, err := Load(f.write(t, text), f.opts())
	if err != nil {
		t.Fatal(err)
	}
	v := c.Lookup("dev")
	err = v.Locate(v.VMConfig().Check())
	file := filepath.Join(f.dir, "config.yaml")
	if want := "config " + file + ": line 5: vms.dev.cpus is 256: it must be between 1 and "; err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("got %v, want %s", err, want)
	}
	mtu := v.Locate(&vmhost.FieldError{Field: "MTU", Msg: "is 1500: no"})
	if mtu.Error() != "config "+file+": line 8: vms.dev.network.mtu is 1500: no" {
		t.Fatalf("got %v", mtu)
	}
}

// Every field of vmhost.Config but the NIC and the files vmnetbar keeps in
// the VM's state directory (its EFI variables and machine identifier,
// whose errors name the file) maps to a key of a VM's section, so no
// FieldError stays without a key.
func TestEveryVMHostFieldHasAKey(t *testing.T) {
	var walk func(prefix string, typ reflect.Type)
	walk = func(prefix string, typ reflect.Type) {
		for i := 0; i < typ.NumField(); i++ {
			fl := typ.Field(i)
			name := prefix + fl.Name
			switch {
			case fl.Anonymous && fl.Type.Kind() == reflect.Struct:
				walk(name+".", fl.Type)
			case name == "NIC", name == "EFIVars", name == "MachineID":
			case name == "MTU":
				if !slicesContains(keys["network"], "mtu") {
					t.Error("no network.mtu key")
				}
			default:
				k, ok := fieldKeys[name]
				if !ok || !slicesContains(keys["vm"], k) || !slicesContains(vmEntryKeys, k) {
					t.Errorf("vmhost.Config.%s has no key (%q)", name, k)
				}
			}
		}
	}
	walk("", reflect.TypeOf(vmhost.Config{}))
}

func slicesContains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func TestNetworkSwitchesAndSSHUser(t *testing.T) {
	f := newFixture(t)
	text := "vms:\n  dev:\n    kernel: vmlinuz\n    mac: \"52:54:00:00:00:01\"\n    ssh_user: john.doe\n    network:\n      socket: daemon.sock\n      filter: false\n      probe: off\n" +
		"  ci:\n    kernel: vmlinuz\n    network:\n      socket: daemon.sock\n"
	c, err := Load(f.write(t, text), f.opts())
	if err != nil {
		t.Fatal(err)
	}
	dev, ci := c.Lookup("dev"), c.Lookup("ci")
	if dev.Network.Filter || dev.Network.Probe || dev.SSHUser != "john.doe" || !dev.LinkConfig().NoFilter || !dev.LinkConfig().NoProbe {
		t.Fatalf("dev: %+v, %+v", dev.Network, dev.Machine)
	}
	if !ci.Network.Filter || !ci.Network.Probe || ci.SSHUser != "" || ci.LinkConfig().NoFilter || ci.LinkConfig().NoProbe {
		t.Fatalf("ci (defaults): %+v, %+v", ci.Network, ci.Machine)
	}
}
