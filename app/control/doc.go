// Package control owns vmnetbar's control API: a small HTTP/JSON API served
// on a UNIX socket, and its client.
//
// The app (NewServer, over a model.Machines) serves its VMs by name:
//
//	GET  /v1/status              every VM: {"vms": [VMSTATUS, ...], "config_error": "..."},
//	                             sorted by name ("vms" is [] when there are none;
//	                             "config_error" only while the configuration file
//	                             has an error, which the last reload did not apply)
//	GET  /v1/watch               newline-delimited JSON: the whole /v1/status, then
//	                             one line per change (of any VM), until either side
//	                             stops; a slow reader gets the latest status, and a
//	                             stream ends with the status at its end
//	GET  /v1/vms/NAME            one VM: VMSTATUS
//	POST /v1/vms/NAME/start      start the VM called NAME
//	POST /v1/vms/NAME/stop       stop it (gracefully; the answer comes when it stopped)
//	POST /v1/vms/NAME/reconnect  drop its link's socket_vmnet connection and dial again
//	POST /v1/vms/NAME/reset      delete the disk of a stopped VM made from an image
//	                             (with its EFI variables and cloud-init instance), so
//	                             that its next start makes it again from the image;
//	                             409 while it is not stopped, or for a VM that boots
//	                             a kernel
//	POST /v1/vm/start            start the only VM (from before several VMs)
//	POST /v1/vm/stop             stop the only VM
//	POST /v1/link/reconnect      reconnect the only VM's link
//
// VMSTATUS is {"name": "dev", "vm": {"state": "running", "since": TIME,
// "error": "", ...}, "link": {"state": "up", "reconnects": 3, ...},
// "actions": {"start": false, "stop": true, "reconnect": true}}: actions say
// what the VM allows now (model.Allowed), so a client enables exactly those.
//
// The standalone link (vmnetbar link --control; NewLinkServer) keeps the API
// of a single link:
//
//	GET  /v1/status          {"link": {...}, "actions": {"start": false, "stop": false, "reconnect": BOOL}}
//	GET  /v1/watch           that object, then one per change
//	POST /v1/link/reconnect  drop the daemon connection and dial again
//
// and answers 404 to the routes about VMs (/v1/vm/..., /v1/vms/...): it
// serves no VM.
//
// Actions answer {"ok": true}; every error is {"error": "..."} with a
// matching HTTP status:
//
//	404  no such endpoint; no VM called NAME (the message names the VMs
//	     there are); a route about VMs on the standalone link
//	405  the wrong method (the Allow header says the right one)
//	409  the action is not allowed now (see "actions"; a reset also needs a
//	     VM made from an image); a route without a
//	     NAME (/v1/vm/..., /v1/link/reconnect) while there is not exactly one
//	     VM (the message names them)
//	503  vmnetbar is shutting down; too many connections are open
//	500  the action failed (the message says why)
//
// No route takes a request body (one is read and ignored). The socket is
// created with mode 0600, so only the user who started vmnetbar can use it.
//
// The Client speaks to both servers: Overview, VM, Start, Stop, Reconnect
// and Watch take a VM's NAME ("" for the only VM, on the routes without a
// NAME); Reset always needs one. From a standalone link, Overview and
// Watch give one VMStatus without a name or a VM (IsStandaloneLink).
//
// control imports the standard library, logrus, app/model, netlink (for its
// Status) and internal/filekind. It holds no global state.
package control
