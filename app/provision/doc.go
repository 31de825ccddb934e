// Package provision turns a VM's image settings (image, disk_size,
// cloud_init, ssh_user, ssh_keys, user_data) into the files its EFI boot
// needs, in the VM's state directory STATE/vms/NAME:
//
//	disk.raw     the VM's own disk, made from the image (vmhost/disk)
//	seed.iso     the cloud-init NoCloud seed (app/cloudinit)
//	instance-id  the seed's instance-id, the same until Reset
//	efi-vars.fd  the EFI variable store (made by vmhost at the first boot)
//	machine-id   VZ's machine identifier (made by vmhost, kept for good)
//	ssh/         vmnetbar's own key pair (id_ed25519) and known_hosts
//
// Prepare makes what the next boot needs. The disk is made from the image
// only when it does not exist: an existing disk is never touched (the VM's
// data persists, and the image may even be gone or changed; Reset makes a
// new disk from the current image). A new disk is a new guest, so when
// Prepare makes one it first drops what belonged to the old one: the
// instance-id (cloud-init provisions the new disk), the EFI variable store
// (its boot entries point into the old disk) and known_hosts (the new
// guest has new host keys). Reset removes the disk and those three files;
// it keeps the machine identifier, the seed (Prepare rewrites it when its
// content changes) and vmnetbar's key pair.
//
// The seed is rewritten only when its content changes, byte for byte
// (cloudinit.WriteISO), and its inputs are checked before the disk is
// made, so a typo in ssh_keys fails at once and not after minutes of
// conversion. Note that cloud-init applies users, keys and user-data once
// per instance-id: a seed rewritten for an already provisioned disk (a
// changed key) takes effect only after Reset. The instance-id is not
// changed to force it, since that would also give the guest new host keys
// and run the user's first-boot commands again. When cloud_init is off no seed is made and an old one is
// removed (it may hold the user's own user-data).
//
// The keys in the seed: the user's public keys (the files in ssh_keys, or
// when there are none every ~/.ssh/*.pub) and always vmnetbar's own key
// (cloudinit.EnsureKey in ssh/), whose private key Result.Key names.
// vmnetbar's key is added even when the user has keys of their own, so that
// `vmnetbar ssh` and the menu's SSH command log in without an ssh-agent,
// without a passphrase prompt and whichever key the user's ssh picks first;
// the private key never leaves the state directory and is readable by the
// user alone (EnsureKey refuses it otherwise). A key file named in ssh_keys
// that holds no public key is an error; a ~/.ssh/*.pub that holds none is
// skipped and listed in Result.Skipped.
//
// Errors that a configuration key can fix are *Error, whose Key names it
// (image, disk_size, ssh_user, ssh_keys, user_data, mac), so that
// app/config can point at the file and line. Other errors (I/O, a
// cancelled context, vmnetbar's own key refused) are wrapped with %w.
//
// One Prepare or Reset per VM at a time is the caller's job (the controller
// serialises starts). A run killed half-way leaves nothing that the next
// one trips over: the disk and the seed are renamed into place complete,
// and the disk's temporary files are removed by the next Prepare.
//
// The package starts no goroutine, holds no global state and logs
// nothing: what it skips it returns. It imports vmhost/disk and
// app/cloudinit only (and the standard library).
package provision
