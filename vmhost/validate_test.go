//go:build linux || darwin

package vmhost

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"reflect"
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
		Disk:       sizedFile(t, dir, "disk.raw", 4096),
		ConsoleLog: filepath.Join(dir, "console.log"),
		CPUs:       2,
		Memory:     512 * MiB,
		MAC:        net.HardwareAddr{0x52, 0x54, 0, 0x12, 0x34, 0x56},
		MTU:        1500,
		NIC:        vmEnd,

		QEMUOptions: QEMUOptions{Accel: "tcg"},
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
		{"kernel missing", func(c *Config) { c.Kernel = "" }, []string{"Kernel is not set"}, false},
		{"kernel not found", func(c *Config) { c.Kernel = filepath.Join(dir, "nope") }, []string{"Kernel: ", "does not exist"}, false},
		{"kernel is a dir", func(c *Config) { c.Kernel = dir }, []string{"Kernel: ", "is a directory"}, false},
		{"kernel unreadable", func(c *Config) { c.Kernel = noRead }, []string{"Kernel: ", "permission denied"}, canRead == nil},
		{"kernel unreadable even by root", func(c *Config) { c.Kernel = sysWriteOnly }, []string{"Kernel: ", "permission denied"}, noSysWO != nil},
		{"kernel empty", func(c *Config) { c.Kernel = empty }, []string{"Kernel: ", "is empty (0 bytes)"}, false},
		{"kernel /dev/null", func(c *Config) { c.Kernel = os.DevNull }, []string{"Kernel: ", "/dev/null is a character device", "regular file"}, false},
		{"kernel a fifo", func(c *Config) { c.Kernel = fifo }, []string{"Kernel: ", "is a named pipe"}, false},
		{"initrd /dev/null", func(c *Config) { c.Initrd = os.DevNull }, []string{"Initrd: ", "character device"}, false},
		{"initrd empty", func(c *Config) { c.Initrd = empty }, []string{"Initrd: ", "is empty"}, false},
		{"initrd a dir", func(c *Config) { c.Initrd = dir }, []string{"Initrd: ", "is a directory"}, false},
		{"disk /dev/null", func(c *Config) { c.Disk = os.DevNull }, []string{"Disk: ", "character device"}, false},
		{"disk a fifo", func(c *Config) { c.Disk = fifo }, []string{"Disk: ", "named pipe"}, false},
		{"initrd not found", func(c *Config) { c.Initrd = filepath.Join(dir, "nope") }, []string{"Initrd: ", "does not exist"}, false},
		{"disk not found", func(c *Config) { c.Disk = filepath.Join(dir, "nope") }, []string{"Disk: ", "does not exist"}, false},
		{"disk is a dir", func(c *Config) { c.Disk = dir }, []string{"Disk: "}, false},
		{"console dir missing", func(c *Config) { c.ConsoleLog = filepath.Join(dir, "no", "console.log") }, []string{"ConsoleLog: ", "does not exist"}, false},
		{"console is a dir", func(c *Config) { c.ConsoleLog = dir }, []string{"ConsoleLog: ", "is a directory"}, false},
		{"console a fifo", func(c *Config) { c.ConsoleLog = fifo }, []string{"ConsoleLog: ", "named pipe"}, false},
		{"console dir read-only", func(c *Config) { c.ConsoleLog = filepath.Join(roDir, "console.log") }, []string{"ConsoleLog: ", "not writable"}, canWrite == nil},
		{"console file read-only", func(c *Config) { c.ConsoleLog = roFile }, []string{"ConsoleLog: ", "permission denied"}, canWrite == nil},
		{"console unwritable even by root", func(c *Config) { c.ConsoleLog = sysReadOnly }, []string{"ConsoleLog: ", "permission denied"}, noSysRO != nil},
		{"cpus negative", func(c *Config) { c.CPUs = -1 }, []string{"CPUs is -1", "between 1 and 4"}, false},
		{"cpus too many", func(c *Config) { c.CPUs = 5 }, []string{"CPUs is 5"}, false},
		{"memory too small", func(c *Config) { c.Memory = 32 * MiB }, []string{"Memory is 32MiB", "smallest allowed is 64MiB"}, false},
		{"memory too large", func(c *Config) { c.Memory = 9 * GiB }, []string{"Memory is 9GiB", "largest allowed is 8GiB", "use 8GiB or less"}, false},
		{"memory not MiB", func(c *Config) { c.Memory = 1e9 }, []string{"Memory is 1000000000 bytes", "not a whole number of MiB", "954MiB"}, false},
		{"mac missing", func(c *Config) { c.MAC = nil }, []string{"MAC is not set"}, false},
		{"mac multicast", func(c *Config) { c.MAC = net.HardwareAddr{1, 0, 0x5e, 0, 0, 1} }, []string{"MAC: ", "multicast"}, false},
		{"mac short", func(c *Config) { c.MAC = net.HardwareAddr{2, 0, 0} }, []string{"MAC: ", "3 bytes"}, false},
		{"mac long", func(c *Config) { c.MAC = make(net.HardwareAddr, 20) }, []string{"MAC: ", "20 bytes"}, false},
		{"mac zero", func(c *Config) { c.MAC = make(net.HardwareAddr, 6) }, []string{"MAC: ", "all zeros"}, false},
		{"mtu low", func(c *Config) { c.MTU = 576 }, []string{"MTU is 576", "between 1280 and 65517"}, false},
		{"mtu high", func(c *Config) { c.MTU = 65536 }, []string{"MTU is 65536"}, false},
		// A frame is the MTU plus 18 bytes (Ethernet header and VLAN
		// tag): it must fit in 65535.
		{"mtu frame too big", func(c *Config) { c.MTU = 65518 }, []string{"MTU is 65518: it must be between 1280 and 65517, since a frame (the MTU plus 18 bytes of Ethernet header and VLAN tag) must fit in 65535 bytes"}, false},
		{"mtu 65535", func(c *Config) { c.MTU = 65535 }, []string{"MTU is 65535", "and 65517"}, false},
		{"mtu negative", func(c *Config) { c.MTU = -1 }, []string{"MTU is -1"}, false},
		{"accel unknown", func(c *Config) { c.Accel = "hvf" }, []string{`QEMUOptions.Accel is "hvf"`, "auto, kvm or tcg"}, false},
		{"stop timeout negative", func(c *Config) { c.StopTimeout = -1 }, []string{"StopTimeout is -1ns"}, false},
		{"nic nil", func(c *Config) { c.NIC = nil }, []string{"NIC is not set"}, false},
		{"nic stream", func(c *Config) { c.NIC = streamEnd }, []string{"NIC: ", "SOCK_STREAM", "not SOCK_DGRAM"}, false},
		{"nic closed", func(c *Config) { c.NIC = closed }, []string{"NIC: ", "closed"}, false},
		{"nic not a socket", func(c *Config) { c.NIC = plain }, []string{"NIC: ", "not a socket"}, false},
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
			checkFieldErrors(t, err)
		})
	}
}

// checkFieldErrors checks that every error joined in err is a *FieldError
// naming a field of Config (a selector such as "QEMUOptions.Accel") whose
// message starts with that name, so that an app can map it to its own
// names for the settings.
func checkFieldErrors(t *testing.T, err error) {
	t.Helper()
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		fe, ok := e.(*FieldError)
		if !ok {
			t.Errorf("%q is a %T, not a *FieldError", e, e)
			continue
		}
		typ := reflect.TypeOf(Config{})
		for _, name := range strings.Split(fe.Field, ".") {
			f, ok := typ.FieldByName(name)
			if !ok {
				t.Errorf("%q: Config has no field %s", e, fe.Field)
				break
			}
			typ = f.Type
		}
		if !strings.HasPrefix(fe.Error(), fe.Field+" is ") && !strings.HasPrefix(fe.Error(), fe.Field+": ") {
			t.Errorf("%q does not start with its field %s", fe, fe.Field)
		}
		if fe.Msg == "" || strings.Contains(fe.Msg, "vm.") || strings.Contains(fe.Msg, "network.") {
			t.Errorf("%q: the message is empty or names a configuration key", fe)
		}
	}
}

// A FieldError reads "Field is ..." or "Field: ...", and unwraps to its cause.
func TestFieldError(t *testing.T) {
	e := fieldErrorf("Kernel", "%w: set it to a readable kernel", os.ErrPermission)
	if e.Error() != "Kernel: permission denied: set it to a readable kernel" || !errors.Is(e, os.ErrPermission) {
		t.Errorf("got %q (wraps ErrPermission: %v)", e, errors.Is(e, os.ErrPermission))
	}
	if e := fieldErrorf("CPUs", "is %d: too many", 9); e.Error() != "CPUs is 9: too many" || e.Err != nil {
		t.Errorf("got %q, cause %v", e, e.Err)
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
	if err := c.validate(testLimits); err == nil || !strings.Contains(err.Error(), "NIC is not set") {
		t.Fatalf("Validate without a NIC: %v", err)
	}
	c.Kernel, c.CPUs = "", 99
	err := c.check(testLimits)
	if err == nil {
		t.Fatal("Check accepted a bad config")
	}
	for _, want := range []string{"Kernel is not set", "CPUs is 99"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Check's error %q does not say %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "NIC: ") {
		t.Errorf("Check's error names the NIC: %v", err)
	}
}

// Accel kvm is refused when KVM is not usable.
func TestCheckKVM(t *testing.T) {
	c := validConfig(t)
	c.Accel = "kvm"
	l := testLimits
	if err := c.check(l); err != nil {
		t.Fatalf("kvm with a usable KVM: %v", err)
	}
	l.kvm = func() error { return errors.New("/dev/kvm is not usable (permission denied)") }
	err := c.check(l)
	if err == nil || !strings.Contains(err.Error(), "QEMUOptions.Accel is kvm but /dev/kvm is not usable") || !strings.Contains(err.Error(), "use auto or tcg") {
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
	for _, want := range []string{"Memory is 32GiB", "the largest allowed is about 23.54GiB (test)", "use 23.5GiB or less"} {
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
	c := Config{CPUs: -2, Memory: 1, MAC: net.HardwareAddr{1, 2, 3, 4, 5, 6}, MTU: 10, QEMUOptions: QEMUOptions{Accel: "x"}}
	err := c.validate(testLimits)
	if err == nil {
		t.Fatal("no error")
	}
	var joined interface{ Unwrap() []error }
	if !errors.As(err, &joined) {
		t.Fatalf("error %T is not a joined error", err)
	}
	for _, field := range []string{"Kernel is not set", "CPUs is -2", "Memory is 1 bytes", "MAC: ", "MTU is 10", `QEMUOptions.Accel is "x"`, "NIC is not set"} {
		if !strings.Contains(err.Error(), field) {
			t.Errorf("error does not name %s:\n%v", field, err)
		}
	}
	if n := len(joined.Unwrap()); n != 7 {
		t.Errorf("%d problems reported, want 7:\n%v", n, err)
	}
	checkFieldErrors(t, err)
}

func TestValidateHostLimits(t *testing.T) {
	c := validConfig(t)
	c.CPUs = runtime.NumCPU() + 1
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "CPUs is") {
		t.Errorf("CPUs above the host's count: got %v", err)
	}
	c = validConfig(t)
	if mem := physicalMemory(); mem != 0 {
		c.Memory = (mem/MiB + 1024) * MiB
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "Memory is") {
			t.Errorf("memory above the host's: got %v", err)
		}
	}
}

func TestWithDefaults(t *testing.T) {
	c := Config{}.withDefaults()
	if c.CPUs != DefaultCPUs || c.Memory != DefaultMemory || c.MTU != DefaultMTU ||
		c.Accel != DefaultAccel || c.Cmdline != DefaultCmdline || c.StopTimeout != DefaultStopTimeout {
		t.Fatalf("defaults not applied: %+v", c)
	}
	set := Config{CPUs: 3, Memory: 2 * GiB, MTU: 9000, QEMUOptions: QEMUOptions{Accel: "tcg"}, Cmdline: "x", StopTimeout: 1}
	if got := set.withDefaults(); got.CPUs != 3 || got.Memory != 2*GiB || got.MTU != 9000 ||
		got.Accel != "tcg" || got.Cmdline != "x" || got.StopTimeout != 1 {
		t.Fatalf("set fields changed: %+v", got)
	}
}

// A state survives JSON both ways; the zero State (no VM) is "".
func TestStateText(t *testing.T) {
	for _, s := range []State{0, StateStopped, StateStarting, StateRunning, StateStopping, StateError} {
		b, err := s.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		var back State
		if err := back.UnmarshalText(b); err != nil || back != s {
			t.Errorf("%v: %q decodes to %v, %v", s, b, back, err)
		}
	}
	if b, _ := State(0).MarshalText(); len(b) != 0 {
		t.Errorf("the zero State is %q, want empty", b)
	}
	var s State
	if err := s.UnmarshalText([]byte("dancing")); err == nil {
		t.Error("an unknown state name decoded")
	}
}
