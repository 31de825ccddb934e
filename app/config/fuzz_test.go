package config

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse: the configuration file is untrusted bytes. Parsing never
// panics and returns either a configuration or a *Error that names the file
// and a line inside it. When vm.mac is absent, the file with the generated
// MAC written into it parses to the same configuration plus that MAC.
func FuzzParse(f *testing.F) {
	dir := f.TempDir()
	for _, name := range []string{"vmlinuz", "initrd.gz", "disk.raw"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o644); err != nil {
			f.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "empty"), nil, 0o644); err != nil {
		f.Fatal(err)
	}
	file := filepath.Join(dir, "config.yaml")
	opts := Options{StateDir: dir, Home: dir}

	for _, seed := range []string{
		minimal,
		"vm:\n  kernel: vmlinuz\nnetwork:\n  socket: daemon.sock\n",
		"# my VM\nvm:\n    # the kernel\n    kernel: vmlinuz   # built by hand\n\n    cpus: 2\n\nnetwork:\n    socket: daemon.sock\n",
		"vm: {kernel: vmlinuz}\nnetwork: {socket: daemon.sock}\n",
		"vm:\n  kernel: vmlinuz # k\n  mac:\nnetwork: {socket: daemon.sock}\n",
		"vm:\n  kernel: ~/vmlinuz\n  initrd: initrd.gz\n  cmdline: \"console=hvc0\"\n  cpus: 2\n  memory: 1GiB\n" +
			"  disk: disk.raw\n  mac: \"52:54:00:12:34:56\"\n  console_log: console.log\n  accel: auto\n  stop_timeout: 30s\n" +
			"network:\n  socket: /run/daemon.sock\n  mtu: 1500\nreconnect:\n  initial_backoff: 100ms\n  max_backoff: 2s\n" +
			"autostart_vm: true\nnotifications: true\nlog_level: info\n",
		"x: &a {kernel: vmlinuz}\nvm: *a\nnetwork:\n  socket: s\n",
		"vm:\n  kernel: empty\nnetwork:\n  socket: s\n",
		"vm:\n  kernel: vmlinuz\n\tcpus: 2\n",
		"\tvm:\n",
		"vm:\n  kernel: vmlinuz\n  cpus: [1, 2\n",
		"vm:\n  kernel: \"vmlinuz\n",
		"vm:\n  kernel: vmlinuz\n  cpus: 99999999999999999999\n",
		"vm:\n  kernel: vmlinuz\nreconnect:\n  initial_backoff: 1ns\n",
		"vm:\r\n  kernel: vmlinuz\r\nnetwork:\r\n  socket: s\r\n",
		"- a\n- b\n",
		// The vms: form.
		"vms:\n  dev:\n    kernel: vmlinuz\n    network:\n      socket: daemon.sock\n",
		"# two VMs\nvms:\n  dev:\n    # the kernel\n    kernel: vmlinuz\n    cpus: 2\n    network:\n      socket: daemon.sock\n      mtu: 1500\n" +
			"    autostart: false\n    reconnect:\n      max_backoff: 5s\n  build-2:\n    kernel: vmlinuz\n    mac: \"52:54:00:12:34:56\"\n" +
			"    network: {socket: daemon.sock}\nreconnect:\n  initial_backoff: 50ms\nnotifications: false\nlog_level: debug\nlogout_stop_timeout: 5s\n",
		"vms: {a: {kernel: vmlinuz, network: {socket: s}}, b: {kernel: vmlinuz, network: {socket: s}}}\n",
		"vms:\n  a: &x {kernel: vmlinuz, network: {socket: s}}\n  b: *x\n",
		"vms:\n  a:\n    kernel: vmlinuz\n    mac: 52:54:00:00:00:01\n    network: {socket: s}\n  b:\n    kernel: vmlinuz\n    mac: 52:54:00:00:00:01\n    network: {socket: s}\n",
		"vms:\n  Dev:\n    kernel: vmlinuz\n",
		"vms:\n  dev:\nvm:\n  kernel: vmlinuz\n",
		"vms:\n",
		"vms:\n  dev:\n    kernel: vmlinuz\n    network: {socket: s}\n    reconnect: {initial_backoff: 3s}\n",
		"vms: [a]\n",
		"",
	} {
		f.Add([]byte(seed))
	}

	f.Fuzz(func(t *testing.T, data []byte) {
		c, doc, err := parse(file, data, opts)
		if err != nil {
			checkFuzzError(t, data, file, err)
			return
		}
		if c == nil || doc == nil {
			t.Fatalf("no error, but config %v and document %v", c, doc)
		}
		n := 0
		gen := func() (net.HardwareAddr, error) {
			n++
			return net.HardwareAddr{0x52, 0x54, 0x00, 0xaa, byte(n >> 8), byte(n)}, nil
		}
		before := Compare(nil, c) // c's VMs get their MACs below
		out, err := c.generateMACs(data, doc, gen)
		if err != nil {
			checkFuzzError(t, data, file, err) // Load reports it: "set vm.mac yourself"
			return
		}
		if out == nil {
			return // every VM has a MAC
		}
		again, _, err := parse(file, out, opts)
		if err != nil {
			t.Fatalf("with the MACs written in, the file fails: %v\nbefore:\n%q\nafter:\n%q", err, data, out)
		}
		for _, v := range again.VMs {
			if v.MAC == nil {
				t.Fatalf("VM %s has no MAC after they were written in:\n%q", v.Name, out)
			}
		}
		if d := Compare(c, again); d.Global || len(d.Names(Unchanged)) != len(before.VMs) || len(d.VMs) != len(before.VMs) {
			t.Fatalf("writing the MACs in changed the configuration: %+v\nfile before:\n%q\nafter:\n%q", d, data, out)
		}
	})
}

// checkFuzzError checks that err is a *Error about file, on a line of data
// (or none).
func checkFuzzError(t *testing.T, data []byte, file string, err error) {
	t.Helper()
	ce, ok := err.(*Error)
	if !ok {
		t.Fatalf("error %v is a %T, not a *config.Error", err, err)
	}
	if ce.File != file {
		t.Fatalf("error names file %q, not %q: %v", ce.File, file, err)
	}
	// yaml also counts "\r" alone, NEL, LS and PS as line breaks, so a
	// node's line can be past the count of "\n" lines, never past the
	// count of all of them.
	n := 1
	for _, brk := range []string{"\n", "\r", "\u0085", "\u2028", "\u2029"} {
		n += bytes.Count(data, []byte(brk))
	}
	if ce.Line < 0 || ce.Line > n {
		t.Fatalf("error on line %d of a %d-line file: %v", ce.Line, n, err)
	}
	if ce.Msg == "" {
		t.Fatalf("error without a message: %#v", ce)
	}
}
