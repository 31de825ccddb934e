// Package tray owns vmnetbar's menu-bar icon and menu: it renders the
// status of every VM (model.Overview) and forwards clicks to the
// controller (a model.Machines with Start all, Stop all and Reload).
//
// The menu's text, enablement and icon come from one pure function,
// BuildModel(overview, ui state, now); the systray glue only applies
// models, changing what differs from the last one. With one VM the menu is
// that VM's; with several, each VM has a line at the top with a submenu,
// then Start all and Stop all. What may be done with a VM is only its
// status's Actions (model.Allowed). The icon is the worst state of any VM.
// systray can only append items and cannot hide separators, so both
// layouts are one list of items, those of the other layout hidden; the VM
// lines are a pool made first and hidden when unused, their submenus made
// on first use, and a click acts on the VM its line showed then. Status updates are read from the
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
// Each VM shows what its link learned about the guest: "IP: …" (a click
// copies the address), "Copy SSH command" and "Open Terminal", both
// enabled by one rule, sshCommand: for a VM made from an image once its
// SSH server accepts (VM.SSH ready), for a VM that boots a kernel while
// its address is known. The command is what 'vmnetbar ssh' runs
// (model.VMStatus.SSHArgs: the VM's key, known_hosts file and
// ssh_address); Copy SSH command copies it quoted for a shell, Open
// Terminal runs it in a new window through Options.Terminal (Terminal.app
// through osascript; the desktop's terminal emulator on Linux). Each boot
// of a VM is notified once when its SSH server accepts ("dev is ready",
// with the command; readies, tracked by the renderer). While a start
// makes the VM's disk from its image, the VM line says how far it is
// ("VM: preparing disk 42 %"). A link that is up while nothing comes back
// (netlink.HealthSilent) reads "not forwarding" in amber, with a hint to
// restart the daemon (macOS: a click copies the command), and is notified
// once per silent spell (spells, tracked by the renderer). Copies go
// through Options.Clipboard (pbcopy; wl-copy, xclip or xsel); when that
// fails, the text is shown to be copied by hand.
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
// tray imports app/model (the status types), app/loginitem (the location
// check), assets (icons), netlink and vmhost (state names), systray, godbus
// (Linux) and logrus.
package tray
