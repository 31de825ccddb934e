package config

import (
	"bytes"
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
		if c.VM.MAC != nil {
			return
		}
		out, err := insertMAC(data, doc, fixedMAC)
		if err != nil {
			return // Load reports it as a *Error: "set vm.mac yourself"
		}
		again, _, err := parse(file, out, opts)
		if err != nil {
			t.Fatalf("with the MAC written in, the file fails: %v\nbefore:\n%q\nafter:\n%q", err, data, out)
		}
		if !bytes.Equal(again.VM.MAC, fixedMAC) {
			t.Fatalf("MAC written in reads back as %s:\n%q", again.VM.MAC, out)
		}
		want := *c
		want.VM.MAC = fixedMAC
		if !equalConfig(*again, want) {
			t.Fatalf("writing the MAC in changed the configuration\nbefore %+v\nafter  %+v\nfile before:\n%q\nafter:\n%q", want, *again, data, out)
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
