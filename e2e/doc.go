// Package e2e holds vmnetbar's end-to-end tests:
//   - the real test guest under QEMU (through vmhost), its NIC on a netlink
//     link to gvproxy (through internal/testdaemon), with the daemon
//     crashing and coming back while the guest pings its gateway; the
//     guest's address learned from its DHCP lease or static ARP, and an
//     idle guest's health (a relay records each frame and when it passed);
//   - the app under a flood of control API clients;
//   - `make run`'s paths, with the test guest and with the Debian cloud
//     image;
//   - the Debian cloud image through vmnetbar on the bridge stand-in for
//     socket_vmnet (internal/bridgenet), SSH included: the product's
//     promise, an SSH session that lives through the daemon restarting.
//
// The tests send traffic only to loopback, to gvproxy's internal network
// and inside network namespaces they make (and remove).
package e2e
