package control

import (
	"context"
	"errors"
	"net/http"

	"github.com/vmnetbar/vmnetbar/app/model"
)

// VMStatus is the VM part of a Status (model.VM).
type VMStatus = model.VM

// Status is what the control API reports (model.Status): the VM (nil when
// the server serves no VM: the standalone link), its link and the actions
// allowed now.
type Status = model.Status

// Backend is what a Server exposes.
type Backend interface {
	// Status returns the current status.
	Status() Status
	// Subscribe returns a channel of status updates and a cancel function.
	// Updates may be coalesced: a slow reader sees the latest status, not
	// every intermediate one. cancel is idempotent; the channel is closed
	// after cancel and when the backend shuts down.
	Subscribe() (<-chan Status, func())
	// Reconnect drops the daemon connection and redials.
	Reconnect() error
}

// VMBackend is a Backend that also runs a VM. A Server finds it by type
// assertion; without it the VM routes answer 404.
type VMBackend interface {
	Backend
	StartVM(ctx context.Context) error
	StopVM(ctx context.Context) error
}

// statusCoder is implemented by errors that choose their HTTP status (for
// example 409 for an action that is illegal in the current state).
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

// errNoVM is answered (as a 404 Error) by servers whose backend runs no VM.
var errNoVM = &Error{Code: http.StatusNotFound, Message: "this vmnetbar serves no VM (it is a standalone link); start and stop the VM with the hypervisor that owns it"}
