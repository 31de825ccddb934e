// Package assets holds vmnetbar's icons, embedded in the binary: the tray
// icon for each state (coloured for Linux panels, black + alpha template
// images for the macOS menu bar, which recolours them for light and dark
// mode) and the application icon the macOS bundle's .icns is made from.
//
// The PNG files are drawn by the program in ./gen; regenerate them with
// `go generate ./assets` after changing it. The package imports only the
// standard library.
package assets

import (
	"embed"
	"fmt"
)

//go:generate go run ./gen

//go:embed icons/*.png appicon.png
var files embed.FS

// Icon names a tray state's icon.
type Icon string

// The tray icons.
const (
	IconStopped      Icon = "stopped"      // the VM is not running
	IconBooting      Icon = "booting"      // the VM or its link is coming up
	IconUp           Icon = "up"           // the VM runs and the link is up
	IconReconnecting Icon = "reconnecting" // the link is redialling the daemon
	IconError        Icon = "error"        // the VM or the link failed
)

// Icons lists every tray icon.
var Icons = []Icon{IconStopped, IconBooting, IconUp, IconReconnecting, IconError}

// TrayImages are one icon's PNG files. The coloured ones are drawn for
// Linux panels (22 px); the templates for the macOS menu bar, where
// systray shows the status item's image at 16x16 pt: Template2x is the
// one to give it (32 px, sharp on Retina screens), Template the same glyph
// at 1x.
type TrayImages struct {
	Regular    []byte // 22x22, coloured
	Regular2x  []byte // 44x44, coloured
	Template   []byte // 16x16, black + alpha
	Template2x []byte // 32x32, black + alpha
}

// Tray returns the PNG files of a tray icon. The slices are shared: do not
// modify them.
func Tray(i Icon) (TrayImages, error) {
	var t TrayImages
	for _, f := range []struct {
		dst    *[]byte
		suffix string
	}{
		{&t.Regular, ""},
		{&t.Regular2x, "@2x"},
		{&t.Template, "-template"},
		{&t.Template2x, "-template@2x"},
	} {
		b, err := files.ReadFile("icons/" + string(i) + f.suffix + ".png")
		if err != nil {
			return TrayImages{}, fmt.Errorf("tray icon %q: %w", i, err)
		}
		*f.dst = b
	}
	return t, nil
}

// AppIcon returns the 1024x1024 application icon (PNG).
func AppIcon() []byte {
	b, err := files.ReadFile("appicon.png")
	if err != nil {
		// The file is embedded at build time; reaching this is a build
		// error, reported as an empty icon rather than a crash.
		return nil
	}
	return b
}
