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
//	reconnecting-> up            a redial succeeded (Reconnects is incremented)
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
	// connection, manual ones included.
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
	// Guest is what the link learned about the VM from its frames.
	Guest Guest
}

// StatusJSON is the wire form of Status used by the control API:
// {"state":"up","reconnects":0,"last_error":"","since":RFC3339,...}.
type StatusJSON struct {
	State           State     `json:"state"`
	Reconnects      uint64    `json:"reconnects"`
	LastError       string    `json:"last_error"`
	Since           time.Time `json:"since"`
	TxFrames        uint64    `json:"tx_frames"`
	TxBytes         uint64    `json:"tx_bytes"`
	RxFrames        uint64    `json:"rx_frames"`
	RxBytes         uint64    `json:"rx_bytes"`
	Dropped         uint64    `json:"dropped"`
	Drops           Drops     `json:"drops"`
	DowntimeSeconds float64   `json:"downtime_seconds"`
	FilteredFrames  uint64    `json:"filtered_frames"`
	Guest           GuestJSON `json:"guest"`
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
	}
}

// MarshalJSON encodes a Status in its wire form.
func (s Status) MarshalJSON() ([]byte, error) { return json.Marshal(s.JSON()) }

// Status converts the wire form back to a snapshot.
func (j StatusJSON) Status() Status {
	return Status{
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
	}
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
