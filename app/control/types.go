package control

import (
	"errors"

	"github.com/vmnetbar/vmnetbar/app/model"
)

// VMStatus is the VM part of a single VM's status (model.VM).
//
// Deprecated: use model.VM; model.VMStatus is one VM of the app's
// Overview.
type VMStatus = model.VM

// Status is the status of the standalone link and of the single-VM API
// before several VMs (model.Status).
//
// Deprecated: use model.Status, or model.Overview for the app.
type Status = model.Status

// statusCoder is implemented by errors that choose their HTTP status (an
// *Error passed back into a server keeps its code).
type statusCoder interface{ StatusCode() int }

// Error is an error answered by a control server.
type Error struct {
	Code    int    // HTTP status code
	Message string // the server's message
}

func (e *Error) Error() string { return e.Message }

// StatusCode returns the HTTP status code, so an Error passed back into a
// server keeps its code.
func (e *Error) StatusCode() int { return e.Code }

// ErrNotRunning is wrapped by client errors when nothing serves the control
// socket (it is missing, or stale).
var ErrNotRunning = errors.New("vmnetbar is not running")
