package tray

import "github.com/vmnetbar/vmnetbar/app/loginitem"

// LocationChecker is an optional LoginItem feature, found by type
// assertion: CheckLocation says why the program the login item starts may
// be gone at the next login (loginitem.CheckLocation), or nil. The
// app's login items (loginitem.LaunchAgent, loginitem.Autostart) have it;
// `vmnetbar login-item on` runs the same check.
type LocationChecker interface {
	CheckLocation() *loginitem.LocationProblem
}

// loginPlan decides what a click that turns launch at login on (enable)
// or off does, given where the program is (nil: a fine place). It returns
// whether to go ahead and the line the menu shows, "" for none.
//
// A program whose path will be gone (a temporary directory, an App
// Translocation copy) gets no login item: the checkbox would say "on"
// while nothing starts at the next login, and would still say so once the
// user has moved the app. The menu says why instead. A program on a
// mounted volume gets one, with a warning: the volume may be there.
func loginPlan(enable bool, where *loginitem.LocationProblem) (proceed bool, problem string) {
	switch {
	case !enable || where == nil:
		return true, ""
	case where.Transient():
		return false, "Launch at login off: " + where.Summary()
	default:
		return true, "Launch at login may fail: " + where.Summary()
	}
}
