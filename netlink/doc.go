// Package netlink owns the reconnecting link between a VM's datagram NIC and
// socket_vmnet (or any daemon with the same framing).
//
// The VM side is the host end of an AF_UNIX SOCK_DGRAM socketpair: one
// datagram is one Ethernet frame. The daemon side is a UNIX stream carrying
// frames as a 4-byte big-endian length followed by the frame. Only the daemon
// connection is ever replaced; the socketpair lives as long as the VM.
//
// netlink imports only the standard library, golang.org/x/sys and logrus. It
// holds no global state: loggers and dialers are injected.
package netlink
