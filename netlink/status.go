package netlink

import (
	"encoding/json"
	"fmt"
	"time"
)

// State is the state of a Link. The numbers are part of the API (they are
// stable across releases); the JSON form is the lower-case name.
//
// Transitions:
//
//	connecting  -> up            first connection established
//	up          -> reconnecting  the daemon connection failed or a manual reconnect
//	reconnecting-> up            a redial succeeded (Reconnects is incremented once per outage)
//	connecting/up/reconnecting -> stopped  the Run context ended
//	any         -> failed        the VM side failed (fatal, no redial)
type State int

const (
	StateConnecting   State = 1
	StateUp           State = 2
	StateReconnecting State = 3
	StateStopped      State = 4
	StateFailed       State = 5
)

var stateNames = map[State]string{
	StateConnecting:   "connecting",
	StateUp:           "up",
	StateReconnecting: "reconnecting",
	StateStopped:      "stopped",
	StateFailed:       "failed",
}

func (s State) String() string {
	if n, ok := stateNames[s]; ok {
		return n
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// MarshalText encodes the state as its name.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText decodes a state name.
func (s *State) UnmarshalText(b []byte) error {
	for k, v := range stateNames {
		if v == string(b) {
			*s = k
			return nil
		}
	}
	return fmt.Errorf("unknown link state %q", b)
}

// Health says whether the network behind the daemon answers (see
// Status.Health). The zero value is HealthUnknown; the JSON form is the
// lower-case name.
type Health int

const (
	// HealthUnknown: nothing is known yet (no frame from the daemon on
	// this connection, or no connection).
	HealthUnknown Health = 0
	// HealthOK: the daemon forwards frames.
	HealthOK Health = 1
	// HealthSilent: the connection is up but nothing answers: three
	// probes of the gateway, or the guest's own ARP or DHCP requests for
	// 15 s (without probing; ARP probes and announcements, which nothing
	// answers on a working network, are not requests).
	HealthSilent Health = 2
)

var healthNames = map[Health]string{
	HealthUnknown: "unknown",
	HealthOK:      "ok",
	HealthSilent:  "silent",
}

func (h Health) String() string {
	if n, ok := healthNames[h]; ok {
		return n
	}
	return fmt.Sprintf("Health(%d)", int(h))
}

// MarshalText encodes the health as its name.
func (h Health) MarshalText() ([]byte, error) { return []byte(h.String()), nil }

// UnmarshalText decodes a health name.
func (h *Health) UnmarshalText(b []byte) error {
	for k, v := range healthNames {
		if v == string(b) {
			*h = k
			return nil
		}
	}
	return fmt.Errorf("unknown link health %q", b)
}

// Drops counts frames the link dropped, by cause.
type Drops struct {
	// Oversize: frames from the VM larger than the MTU + 18 (see
	// Config.MTU), never sent,
	// and frames from the daemon the VM socket refused as too large
	// (EMSGSIZE).
	Oversize uint64 `json:"oversize"`
	// VMBusy: frames from the daemon the VM did not take in time
	// (ENOBUFS on macOS, a full socket buffer on Linux).
	VMBusy uint64 `json:"vm_busy"`
	// PartialRead: frames from the daemon cut off by a connection failure.
	PartialRead uint64 `json:"partial_read"`
	// Empty: empty datagrams from the VM, skipped (an empty frame cannot
	// be sent to the daemon: length 0 is a protocol error).
	Empty uint64 `json:"empty"`
}

// Total is the sum of all drop counters.
func (d Drops) Total() uint64 { return d.Oversize + d.VMBusy + d.PartialRead + d.Empty }

// Status is a snapshot of a Link. tx is VM to daemon, rx is daemon to VM.
type Status struct {
	State State // current state
	// Reconnects counts successful re-establishments after the first
	// connection, manual ones included: one per outage. A restored
	// connection that the daemon ends within a second without sending
	// anything (a daemon still going away accepts, then resets) does not
	// end the outage, so one restart of the daemon counts once.
	Reconnects uint64
	LastError  string    // the most recent connection error, "" if none
	Since      time.Time // time of the last state change
	TxFrames   uint64    // frames sent to the daemon
	TxBytes    uint64    // bytes of frames sent to the daemon (without headers)
	RxFrames   uint64    // frames delivered to the VM
	RxBytes    uint64    // bytes of frames delivered to the VM
	Dropped    Drops     // frames dropped, by cause
	// Downtime is the total time spent without a daemon connection after
	// the first connection was established, including the current outage.
	Downtime time.Duration
	// FilteredFrames counts unicast frames from the daemon to a MAC the VM
	// never used as a source, not delivered (see Config.NoFilter); they are
	// not drops.
	FilteredFrames uint64
	// Guest is what the link learned about the VM from its frames: its
	// IPv4 address from its DHCP lease, or its ARP (a new address replaces
	// a lease once the lease expired, on an announcement of it, or on its
	// second ARP frame with none from the leased address between; see
	// Guest), and the IPv6 addresses it used most recently.
	Guest Guest
	// Health says whether the network behind the daemon answers.
	Health Health
	// LastRx is when the last frame came from the daemon (zero: never).
	LastRx time.Time
	// GatewayRTT is the round-trip time of the last answered probe of the
	// gateway on the current connection, on the system's monotonic clock;
	// 0 (omitted from the JSON) when none was answered on it, without a
	// connection, and while Health is silent.
	GatewayRTT time.Duration
}

// StatusJSON is the wire form of Status used by the control API:
// {"state":"up","reconnects":0,"last_error":"","since":RFC3339,...}.
type StatusJSON struct {
	State           State      `json:"state"`
	Reconnects      uint64     `json:"reconnects"`
	LastError       string     `json:"last_error"`
	Since           time.Time  `json:"since"`
	TxFrames        uint64     `json:"tx_frames"`
	TxBytes         uint64     `json:"tx_bytes"`
	RxFrames        uint64     `json:"rx_frames"`
	RxBytes         uint64     `json:"rx_bytes"`
	Dropped         uint64     `json:"dropped"`
	Drops           Drops      `json:"drops"`
	DowntimeSeconds float64    `json:"downtime_seconds"`
	FilteredFrames  uint64     `json:"filtered_frames"`
	Guest           GuestJSON  `json:"guest"`
	Health          Health     `json:"health"`
	LastRx          *time.Time `json:"last_rx"`
	GatewayRTTMs    float64    `json:"gateway_rtt_ms,omitempty"`
}

// JSON converts a snapshot to its wire form.
func (s Status) JSON() StatusJSON {
	return StatusJSON{
		State:           s.State,
		Reconnects:      s.Reconnects,
		LastError:       s.LastError,
		Since:           s.Since.UTC().Truncate(time.Second),
		TxFrames:        s.TxFrames,
		TxBytes:         s.TxBytes,
		RxFrames:        s.RxFrames,
		RxBytes:         s.RxBytes,
		Dropped:         s.Dropped.Total(),
		Drops:           s.Dropped,
		DowntimeSeconds: s.Downtime.Seconds(),
		FilteredFrames:  s.FilteredFrames,
		Guest:           s.Guest.JSON(),
		Health:          s.Health,
		LastRx:          jsonTime(s.LastRx),
		GatewayRTTMs:    float64(s.GatewayRTT.Microseconds()) / 1000,
	}
}

// MarshalJSON encodes a Status in its wire form.
func (s Status) MarshalJSON() ([]byte, error) { return json.Marshal(s.JSON()) }

// Status converts the wire form back to a snapshot.
func (j StatusJSON) Status() Status {
	s := Status{
		State:          j.State,
		Reconnects:     j.Reconnects,
		LastError:      j.LastError,
		Since:          j.Since,
		TxFrames:       j.TxFrames,
		TxBytes:        j.TxBytes,
		RxFrames:       j.RxFrames,
		RxBytes:        j.RxBytes,
		Dropped:        j.Drops,
		Downtime:       time.Duration(j.DowntimeSeconds * float64(time.Second)),
		FilteredFrames: j.FilteredFrames,
		Guest:          j.Guest.Guest(),
		Health:         j.Health,
		GatewayRTT:     time.Duration(j.GatewayRTTMs * float64(time.Millisecond)),
	}
	if j.LastRx != nil {
		s.LastRx = *j.LastRx
	}
	return s
}

// UnmarshalJSON decodes a Status from its wire form.
func (s *Status) UnmarshalJSON(b []byte) error {
	var j StatusJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*s = j.Status()
	return nil
}
