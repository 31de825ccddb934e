// Package config owns vmnetbar's configuration file and the per-user
// directories the app writes to.
//
// The file is YAML. Every key is checked: an unknown key or a bad value is an
// *Error naming the file, the line, the key and saying what to write
// instead; a YAML syntax error names the line to fix (see yamlerr.go: the
// yaml library's own line is often another one). Everything that can be
// checked without starting anything is checked at load: numbers within
// their range (too large is said so, never "not a number"), the reconnect
// backoff between MinInitialBackoff and MaxMaxBackoff, network.socket
// within the sun_path limit, vm.kernel and vm.initrd readable non-empty
// regular files, vm.disk a non-empty regular file (or a block device) that
// can be read and written. What depends on the host (CPU count, memory
// size, KVM) is vmhost's to check; VM.Locate maps its errors, which name
// vmhost.Config's fields (*vmhost.FieldError), to the keys the user wrote
// (vm.cpus, or vms.NAME.cpus) and their lines. The one value the app
// writes back is each VM's mac: when it is absent a MAC address is
// generated once and inserted into that VM's section, keeping the user's
// comments and layout.
//
// A file configures one VM (vm:, network:, autostart_vm: the VM named
// "default") or several (vms:, one section per VM); Config.VMs lists them
// by name. Compare says what a reload changes, VM by VM.
//
// On a first launch there is no file: WriteStarter writes a starter file
// (StarterFile: every key with its default and what it means, commented
// out) when nothing exists at the path, never replacing anything. Until
// the user sets vm.kernel it configures no VM: Load refuses it with an
// *Error wrapping ErrNoVM, and Options.AllowNoVM loads it (the app then
// comes up "not configured"). On macOS an unset network.socket is the
// first socket_vmnet socket that exists, else Homebrew's for the Mac's
// architecture (HomebrewSocket), which the link waits for; on Linux it is
// required.
//
// Paths follow the platform's conventions: ~/Library/... on macOS, the XDG
// base directory variables on Linux (so a test can run an isolated instance
// by pointing XDG_CONFIG_HOME, XDG_STATE_HOME and XDG_RUNTIME_DIR at
// temporary directories).
//
// config imports the standard library, yaml, logrus (for log levels),
// netlink (for the reconnect defaults) and vmhost (for its size and MAC
// parsers, its limits and its Config type). It holds no global state.
package config
