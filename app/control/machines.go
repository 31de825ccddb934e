package control

import (
	"cmp"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"unicode"

	"github.com/sirupsen/logrus"

	"github.com/vmnetbar/vmnetbar/app/model"
)

// maxNameLen is the longest NAME in a path that the server asks the
// machines about; a longer one is answered 404 at once.
const maxNameLen = 64

// NewServer returns the app's server, for the VMs of m. log receives
// request errors.
func NewServer(m model.Machines, log logrus.FieldLogger) *Server {
	a := &appRoutes{m: m, log: log}
	return &Server{log: log, routes: map[string]route{
		"/v1/status":            {method: http.MethodGet, h: a.status},
		"/v1/watch":             {method: http.MethodGet, h: a.watch},
		vmPattern(""):           {method: http.MethodGet, h: a.named(a.vm)},
		vmPattern("/start"):     {method: http.MethodPost, h: a.named(a.start)},
		vmPattern("/stop"):      {method: http.MethodPost, h: a.named(a.stop)},
		vmPattern("/reconnect"): {method: http.MethodPost, h: a.named(a.reconnect)},
		vmPattern("/reset"):     {method: http.MethodPost, h: a.named(a.reset)},
		"/v1/vm/start":          {method: http.MethodPost, h: a.start},
		"/v1/vm/stop":           {method: http.MethodPost, h: a.stop},
		"/v1/link/reconnect":    {method: http.MethodPost, h: a.reconnect},
	}}
}

// appRoutes answers the app's routes from its machines. The legacy
// routes (/v1/vm/start, /v1/vm/stop, /v1/link/reconnect) act on name "":
// the machines answer for the only VM, or KindAmbiguous naming the VMs.
type appRoutes struct {
	m   model.Machines
	log logrus.FieldLogger
}

// overview is o as the API shows it: "vms" is a list (never null), sorted
// by name. o's slice is not changed.
func overview(o model.Overview) model.Overview {
	byName := func(a, b model.VMStatus) int { return cmp.Compare(a.Name, b.Name) }
	switch {
	case o.VMs == nil:
		o.VMs = []model.VMStatus{}
	case !slices.IsSortedFunc(o.VMs, byName):
		o.VMs = slices.Clone(o.VMs)
		slices.SortFunc(o.VMs, byName)
	}
	return o
}

func (a *appRoutes) status(w http.ResponseWriter, _ *http.Request, _ string) {
	writeJSON(w, http.StatusOK, overview(a.m.Status()))
}

func (a *appRoutes) watch(w http.ResponseWriter, r *http.Request, _ string) {
	serveWatch(w, r, a.log, feed[model.Overview]{
		status:    a.m.Status,
		subscribe: a.m.Subscribe,
		encode:    func(o model.Overview) ([]byte, error) { return json.Marshal(overview(o)) },
	})
}

// named checks the NAME of a /v1/vms/NAME route before h acts on it: a
// name that cannot be a VM's is answered 404 without asking the machines
// about it.
func (a *appRoutes) named(h func(http.ResponseWriter, *http.Request, string)) func(http.ResponseWriter, *http.Request, string) {
	return func(w http.ResponseWriter, r *http.Request, name string) {
		if why := badName(name); why != "" {
			shown := name
			if len(shown) > maxNameLen {
				shown = shown[:maxNameLen] + "..."
			}
			writeError(w, http.StatusNotFound, fmt.Sprintf("no VM named %q: %s; %s", shown, why, vmList(a.m.Status())))
			return
		}
		h(w, r, name)
	}
}

// badName says why name cannot be a VM's name, or "" when it may be one.
// The machines judge the rest (an unknown name is their 404).
func badName(name string) string {
	switch {
	case name == "":
		return "a VM name is not empty"
	case len(name) > maxNameLen:
		return fmt.Sprintf("a VM name is at most %d bytes", maxNameLen)
	case strings.Contains(name, "/"):
		return "a VM name has no '/'"
	case strings.IndexFunc(name, unicode.IsControl) >= 0:
		return "a VM name has no control characters"
	}
	return ""
}

// vmList names the VMs of o, for a message.
func vmList(o model.Overview) string {
	if len(o.VMs) == 0 {
		return "no VMs are configured"
	}
	return "the VMs are " + strings.Join(overview(o).Names(), ", ")
}

func (a *appRoutes) vm(w http.ResponseWriter, _ *http.Request, name string) {
	v, err := a.m.Status().Resolve(name)
	if err != nil {
		answer(w, a.log, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func (a *appRoutes) start(w http.ResponseWriter, r *http.Request, name string) {
	answer(w, a.log, a.m.Start(r.Context(), name))
}

func (a *appRoutes) stop(w http.ResponseWriter, r *http.Request, name string) {
	answer(w, a.log, a.m.Stop(r.Context(), name))
}

// reset deletes the disk of a stopped VM made from an image, so that its
// next start makes it again (model.Machines.Reset). There is no route
// without a NAME: a reset destroys data, so it is never "the only VM".
func (a *appRoutes) reset(w http.ResponseWriter, r *http.Request, name string) {
	answer(w, a.log, a.m.Reset(r.Context(), name))
}

func (a *appRoutes) reconnect(w http.ResponseWriter, _ *http.Request, name string) {
	answer(w, a.log, a.m.Reconnect(name))
}
