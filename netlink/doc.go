// Package netlink owns the reconnecting link between a VM's datagram NIC and
// socket_vmnet (or any daemon with the same framing).
//
// The VM side is the host end of an AF_UNIX SOCK_DGRAM socketpair: one
// datagram is one Ethernet frame. The daemon side is a UNIX stream carrying
// frames as a 4-byte big-endian length followed by the frame. Only the daemon
// connection is ever replaced; the socketpair lives as long as the VM.
//
// Behaviour:
//   - The connection is redialed on the first error from either direction:
//     at once, unless the connection lasted less than Config.InitialBackoff
//     (a daemon that accepts and closes at once is dialed at most once per
//     InitialBackoff). Failed dials wait a backoff from InitialBackoff
//     doubling up to Config.MaxBackoff; every successful connection resets
//     it. Each dial is bounded (5 s). Reconnect dials at once with the
//     backoff reset. One warning per outage, a debug line per failed dial,
//     an info line with the downtime when restored.
//   - While the daemon is away the link stops reading the VM, so its frames
//     wait in the socketpair; a frame cut by a failed write is sent again
//     whole, a frame cut by a failed read is dropped (Drops.PartialRead).
//   - Every write to the daemon holds whole frames (header and body
//     together), at most 32 KiB of them, and the connection's socket
//     options make such a write reach the daemon whole or not at all, so
//     socket_vmnet (which reads a body with one read) never sees a cut
//     frame, even when it reads slowly or the connection is dropped under a
//     blocked write. Limit: a single frame above about 32 KiB (jumbo MTU)
//     may still reach a slow daemon in two pieces.
//   - A length of 0 or above MaxFrameSize from the daemon is a protocol
//     error: the connection is replaced, nothing reaches the VM. VM frames
//     above Config.MTU + 18 (1518 by default; socket_vmnet drops a client
//     that sends more than 1514) are dropped (Drops.Oversize), empty VM datagrams
//     are skipped (Drops.Empty); a frame the VM socket refuses as too large
//     (EMSGSIZE) is dropped (Drops.Oversize), the link goes on.
//   - A VM that does not take a frame (ENOBUFS on macOS, a full buffer on
//     Linux) gets about 10 x 50 µs, then the frame is dropped
//     (Drops.VMBusy) and later frames get one attempt each until the VM takes
//     one again: the daemon's stream is always drained.
//   - Any other VM-side error is fatal: Run returns an error wrapping
//     ErrVMSide and never redials. So is the VM closing its end of the
//     socketpair. A send to the VM tells at once; on a quiet link a probe
//     tells within about 500 ms. The probe sends the VM nothing (not even
//     an empty datagram: QEMU's -netdev dgram takes one for the end of the
//     connection and stops reading): on Linux it asks the kernel's unix
//     socket diagnostics (NETLINK_SOCK_DIAG) whether the peer socket
//     still exists, elsewhere getpeername. Where the probe cannot work
//     (no unix_diag), a debug line says so and only a failed send tells.
//   - The guest: the link learns the VM's MAC (Config.MAC, else the first
//     unicast source the VM uses), its IPv4 address from a DHCPv4 ACK for
//     that MAC (with the router and the lease; a RELEASE or a NAK clears
//     it) or from the VM's own ARP (which replaces a lease once it
//     expired, on an announcement of a new address, or on two ARP frames
//     from the new address with none from the leased one between; see
//     Guest), and the MaxGuestIPv6 IPv6 source addresses it used most
//     recently (Status.Guest). Each change publishes the status once. Only
//     DHCP, ARP and IPv6 from a source other than the last are parsed
//     (frames.go, fuzzed); other frames cost a few comparisons.
//   - The filter: unicast frames from the daemon to a MAC the VM never used
//     as a source (the last 7 learned besides its own) are not delivered
//     (Status.FilteredFrames); broadcast and multicast always pass.
//     Config.NoFilter turns it off.
//   - Health (Status.Health, LastRx, GatewayRTT): whether the network
//     behind the daemon answers. "unknown" until something comes from the
//     daemon on the current connection; a lost connection makes it
//     "unknown" again (LastRx keeps the last frame's time). Any frame from
//     the daemon makes it "ok". When the guest has a DHCP lease with a
//     router and nothing came from the daemon for 10 s, the link sends one
//     ARP request for the router from the guest's MAC and address, framed
//     as a VM frame (not counted in TxFrames), at most one per 10 s and
//     none while frames arrive (health.go); the router's reply, which also reaches the guest, gives
//     GatewayRTT (timed on the system's monotonic clock). Three probes
//     without any frame from the daemon make health "silent" 3 s after the
//     third (33 s after the last frame). Without probing
//     (Config.NoProbe, or no router known), a request of the guest's own
//     (an ARP request, not a probe or announcement; a DHCP DISCOVER or
//     REQUEST) with no frame from the daemon for 15 s makes it "silent".
//     GatewayRTT is 0 while silent and on a new connection. Each change of health publishes
//     the status once. Its waits use Config.Clock; the down loop pays one
//     clock reading and one atomic store per read of the stream.
//   - InitialBackoff is at least MinInitialBackoff (10 ms) and MaxBackoff
//     at least InitialBackoff, so a missing or refusing daemon is never
//     dialed in a tight loop.
//
// Performance: no allocation per frame, no lock held across I/O, counters
// are atomics. The stream is read in large chunks and written with writev
// of several frames. On Linux the VM socket is driven with recvmmsg and
// sendmmsg; elsewhere, or with the build tag "portable", one datagram per
// system call.
//
// Errors name settings in this package's words ("daemon socket path",
// "initial backoff"); CheckSocketPath, CheckBackoff and CheckMTU let callers check
// the same limits first and name the user's setting.
//
// netlink imports only the standard library, golang.org/x/sys, logrus,
// internal/latest and internal/sockcheck. It holds no global state: loggers
// and dialers are injected.
package netlink
