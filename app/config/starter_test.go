package config

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/vmnetbar/vmnetbar/vmhost"
)

// platforms are the systems a starter file is written for.
var platforms = []struct{ goos, goarch string }{
	{"darwin", "arm64"}, {"darwin", "amd64"}, {"linux", "amd64"}, {"linux", "arm64"},
}

// starterSection is a section header of the starter file ("vm:").
var starterSection = regexp.MustCompile(`^([a-z_]+):\s*$`)

// starterKey is a commented-out key of the starter file ("  #cpus: 2").
var starterKey = regexp.MustCompile(`^(\s*)#([a-z_]+):(?: (.*))?$`)

// starterKeys returns the dotted keys commented out in text, with how
// often each appears, and text with all of them uncommented.
func starterKeys(t *testing.T, text []byte) (map[string]int, string) {
	t.Helper()
	found := map[string]int{}
	section := ""
	var out []string
	for _, line := range strings.Split(string(text), "\n") {
		if m := starterSection.FindStringSubmatch(line); m != nil {
			section = m[1]
			if keys[section] == nil {
				t.Errorf("section %q is not a known section", section)
			}
			found[section]++
		}
		if m := starterKey.FindStringSubmatch(line); m != nil {
			indent, name := m[1], m[2]
			full := name
			if indent != "" {
				full = section + "." + name
			} else {
				section = ""
			}
			found[full]++
			line = indent + name + ": " + m[3]
		}
		out = append(out, line)
	}
	return found, strings.Join(out, "\n")
}

// knownKeys lists every dotted key and section.
func knownKeys() []string {
	var all []string
	for section, names := range keys {
		for _, n := range names {
			if section == "" {
				all = append(all, n)
			} else {
				all = append(all, section+"."+n)
			}
		}
	}
	return all
}

// The starter file shows every known key once, and nothing else.
func TestStarterListsEveryKey(t *testing.T) {
	for _, pl := range platforms {
		t.Run(pl.goos+"/"+pl.goarch, func(t *testing.T) {
			found, _ := starterKeys(t, starterText(pl.goos, pl.goarch, "/state"))
			for _, k := range knownKeys() {
				if found[k] != 1 {
					t.Errorf("key %s appears %d times in the starter file, want once", k, found[k])
				}
				delete(found, k)
			}
			for k := range found {
				t.Errorf("the starter file sets %s, which is not a known key", k)
			}
		})
	}
}

// As written, the starter file configures no VM: Load says so (ErrNoVM),
// and with AllowNoVM it loads with every default.
func TestStarterLoadsWithoutVM(t *testing.T) {
	for _, pl := range platforms {
		t.Run(pl.goos+"/"+pl.goarch, func(t *testing.T) {
			f := newFixture(t)
			text := starterText(pl.goos, pl.goarch, "/state")
			p := f.write(t, string(text))
			_, err := Load(p, f.opts())
			if !errors.Is(err, ErrNoVM) || !strings.Contains(err.Error(), "vm.image is not set") {
				t.Fatalf("Load: %v, want vm.image is not set (ErrNoVM)", err)
			}
			o := f.opts()
			o.AllowNoVM = true
			c, err := Load(p, o)
			if err != nil {
				t.Fatal(err)
			}
			want := Config{
				File:              p,
				SingleVMForm:      true,
				VM:                Machine{CPUs: 2, Memory: 1 << 30, ConsoleLog: f.state + "/console.log", Accel: "auto", StopTimeout: 30 * time.Second, DiskSize: DefaultDiskSize, CloudInit: true},
				Network:           Network{MTU: 1500, Filter: true, Probe: true},
				Reconnect:         Reconnect{InitialBackoff: 100 * time.Millisecond, MaxBackoff: 2 * time.Second},
				AutostartVM:       true,
				Notifications:     true,
				LogLevel:          logrus.InfoLevel,
				LogoutStopTimeout: 5 * time.Second,
			}
			if c.VMConfigured() || !equalConfig(*c, want) {
				t.Fatalf("got  %+v\nwant %+v", *c, want)
			}
			if got, _ := os.ReadFile(p); !bytes.Equal(got, text) {
				t.Fatalf("loading a file without a VM changed it:\n%s", got)
			}
		})
	}
}

// With every key uncommented (the example paths pointed at real files, and
// either the image keys or the kernel keys, since a VM boots one way) the
// starter file loads, and each value it shows is the default.
func TestStarterValuesAreDefaults(t *testing.T) {
	imageKeys := []string{"image", "disk_size", "cloud_init", "ssh_keys", "user_data", "ssh_address"}
	kernelKeys := []string{"kernel", "initrd", "cmdline", "disk"}
	for _, pl := range platforms {
		for _, boot := range []string{"image", "kernel"} {
			t.Run(pl.goos+"/"+pl.goarch+"/"+boot, func(t *testing.T) {
				f := newFixture(t)
				image, userData, pub := filepath.Join(f.dir, "image.qcow2"), filepath.Join(f.dir, "user-data"), filepath.Join(f.dir, "id.pub")
				for _, p := range []string{image, userData, pub} {
					if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
						t.Fatal(err)
					}
				}
				// A state directory that needs quoting in YAML.
				const stateDir = "/Users/u/Application Support/x: #y"
				_, text := starterKeys(t, starterText(pl.goos, pl.goarch, stateDir))
				drop := kernelKeys
				if boot == "kernel" {
					drop = imageKeys
				}
				for _, k := range drop {
					re := regexp.MustCompile(`(?m)^  ` + k + `: .*\n`)
					if !re.MatchString(text) {
						t.Fatalf("no %s line in\n%s", k, text)
					}
					text = re.ReplaceAllString(text, "")
				}
				for _, r := range []struct{ key, path string }{
					{"kernel", f.kernel}, {"initrd", f.initrd}, {"disk", f.disk}, {"socket", f.sock},
					{"image", image}, {"user_data", userData}, {"ssh_keys", "[" + pub + "]"},
				} {
					re := regexp.MustCompile(`(?m)^(\s*` + r.key + `:) .*$`)
					text = re.ReplaceAllString(text, "${1} "+r.path)
				}
				c, err := Load(f.write(t, text), f.opts())
				if err != nil {
					t.Fatalf("%v\n%s", err, text)
				}
				if c.MACGenerated {
					t.Error("the uncommented file has no MAC")
				}
				want := Machine{CPUs: DefaultCPUs, Memory: DefaultMemory, MAC: c.VM.MAC, ConsoleLog: stateDir + "/console.log",
					SSHUser: c.VM.SSHUser, Accel: DefaultAccel, StopTimeout: DefaultStopTimeout, DiskSize: DefaultDiskSize, CloudInit: true}
				if boot == "kernel" {
					want.Kernel, want.Initrd, want.Disk, want.Cmdline = f.kernel, f.initrd, f.disk, defaultCmdline(pl.goos, pl.goarch)
				} else {
					// The example address is an example, not a default.
					want.Image, want.UserData, want.SSHKeys, want.SSHAddress = image, userData, []string{pub}, c.VM.SSHAddress
				}
				if !equalConfig(Config{VM: c.VM}, Config{VM: want}) {
					t.Errorf("vm: got %+v\nwant %+v", c.VM, want)
				}
				if c.Network != (Network{Socket: f.sock, MTU: DefaultMTU, Filter: true, Probe: true}) ||
					c.Reconnect != (Reconnect{DefaultInitialBackoff, DefaultMaxBackoff}) ||
					!c.AutostartVM || !c.Notifications || c.LogLevel != logrus.InfoLevel ||
					c.LogoutStopTimeout != DefaultLogoutStopTimeout {
					t.Errorf("got %+v", *c)
				}
			})
		}
	}
}

// The command line the starter file shows is the VM host's default.
func TestStarterCmdlineIsTheHostDefault(t *testing.T) {
	if got := defaultCmdline(runtime.GOOS, runtime.GOARCH); got != vmhost.DefaultCmdline {
		t.Fatalf("starter cmdline %q, VM host default %q", got, vmhost.DefaultCmdline)
	}
}

func TestStarterSocketIsTheArchitecturesHomebrew(t *testing.T) {
	for goarch, want := range map[string]string{
		"arm64": "#socket: /opt/homebrew/var/run/socket_vmnet\n",
		"amd64": "#socket: /usr/local/var/run/socket_vmnet\n",
	} {
		if text := starterText("darwin", goarch, "/s"); !bytes.Contains(text, []byte(want)) {
			t.Errorf("darwin/%s starter lacks %q", goarch, want)
		}
	}
}

func TestWriteStarter(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "a", "b", "config.yaml")
	p := Paths{StateDir: "/state"}
	created, err := WriteStarter(file, p)
	if err != nil || !created {
		t.Fatalf("WriteStarter: %v, %v", created, err)
	}
	got, err := os.ReadFile(file)
	if err != nil || !bytes.Equal(got, StarterFile(p)) {
		t.Fatalf("file %q (%v), want the starter file", got, err)
	}
	if st, _ := os.Stat(file); st.Mode().Perm() != 0o600 {
		t.Errorf("file mode %v, want 0600", st.Mode().Perm())
	}
	for _, d := range []string{filepath.Join(dir, "a"), filepath.Join(dir, "a", "b")} {
		if st, _ := os.Stat(d); st.Mode().Perm() != 0o700 {
			t.Errorf("directory %s mode %v, want 0700", d, st.Mode().Perm())
		}
	}
	// Nothing else is left in the directory (no temporary file).
	if ents, _ := os.ReadDir(filepath.Dir(file)); len(ents) != 1 {
		t.Errorf("directory holds %d entries, want only the file", len(ents))
	}

	// Never overwritten.
	if err := os.WriteFile(file, []byte("vm:\n  kernel: mine\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	created, err = WriteStarter(file, p)
	if err != nil || created {
		t.Fatalf("WriteStarter over a file: %v, %v", created, err)
	}
	if got, _ := os.ReadFile(file); string(got) != "vm:\n  kernel: mine\n" {
		t.Fatalf("the existing file was changed: %q", got)
	}

	// Nor a dangling symbolic link or a directory.
	link := filepath.Join(dir, "link.yaml")
	if err := os.Symlink(filepath.Join(dir, "nowhere"), link); err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(dir, "a")
	for _, path := range []string{link, sub} {
		if created, err := WriteStarter(path, p); err != nil || created {
			t.Errorf("WriteStarter(%s): %v, %v", path, created, err)
		}
	}
	if _, err := os.Lstat(filepath.Join(dir, "nowhere")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the link's target was created: %v", err)
	}
}

func TestWriteStarterFails(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root can write to read-only directories")
	}
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o500); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(dir, 0o700) })
	file := filepath.Join(dir, "config.yaml")
	created, err := WriteStarter(file, Paths{})
	if err == nil || created || !strings.Contains(err.Error(), "writing a starter configuration file to "+file) ||
		!errors.Is(err, fs.ErrPermission) {
		t.Fatalf("WriteStarter in a read-only directory: %v, %v", created, err)
	}
}

// A file without vm.kernel is refused with ErrNoVM; with AllowNoVM it
// loads, still checking what it sets, needing no network.socket and
// generating no MAC address.
func TestAllowNoVM(t *testing.T) {
	f := newFixture(t)
	for _, text := range []string{"", "# only comments\n", "vm:\n  cpus: 3\n", "autostart_vm: false\n"} {
		p := f.write(t, text)
		if _, err := Load(p, f.opts()); !errors.Is(err, ErrNoVM) {
			t.Errorf("Load(%q): %v, want ErrNoVM", text, err)
		}
		o := f.opts()
		o.AllowNoVM = true
		o.NewMAC = nil // must not be called
		c, err := Load(p, o)
		if err != nil {
			t.Fatalf("Load(%q) with AllowNoVM: %v", text, err)
		}
		if c.VMConfigured() || c.VM.MAC != nil || c.Network.Socket != "" {
			t.Errorf("Load(%q) with AllowNoVM: %+v", text, c)
		}
		if got, _ := os.ReadFile(p); string(got) != text {
			t.Errorf("Load(%q) changed the file to %q", text, got)
		}
	}
	o := f.opts()
	o.AllowNoVM = true
	if c, err := Load(f.write(t, "vm:\n  cpus: 3\n"), o); err != nil || c.VM.CPUs != 3 {
		t.Fatalf("cpus: %+v, %v", c, err)
	}
	// What is set is checked.
	for text, want := range map[string]string{
		"vm:\n  cpus: 0\n":         "vm.cpus: 0 is out of range",
		"vm:\n  initrd: nope\n":    "vm.initrd: " + filepath.Join(f.dir, "nope") + " does not exist",
		"log_level: loud\n":        `log_level: "loud" is not a log level`,
		"vm:\n  kernel: nothere\n": "vm.kernel: " + filepath.Join(f.dir, "nothere") + " does not exist",
	} {
		_, err := Load(f.write(t, text), o)
		if err == nil || !strings.Contains(err.Error(), want) || errors.Is(err, ErrNoVM) {
			t.Errorf("Load(%q) with AllowNoVM: %v, want %q", text, err, want)
		}
	}
	// A file with a VM still needs a socket where there is no default.
	if _, err := Load(f.write(t, "vm:\n  kernel: vmlinuz\n"), o); err == nil || !strings.Contains(err.Error(), "network.socket is not set") {
		t.Fatalf("VM without socket: %v", err)
	}
	// Other errors are not ErrNoVM.
	if _, err := Load(f.write(t, "vm:\n  kernel: nothere\nnetwork:\n  socket: s\n"), f.opts()); errors.Is(err, ErrNoVM) {
		t.Fatalf("a missing kernel file is ErrNoVM: %v", err)
	}
}
