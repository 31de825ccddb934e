//go:build linux || darwin

package vmhost

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// testLimits are fixed bounds so the table does not depend on the host.
var testLimits = limits{
	minCPUs: 1, maxCPUs: 4,
	minMemory: MinMemory, maxMemory: 8 * GiB,
	minMTU: MinMTU, maxMTU: MaxMTU,
	cpuHint: "test", memoryHint: "test",
	kvm: func() error { return nil },
}

// validConfig returns a configuration that passes Validate.
func validConfig(t *testing.T) Config {
	t.Helper()
	dir := t.TempDir()
	vmEnd, _ := socketPair(t, unix.SOCK_DGRAM)
	return Config{
		Kernel:     writeFile(t, dir, "vmlinuz"),
		Initrd:     writeFile(t, dir, "initrd"),
		Disk:       writeFile(t, dir, "disk.raw"),
		ConsoleLog: filepath.Join(dir, "console.log"),
		CPUs:       2,
		Memory:     512 * MiB,
		MAC:        net.HardwareAddr{0x52, 0x54, 0, 0x12, 0x34, 0x56},
		MTU:        1500,
		Accel:      "tcg",
		NIC:        vmEnd,
	}
}

func TestValidateAcceptsGoodConfigs(t *testing.T) {
	c := validConfig(t)
	if err := c.validate(testLimits); err != nil {
		t.Fatalf("valid config refused: %v", err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("valid config refused by the host limits: %v", err)
	}
	if _, err := os.Stat(c.ConsoleLog); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Validate created the console log (%v)", err)
	}
	// Zero optional fields are their defaults.
	min := Config{Kernel: c.Kernel, MAC: c.MAC, NIC: c.NIC}
	if err := min.validate(testLimits); err != nil {
		t.Fatalf("minimal config refused: %v", err)
	}
	if MaxMTU != 65517 {
		t.Errorf("MaxMTU is %d: a frame (MTU + 18) must fit in 65535 bytes", MaxMTU)
	}
	for _, mtu := range []int{MinMTU, 9000, MaxMTU} {
		c.MTU = mtu
		if err := c.validate(testLimits); err != nil {
			t.Errorf("MTU %d refused: %v", mtu, err)
		}
	}
}

func TestValidateNamesTheField(t *testing.T) {
	dir := t.TempDir()
	noRead := writeFile(t, dir, "noread")
	if err := os.Chmod(noRead, 0); err != nil {
		t.Fatal(err)
	}
	_, canRead := os.ReadFile(noRead) // root reads anything
	streamEnd, _ := socketPair(t, unix.SOCK_STREAM)
	closed, _ := socketPair(t, unix.SOCK_DGRAM)
	closed.Close()
	plain, err := os.Open(writeFile(t, dir, "plain"))
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	roDir := filepath.Join(dir, "ro")
	if err := os.Mkdir(roDir, 0o555); err != nil {
		t.Fatal(err)
	}
	roFile := writeFile(t, dir, "ro.log")
	if err := os.Chmod(roFile, 0o444); err != nil {
		t.Fatal(err)
	}
	_, canWrite := os.OpenFile(roFile, os.O_WRONLY, 0) // root writes anything
	// Files that even root cannot read or write (sysfs checks the
	// attribute's own read and write support).
	const sysWriteOnly, sysReadOnly = "/sys/bus/pci/rescan", "/sys/devices/system/cpu/online"
	_, noSysWO := os.Stat(sysWriteOnly)
	_, noSysRO := os.Stat(sysReadOnly)

	cases := []struct {
		name   string
		mutate func(*Config)
		want   []string // parts of the error
		skip   bool
	}{
		{"kernel missing", func(c *Config) { c.Kernel = "" }, []string{"vm.kernel is not set"}, false},
		{"kernel not found", func(c *Config) { c.Kernel = filepath.Join(dir, "nope") }, []string{"vm.kernel", "does not exist"}, false},
		{"kernel is a dir", func(c *Config) { c.Kernel = dir }, []string{"vm.kernel", "is a directory"}, false},
		{"kernel unreadable", func(c *Config) { c.Kernel = noRead }, []string{"vm.kernel", "permission denied"}, canRead == nil},
		{"kernel unreadable even by root", func(c *Config) { c.Kernel = sysWriteOnly }, []string{"vm.kernel", "permission denied"}, noSysWO != nil},
		{"kernel empty", func(c *Config) { c.Kernel = empty }, []string{"vm.kernel", "is empty (0 bytes)"}, false},
		{"kernel /dev/null", func(c *Config) { c.Kernel = os.DevNull }, []string{"vm.kernel", "/dev/null is a character device", "regular file"}, false},
		{"kernel a fifo", func(c *Config) { c.Kernel = fifo }, []string{"vm.kernel", "is a named pipe"}, false},
		{"initrd /dev/null", func(c *Config) { c.Initrd = os.DevNull }, []string{"vm.initrd", "character device"}, false},
		{"initrd empty", func(c *Config) { c.Initrd = empty }, []string{"vm.initrd", "is empty"}, false},
		{"initrd a dir", func(c *Config) { c.Initrd = dir }, []string{"vm.initrd", "is a directory"}, false},
		{"disk /dev/null", func(c *Config) { c.Disk = os.DevNull }, []string{"vm.disk", "character device"}, false},
		{"disk a fifo", func(c *Config) { c.Disk = fifo }, []string{"vm.disk", "named pipe"}, false},
		{"initrd not found", func(c *Config) { c.Initrd = filepath.Join(dir, "nope") }, []string{"vm.initrd", "does not exist"}, false},
		{"disk not found", func(c *Config) { c.Disk = filepath.Join(dir, "nope") }, []string{"vm.disk", "does not exist"}, false},
		{"disk is a dir", func(c *Config) { c.Disk = dir }, []string{"vm.disk"}, false},
		{"console dir missing", func(c *Config) { c.ConsoleLog = filepath.Join(dir, "no", "console.log") }, []string{"vm.console_log", "does not exist"}, false},
		{"console is a dir", func(c *Config) { c.ConsoleLog = dir }, []string{"vm.console_log", "is a directory"}, false},
		{"console a fifo", func(c *Config) { c.ConsoleLog = fifo }, []string{"vm.console_log", "named pipe"}, false},
		{"console dir read-only", func(c *Config) { c.ConsoleLog = filepath.Join(roDir, "console.log") }, []string{"vm.console_log", "not writable"}, canWrite == nil},
		{"console file read-only", func(c *Config) { c.ConsoleLog = roFile }, []string{"vm.console_log", "permission denied"}, canWrite == nil},
		{"console unwritable even by root", func(c *Config) { c.ConsoleLog = sysReadOnly }, []string{"vm.console_log", "permission denied"}, noSysRO != nil},
		{"cpus negative", func(c *Config) { c.CPUs = -1 }, []string{"vm.cpus is -1", "between 1 and 4"}, false},
		{"cpus too many", func(c *Config) { c.CPUs = 5 }, []string{"vm.cpus is 5"}, false},
		{"memory too small", func(c *Config) { c.Memory = 32 * MiB }, []string{"vm.memory is 32MiB", "smallest allowed is 64MiB"}, false},
		{"memory too large", func(c *Config) { c.Memory = 9 * GiB }, []string{"vm.memory is 9GiB", "largest allowed is 8GiB", "use 8GiB or less"}, false},
		{"memory not MiB", func(c *Config) { c.Memory = 1e9 }, []string{"vm.memory", "not a whole number of MiB", "954MiB"}, false},
		{"mac missing", func(c *Config) { c.MAC = nil }, []string{"vm.mac is not set"}, false},
		{"mac multicast", func(c *Config) { c.MAC = net.HardwareAddr{1, 0, 0x5e, 0, 0, 1} }, []string{"vm.mac", "multicast"}, false},
		{"mac short", func(c *Config) { c.MAC = net.HardwareAddr{2, 0, 0} }, []string{"vm.mac", "3 bytes"}, false},
		{"mac long", func(c *Config) { c.MAC = make(net.HardwareAddr, 20) }, []string{"vm.mac", "20 bytes"}, false},
		{"mac zero", func(c *Config) { c.MAC = make(net.HardwareAddr, 6) }, []string{"vm.mac", "all zeros"}, false},
		{"mtu low", func(c *Config) { c.MTU = 576 }, []string{"network.mtu is 576", "between 1280 and 65517"}, false},
		{"mtu high", func(c *Config) { c.MTU = 65536 }, []string{"network.mtu is 65536"}, false},
		// A frame is the MTU plus 18 bytes (Ethernet header and VLAN
		// tag): it must fit in 65535.
		{"mtu frame too big", func(c *Config) { c.MTU = 65518 }, []string{"network.mtu is 65518: it must be between 1280 and 65517, since a frame (the MTU plus 18 bytes of Ethernet header and VLAN tag) must fit in 65535 bytes"}, false},
		{"mtu 65535", func(c *Config) { c.MTU = 65535 }, []string{"network.mtu is 65535", "and 65517"}, false},
		{"mtu negative", func(c *Config) { c.MTU = -1 }, []string{"network.mtu is -1"}, false},
		{"accel unknown", func(c *Config) { c.Accel = "hvf" }, []string{`vm.accel is "hvf"`, "auto, kvm or tcg"}, false},
		{"stop timeout negative", func(c *Config) { c.StopTimeout = -1 }, []string{"vm.stop_timeout"}, false},
		{"nic nil", func(c *Config) { c.NIC = nil }, []string{"nic is not set"}, false},
		{"nic stream", func(c *Config) { c.NIC = streamEnd }, []string{"nic", "SOCK_STREAM", "not SOCK_DGRAM"}, false},
		{"nic closed", func(c *Config) { c.NIC = closed }, []string{"nic", "closed"}, false},
		{"nic not a socket", func(c *Config) { c.NIC = plain }, []string{"nic", "not a socket"}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.skip {
				t.Skip("running as a user who can read any file")
			}
			c := validConfig(t)
			tc.mutate(&c)
			err := validateWithin(t, c, testLimits)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			// Exactly one problem was introduced: exactly one is reported.
			if n := len(err.(interface{ Unwrap() []error }).Unwrap()); n != 1 {
				t.Errorf("%d problems reported, want 1: %v", n, err)
			}
		})
	}
}

// validateWithin runs c.validate(l), failing the test if it blocks (as it
// did on a named pipe).
func validateWithin(t *testing.T, c Config, l limits) error {
	t.Helper()
	errc := make(chan error, 1)
	go func() { errc <- c.validate(l) }()
	select {
	case err := <-errc:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("validate blocked")
		return nil
	}
}

// Check is Validate without the NIC: an app checks its configuration at
// launch, before any NIC exists.
func TestCheckLeavesOutTheNIC(t *testing.T) {
	c := validConfig(t)
	c.NIC = nil
	if err := c.check(testLimits); err != nil {
		t.Fatalf("Check without a NIC: %v", err)
	}
	if err := c.Check(); err != nil {
		t.Fatalf("Check with the host's limits: %v", err)
	}
	if err := c.validate(testLimits); err == nil || !strings.Contains(err.Error(), "nic is not set") {
		t.Fatalf("Validate without a NIC: %v", err)
	}
	c.Kernel, c.CPUs = "", 99
	err := c.check(testLimits)
	if err == nil {
		t.Fatal("Check accepted a bad config")
	}
	for _, want := range []string{"vm.kernel is not set", "vm.cpus is 99"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Check's error %q does not say %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "nic") {
		t.Errorf("Check's error names the NIC: %v", err)
	}
}

// vm.accel kvm is refused when KVM is not usable.
func TestCheckKVM(t *testing.T) {
	c := validConfig(t)
	c.Accel = "kvm"
	l := testLimits
	if err := c.check(l); err != nil {
		t.Fatalf("kvm with a usable KVM: %v", err)
	}
	l.kvm = func() error { return errors.New("/dev/kvm is not usable (permission denied)") }
	err := c.check(l)
	if err == nil || !strings.Contains(err.Error(), "vm.accel is kvm but /dev/kvm is not usable") || !strings.Contains(err.Error(), "use auto or tcg") {
		t.Fatalf("kvm without KVM: %v", err)
	}
	c.Accel = "auto"
	if err := c.check(l); err != nil {
		t.Fatalf("auto without KVM: %v", err)
	}
	if portableLimits().kvm == nil {
		t.Fatal("the host's limits do not check KVM")
	}
}

// The host's memory is rarely a whole number of MiB: the message shows it
// readably and suggests a value that can be written back.
func TestCheckMemoryMessageIsReadable(t *testing.T) {
	l := testLimits
	l.maxMemory = 24683548 * KiB
	c := validConfig(t)
	c.Memory = 32 * GiB
	err := c.check(l)
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	for _, want := range []string{"vm.memory is 32GiB", "the largest allowed is about 23.54GiB (test)", "use 23.5GiB or less"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not say %q", msg, want)
		}
	}
	if strings.Contains(msg, "KiB") {
		t.Errorf("error %q has a size in KiB", msg)
	}
	// The suggestion is a valid value.
	c.Memory, _ = ParseSize("23.5GiB")
	if err := c.check(l); err != nil {
		t.Errorf("the suggested size is refused: %v", err)
	}
}

func TestValidateReportsEverything(t *testing.T) {
	c := Config{CPUs: -2, Memory: 1, MAC: net.HardwareAddr{1, 2, 3, 4, 5, 6}, MTU: 10, Accel: "x"}
	err := c.validate(testLimits)
	if err == nil {
		t.Fatal("no error")
	}
	var joined interface{ Unwrap() []error }
	if !errors.As(err, &joined) {
		t.Fatalf("error %T is not a joined error", err)
	}
	for _, field := range []string{"vm.kernel", "vm.cpus", "vm.memory", "vm.mac", "network.mtu", "vm.accel", "nic"} {
		if !strings.Contains(err.Error(), field) {
			t.Errorf("error does not name %s:\n%v", field, err)
		}
	}
	if n := len(joined.Unwrap()); n != 7 {
		t.Errorf("%d problems reported, want 7:\n%v", n, err)
	}
}

func TestValidateHostLimits(t *testing.T) {
	c := validConfig(t)
	c.CPUs = runtime.NumCPU() + 1
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "vm.cpus") {
		t.Errorf("CPUs above the host's count: got %v", err)
	}
	c = validConfig(t)
	if mem := physicalMemory(); mem != 0 {
		c.Memory = (mem/MiB + 1024) * MiB
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "vm.memory") {
			t.Errorf("memory above the host's: got %v", err)
		}
	}
}

func TestWithDefaults(t *testing.T) {
	c := Config{}.withDefaults()
	if c.CPUs != DefaultCPUs || c.Memory != DefaultMemory || c.MTU != DefaultMTU ||
		c.Accel != "auto" || c.Cmdline != DefaultCmdline || c.StopTimeout != DefaultStopTimeout {
		t.Fatalf("defaults not applied: %+v", c)
	}
	set := Config{CPUs: 2, Memory: 2 * GiB, MTU: 9000, Accel: "tcg", Cmdline: "x", StopTimeout: 1}
	if got := set.withDefaults(); got.CPUs != 2 || got.Memory != 2*GiB || got.MTU != 9000 ||
		got.Accel != "tcg" || got.Cmdline != "x" || got.StopTimeout != 1 {
		t.Fatalf("set fields changed: %+v", got)
	}
}
