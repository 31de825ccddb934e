package control

import (
	"github.com/vmnetbar/vmnetbar/app/model"
	"github.com/vmnetbar/vmnetbar/internal/latest"
	"github.com/vmnetbar/vmnetbar/netlink"
)

// LinkSource is what the link backend needs of a *netlink.Link.
type LinkSource interface {
	Status() netlink.Status
	Subscribe() (<-chan netlink.Status, func())
	Reconnect()
}

// LinkBackend serves a lone link (no VM): its Status has only "link".
type LinkBackend struct {
	l LinkSource
}

var _ Backend = (*LinkBackend)(nil)

// NewLinkBackend returns a Backend over l.
func NewLinkBackend(l LinkSource) *LinkBackend { return &LinkBackend{l: l} }

// Status returns the link's status.
func (b *LinkBackend) Status() Status { return linkStatus(b.l.Status()) }

// linkStatus is the standalone link's status: no VM, and the actions the
// link allows (model.Allowed).
func linkStatus(ls netlink.Status) Status {
	return Status{Link: ls, Actions: model.Allowed(nil, ls.State)}
}

// Reconnect asks the link to redial.
func (b *LinkBackend) Reconnect() error {
	b.l.Reconnect()
	return nil
}

// Subscribe relays the link's updates. The relay goroutine ends, and the
// channel is closed, on cancel or when the link closes its own channel.
// cancel waits for the relay goroutine to end.
func (b *LinkBackend) Subscribe() (<-chan Status, func()) {
	src, cancel := b.l.Subscribe()
	return latest.Map(src, cancel, linkStatus)
}
