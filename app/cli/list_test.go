package cli

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vmnetbar/vmnetbar/app/model"
	"github.com/vmnetbar/vmnetbar/netlink"
	"github.com/vmnetbar/vmnetbar/vmhost"
)

func TestWriteList(t *testing.T) {
	now := time.Date(2026, 3, 4, 10, 0, 0, 0, time.UTC)
	o := model.Overview{VMs: []model.VMStatus{
		// A stopped VM's status with the last run's address: stale, not shown.
		{Name: "build", VM: model.VM{State: vmhost.StateStopped, Since: now.Add(-time.Hour)}, Link: netlink.Status{State: netlink.StateStopped,
			Guest: netlink.Guest{IPv4: netip.MustParseAddr("192.168.105.9")}}},
		{Name: "broken", VM: model.VM{State: vmhost.StateError}, Link: netlink.Status{State: netlink.StateStopped,
			Guest: netlink.Guest{IPv4: netip.MustParseAddr("192.168.105.8")}}},
		{Name: "dev", VM: model.VM{State: vmhost.StateRunning, Since: now.Add(-(2*time.Hour + 14*time.Minute + 59*time.Second))},
			Link: netlink.Status{State: netlink.StateUp, Reconnects: 12, TxBytes: 1_200_000, RxBytes: 3_400_000_000,
				Guest: netlink.Guest{IPv4: netip.MustParseAddr("192.168.105.3")}}},
		{Name: "first-boot", VM: model.VM{State: vmhost.StateStopped, NotConfigured: true}, Link: netlink.Status{State: netlink.StateStopped}},
		{Name: "x", VM: model.VM{State: vmhost.StateStarting, Since: now.Add(-2500 * time.Millisecond)}, Link: netlink.Status{State: netlink.StateConnecting}},
		{Name: "y", VM: model.VM{State: vmhost.StateStarting, Since: now.Add(-12 * time.Second), Image: "/images/debian-12.qcow2",
			SSH: model.SSHWaiting, Progress: &model.Progress{Task: "preparing disk", Percent: 42}}, Link: netlink.Status{State: netlink.StateConnecting}},
		{Name: "z", VM: model.VM{State: vmhost.StateRunning, Since: now.Add(-time.Minute), Image: "/images/debian-12.qcow2", SSH: model.SSHReady},
			Link: netlink.Status{State: netlink.StateUp, Guest: netlink.Guest{IPv4: netip.MustParseAddr("192.168.105.4")}}},
	}}
	var b strings.Builder
	if err := writeList(&b, o, now); err != nil {
		t.Fatal(err)
	}
	want := `NAME         VM                                  LINK         RECONNECTS   TX      RX      IP              SSH       IMAGE
build        stopped                             stopped      0            0B      0B      -               -         -
broken       error                               stopped      0            0B      0B      -               -         -
dev          running 2h14m                       up           12           1.2MB   3.4GB   192.168.105.3   -         -
first-boot   not-configured                      stopped      0            0B      0B      -               -         -
x            starting 2.5s                       connecting   0            0B      0B      -               -         -
y            starting 12s (preparing disk 42%)   connecting   0            0B      0B      -               waiting   debian-12.qcow2
z            running 1m                          up           0            0B      0B      192.168.105.4   ready     debian-12.qcow2
`
	if b.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", b.String(), want)
	}

	b.Reset()
	if err := writeList(&b, model.Overview{}, now); err != nil || b.String() != "no VMs configured\n" {
		t.Errorf("no VMs: %q, %v", b.String(), err)
	}
}

// TestListCommand: 'vmnetbar list' against the app's control server.
func TestListCommand(t *testing.T) {
	m, path := serveVMs(t, "dev", "build")
	running(m, "dev")
	m.Set("dev", func(v *model.VMStatus) {
		v.Link.TxBytes, v.Link.RxBytes, v.Link.Reconnects = 1_500, 2_000_000, 3
		v.Link.Guest.IPv4 = netip.MustParseAddr("192.168.105.3")
		v.VM.SSH, v.VM.Image = model.SSHReady, "/images/debian-12.qcow2"
	})
	m.SetConfigError("/c.yaml:2: vms.Dev: a VM name is lowercase letters, digits and '-'")

	r := runCLI(t, "list", "--control", path)
	if r.code != 0 {
		t.Fatalf("list: exit %d, stderr %q", r.code, r.stderr)
	}
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("list printed %d lines, want a header and 2 VMs:\n%s", len(lines), r.stdout)
	}
	header := []string{"NAME", "VM", "LINK", "RECONNECTS", "TX", "RX", "IP", "SSH", "IMAGE"}
	rows := [][]string{
		{"build", "stopped", "stopped", "0", "0B", "0B", "-", "-", "-"},
		{"dev", "running 2h14m", "up", "3", "1.5kB", "2.0MB", "192.168.105.3", "ready", "debian-12.qcow2"},
	}
	// Every cell starts where its column's header does.
	at := 0
	for i, h := range header {
		col := strings.Index(lines[0][at:], h)
		if col < 0 {
			t.Fatalf("header %q lacks %s", lines[0], h)
		}
		at += col
		for j, row := range rows {
			if cell := lines[j+1][at:]; !strings.HasPrefix(cell, row[i]) {
				t.Errorf("line %d: column %s reads %q, want %q:\n%s", j+1, h, cell, row[i], r.stdout)
			}
		}
		at += len(h)
	}
	if !strings.Contains(r.stderr, "the last reload of the configuration changed nothing: /c.yaml:2:") {
		t.Errorf("list does not say the configuration failed to load: %q", r.stderr)
	}

	// --json is the API's {"vms": [VMSTATUS, ...], "config_error": ...}.
	r = runCLI(t, "list", "--json", "--control", path)
	var raw struct {
		VMs         []map[string]json.RawMessage `json:"vms"`
		ConfigError string                       `json:"config_error"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &raw); err != nil || r.code != 0 {
		t.Fatalf("list --json: exit %d, %v\n%s", r.code, err, r.stdout)
	}
	if len(raw.VMs) != 2 || string(raw.VMs[0]["name"]) != `"build"` || string(raw.VMs[1]["name"]) != `"dev"` || raw.VMs[1]["link"] == nil || raw.ConfigError == "" {
		t.Errorf("list --json:\n%s", r.stdout)
	}

	// No VMs: said on a line of its own, and an empty list in JSON.
	_, empty := serveVMs(t)
	if r := runCLI(t, "list", "--control", empty); r.code != 0 || r.stdout != "no VMs configured\n" {
		t.Errorf("list of no VMs: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if r := runCLI(t, "list", "--json", "--control", empty); r.code != 0 || strings.Join(strings.Fields(r.stdout), "") != `{"vms":[]}` {
		t.Errorf("list --json of no VMs: exit %d, stdout %q", r.code, r.stdout)
	}
}
