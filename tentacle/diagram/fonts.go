package diagram

import (
	"sync"

	"golang.org/x/image/font"
	"golang.org/x/image/font/gofont/gobold"
	"golang.org/x/image/font/gofont/gomedium"
	"golang.org/x/image/font/gofont/goregular"
	"golang.org/x/image/font/opentype"
)

// minTextPx is the smallest text worth drawing; below it a huge DAG shows
// boxes and edges only.
const minTextPx = 4

// goFonts are the embedded Go fonts, parsed once. Parsed fonts are safe
// for concurrent use; the faces made from them are not, so every drawing
// gets its own.
var goFonts = sync.OnceValue(func() [3]*opentype.Font {
	var fs [3]*opentype.Font
	for i, ttf := range [][]byte{goregular.TTF, gomedium.TTF, gobold.TTF} {
		f, err := opentype.Parse(ttf)
		if err != nil {
			// The fonts are compiled in; failing to parse them is a
			// broken build, not a runtime condition.
			panic("diagram: parsing embedded Go font: " + err.Error())
		}
		fs[i] = f
	}
	return fs
})

// faces are the four text styles of a diagram at one scale.
type faces struct {
	label, status, title, sub font.Face
	gap                       float64 // between title and summary
	ok                        bool    // large enough to draw
}

func newFaces(m metrics) *faces {
	fs := goFonts()
	return &faces{
		label:  newFace(fs[1], m.font),
		status: newFace(fs[0], m.small),
		title:  newFace(fs[2], m.title),
		sub:    newFace(fs[0], m.small*1.2),
		gap:    10 * m.scale,
		ok:     m.small >= minTextPx,
	}
}

func newFace(f *opentype.Font, px float64) font.Face {
	face, err := opentype.NewFace(f, &opentype.FaceOptions{
		Size: max(px, 1),
		DPI:  72, // so Size is in pixels
		// Full hinting snaps stems to pixels: sharper small text, which
		// matters once Slack scales the picture down.
		Hinting: font.HintingFull,
	})
	if err != nil {
		panic("diagram: " + err.Error()) // only for a non-positive size
	}
	return face
}

func (f *faces) labelWidth(s string) float64 { return fixedToF(font.MeasureString(f.label, s)) }

func (f *faces) statusWidth(s string) float64 { return fixedToF(font.MeasureString(f.status, s)) }

func (f *faces) titleWidth(title, sub string) float64 {
	return fixedToF(font.MeasureString(f.title, title)) + f.gap + fixedToF(font.MeasureString(f.sub, sub))
}
