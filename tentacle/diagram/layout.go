package diagram

import (
	"cmp"
	"fmt"
	"image"
	"math"
	"slices"

	"github.com/kraken-ops/kraken/tentacle"
)

// maxSide caps the picture's width and height; bigger DAGs get smaller
// boxes and text instead.
const maxSide = 4000

// metrics are the picture's sizes in pixels at a given scale.
type metrics struct {
	scale                   float64
	font, small, title      float64 // text sizes
	boxH, minBoxW, maxBoxW  float64
	padX, radius, border    float64
	colGap, rowGap, laneH   float64
	margin, titleH          float64
	line, arrowLen, arrowHW float64
}

func baseMetrics() metrics {
	return metrics{
		scale: 1,
		font:  15, small: 11, title: 17,
		boxH: 50, minBoxW: 110, maxBoxW: 240,
		padX: 14, radius: 9, border: 1.5,
		colGap: 76, rowGap: 22, laneH: 12,
		margin: 24, titleH: 40,
		line: 1.7, arrowLen: 10, arrowHW: 4.5,
	}
}

func (m metrics) scaled(s float64) metrics {
	return metrics{
		scale: s,
		font:  m.font * s, small: m.small * s, title: m.title * s,
		boxH: m.boxH * s, minBoxW: m.minBoxW * s, maxBoxW: m.maxBoxW * s,
		padX: m.padX * s, radius: m.radius * s, border: math.Max(m.border*s, 0.6),
		colGap: m.colGap * s, rowGap: m.rowGap * s, laneH: m.laneH * s,
		margin: m.margin * s, titleH: m.titleH * s,
		line: math.Max(m.line*s, 0.7), arrowLen: m.arrowLen * s, arrowHW: m.arrowHW * s,
	}
}

// point is a position in pixels; routes need sub-pixel precision.
type point struct{ x, y float64 }

// route is where one edge runs: from the source box's right side through
// any lanes it takes across intermediate columns to the target box's left
// side.
type route struct {
	from, to string
	pts      []point
}

// scene is a laid-out diagram, ready to paint.
type scene struct {
	m      metrics
	size   image.Point
	boxW   float64
	order  []string // node ids in paint order
	boxes  map[string]image.Rectangle
	routes []route

	title, subtitle string
}

// item is a slot in a column: a node, or a lane an edge uses to cross a
// column it skips (so it never runs through a box).
type item struct {
	node string // "" for a lane
}

// layout places the DAG and sizes the picture. Box widths follow the
// widest label (within limits); text is measured at the base size and
// scaled with everything else.
func layout(wf *tentacle.Workflow, stages [][]string, status map[string]Status) *scene {
	cols := columns(wf, stages)
	g := buildGraph(cols, edges(wf))
	g.order()

	base := baseMetrics()
	text := newFaces(base)
	widest := 0.0
	for _, col := range cols {
		for _, id := range col {
			widest = max(widest, text.labelWidth(id))
		}
	}
	if status != nil {
		// Status words sit under the id and must fit too; measuring all
		// of them keeps box widths the same from one run to the next.
		for _, st := range []Status{Pending, Running, Succeeded, Failed, Skipped} {
			widest = max(widest, text.statusWidth(string(st)))
		}
		for _, st := range status {
			widest = max(widest, text.statusWidth(string(st)))
		}
	}
	title, sub := titles(wf, g, status)
	titleW := text.titleWidth(title, sub)

	s := place(g, base, widest, titleW)
	if s.size.X > maxSide || s.size.Y > maxSide {
		k := math.Min(float64(maxSide)/float64(s.size.X), float64(maxSide)/float64(s.size.Y))
		// Rounding can push a side a pixel over the cap; shrink a little
		// more until it fits.
		for ; k > 0; k *= 0.99 {
			s = place(g, base.scaled(k), widest*k, titleW*k)
			if s.size.X <= maxSide && s.size.Y <= maxSide {
				break
			}
		}
	}
	s.title, s.subtitle = title, sub
	spreadPorts(s.routes, s.m)
	return s
}

// spreadPorts fans the ends of edges that share a box side out over that
// side, ordered by where the other end is, so they neither pile into one
// blob nor cross at the box.
func spreadPorts(rs []route, m metrics) {
	step := 10 * m.scale
	spread := func(ends []*point, key func(int) float64) {
		idx := make([]int, len(ends))
		for i := range idx {
			idx[i] = i
		}
		slices.SortStableFunc(idx, func(a, b int) int { return cmp.Compare(key(a), key(b)) })
		k := float64(len(ends) - 1)
		st := math.Min(step, 0.5*m.boxH/math.Max(k, 1))
		for rank, i := range idx {
			ends[i].y += (float64(rank) - k/2) * st
		}
	}
	type side struct {
		ends  []*point
		other []float64 // y of the neighbouring waypoint, the sort key
	}
	out, in := map[string]*side{}, map[string]*side{}
	add := func(sides map[string]*side, id string, end *point, other float64) {
		sd := sides[id]
		if sd == nil {
			sd = &side{}
			sides[id] = sd
		}
		sd.ends = append(sd.ends, end)
		sd.other = append(sd.other, other)
	}
	for i := range rs {
		pts := rs[i].pts
		n := len(pts)
		add(out, rs[i].from, &pts[0], pts[1].y)
		add(in, rs[i].to, &pts[n-1], pts[n-2].y)
	}
	for _, sides := range []map[string]*side{out, in} {
		for _, sd := range sides {
			if len(sd.ends) > 1 {
				spread(sd.ends, func(i int) float64 { return sd.other[i] })
			}
		}
	}
}

// graph is the columns with lanes added, in drawing order.
type graph struct {
	items []item
	cols  [][]int // item indices per column
	up    [][]int // item -> items it links to in the column before
	down  [][]int // item -> items it links to in the column after
	// chains holds, per edge, the items it passes: source, lanes, target.
	// A nil chain means an end is missing and the edge is not drawn.
	chains [][]int
	edges  []tentacle.Edge
}

func buildGraph(cols [][]string, es []tentacle.Edge) *graph {
	g := &graph{cols: make([][]int, len(cols)), edges: es}
	where := map[string][2]int{} // id -> column, item
	for c, col := range cols {
		for _, id := range col {
			where[id] = [2]int{c, g.add(c, id)}
		}
	}
	for _, e := range es {
		from, ok1 := where[e.From]
		to, ok2 := where[e.To]
		if !ok1 || !ok2 {
			g.chains = append(g.chains, nil)
			continue
		}
		chain := []int{from[1]}
		// Only forward edges get lanes; a backward edge (never produced
		// by the engine's stages) is drawn straight across.
		for c := from[0] + 1; c < to[0]; c++ {
			chain = append(chain, g.add(c, ""))
		}
		chain = append(chain, to[1])
		if from[0] < to[0] {
			for i := 1; i < len(chain); i++ {
				a, b := chain[i-1], chain[i]
				g.down[a] = append(g.down[a], b)
				g.up[b] = append(g.up[b], a)
			}
		}
		g.chains = append(g.chains, chain)
	}
	return g
}

func (g *graph) add(col int, node string) int {
	g.items = append(g.items, item{node: node})
	g.up = append(g.up, nil)
	g.down = append(g.down, nil)
	g.cols[col] = append(g.cols[col], len(g.items)-1)
	return len(g.items) - 1
}

// order reorders every column to cut edge crossings, with the classic
// barycenter heuristic: alternately sweep right and left, sorting each
// column by the mean position of its neighbours, and keep the best order
// seen. Ties keep the current order, so a DAG without crossings keeps
// the stage order it came with.
func (g *graph) order() {
	best := g.crossings()
	bestCols := cloneCols(g.cols)
	for pass := 0; pass < 8 && best > 0; pass++ {
		pos := g.positions()
		if pass%2 == 0 {
			for c := 1; c < len(g.cols); c++ {
				g.sortColumn(c, g.up, pos)
			}
		} else {
			for c := len(g.cols) - 2; c >= 0; c-- {
				g.sortColumn(c, g.down, pos)
			}
		}
		if n := g.crossings(); n < best {
			best, bestCols = n, cloneCols(g.cols)
		}
	}
	g.cols = bestCols
}

func cloneCols(cols [][]int) [][]int {
	out := make([][]int, len(cols))
	for i, c := range cols {
		out[i] = slices.Clone(c)
	}
	return out
}

// positions gives each item its place in its column, centred on zero so
// that columns of different lengths line up the way they are drawn.
func (g *graph) positions() []float64 {
	pos := make([]float64, len(g.items))
	for _, col := range g.cols {
		for i, it := range col {
			pos[it] = float64(i) - float64(len(col)-1)/2
		}
	}
	return pos
}

// sortColumn sorts column c by barycenter; pos is updated as it goes so the
// next column in the sweep sees the new order.
func (g *graph) sortColumn(c int, nbrs [][]int, pos []float64) {
	col := g.cols[c]
	bary := make(map[int]float64, len(col))
	for _, it := range col {
		if len(nbrs[it]) == 0 {
			bary[it] = pos[it]
			continue
		}
		sum := 0.0
		for _, n := range nbrs[it] {
			sum += pos[n]
		}
		bary[it] = sum / float64(len(nbrs[it]))
	}
	slices.SortStableFunc(col, func(a, b int) int {
		switch {
		case bary[a] < bary[b]:
			return -1
		case bary[a] > bary[b]:
			return 1
		}
		return 0
	})
	for i, it := range col {
		pos[it] = float64(i) - float64(len(col)-1)/2
	}
}

// crossings counts pairs of links between neighbouring columns that cross.
func (g *graph) crossings() int {
	idx := make([]int, len(g.items))
	for _, col := range g.cols {
		for i, it := range col {
			idx[it] = i
		}
	}
	n := 0
	for _, col := range g.cols {
		var links [][2]int
		for _, a := range col {
			for _, b := range g.down[a] {
				links = append(links, [2]int{idx[a], idx[b]})
			}
		}
		for i := range links {
			for j := i + 1; j < len(links); j++ {
				if (links[i][0]-links[j][0])*(links[i][1]-links[j][1]) < 0 {
					n++
				}
			}
		}
	}
	return n
}

// place computes coordinates for one scale.
func place(g *graph, m metrics, widest, titleW float64) *scene {
	boxW := math.Min(math.Max(widest+2*m.padX, m.minBoxW), m.maxBoxW)
	slotH := func(it int) float64 {
		if g.items[it].node == "" {
			return m.laneH
		}
		return m.boxH
	}
	colH := make([]float64, len(g.cols))
	contentH := 0.0
	for c, col := range g.cols {
		for i, it := range col {
			if i > 0 {
				colH[c] += m.rowGap
			}
			colH[c] += slotH(it)
		}
		contentH = max(contentH, colH[c])
	}
	n := float64(len(g.cols))
	contentW := n*boxW + max(n-1, 0)*m.colGap
	width := math.Max(contentW, titleW) + 2*m.margin
	height := m.margin + m.titleH + contentH + m.margin

	s := &scene{
		m:     m,
		size:  image.Pt(int(math.Ceil(width)), int(math.Ceil(height))),
		boxW:  boxW,
		boxes: make(map[string]image.Rectangle),
	}
	left := m.margin + (width-2*m.margin-contentW)/2
	top := m.margin + m.titleH
	mid := make([]point, len(g.items)) // centre of each slot
	for c, col := range g.cols {
		x := left + float64(c)*(boxW+m.colGap)
		y := top + (contentH-colH[c])/2
		for _, it := range col {
			h := slotH(it)
			mid[it] = point{x + boxW/2, y + h/2}
			if id := g.items[it].node; id != "" {
				s.order = append(s.order, id)
				s.boxes[id] = image.Rect(
					int(math.Round(x)), int(math.Round(y)),
					int(math.Round(x+boxW)), int(math.Round(y+h)))
			}
			y += h + m.rowGap
		}
	}
	for i, chain := range g.chains {
		if chain == nil {
			continue
		}
		e := g.edges[i]
		src, dst := s.boxes[e.From], s.boxes[e.To]
		pts := []point{{float64(src.Max.X), centreY(src)}}
		for _, lane := range chain[1 : len(chain)-1] {
			p := mid[lane]
			// Whole-pixel ends make the pieces of a route meet without
			// an anti-aliasing seam.
			pts = append(pts, point{math.Round(p.x - boxW/2), p.y}, point{math.Round(p.x + boxW/2), p.y})
		}
		pts = append(pts, point{float64(dst.Min.X), centreY(dst)})
		s.routes = append(s.routes, route{from: e.From, to: e.To, pts: pts})
	}
	return s
}

func centreY(r image.Rectangle) float64 { return float64(r.Min.Y+r.Max.Y) / 2 }

// titles returns the title ("name v1.2") and a short summary beside it:
// the node count, and how many nodes are in each status when there is
// a run to show.
func titles(wf *tentacle.Workflow, g *graph, status map[string]Status) (string, string) {
	title := "workflow"
	if wf != nil && wf.Name != "" {
		title = wf.Name
	}
	if wf != nil && wf.Version != "" {
		v := wf.Version
		if v[0] != 'v' {
			v = "v" + v
		}
		title += " " + v
	}
	nodes := 0
	counts := map[Status]int{}
	for _, it := range g.items {
		if it.node != "" {
			nodes++
			counts[status[it.node]]++
		}
	}
	sub := fmt.Sprintf("%d nodes", nodes)
	if nodes == 1 {
		sub = "1 node"
	}
	if status != nil {
		for _, st := range []Status{Succeeded, Running, Failed, Pending, Skipped} {
			if counts[st] > 0 {
				sub += fmt.Sprintf(" · %d %s", counts[st], st)
			}
		}
	}
	return title, sub
}
