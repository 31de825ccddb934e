// Package e2e holds vmnetbar's end-to-end tests: the real test guest under
// QEMU (through vmhost), its NIC on a netlink link to gvproxy (through
// internal/testdaemon), with the daemon crashing and coming back while the
// guest pings its gateway.
//
// The tests send traffic only to loopback and to gvproxy's internal network.
package e2e
