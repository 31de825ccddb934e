package control

import (
	"encoding/json"
	"net/http"

	"github.com/sirupsen/logrus"

	"github.com/vmnetbar/vmnetbar/app/model"
	"github.com/vmnetbar/vmnetbar/netlink"
)

// LinkSource is what the standalone link's server needs of a
// *netlink.Link.
type LinkSource interface {
	Status() netlink.Status
	// Subscribe delivers status changes (coalesced) until cancel; the
	// channel is closed on cancel and when the link shuts down.
	Subscribe() (<-chan netlink.Status, func())
	Reconnect()
}

// NewLinkServer returns the server of a standalone link (vmnetbar link
// --control): its status is a model.Status without a VM,
// {"link": {...}, "actions": {...}}, and the routes about VMs answer 404.
// log receives request errors.
func NewLinkServer(l LinkSource, log logrus.FieldLogger) *Server {
	noVM := func(method, msg string) route {
		return route{method: method, unlisted: true, h: func(w http.ResponseWriter, _ *http.Request, _ string) {
			writeError(w, http.StatusNotFound, msg)
		}}
	}
	const (
		standalone = "this vmnetbar serves no VM (it is a standalone link)"
		startStop  = standalone + "; start and stop the VM with the hypervisor that owns it"
		byName     = standalone + "; it has no VMs by name: ask for its status and reconnect its link without a NAME"
	)
	return &Server{log: log, routes: map[string]route{
		"/v1/status": {method: http.MethodGet, h: func(w http.ResponseWriter, _ *http.Request, _ string) {
			writeJSON(w, http.StatusOK, linkStatus(l.Status()))
		}},
		"/v1/watch": {method: http.MethodGet, h: func(w http.ResponseWriter, r *http.Request, _ string) {
			serveWatch(w, r, log, feed[netlink.Status]{
				status:    l.Status,
				subscribe: l.Subscribe,
				encode:    func(ls netlink.Status) ([]byte, error) { return json.Marshal(linkStatus(ls)) },
			})
		}},
		"/v1/link/reconnect": {method: http.MethodPost, h: func(w http.ResponseWriter, _ *http.Request, _ string) {
			l.Reconnect()
			answer(w, log, nil)
		}},
		"/v1/vm/start":          noVM(http.MethodPost, startStop),
		"/v1/vm/stop":           noVM(http.MethodPost, startStop),
		vmPattern(""):           noVM(http.MethodGet, byName),
		vmPattern("/start"):     noVM(http.MethodPost, byName),
		vmPattern("/stop"):      noVM(http.MethodPost, byName),
		vmPattern("/reconnect"): noVM(http.MethodPost, byName),
		vmPattern("/reset"):     noVM(http.MethodPost, byName),
	}}
}

// linkStatus is the standalone link's status: no VM, and the actions the
// link allows (model.Allowed).
func linkStatus(ls netlink.Status) model.Status {
	return model.Status{Link: ls, Actions: model.Allowed(nil, ls.State)}
}
