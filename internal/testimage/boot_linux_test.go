package testimage_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vmnetbar/vmnetbar/internal/bridgenet"
	"github.com/vmnetbar/vmnetbar/internal/testguest"
	"github.com/vmnetbar/vmnetbar/internal/testimage"
)

// The image boots under QEMU with OVMF (q35, TCG) on the bridge stand-in
// for socket_vmnet, cloud-init provisions a user from a NoCloud seed, and
// SSH from the namespace runs `cloud-init status --wait` to "status: done".
func TestImageBootsToSSH(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a Debian image under TCG: 1-2.5 minutes")
	}
	image := testimage.Path(t)
	ovmf, err := testimage.FindOVMF()
	if err != nil {
		testimage.SkipOrFatal(t, err)
	}
	for _, tool := range []struct{ bin, pkg string }{
		{"qemu-img", "qemu-utils"}, {"genisoimage", "genisoimage"}, {"ssh", "openssh-client"}, {"ssh-keygen", "openssh-client"},
	} {
		if _, err := exec.LookPath(tool.bin); err != nil {
			testimage.SkipOrFatal(t, fmt.Errorf("%w: %s (apt-get install %s)", testimage.ErrMissingDependency, tool.bin, tool.pkg))
		}
	}
	qemu, err := testguest.FindQEMU()
	if err != nil {
		testguest.SkipOrFatal(t, err)
	}
	n := bridgenet.New(t)
	dir := t.TempDir()

	// The VM's disk: a qcow2 overlay on the cached image, larger than the
	// image so that cloud-init's growpart has something to do.
	disk := filepath.Join(dir, "disk.qcow2")
	run(t, "qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", image, disk, "3G")
	vars := filepath.Join(dir, "OVMF_VARS.fd")
	b, err := os.ReadFile(ovmf.Vars)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(vars, b, 0o644); err != nil {
		t.Fatal(err)
	}

	const (
		mac  = "52:54:00:7e:57:01"
		user = "vmnb"
	)
	key := filepath.Join(dir, "id_ed25519")
	run(t, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "vmnetbar-test", "-f", key)
	pub, err := os.ReadFile(key + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	seed := makeSeed(t, dir, map[string]string{
		"meta-data": "instance-id: vmnb-test-1\nlocal-hostname: vmnbtest\n",
		"user-data": "#cloud-config\n" +
			"users:\n" +
			"  - name: " + user + "\n" +
			"    sudo: ALL=(ALL) NOPASSWD:ALL\n" +
			"    shell: /bin/bash\n" +
			"    ssh_authorized_keys:\n" +
			"      - " + strings.TrimSpace(string(pub)) + "\n" +
			"manage_etc_hosts: true\n",
		"network-config": "version: 2\n" +
			"ethernets:\n" +
			"  nic0:\n" +
			"    match:\n" +
			"      macaddress: \"" + mac + "\"\n" +
			"    dhcp4: true\n" +
			"    dhcp-identifier: mac\n",
	})

	console := filepath.Join(dir, "console.log")
	args := []string{
		"-machine", "q35", "-accel", "tcg", "-smp", "2", "-m", "1G",
		"-nodefaults", "-no-user-config", "-display", "none",
		"-drive", "if=pflash,format=raw,readonly=on,file=" + ovmf.Code,
		"-drive", "if=pflash,format=raw,file=" + vars,
		"-drive", "if=none,id=disk,format=qcow2,file=" + disk,
		"-device", "virtio-blk-pci,drive=disk,bootindex=0",
		"-drive", "if=none,id=seed,format=raw,readonly=on,file=" + seed,
		"-device", "virtio-blk-pci,drive=seed",
		"-netdev", "stream,id=n0,server=off,addr.type=unix,addr.path=" + n.Socket(),
		"-device", "virtio-net-pci,netdev=n0,mac=" + mac + ",romfile=",
		"-device", "virtio-rng-pci",
		"-serial", "file:" + console,
	}
	start := time.Now()
	vm := startVM(t, qemu, args)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	fail := func(format string, a ...any) {
		t.Helper()
		c, _ := os.ReadFile(console)
		t.Fatalf("%s\nconsole (last 4 KiB):\n%s", fmt.Sprintf(format, a...), lastBytes(c, 4096))
	}

	ip, err := n.WaitLease(ctx, mac)
	if err != nil {
		fail("%v", err)
	}
	leaseAt := time.Since(start)
	t.Logf("DHCP lease %s after %v", ip, leaseAt.Round(time.Second))

	sshArgs := []string{"ssh", "-i", key,
		"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
		"-o", "BatchMode=yes", "-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR",
		user + "@" + ip}
	var out []byte
	for {
		select {
		case <-vm.done:
			fail("QEMU exited: %v", vm.err)
		default:
		}
		out, err = n.Exec(ctx, append(sshArgs, "cloud-init", "status", "--wait")...).CombinedOutput()
		if err == nil || strings.Contains(string(out), "status:") {
			break
		}
		if ctx.Err() != nil {
			fail("no SSH login within %v: %v: %s", time.Since(start).Round(time.Second), err, out)
		}
		time.Sleep(2 * time.Second)
	}
	doneAt := time.Since(start)
	t.Logf("cloud-init done (over SSH) after %v", doneAt.Round(time.Second))
	if !strings.Contains(string(out), "status: done") {
		detail, _ := n.Exec(ctx, append(sshArgs, "cloud-init", "status", "--long")...).CombinedOutput()
		fail("cloud-init status --wait printed %q (%v), want status: done; cloud-init status --long: %s", out, err, detail)
	}

	// What the image promises: passwordless sudo for the seed's user, the
	// root file system grown to the disk, systemd-networkd with the lease
	// from the seed's network-config, a machine id of its own.
	out, err = n.Exec(ctx, append(sshArgs,
		"sudo -n true && echo sudo=ok; "+
			"echo root_mib=$(df -BM --output=size / | tail -1 | tr -dc 0-9); "+
			"echo networkd=$(systemctl is-active systemd-networkd); "+
			"echo machine_id=$(wc -c </etc/machine-id); "+
			"echo lang=$LANG")...).CombinedOutput()
	if err != nil {
		fail("checking the guest over SSH: %v: %s", err, out)
	}
	got := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok {
			got[k] = v
		}
	}
	t.Logf("guest: %v", got)

	// The lease follows the MAC (`dhcp-identifier: mac`: client id 01:MAC),
	// not a DUID: netplan renders the seed's network-config in full.
	leases, _ := os.ReadFile(filepath.Join(n.LogDir(), "dnsmasq.leases"))
	clientID := ""
	for _, line := range strings.Split(string(leases), "\n") {
		if f := strings.Fields(line); len(f) >= 5 && f[1] == mac {
			clientID = f[4]
		}
	}
	if clientID != "01:"+mac {
		t.Errorf("DHCP client id = %q, want 01:%s (dhcp-identifier: mac); leases:\n%s", clientID, mac, leases)
	}
	if got["sudo"] != "ok" {
		t.Errorf("passwordless sudo does not work: %s", out)
	}
	if mib, _ := strconv.Atoi(got["root_mib"]); mib < 2500 {
		t.Errorf("root file system is %s MiB, want it grown to the 3 GiB disk", got["root_mib"])
	}
	if got["networkd"] != "active" {
		t.Errorf("systemd-networkd is %q, want active", got["networkd"])
	}
	if got["machine_id"] != "33" {
		t.Errorf("/etc/machine-id has %s bytes, want 33 (generated at first boot)", got["machine_id"])
	}
	if got["lang"] != "C.UTF-8" {
		t.Errorf("LANG = %q, want C.UTF-8", got["lang"])
	}
}

// makeSeed writes a NoCloud seed ISO (volume label cidata) with files.
func makeSeed(t *testing.T, dir string, files map[string]string) string {
	t.Helper()
	src := filepath.Join(dir, "seed")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	names := []string{}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(src, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		names = append(names, filepath.Join(src, name))
	}
	iso := filepath.Join(dir, "seed.iso")
	run(t, append([]string{"genisoimage", "-quiet", "-output", iso, "-volid", "cidata", "-joliet", "-rock"}, names...)...)
	return iso
}

func run(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
}

type vmProc struct {
	done chan struct{}
	err  error
}

// startVM runs QEMU until the test ends.
func startVM(t *testing.T, qemu string, args []string) *vmProc {
	t.Helper()
	cmd := exec.Command(qemu, args...)
	var stderr strings.Builder
	cmd.Stdout = &stderr
	cmd.Stderr = &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting QEMU: %v", err)
	}
	p := &vmProc{done: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		if err != nil {
			err = fmt.Errorf("%w: %s", err, strings.TrimSpace(stderr.String()))
		}
		p.err = err
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
	})
	return p
}

func lastBytes(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
