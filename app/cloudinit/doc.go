// Package cloudinit makes a VM's cloud-init NoCloud seed and the SSH keys
// that go into it.
//
// A seed (WriteISO) is an ISO 9660 image labelled cidata holding three
// files:
//
//   - meta-data: instance-id, which stays the same until the VM's disk is
//     reset (InstanceID keeps it in the VM's state directory; a changed
//     instance-id makes cloud-init provision the guest again), and
//     local-hostname, the VM's name;
//   - user-data: a cloud-config that makes the user ssh_user with
//     passwordless sudo, /bin/bash and the authorized keys, and sets
//     manage_etc_hosts: true (so sudo never waits on DNS for the host
//     name). The user's own user-data file (user_data), when given, follows
//     it in a MIME multipart message, the form in which cloud-init merges
//     parts; a cloud-config part of the user's is merged with
//     list(append)+dict(no_replace,recurse_list), so its users, keys and
//     commands add to vmnetbar's. ParseUserData checks that file first: it
//     must be a format cloud-init runs (#cloud-config, #!, #include, ... or
//     MIME), else the error names the file and the formats;
//   - network-config (version 2): the NIC matched by its MAC, DHCPv4 with
//     dhcp-identifier: mac, so the lease follows the MAC and not a DUID.
//
// Every value is rendered as a quoted YAML string, and the image depends on
// the Seed alone, byte for byte: WriteISO rewrites the file (atomically)
// only when its content changes.
//
// The keys: HostKeys reads the host user's ~/.ssh/*.pub, skipping (with the
// reason) what is no public key. EnsureKey makes, once, an ed25519 key pair
// of vmnetbar's own (OpenSSH format, for when the user has no key) and
// refuses one that others could read or replace, as ssh does.
//
// Dependencies: github.com/kdomanski/iso9660 writes the image (vfkit's
// choice; small and without dependencies of its own); golang.org/x/crypto/ssh
// parses authorized_keys lines and writes OpenSSH private keys, which the
// standard library cannot. The package holds no global state and logs
// nothing: what it skips or refuses it returns.
package cloudinit
