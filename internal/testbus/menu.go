package testbus

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/godbus/dbus/v5"
)

// MenuItem is one item of a tray menu as com.canonical.dbusmenu shows it.
type MenuItem struct {
	ID       int32
	Label    string
	Enabled  bool
	Visible  bool
	Children []MenuItem
}

// Find returns the visible item reached by following labels from m, each
// label a prefix of one visible child's label ("dev", "Reconnect now").
func (m MenuItem) Find(labels ...string) (MenuItem, bool) {
	cur := m
	for _, l := range labels {
		found := false
		for _, c := range cur.Children {
			if c.Visible && strings.HasPrefix(c.Label, l) {
				cur, found = c, true
				break
			}
		}
		if !found {
			return MenuItem{}, false
		}
	}
	return cur, true
}

// Labels returns the labels of m's visible children.
func (m MenuItem) Labels() []string {
	var out []string
	for _, c := range m.Children {
		if c.Visible {
			out = append(out, c.Label)
		}
	}
	return out
}

// Dump is the menu as indented lines, for test failures: each item's
// label, with "(hidden)" and "(disabled)" where so.
func (m MenuItem) Dump() string {
	var b strings.Builder
	var walk func(MenuItem, int)
	walk = func(it MenuItem, depth int) {
		for _, c := range it.Children {
			fmt.Fprintf(&b, "%s%q", strings.Repeat("  ", depth), c.Label)
			if !c.Visible {
				b.WriteString(" (hidden)")
			}
			if !c.Enabled {
				b.WriteString(" (disabled)")
			}
			b.WriteString("\n")
			walk(c, depth+1)
		}
	}
	walk(m, 0)
	return b.String()
}

// menuObject is the dbusmenu object of the StatusNotifierItem that process
// pid registered first.
func menuObject(conn *dbus.Conn, pid int) dbus.BusObject {
	return conn.Object(fmt.Sprintf("org.kde.StatusNotifierItem-%d-1", pid), "/StatusNotifierItem/menu")
}

// Menu reads the whole menu of the tray icon of process pid.
func Menu(conn *dbus.Conn, pid int) (MenuItem, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	call := menuObject(conn, pid).CallWithContext(ctx, "com.canonical.dbusmenu.GetLayout", 0, int32(0), int32(-1), []string{})
	if call.Err != nil {
		return MenuItem{}, call.Err
	}
	var rev uint32
	var root []interface{}
	var layout struct {
		ID       int32
		Props    map[string]dbus.Variant
		Children []dbus.Variant
	}
	if err := call.Store(&rev, &layout); err != nil {
		return MenuItem{}, err
	}
	root = []interface{}{layout.ID, layout.Props, variantsToIfaces(layout.Children)}
	return toItem(root), nil
}

func variantsToIfaces(vs []dbus.Variant) []interface{} {
	out := make([]interface{}, len(vs))
	for i, v := range vs {
		out[i] = v
	}
	return out
}

// toItem converts a dbusmenu layout node, (ia{sv}av), to a MenuItem.
func toItem(node []interface{}) MenuItem {
	var it MenuItem
	it.Enabled, it.Visible = true, true
	if len(node) != 3 {
		return it
	}
	it.ID, _ = node[0].(int32)
	props, _ := node[1].(map[string]dbus.Variant)
	it.Label, _ = props["label"].Value().(string)
	if p, ok := props["enabled"]; ok {
		it.Enabled, _ = p.Value().(bool)
	}
	if p, ok := props["visible"]; ok {
		it.Visible, _ = p.Value().(bool)
	}
	var children []interface{}
	switch cs := node[2].(type) {
	case []interface{}:
		children = cs
	case []dbus.Variant:
		children = variantsToIfaces(cs)
	}
	for _, c := range children {
		if v, ok := c.(dbus.Variant); ok {
			c = v.Value()
		}
		if n, ok := c.([]interface{}); ok {
			it.Children = append(it.Children, toItem(n))
		}
	}
	return it
}

// Click sends a click on the menu item id of the tray icon of process pid.
func Click(conn *dbus.Conn, pid int, id int32) error {
	return menuObject(conn, pid).Call("com.canonical.dbusmenu.Event", 0, id, "clicked", dbus.MakeVariant(""), uint32(time.Now().Unix())).Err
}
