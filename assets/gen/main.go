// Command gen draws vmnetbar's icons and writes them as PNG files:
//
//	icons/<state>.png            22x22, coloured (Linux tray)
//	icons/<state>@2x.png         44x44, coloured
//	icons/<state>-template.png   16x16, black + alpha (macOS template image)
//	icons/<state>-template@2x.png 32x32, black + alpha (what the menu bar shows)
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
			g        *glyph
			size     int
			template bool
		}{
			{"", &linux, 22, false},
			{"@2x", &linux, 44, false},
			{"-template", &mac, 16, true},
			{"-template@2x", &mac, 32, true},
		} {
			b, err := encode(trayIcon(v.g, st, v.size, v.template))
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

// glyph is the tray glyph's geometry on a unit x unit grid: a monitor
// (rounded frame, neck, foot), three dots for booting and a badge at the
// bottom right for the other states' marks. The marks are drawn relative
// to the badge's centre and radius.
type glyph struct {
	unit float64

	outer, inner   rect // the frame: outer edge, screen
	neck, foot     rect
	outerR, innerR float64
	footR          float64

	dotsX       []float64 // booting: the dots' centres
	dotsY, dotR float64

	// badge: centre and radius of the state mark, and the radius of the
	// clear gap cut around it into the monitor.
	badgeX, badgeY, badgeR, badgeGap float64
	// reconnecting: a ring (inner radius; outer radius badgeR) open
	// between two angles (degrees, 0 = right, 90 = up), with an arrow head
	// (a triangle, vertices relative to the badge centre) at one end.
	ringIn  float64
	ringGap [2]float64
	arrow   [3][2]float64
	// error: the exclamation mark's bar (half width, top and bottom,
	// relative to the centre) and dot (centre offset and radius).
	barW, barTop, barBot, excDotY, excDotR float64
}

type rect struct{ x0, y0, x1, y1 float64 }

// linux is the 22-unit glyph of the coloured icons (Linux panels draw
// tray icons at 22 px and more) and of the app icon.
var linux = glyph{
	unit:   22,
	outer:  rect{1.5, 2.5, 20.5, 15.5},
	inner:  rect{3.2, 4.2, 18.8, 13.8},
	neck:   rect{9.8, 15.5, 12.2, 18},
	foot:   rect{6.2, 17.6, 15.8, 19.6},
	outerR: 2.2, innerR: 0.8, footR: 1,
	dotsX: []float64{7, 11, 15}, dotsY: 9, dotR: 1.45,
	badgeX: 16.6, badgeY: 15.6, badgeR: 4.4, badgeGap: 5.9,
	ringIn: 2.6, ringGap: [2]float64{35, 100},
	arrow: [3][2]float64{{3.9, -3.3}, {0.3, -5.8}, {0.3, -0.9}},
	barW:  0.75, barTop: -3.1, barBot: 0.7, excDotY: 2.3, excDotR: 0.85,
}

// mac is the glyph of the macOS template icons. systray shows the status
// item's image at 16x16 pt, so the glyph is drawn for 16 pt (16 px, and
// 32 px on Retina screens) with its straight edges on the half-point grid:
// every edge falls on a pixel boundary at 2x, most of them at 1x too.
var mac = glyph{
	unit:   16,
	outer:  rect{0.5, 1.5, 15.5, 11.5},
	inner:  rect{2, 3, 14, 10},
	neck:   rect{7, 11.5, 9, 13},
	foot:   rect{4, 13, 12, 14.5},
	outerR: 2, innerR: 0.5, footR: 0.75,
	dotsX: []float64{5, 8, 11}, dotsY: 6.5, dotR: 1,
	badgeX: 12, badgeY: 11.5, badgeR: 3.5, badgeGap: 4.5,
	// The arrow head's base stands across the ring's top end, reaching
	// 1.5 units beyond the ring's middle on each side; its tip points
	// clockwise along the ring.
	ringIn: 2, ringGap: [2]float64{30, 90},
	arrow: [3][2]float64{{1.75, -2.75}, {0, -4.25}, {0, -1.25}},
	barW:  0.5, barTop: -2.5, barBot: 0.5, excDotY: 1.75, excDotR: 0.75,
}

// monitor reports whether a point is on the monitor glyph: a rounded
// frame, a neck and a foot.
func (g *glyph) monitor(x, y float64) bool {
	o, i, n, f := g.outer, g.inner, g.neck, g.foot
	outer := roundRect(x, y, o.x0, o.y0, o.x1, o.y1, g.outerR)
	inner := roundRect(x, y, i.x0, i.y0, i.x1, i.y1, g.innerR)
	neck := x >= n.x0 && x <= n.x1 && y >= n.y0 && y <= n.y1
	foot := roundRect(x, y, f.x0, f.y0, f.x1, f.y1, g.footR)
	return (outer && !inner) || neck || foot
}

// trayIcon draws one state's tray icon on the glyph's grid. template
// draws black + alpha.
func trayIcon(g *glyph, state string, size int, template bool) *image.NRGBA {
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
	return rasterize(size, g.unit, 8, func(x, y float64) color.NRGBA {
		if hasBadge {
			switch {
			case !disc(x, y, g.badgeX, g.badgeY, g.badgeGap):
				// outside the badge area: the monitor below
			case state == "up":
				if disc(x, y, g.badgeX, g.badgeY, g.badgeR) {
					return mark
				}
				return none
			case state == "reconnecting":
				return g.reconnectMark(x, y, mark)
			case state == "error":
				return g.errorMark(x, y, mark, template)
			}
		}
		if state == "booting" {
			for _, cx := range g.dotsX {
				if disc(x, y, cx, g.dotsY, g.dotR) {
					return mark
				}
			}
		}
		if g.monitor(x, y) {
			return body
		}
		return none
	})
}

// reconnectMark is a ring with a gap and an arrow head: a circular arrow.
func (g *glyph) reconnectMark(x, y float64, c color.NRGBA) color.NRGBA {
	dx, dy := x-g.badgeX, y-g.badgeY
	d := math.Hypot(dx, dy)
	ang := math.Atan2(-dy, dx) * 180 / math.Pi // 0 = right, 90 = up
	a := g.arrow
	if inTriangle(dx, dy, a[0][0], a[0][1], a[1][0], a[1][1], a[2][0], a[2][1]) {
		return c
	}
	if d <= g.badgeR && d >= g.ringIn && !(ang > g.ringGap[0] && ang < g.ringGap[1]) {
		return c
	}
	return none
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
func (g *glyph) errorMark(x, y float64, c color.NRGBA, template bool) color.NRGBA {
	bx, by := g.badgeX, g.badgeY
	if !disc(x, y, bx, by, g.badgeR+0.3) {
		return none
	}
	bar := roundRect(x, y, bx-g.barW, by+g.barTop, bx+g.barW, by+g.barBot, math.Min(0.6, g.barW))
	dot := disc(x, y, bx, by+g.excDotY, g.excDotR)
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
		g := &linux
		gx, gy := (x-212)*g.unit/600, (y-200)*g.unit/600
		if disc(gx, gy, g.badgeX, g.badgeY, g.badgeGap) {
			if disc(gx, gy, g.badgeX, g.badgeY, g.badgeR) {
				return green
			}
		} else if g.monitor(gx, gy) {
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
