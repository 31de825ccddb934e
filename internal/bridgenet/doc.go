// Package bridgenet is a test harness: a Linux stand-in for socket_vmnet
// whose guests the test can reach end to end (TCP from the test to the
// guest's own address, unlike gvproxy, which ends TCP in user space).
//
// New makes a private network namespace and, inside it only, a bridge with
// an address (192.168.105.1/24), a persistent TAP device on the bridge,
// dnsmasq serving DHCP only, and QEMU as the switch: a stream server on a
// UNIX socket (socket_vmnet's framing: 4-byte big-endian length + frame)
// joined by a hub to the TAP. The socket is a path in the host's file
// system, so vmnetbar outside the namespace dials it as it dials
// socket_vmnet. The switch can be killed (kill -9) and started again on the
// same path while the TAP and the leases persist, as launchd restarts
// socket_vmnet.
//
// Programs that talk to the guests (ping, ssh) run inside the namespace via
// Exec. Nothing is ever added to the host's own network namespace: no
// address, bridge, TAP or route. The namespace has no route out.
//
// It needs root, ip (iproute2), dnsmasq (dnsmasq-base) and
// qemu-system-x86_64; New skips the test when one is missing, or fails it
// when CI=true. It may import only the standard library and
// golang.org/x/sys; it is test infrastructure, never part of vmnetbar.
//
// It builds on Linux only.
package bridgenet
