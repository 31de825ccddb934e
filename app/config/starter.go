package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/vmnetbar/vmnetbar/vmhost"
)

// StarterFile is the text of a starter configuration file for this system:
// every key with its default and what it means, commented out, so that it
// configures no VM until the user sets vm.kernel (Load refuses it with
// ErrNoVM; Options.AllowNoVM loads it). p gives the default console log's
// directory.
func StarterFile(p Paths) []byte {
	return starterText(runtime.GOOS, runtime.GOARCH, p.StateDir)
}

// WriteStarter writes StarterFile(p) to file when nothing exists there and
// reports whether it did. It never replaces anything: an existing file (or
// directory, or symbolic link, even a dangling one) is left alone and
// WriteStarter returns false. Missing directories are created with mode
// 0700 and the file with mode 0600; the file appears whole or not at all.
func WriteStarter(file string, p Paths) (bool, error) {
	return writeStarter(file, StarterFile(p))
}

func writeStarter(file string, text []byte) (bool, error) {
	fail := func(err error) (bool, error) {
		return false, fmt.Errorf("writing a starter configuration file to %s: %w", file, err)
	}
	if _, err := os.Lstat(file); err == nil {
		return false, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fail(err)
	}
	dir := filepath.Dir(file)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fail(err)
	}
	f, err := os.CreateTemp(dir, ".config-*.yaml")
	if err != nil {
		return fail(err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	_, err = f.Write(text)
	if err == nil {
		err = f.Chmod(0o600)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fail(err)
	}
	// A hard link, unlike a rename, never replaces a file that appeared
	// meanwhile (another instance, the user).
	switch err := os.Link(tmp, file); {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrExist):
		return false, nil
	default:
		return fail(err)
	}
}

// starterText is the starter file for a system running goos on goarch whose
// default console log is in stateDir.
func starterText(goos, goarch, stateDir string) []byte {
	mac := goos == "darwin"
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	// key writes a commented-out key: remove the "#" to set it.
	key := func(indent, name, value string) { w("%s#%s: %s", indent, name, value) }
	const in = "  "

	w("# vmnetbar configuration, written by vmnetbar because there was none.")
	w("#")
	w("# Every key is listed with its default, commented out: remove the \"#\" in")
	w("# front of a key (keep its indentation) to set it. Only vm.image (or")
	if mac {
		w("# vm.kernel) must be set. Relative paths are relative to this file; \"~/\"")
		w("# is your home directory. Every start of the VM (Start VM in the menu,")
		w("# 'vmnetbar start') reads this file again.")
	} else {
		w("# vm.kernel) must be set, and network.socket on Linux. Relative paths are")
		w("# relative to this file; \"~/\" is your home directory. Every start of the")
		w("# VM (Start VM in the menu, 'vmnetbar start') reads this file again.")
	}
	w("")
	w("vm:")
	w("%s# A distro cloud image, qcow2 or raw (Debian genericcloud, Ubuntu cloud", in)
	w("%s# image, Fedora Cloud, ...). The VM boots it with EFI from a disk of its", in)
	w("%s# own, made from the image at its first start; the image is never changed.", in)
	key(in, "image", "/path/to/debian-12-genericcloud.qcow2")
	w("%s# The size the VM's disk grows to (never smaller than the image).", in)
	key(in, "disk_size", vmhost.FormatSize(DefaultDiskSize))
	w("%s# Write a cloud-init seed: your user with sudo and SSH keys, the hostname,", in)
	w("%s# DHCP on the VM's MAC.", in)
	key(in, "cloud_init", "true")
	w("%s# Public keys for your user in the guest. Default: every ~/.ssh/*.pub,", in)
	w("%s# else a key vmnetbar makes for itself.", in)
	key(in, "ssh_keys", "[~/.ssh/id_ed25519.pub]")
	w("%s# Your own cloud-init user-data, merged into vmnetbar's.", in)
	key(in, "user_data", "/path/to/user-data.yaml")
	w("%s# Where SSH reaches the guest, when not at port 22 of its address.", in)
	key(in, "ssh_address", "127.0.0.1:2222")
	w("%s# Or, instead of image: boot a Linux kernel directly.", in)
	if mac {
		w("%s# The guest's Linux kernel (required). On Apple silicon an uncompressed", in)
		w("%s# arm64 Image: gunzip a compressed one first.", in)
	} else {
		w("%s# The guest's Linux kernel (required).", in)
	}
	key(in, "kernel", "/path/to/kernel")
	w("%s# The guest's initial ramdisk, if it needs one.", in)
	key(in, "initrd", "/path/to/initrd")
	w("%s# The kernel command line.", in)
	key(in, "cmdline", yamlString(defaultCmdline(goos, goarch)))
	w("%s# Virtual CPUs: 1 up to the host's CPU count.", in)
	key(in, "cpus", fmt.Sprint(DefaultCPUs))
	w("%s# Memory: 64MiB up to the host's memory (KiB/MiB/GiB, K/M/G = 1024s,", in)
	w("%s# KB/MB/GB = 1000s).", in)
	key(in, "memory", vmhost.FormatSize(DefaultMemory))
	w("%s# A raw disk image the guest reads and writes (virtio-blk); none by default.", in)
	key(in, "disk", "/path/to/disk.raw")
	w("%s# The VM's MAC address. Leave it commented out: one is generated once", in)
	w("%s# and written into this file.", in)
	key(in, "mac", `"52:54:00:12:34:56"`)
	w("%s# Where the guest's console output is written.", in)
	key(in, "console_log", yamlString(filepath.Join(stateDir, "console.log")))
	if mac {
		w("%s# QEMU only (Linux): auto, kvm or tcg. Not used on macOS.", in)
	} else {
		w("%s# QEMU's accelerator: auto, kvm or tcg.", in)
	}
	key(in, "accel", DefaultAccel)
	w("%s# How long Stop VM and Quit wait for the guest to power off before it is", in)
	w("%s# forced off (up to %s).", in, formatDuration(MaxStopTimeout))
	key(in, "stop_timeout", formatDuration(DefaultStopTimeout))
	w("%s# The user 'vmnetbar ssh' and the menu's SSH command log in as.", in)
	w("%s# Default: your own login name (the value below is an example).", in)
	key(in, "ssh_user", "debian")
	w("")
	w("network:")
	if mac {
		cands := macSocketCandidates(goarch)
		w("%s# socket_vmnet's socket. Default: the first of these that exists:", in)
		for _, c := range cands {
			w("%s#   %s", in, c)
		}
		w("%s# else the first one: vmnetbar then waits for socket_vmnet to create it.", in)
		key(in, "socket", cands[0])
	} else {
		w("%s# The socket of your socket_vmnet-compatible daemon (required on Linux;", in)
		w("%s# gvproxy: the PATH of -listen-qemu unix://PATH).", in)
		key(in, "socket", "/path/to/daemon.sock")
	}
	minMTU := MinMTU
	if mac {
		minMTU = 1500 // the Virtualization framework's minimum
	}
	w("%s# The VM's MTU: %d to %d (socket_vmnet's vmnet interface carries", in, minMTU, MaxMTU)
	w("%s# 1514-byte frames: MTU 1500).", in)
	key(in, "mtu", fmt.Sprint(DefaultMTU))
	w("%s# Pass the VM only frames addressed to MACs it has sent from (and every", in)
	w("%s# broadcast and multicast). false: for guests that bridge other MACs.", in)
	key(in, "filter", "true")
	w("%s# When the daemon has sent nothing for 10 s, ask the gateway (one ARP", in)
	w("%s# request) to tell a quiet network from one that forwards nothing.", in)
	key(in, "probe", "true")
	w("")
	w("reconnect:")
	w("%s# After a failed dial the link waits initial_backoff before the next one,", in)
	w("%s# doubling the wait up to max_backoff (each %s to %s).", in, formatDuration(MinInitialBackoff), formatDuration(MaxMaxBackoff))
	key(in, "initial_backoff", formatDuration(DefaultInitialBackoff))
	key(in, "max_backoff", formatDuration(DefaultMaxBackoff))
	w("")
	w("# Start the VM when vmnetbar starts.")
	key("", "autostart_vm", "true")
	w("# Notify when the link has been down for 5s, and when it is back.")
	key("", "notifications", "true")
	w("# How much vmnetbar logs: error, warn, info, debug or trace.")
	key("", "log_level", "info")
	w("# When you log out, restart or shut down, how long the guest gets to power")
	w("# off before it is forced off, so that logging out is not held up (up to")
	w("# %s, and never longer than vm.stop_timeout).", formatDuration(MaxLogoutStopTimeout))
	key("", "logout_stop_timeout", formatDuration(DefaultLogoutStopTimeout))
	return []byte(b.String())
}

// defaultCmdline is vmhost.DefaultCmdline on goos/goarch.
func defaultCmdline(goos, goarch string) string {
	switch {
	case goos == "darwin":
		return "console=hvc0"
	case goos == "linux" && goarch == "arm64":
		return "console=ttyAMA0"
	}
	return "console=ttyS0"
}

// yamlString writes s as a YAML scalar, quoted when it needs to be.
func yamlString(s string) string {
	out, err := yaml.Marshal(s)
	if err != nil {
		return fmt.Sprintf("%q", s)
	}
	return strings.TrimSuffix(string(out), "\n")
}
