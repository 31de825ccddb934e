// Package tray owns vmnetbar's menu-bar icon and menu: it renders the
// controller's status and forwards clicks to it.
//
// The menu's text, enablement and icon come from one pure function,
// BuildModel(status, ui state, now); the systray glue only applies models,
// changing what differs from the last one. Status updates are read from the
// controller's coalesced subscription in a tray-owned goroutine and a ticker
// refreshes durations, so the tray never blocks the controller. Every menu
// item has a buffered click channel and a goroutine waiting on it (systray
// drops clicks it cannot deliver at once), both made before the item is
// added; the icon is set last, so on macOS the menu cannot be opened
// before. Clicks that take long (Start, Stop, Reconnect, Quit, opening
// files) run in worker goroutines, never in the goroutine that receives
// clicks. The tray reaches systray through a small interface (shell), so
// tests run the whole tray, macOS's click model included, with a fake.
//
// "Launch at login" checks where the program is first
// (loginitem.CheckLocation, through the LoginItem's CheckLocation): from a
// temporary directory or an App Translocation copy it is not turned on and
// the menu says why; from a disk image it is, with a warning.
//
// fyne.io/systray is process-global: Run can be used once per process, on
// the main goroutine. On Linux the tray is a StatusNotifierItem on the D-Bus
// session bus; Run checks for a bus and a tray host first and reports
// ErrUnavailable without either.
//
// tray imports app/control (the status types), app/loginitem (the location
// check), assets (icons), netlink and vmhost (state names), systray, godbus
// (Linux) and logrus.
package tray
