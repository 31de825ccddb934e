// Command gen draws vmnetbar's icons and writes them as PNG files:
//
//	icons/<state>.png            22x22, coloured (Linux tray)
//	icons/<state>@2x.png         44x44, coloured
//	icons/<state>-template.png   22x22, black + alpha (macOS template image)
//	icons/<state>-template@2x.png
//	appicon.png                  1024x1024 (source of the macOS .icns)
//
// Run it from the assets directory (go generate does): go run ./gen.
// The output is deterministic, so the committed files can be checked
// against a fresh rendering.
//
// The tray glyph is a monitor; the state is a mark on it: nothing
// (stopped), three dots on the screen (booting), a filled dot (link up),
// a broken ring (reconnecting), a dot with an exclamation mark (error).
// The marks differ in shape, not only in colour, so the black template
// variants stay legible.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
)

// States are the icon names, one per tray state.
var States = []string{"stopped", "booting", "up", "reconnecting", "error"}

func main() {
	out := flag.String("out", ".", "directory to write icons/ and appicon.png into")
	flag.Parse()
	if err := Render(*out); err != nil {
		fmt.Fprintf(os.Stderr, "gen: %v\n", err)
		os.Exit(1)
	}
}

// Files returns every icon file, keyed by its path relative to the assets
// directory.
func Files() (map[string][]byte, error) {
	files := map[string][]byte{}
	for _, st := range States {
		for _, v := range []struct {
			suffix   string
			size     int
			template bool
		}{
			{"", 22, false},
			{"@2x", 44, false},
			{"-template", 22, true},
			{"-template@2x", 44, true},
		} {
			b, err := encode(trayIcon(st, v.size, v.template))
			if err != nil {
				return nil, fmt.Errorf("%s%s: %w", st, v.suffix, err)
			}
			files["icons/"+st+v.suffix+".png"] = b
		}
	}
	b, err := encode(appIcon(1024))
	if err != nil {
		return nil, fmt.Errorf("appicon: %w", err)
	}
	files["appicon.png"] = b
	return files, nil
}

// Render writes every icon file below dir.
func Render(dir string) error {
	files, err := Files()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(dir, "icons"), 0o755); err != nil {
		return err
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func encode(img image.Image) ([]byte, error) {
	var buf bytes.Buffer
	enc := png.Encoder{CompressionLevel: png.BestCompression}
	if err := enc.Encode(&buf, img); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// paint returns the colour of the scene at a point; the scene's
// coordinates are independent of the output size.
type paint func(x, y float64) color.NRGBA

// rasterize samples the scene (defined on [0,unit)x[0,unit)) into a
// size x size image, ss x ss samples per pixel, averaging in premultiplied
// space so edges are anti-aliased.
func rasterize(size int, unit float64, ss int, p paint) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, size, size))
	scale := unit / float64(size)
	n := float64(ss * ss)
	for py := 0; py < size; py++ {
		for px := 0; px < size; px++ {
			var r, g, b, a float64
			for sy := 0; sy < ss; sy++ {
				for sx := 0; sx < ss; sx++ {
					x := (float64(px) + (float64(sx)+0.5)/float64(ss)) * scale
					y := (float64(py) + (float64(sy)+0.5)/float64(ss)) * scale
					c := p(x, y)
					ca := float64(c.A) / 255
					r += float64(c.R) * ca
					g += float64(c.G) * ca
					b += float64(c.B) * ca
					a += ca
				}
			}
			if a == 0 {
				continue
			}
			img.SetNRGBA(px, py, color.NRGBA{
				R: uint8(math.Round(r / a)),
				G: uint8(math.Round(g / a)),
				B: uint8(math.Round(b / a)),
				A: uint8(math.Round(a / n * 255)),
			})
		}
	}
	return img
}

// Shapes, as "is the point inside" tests.

func roundRect(x, y, x0, y0, x1, y1, r float64) bool {
	if x < x0 || x > x1 || y < y0 || y > y1 {
		return false
	}
	cx := math.Max(x0+r, math.Min(x, x1-r))
	cy := math.Max(y0+r, math.Min(y, y1-r))
	return (x-cx)*(x-cx)+(y-cy)*(y-cy) <= r*r
}

func disc(x, y, cx, cy, r float64) bool {
	return (x-cx)*(x-cx)+(y-cy)*(y-cy) <= r*r
}

// Colours.
var (
	none     = color.NRGBA{}
	black    = color.NRGBA{A: 255}
	white    = color.NRGBA{R: 255, G: 255, B: 255, A: 255}
	slate    = color.NRGBA{R: 0x6e, G: 0x77, B: 0x81, A: 255}
	grey     = color.NRGBA{R: 0x8c, G: 0x95, B: 0x9f, A: 255}
	green    = color.NRGBA{R: 0x2e, G: 0xa0, B: 0x43, A: 255}
	amber    = color.NRGBA{R: 0xd2, G: 0x99, B: 0x22, A: 255}
	blue     = color.NRGBA{R: 0x1f, G: 0x6f, B: 0xeb, A: 255}
	red      = color.NRGBA{R: 0xcf, G: 0x22, B: 0x2e, A: 255}
	appTop   = color.NRGBA{R: 0x2b, G: 0x6c, B: 0xd6, A: 255}
	appBelow = color.NRGBA{R: 0x12, G: 0x36, B: 0x7a, A: 255}
)

// Tray glyph geometry, on a 22-unit grid.
const (
	unit = 22.0
	// badge: centre and radius of the state mark, and the radius of the
	// clear gap cut around it into the monitor.
	badgeX, badgeY, badgeR, badgeGap = 16.6, 15.6, 4.4, 5.9
)

// monitor reports whether a point is on the monitor glyph: a rounded
// frame, a neck and a foot.
func monitor(x, y float64) bool {
	outer := roundRect(x, y, 1.5, 2.5, 20.5, 15.5, 2.2)
	inner := roundRect(x, y, 3.2, 4.2, 18.8, 13.8, 0.8)
	neck := x >= 9.8 && x <= 12.2 && y >= 15.5 && y <= 18
	foot := roundRect(x, y, 6.2, 17.6, 15.8, 19.6, 1)
	return (outer && !inner) || neck || foot
}

// trayIcon draws one state's tray icon. template draws black + alpha.
func trayIcon(state string, size int, template bool) *image.NRGBA {
	body, mark := slate, black
	switch state {
	case "stopped":
		body = grey
	case "booting":
		mark = blue
	case "up":
		mark = green
	case "reconnecting":
		mark = amber
	case "error":
		mark = red
	}
	if template {
		body, mark = black, black
	}
	hasBadge := state == "up" || state == "reconnecting" || state == "error"
	return rasterize(size, unit, 8, func(x, y float64) color.NRGBA {
		if hasBadge {
			switch {
			case !disc(x, y, badgeX, badgeY, badgeGap):
				// outside the badge area: the monitor below
			case state == "up":
				if disc(x, y, badgeX, badgeY, badgeR) {
					return mark
				}
				return none
			case state == "reconnecting":
				return reconnectMark(x, y, mark)
			case state == "error":
				return errorMark(x, y, mark, template)
			}
		}
		if state == "booting" {
			for _, cx := range []float64{7, 11, 15} {
				if disc(x, y, cx, 9, 1.45) {
					return mark
				}
			}
		}
		if monitor(x, y) {
			return body
		}
		return none
	})
}

// reconnectMark is a ring with a gap and an arrow head: a circular arrow.
func reconnectMark(x, y float64, c color.NRGBA) color.NRGBA {
	dx, dy := x-badgeX, y-badgeY
	d := math.Hypot(dx, dy)
	ang := math.Atan2(-dy, dx) * 180 / math.Pi // 0 = right, 90 = up
	const rOut, rIn = 4.4, 2.6
	// Arrow head at the end of the ring (angle 100 deg), pointing
	// counter-clockwise.
	if arrowHead(x, y) {
		return c
	}
	if d <= rOut && d >= rIn && !(ang > 35 && ang < 100) {
		return c
	}
	return none
}

// arrowHead is a triangle at the top of the ring.
func arrowHead(x, y float64) bool {
	// Vertices on the 22-unit grid.
	ax, ay := badgeX+3.9, badgeY-3.3 // outer tip pointing right-down
	bx, by := badgeX+0.3, badgeY-5.8
	cx, cy := badgeX+0.3, badgeY-0.9
	return inTriangle(x, y, ax, ay, bx, by, cx, cy)
}

func inTriangle(x, y, ax, ay, bx, by, cx, cy float64) bool {
	s := func(px, py, qx, qy, rx, ry float64) float64 {
		return (px-rx)*(qy-ry) - (qx-rx)*(py-ry)
	}
	d1 := s(x, y, ax, ay, bx, by)
	d2 := s(x, y, bx, by, cx, cy)
	d3 := s(x, y, cx, cy, ax, ay)
	neg := d1 < 0 || d2 < 0 || d3 < 0
	pos := d1 > 0 || d2 > 0 || d3 > 0
	return !(neg && pos)
}

// errorMark is a filled dot with an exclamation mark (white in colour,
// cut out in the template).
func errorMark(x, y float64, c color.NRGBA, template bool) color.NRGBA {
	if !disc(x, y, badgeX, badgeY, badgeR+0.3) {
		return none
	}
	bar := roundRect(x, y, badgeX-0.75, badgeY-3.1, badgeX+0.75, badgeY+0.7, 0.6)
	dot := disc(x, y, badgeX, badgeY+2.3, 0.85)
	if bar || dot {
		if template {
			return none
		}
		return white
	}
	return c
}

// appIcon draws the application icon: a rounded square with a blue
// gradient, a white monitor and a green link dot.
func appIcon(size int) *image.NRGBA {
	const u = 1024.0
	return rasterize(size, u, 3, func(x, y float64) color.NRGBA {
		// macOS icon grid: 824x824 body centred in 1024, radius ~185.
		if !roundRect(x, y, 100, 100, 924, 924, 185) {
			return none
		}
		// The tray glyph scaled into the body (22 units -> 600 px).
		gx, gy := (x-212)*unit/600, (y-200)*unit/600
		if disc(gx, gy, badgeX, badgeY, badgeGap) {
			if disc(gx, gy, badgeX, badgeY, badgeR) {
				return green
			}
		} else if monitor(gx, gy) {
			return white
		}
		t := (y - 100) / 824
		return color.NRGBA{
			R: lerp(appTop.R, appBelow.R, t),
			G: lerp(appTop.G, appBelow.G, t),
			B: lerp(appTop.B, appBelow.B, t),
			A: 255,
		}
	})
}

func lerp(a, b uint8, t float64) uint8 {
	return uint8(math.Round(float64(a) + (float64(b)-float64(a))*t))
}
