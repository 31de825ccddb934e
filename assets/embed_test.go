package assets

import (
	"bytes"
	"image"
	"image/png"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func decode(t *testing.T, name string, b []byte) image.Image {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("%s: not a PNG: %v", name, err)
	}
	return img
}

func TestTrayIcons(t *testing.T) {
	for _, ic := range Icons {
		imgs, err := Tray(ic)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			name     string
			b        []byte
			size     int
			template bool
		}{
			{"regular", imgs.Regular, 22, false},
			{"regular@2x", imgs.Regular2x, 44, false},
			// systray shows the macOS status item at 16x16 pt.
			{"template", imgs.Template, 16, true},
			{"template@2x", imgs.Template2x, 32, true},
		} {
			img := decode(t, string(ic)+" "+c.name, c.b)
			if got := img.Bounds().Size(); got != image.Pt(c.size, c.size) {
				t.Errorf("%s %s: size %v, want %dx%d", ic, c.name, got, c.size, c.size)
			}
			opaque, coloured := 0, 0
			for y := 0; y < c.size; y++ {
				for x := 0; x < c.size; x++ {
					r, g, b, a := img.At(x, y).RGBA()
					if a == 0 {
						continue
					}
					if a > 0x8000 {
						opaque++
					}
					if r != 0 || g != 0 || b != 0 {
						coloured++
					}
				}
			}
			if opaque < c.size*c.size/10 {
				t.Errorf("%s %s: only %d opaque pixels: the glyph is missing", ic, c.name, opaque)
			}
			if c.template && coloured > 0 {
				t.Errorf("%s %s: %d non-black pixels in a template image", ic, c.name, coloured)
			}
			if !c.template && coloured == 0 {
				t.Errorf("%s %s: no colour in a regular image", ic, c.name)
			}
		}
	}
}

// TestTemplateIconsSharp checks that the macOS menu-bar icons are drawn
// for 32 px rather than scaled down from a larger glyph: on a glyph whose
// edges fall on the pixel grid, most covered pixels are fully opaque. A
// glyph drawn for 22 or 44 px and rendered at 32 px has about half its
// pixels blurred into partial alpha.
func TestTemplateIconsSharp(t *testing.T) {
	for _, ic := range Icons {
		imgs, err := Tray(ic)
		if err != nil {
			t.Fatal(err)
		}
		img := decode(t, string(ic)+" template@2x", imgs.Template2x)
		b := img.Bounds()
		solid, partial := 0, 0
		for y := b.Min.Y; y < b.Max.Y; y++ {
			for x := b.Min.X; x < b.Max.X; x++ {
				switch _, _, _, a := img.At(x, y).RGBA(); {
				case a == 0xffff:
					solid++
				case a > 0:
					partial++
				}
			}
		}
		if frac := float64(partial) / float64(solid+partial); frac > 0.4 {
			t.Errorf("%s template@2x: %d of %d covered pixels (%.0f%%) are partly transparent: the glyph is blurred, not drawn for 32 px",
				ic, partial, solid+partial, frac*100)
		}
	}
}

func TestTrayIconsDiffer(t *testing.T) {
	seen := map[string]Icon{}
	for _, ic := range Icons {
		imgs, err := Tray(ic)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range [][]byte{imgs.Template, imgs.Regular} {
			if other, dup := seen[string(b)]; dup {
				t.Errorf("icons %s and %s are identical", ic, other)
			}
			seen[string(b)] = ic
		}
	}
}

func TestTrayUnknown(t *testing.T) {
	if _, err := Tray("nonsense"); err == nil {
		t.Fatal("Tray(nonsense) returned no error")
	}
}

func TestAppIcon(t *testing.T) {
	img := decode(t, "appicon", AppIcon())
	if got := img.Bounds().Size(); got != image.Pt(1024, 1024) {
		t.Fatalf("appicon size %v, want 1024x1024", got)
	}
}
