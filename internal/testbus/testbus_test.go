package testbus

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestWatcher starts a bus with a watcher and registers an item with it
// from another connection, as a StatusNotifierItem does.
func TestWatcher(t *testing.T) {
	addr := Start(t)
	host := Connect(t, addr)
	w := ServeWatcher(t, host)

	item := Connect(t, addr)
	var has bool
	if err := item.BusObject().Call("org.freedesktop.DBus.NameHasOwner", 0, WatcherName).Store(&has); err != nil || !has {
		t.Fatalf("NameHasOwner(%s) = %v, %v; want true", WatcherName, has, err)
	}
	obj := item.Object(WatcherName, "/StatusNotifierWatcher")
	if err := obj.Call(WatcherName+".RegisterStatusNotifierItem", 0, "/StatusNotifierItem").Err; err != nil {
		t.Fatal(err)
	}
	v, err := obj.GetProperty(WatcherName + ".IsStatusNotifierHostRegistered")
	if err != nil || v.Value() != true {
		t.Fatalf("IsStatusNotifierHostRegistered = %v, %v; want true", v, err)
	}
	want := item.Names()[0] + " /StatusNotifierItem"
	if got := w.Registered(); len(got) != 1 || got[0] != want {
		t.Fatalf("registered %q, want [%q]", got, want)
	}
}
