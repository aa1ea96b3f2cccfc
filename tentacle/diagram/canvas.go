package diagram

import (
	"image"
	"image/color"
	"math"

	"golang.org/x/image/vector"
)

// canvas fills anti-aliased shapes with golang.org/x/image/vector. Each
// shape is rasterized in a buffer the size of its own bounds, not the
// whole picture, which for a 4000 px picture would be 64 MB per shape.
type canvas struct {
	img *image.RGBA
	z   vector.Rasterizer
}

// shape is a path in picture coordinates; every sub-path must be closed.
type shape struct {
	ops []pathOp
}

type pathOp struct {
	kind byte // 'M', 'L', 'C', 'Z'
	p    [3]point
}

func (s *shape) moveTo(p point) { s.ops = append(s.ops, pathOp{kind: 'M', p: [3]point{p}}) }
func (s *shape) lineTo(p point) { s.ops = append(s.ops, pathOp{kind: 'L', p: [3]point{p}}) }
func (s *shape) close()         { s.ops = append(s.ops, pathOp{kind: 'Z'}) }

func (s *shape) cubeTo(c1, c2, p point) {
	s.ops = append(s.ops, pathOp{kind: 'C', p: [3]point{c1, c2, p}})
}

func (op pathOp) points() []point {
	switch op.kind {
	case 'C':
		return op.p[:3]
	case 'Z':
		return nil
	}
	return op.p[:1]
}

// bounds covers every point, control points included: a Bézier curve lies
// inside its control polygon.
func (s *shape) bounds() image.Rectangle {
	x0, y0 := math.Inf(1), math.Inf(1)
	x1, y1 := math.Inf(-1), math.Inf(-1)
	for _, op := range s.ops {
		for _, p := range op.points() {
			x0, y0 = math.Min(x0, p.x), math.Min(y0, p.y)
			x1, y1 = math.Max(x1, p.x), math.Max(y1, p.y)
		}
	}
	if x0 > x1 {
		return image.Rectangle{}
	}
	return image.Rect(int(math.Floor(x0))-1, int(math.Floor(y0))-1, int(math.Ceil(x1))+1, int(math.Ceil(y1))+1)
}

func (c *canvas) fill(s *shape, col color.RGBA) {
	// The rasterizer's fast path writes straight into Pix, so the target
	// rectangle must lie inside the picture.
	r := s.bounds().Intersect(c.img.Bounds())
	if r.Empty() {
		return
	}
	c.z.Reset(r.Dx(), r.Dy())
	ox, oy := float64(r.Min.X), float64(r.Min.Y)
	at := func(p point) (float32, float32) { return float32(p.x - ox), float32(p.y - oy) }
	for _, op := range s.ops {
		switch op.kind {
		case 'M':
			c.z.MoveTo(at(op.p[0]))
		case 'L':
			c.z.LineTo(at(op.p[0]))
		case 'C':
			ax, ay := at(op.p[0])
			bx, by := at(op.p[1])
			cx, cy := at(op.p[2])
			c.z.CubeTo(ax, ay, bx, by, cx, cy)
		case 'Z':
			c.z.ClosePath()
		}
	}
	c.z.Draw(c.img, r, image.NewUniform(col), image.Point{})
}

// roundRect is a rectangle with corners of radius rad, drawn as cubic
// quarter circles.
func roundRect(x0, y0, x1, y1, rad float64) *shape {
	rad = math.Max(0, math.Min(rad, math.Min(x1-x0, y1-y0)/2))
	k := rad * 0.5523 // control distance for a quarter circle
	s := &shape{}
	s.moveTo(point{x0 + rad, y0})
	s.lineTo(point{x1 - rad, y0})
	s.cubeTo(point{x1 - rad + k, y0}, point{x1, y0 + rad - k}, point{x1, y0 + rad})
	s.lineTo(point{x1, y1 - rad})
	s.cubeTo(point{x1, y1 - rad + k}, point{x1 - rad + k, y1}, point{x1 - rad, y1})
	s.lineTo(point{x0 + rad, y1})
	s.cubeTo(point{x0 + rad - k, y1}, point{x0, y1 - rad + k}, point{x0, y1 - rad})
	s.lineTo(point{x0, y0 + rad})
	s.cubeTo(point{x0, y0 + rad - k}, point{x0 + rad - k, y0}, point{x0 + rad, y0})
	s.close()
	return s
}

// box draws a node's box: a soft shadow, then the border colour, then
// the fill inset by the border width (filled shapes anti-alias better
// than stroked outlines).
func (c *canvas) box(r image.Rectangle, p palette, m metrics) {
	x0, y0, x1, y1 := float64(r.Min.X), float64(r.Min.Y), float64(r.Max.X), float64(r.Max.Y)
	if off := 1.5 * m.scale; off >= 0.5 {
		c.fill(roundRect(x0, y0+off, x1, y1+off, m.radius), shadow)
	}
	c.fill(roundRect(x0, y0, x1, y1, m.radius), p.border)
	b := m.border
	c.fill(roundRect(x0+b, y0+b, x1-b, y1-b, m.radius-b), p.fill)
}

// edge draws a route as smooth S-curves between its points, leaving
// and entering every point horizontally, with an arrow head on the last.
func (c *canvas) edge(pts []point, m metrics) {
	for i := 1; i < len(pts); i++ {
		a, b := pts[i-1], pts[i]
		last := i == len(pts)-1
		if last {
			b.x -= m.arrowLen
		}
		c.fill(stroke(curve(a, b, m), m.line), edgeColour)
	}
	if len(pts) < 2 {
		return
	}
	tip := pts[len(pts)-1]
	tip.x -= 0.5 // just touch the border, do not bite into it
	s := &shape{}
	s.moveTo(tip)
	s.lineTo(point{tip.x - m.arrowLen, tip.y - m.arrowHW})
	s.lineTo(point{tip.x - m.arrowLen, tip.y + m.arrowHW})
	s.close()
	c.fill(s, edgeColour)
}

// curve flattens the cubic from a to b with horizontal tangents at both
// ends. A backward edge (b left of a) bulges out so it stays visible.
func curve(a, b point, m metrics) []point {
	d := math.Max(math.Abs(b.x-a.x)/2, 16*m.scale)
	c1, c2 := point{a.x + d, a.y}, point{b.x - d, b.y}
	if a.y == b.y && b.x >= a.x {
		return []point{a, b}
	}
	n := int(math.Hypot(b.x-a.x, b.y-a.y) / 4)
	n = min(max(n, 8), 96)
	out := make([]point, n+1)
	for i := range out {
		t := float64(i) / float64(n)
		u := 1 - t
		w0, w1, w2, w3 := u*u*u, 3*u*u*t, 3*u*t*t, t*t*t
		out[i] = point{
			w0*a.x + w1*c1.x + w2*c2.x + w3*b.x,
			w0*a.y + w1*c1.y + w2*c2.y + w3*b.y,
		}
	}
	return out
}

// stroke outlines a polyline of width w: offset one way going forward and
// the other way coming back. Good enough for the gentle curves edges are;
// the ends are square.
func stroke(pts []point, w float64) *shape {
	n := len(pts)
	left := make([]point, n)
	right := make([]point, n)
	for i := range pts {
		p, q := pts[max(i-1, 0)], pts[min(i+1, n-1)]
		tx, ty := q.x-p.x, q.y-p.y
		l := math.Hypot(tx, ty)
		if l == 0 {
			tx, ty, l = 1, 0, 1
		}
		nx, ny := -ty/l*w/2, tx/l*w/2
		left[i] = point{pts[i].x + nx, pts[i].y + ny}
		right[i] = point{pts[i].x - nx, pts[i].y - ny}
	}
	s := &shape{}
	s.moveTo(left[0])
	for _, p := range left[1:] {
		s.lineTo(p)
	}
	for i := n - 1; i >= 0; i-- {
		s.lineTo(right[i])
	}
	s.close()
	return s
}
