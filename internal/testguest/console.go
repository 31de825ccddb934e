package testguest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"
)

// Options are how the guest's /init configures eth0 (DHCP, or Static) and
// what it does then, passed on the kernel command line.
type Options struct {
	Pings    int           // pings to the gateway; 0 = none (unless Forever)
	Forever  bool          // ping until powered off
	Interval time.Duration // between pings; 0 = 1s
	PowerOff bool          // power off when the pings are done

	// Static, when valid, is an IPv4 address with its prefix length
	// (192.168.127.50/24): /init gives it to eth0 instead of running
	// DHCP and prints VMNETBAR-STATIC (Log.Static). The guest sends no
	// IPv4 and no ARP until its first ping (the kernel's IPv6 link-local
	// traffic aside), so that ping's ARP for the gateway is its first.
	Static netip.Prefix
	// StaticGateway is the default route with Static, and the address
	// pinged; invalid = none (no route, no pings).
	StaticGateway netip.Addr
}

// Params returns the vmnetbar.* kernel parameters for o.
func (o Options) Params() string {
	var p []string
	if o.Static.IsValid() {
		s := "vmnetbar.static=" + o.Static.String()
		if o.StaticGateway.IsValid() {
			s += "," + o.StaticGateway.String()
		}
		p = append(p, s)
	}
	switch {
	case o.Forever:
		p = append(p, "vmnetbar.ping=forever")
	case o.Pings > 0:
		p = append(p, "vmnetbar.ping="+strconv.Itoa(o.Pings))
	}
	if o.Interval > 0 {
		p = append(p, "vmnetbar.interval="+strconv.FormatFloat(o.Interval.Seconds(), 'f', -1, 64))
	}
	if o.PowerOff {
		p = append(p, "vmnetbar.poweroff=1")
	}
	return strings.Join(p, " ")
}

// Cmdline returns a complete kernel command line for the guest under QEMU:
// console on ttyS0, a quiet kernel that powers off on panic, and o.
func Cmdline(o Options) string {
	return strings.TrimSpace("console=ttyS0 quiet panic=-1 " + o.Params())
}

// Ping is one VMNETBAR-PING line.
type Ping struct {
	Seq    int
	OK     bool
	Uptime time.Duration // guest uptime when the result was printed
}

// Log is what the guest reported on its console so far.
type Log struct {
	Booted    bool   // VMNETBAR-BOOT seen
	Boots     int    // VMNETBAR-BOOT lines: more than one means the guest rebooted
	Kernel    string // kernel release from VMNETBAR-BOOT
	ACPID     bool   // acpid started (power button armed)
	NoNIC     bool   // VMNETBAR-NET none: the guest has no eth0
	DHCPFail  bool   // VMNETBAR-DHCP fail
	Static    bool   // VMNETBAR-STATIC: Addr and Gateway were set from Options.Static
	Addr      string // address/prefix from the last DHCP lease or Options.Static, "" if none
	Gateway   string // gateway from the last DHCP lease or Options.StaticGateway, "" if none
	Ready     bool   // VMNETBAR-READY: setup done
	Pings     []Ping // every ping result, in order
	PingsDone bool   // VMNETBAR-PINGS-DONE seen
	PowerOff  string // reason from VMNETBAR-POWEROFF ("cmdline", "button"), "" if none
	Errors    []string
}

// OKPings counts the successful pings.
func (l Log) OKPings() int {
	n := 0
	for _, p := range l.Pings {
		if p.OK {
			n++
		}
	}
	return n
}

// LastPing returns the newest ping result and whether there is one.
func (l Log) LastPing() (Ping, bool) {
	if len(l.Pings) == 0 {
		return Ping{}, false
	}
	return l.Pings[len(l.Pings)-1], true
}

// ParseLog reads the VMNETBAR- markers in a console log; other lines (kernel
// messages, QEMU/SeaBIOS output) are ignored, as is a partial last line.
func ParseLog(data []byte) Log {
	var l Log
	if i := bytes.LastIndexByte(data, '\n'); i >= 0 {
		data = data[:i+1]
	} else {
		return l
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		i := strings.Index(line, "VMNETBAR-")
		if i < 0 {
			continue
		}
		f := strings.Fields(line[i+len("VMNETBAR-"):])
		if len(f) == 0 {
			continue
		}
		kv := fieldMap(f[1:])
		switch f[0] {
		case "BOOT":
			l.Booted, l.Kernel = true, kv["kernel"]
			l.Boots++
		case "ACPID":
			l.ACPID = len(f) > 1 && f[1] == "ok"
		case "NET":
			l.NoNIC = len(f) > 1 && f[1] == "none"
		case "DHCP":
			if len(f) > 1 && f[1] == "fail" {
				l.DHCPFail = true
				continue
			}
			l.Addr, l.Gateway = kv["ip"], gateway(kv["gw"])
		case "STATIC":
			l.Static, l.Addr, l.Gateway = true, kv["ip"], gateway(kv["gw"])
		case "READY":
			l.Ready = true
		case "PING":
			seq, err := strconv.Atoi(kv["seq"])
			if err != nil || len(f) < 3 {
				continue
			}
			up, _ := strconv.ParseFloat(kv["t"], 64)
			l.Pings = append(l.Pings, Ping{Seq: seq, OK: f[2] == "ok", Uptime: time.Duration(up * float64(time.Second))})
		case "PINGS-DONE":
			l.PingsDone = true
		case "POWEROFF":
			l.PowerOff = kv["reason"]
		case "ERROR":
			l.Errors = append(l.Errors, strings.Join(f[1:], " "))
		}
	}
	return l
}

// gateway is a gw= value: "none" (a lease without a router, a static
// address without a gateway) is "".
func gateway(s string) string {
	if s == "none" {
		return ""
	}
	return s
}

func fieldMap(f []string) map[string]string {
	m := make(map[string]string, len(f))
	for _, s := range f {
		if k, v, ok := strings.Cut(s, "="); ok {
			m[k] = v
		}
	}
	return m
}

// ReadLog parses the console log file at path; a missing file is an empty log.
func ReadLog(path string) (Log, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return Log{}, nil
	}
	if err != nil {
		return Log{}, err
	}
	return ParseLog(b), nil
}

// WaitLog polls the console log at path until cond holds for it, ctx ends or
// stop (if not nil) is closed, e.g. a VM's Done channel. It returns the last
// parsed log either way; the error says what was awaited and what was seen.
func WaitLog(ctx context.Context, path string, stop <-chan struct{}, what string, cond func(Log) bool) (Log, error) {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		l, err := ReadLog(path)
		if err != nil {
			return l, fmt.Errorf("reading console log: %w", err)
		}
		if cond(l) {
			return l, nil
		}
		select {
		case <-ctx.Done():
			return l, fmt.Errorf("waiting for %s: %w; console so far: %s", what, ctx.Err(), l.Summary())
		case <-stop:
			l, _ = ReadLog(path)
			if cond(l) {
				return l, nil
			}
			return l, fmt.Errorf("waiting for %s: the VM ended; console: %s", what, l.Summary())
		case <-tick.C:
		}
	}
}

// Summary describes the log in one line for error messages.
func (l Log) Summary() string {
	s := fmt.Sprintf("boots=%d acpid=%v ready=%v addr=%q gw=%q pings=%d ok=%d poweroff=%q",
		l.Boots, l.ACPID, l.Ready, l.Addr, l.Gateway, len(l.Pings), l.OKPings(), l.PowerOff)
	if l.DHCPFail {
		s += " dhcp=fail"
	}
	if l.Static {
		s += " static"
	}
	if l.NoNIC {
		s += " nic=none"
	}
	if len(l.Errors) > 0 {
		s += fmt.Sprintf(" errors=%q", l.Errors)
	}
	return s
}
