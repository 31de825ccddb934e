package tray

import "fyne.io/systray"

// shell is the menu-bar icon and its menu: fyne.io/systray in the app
// (systrayShell), a fake in tests. The tray calls it only from onReady and
// the renderer (and Quit from the supervisor).
type shell interface {
	// SetIcon shows the icon: template on macOS, regular elsewhere. On
	// macOS the status item has no width, so it cannot be clicked, until
	// it has an icon.
	SetIcon(template, regular []byte)
	SetTooltip(tooltip string)
	// SetAppTitle names the app where the platform shows a name.
	SetAppTitle()
	AddSeparator()
	// AddItem appends an item, shown and enabled, whose clicks go to
	// clicks from then on.
	AddItem(label string, checkbox, checked bool, clicks chan struct{}) menuItem
	// AddSubItem appends an item, shown and enabled, to parent's
	// submenu (made by the first one), whose clicks go to clicks from
	// then on. parent is an item AddItem returned.
	AddSubItem(parent menuItem, label string, clicks chan struct{}) menuItem
	// AddSubSeparator appends a separator to parent's submenu, which has
	// an item already.
	AddSubSeparator(parent menuItem)
	// Quit ends the loop Run runs.
	Quit()
}

// menuItem is one item of the menu; *systray.MenuItem is one.
type menuItem interface {
	SetTitle(string)
	Enable()
	Disable()
	Show()
	Hide()
	Check()
	Uncheck()
}

// systrayShell is the shell of fyne.io/systray.
type systrayShell struct{}

func (systrayShell) SetIcon(template, regular []byte) { systray.SetTemplateIcon(template, regular) }
func (systrayShell) SetTooltip(s string)              { systray.SetTooltip(s) }
func (systrayShell) SetAppTitle()                     { setAppTitle() }
func (systrayShell) AddSeparator()                    { systray.AddSeparator() }
func (systrayShell) Quit()                            { systray.Quit() }

// AddItem adds the item and replaces systray's unbuffered click channel
// with clicks. Between the two, a click would go to systray's channel,
// which nobody reads: the tray adds every item before the icon is shown
// (macOS: no icon, nothing to click) and before onReady returns (Linux:
// the menu is not served before).
func (systrayShell) AddItem(label string, checkbox, checked bool, clicks chan struct{}) menuItem {
	var mi *systray.MenuItem
	if checkbox {
		mi = systray.AddMenuItemCheckbox(label, "", checked)
	} else {
		mi = systray.AddMenuItem(label, "")
	}
	mi.ClickedCh = clicks
	return mi
}

// AddSubItem adds the item to parent's submenu and replaces systray's
// click channel with clicks, as AddItem does. The tray adds a submenu's
// items while its parent is hidden: nobody can click them before.
func (systrayShell) AddSubItem(parent menuItem, label string, clicks chan struct{}) menuItem {
	mi := parent.(*systray.MenuItem).AddSubMenuItem(label, "")
	mi.ClickedCh = clicks
	return mi
}

func (systrayShell) AddSubSeparator(parent menuItem) { parent.(*systray.MenuItem).AddSeparator() }
