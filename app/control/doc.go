// Package control owns vmnetbar's control API: a small HTTP/JSON API served
// on a UNIX socket, and its client.
//
// Routes:
//
//	GET  /v1/status          the current Status as JSON
//	GET  /v1/watch           newline-delimited JSON: the current Status, then
//	                         one object per change, until either side stops
//	POST /v1/link/reconnect  drop the daemon connection and redial
//	POST /v1/vm/start        start the VM (only when the backend serves a VM)
//	POST /v1/vm/stop         stop the VM (only when the backend serves a VM)
//
// Actions answer {"ok": true}; every error is {"error": "..."} with a
// matching HTTP status. The socket is created with mode 0600, so only the
// user who started vmnetbar can use it.
//
// The server is generic over a Backend: the standalone link and the tray app
// each provide one. control imports the standard library, logrus, netlink
// (for its Status), vmhost (for its State) and internal/latest. It holds no
// global state.
package control
