package control

import "errors"

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
