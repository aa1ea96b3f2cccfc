package diagram

import (
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"io"
	"math"

	"github.com/kraken-ops/kraken/tentacle"
	"golang.org/x/image/font"
	"golang.org/x/image/math/fixed"
)

// PNG draws the DAG left to right, one column per stage, each node a box
// coloured by its status in status (which may be nil, for a workflow that
// has not run), with the workflow's name and version on top. The picture
// is at most 4000 px a side: a bigger DAG gets smaller boxes and text. It
// uses no cgo and no external programs.
func PNG(w io.Writer, wf *tentacle.Workflow, stages [][]string, status map[string]Status) error {
	s := layout(wf, stages, status)
	img := image.NewRGBA(image.Rectangle{Max: s.size})
	paint(img, s, status)
	// Every pixel is opaque, so the encoder writes RGB; BestSpeed keeps a
	// 4000 px picture quick while flat colours still compress well.
	enc := png.Encoder{CompressionLevel: png.BestSpeed}
	return enc.Encode(w, img)
}

// palette is how one status looks.
type palette struct {
	fill, border, text, note color.RGBA
}

func rgb(hex uint32) color.RGBA {
	return color.RGBA{uint8(hex >> 16), uint8(hex >> 8), uint8(hex), 0xff}
}

var (
	// neutral is for a workflow drawn without a run.
	neutral  = palette{rgb(0xdde2e8), rgb(0x8a94a3), rgb(0x1f2937), rgb(0x4b5563)}
	palettes = map[Status]palette{
		Pending:   {rgb(0xf2f3f5), rgb(0xc3c8cf), rgb(0x4b5563), rgb(0x6b7280)},
		Skipped:   {rgb(0xf2f3f5), rgb(0xd3d7dc), rgb(0x9ca3af), rgb(0x9ca3af)},
		Running:   {rgb(0xbcd7fd), rgb(0x2563eb), rgb(0x1e3a8a), rgb(0x1d4ed8)},
		Succeeded: {rgb(0xb4efc8), rgb(0x16a34a), rgb(0x14532d), rgb(0x15803d)},
		Failed:    {rgb(0xfcc5c5), rgb(0xdc2626), rgb(0x7f1d1d), rgb(0xb91c1c)},
	}
	background = rgb(0xffffff)
	edgeColour = rgb(0x6b7280)
	titleInk   = rgb(0x111827)
	subInk     = rgb(0x6b7280)
	shadow     = color.RGBA{0, 0, 0, 0x16}
)

func paletteFor(st Status, ok bool) palette {
	if p, known := palettes[st]; ok && known {
		return p
	}
	return neutral
}

func paint(img *image.RGBA, s *scene, status map[string]Status) {
	draw.Draw(img, img.Bounds(), image.NewUniform(background), image.Point{}, draw.Src)
	c := &canvas{img: img}
	f := newFaces(s.m)
	m := s.m

	if f.ok {
		ascent := fixedToF(f.title.Metrics().Ascent)
		base := m.margin + ascent
		x := m.margin
		x = drawText(img, f.title, s.title, x, base, titleInk)
		drawText(img, f.sub, s.subtitle, x+10*m.scale, base, subInk)
	}

	for _, r := range s.routes {
		c.edge(r.pts, m)
	}
	for _, id := range s.order {
		st, ok := status[id]
		c.box(s.boxes[id], paletteFor(st, ok), m)
		if f.ok {
			label(img, f, s.boxes[id], id, st, ok, paletteFor(st, ok), m)
		}
	}
}

// label writes a box's id, and under it the status word when there is
// one. The two lines sit either side of the box's centre line, which
// stays the fill colour.
func label(img *image.RGBA, f *faces, r image.Rectangle, id string, st Status, ok bool, p palette, m metrics) {
	maxW := float64(r.Dx()) - 2*m.padX*0.6
	id = truncate(f.label, id, maxW)
	cx := float64(r.Min.X+r.Max.X) / 2
	cy := centreY(r)
	la, ld := metricsOf(f.label)
	if !ok || st == "" {
		// Centre the x-height band rather than ascent+descent: ids are
		// lower case, and this is what looks centred.
		base := cy + (la-ld)/2 - 0.5
		drawCentred(img, f.label, id, cx, base, p.text)
		return
	}
	gap := math.Max(3*m.scale, 1)
	drawCentred(img, f.label, id, cx, cy-gap/2-ld+1, p.text)
	sa, _ := metricsOf(f.status)
	// The status word has no capitals; its ascent over-states how tall
	// it looks, so pull it up a little.
	drawCentred(img, f.status, string(st), cx, cy+gap/2+sa*0.8, p.note)
}

func metricsOf(face font.Face) (ascent, descent float64) {
	mt := face.Metrics()
	return fixedToF(mt.Ascent), fixedToF(mt.Descent)
}

func fixedToF(v fixed.Int26_6) float64 { return float64(v) / 64 }

func drawCentred(img *image.RGBA, face font.Face, s string, cx, baseline float64, col color.RGBA) {
	w := fixedToF(font.MeasureString(face, s))
	drawText(img, face, s, cx-w/2, baseline, col)
}

// drawText draws s with its baseline at y and returns where the pen ends.
func drawText(img *image.RGBA, face font.Face, s string, x, y float64, col color.RGBA) float64 {
	d := font.Drawer{
		Dst:  img,
		Src:  image.NewUniform(col),
		Face: face,
		// Whole pixels keep hinted glyphs crisp.
		Dot: fixed.P(int(math.Round(x)), int(math.Round(y))),
	}
	d.DrawString(s)
	return fixedToF(d.Dot.X)
}

// truncate shortens s with an ellipsis until it fits in maxW pixels.
func truncate(face font.Face, s string, maxW float64) string {
	fits := func(t string) bool { return fixedToF(font.MeasureString(face, t)) <= maxW }
	if fits(s) {
		return s
	}
	r := []rune(s)
	for len(r) > 0 {
		r = r[:len(r)-1]
		if t := string(r) + "…"; fits(t) {
			return t
		}
	}
	return "…"
}
