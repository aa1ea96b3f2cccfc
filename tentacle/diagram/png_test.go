package diagram

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/kraken-ops/kraken/tentacle"
)

func render(t testing.TB, wf *tentacle.Workflow, stages [][]string, status map[string]Status) image.Image {
	t.Helper()
	var buf bytes.Buffer
	if err := PNG(&buf, wf, stages, status); err != nil {
		t.Fatalf("PNG: %v", err)
	}
	img, err := png.Decode(&buf)
	if err != nil {
		t.Fatalf("decoding the PNG: %v", err)
	}
	return img
}

func rgbaAt(img image.Image, x, y int) color.RGBA {
	return color.RGBAModel.Convert(img.At(x, y)).(color.RGBA)
}

func TestPNGStatusColours(t *testing.T) {
	wf := newWorkflow("diamond", "1.0", []string{"fetch", "left", "middle", "right", "join", "idle"},
		"fetch>left", "fetch>middle", "fetch>right", "left>join", "middle>join", "right>join")
	stages := [][]string{{"fetch", "idle"}, {"left", "middle", "right"}, {"join"}}
	status := map[string]Status{
		"fetch": Succeeded, "left": Failed, "middle": Running, "right": Skipped, "join": Pending,
		// idle has no status: neutral.
	}
	img := render(t, wf, stages, status)
	s := layout(wf, stages, status)
	if img.Bounds().Size() != s.size {
		t.Fatalf("picture is %v, layout said %v", img.Bounds().Size(), s.size)
	}
	tests := []struct {
		id   string
		want color.RGBA
	}{
		{"fetch", palettes[Succeeded].fill},
		{"left", palettes[Failed].fill},
		{"middle", palettes[Running].fill},
		{"right", palettes[Skipped].fill},
		{"join", palettes[Pending].fill},
		{"idle", neutral.fill},
	}
	for _, tt := range tests {
		r, ok := s.boxes[tt.id]
		if !ok {
			t.Fatalf("no box for %s", tt.id)
		}
		// With a status the id sits above the centre line and the
		// status word below it, so the centre is bare fill. A box
		// without status has its id across the centre; sample beside it.
		x, y := (r.Min.X+r.Max.X)/2, (r.Min.Y+r.Max.Y)/2
		if _, has := status[tt.id]; !has {
			x = r.Min.X + 5
		}
		if got := rgbaAt(img, x, y); got != tt.want {
			t.Errorf("%s at (%d,%d) = %v, want %v", tt.id, x, y, got, tt.want)
		}
	}
	if got := rgbaAt(img, 0, 0); got != background {
		t.Errorf("corner = %v, want white", got)
	}
}

func TestPNGWithoutRun(t *testing.T) {
	wf := newWorkflow("single", "", []string{"only"})
	img := render(t, wf, nil, nil)
	b := img.Bounds()
	if b.Dx() < 100 || b.Dy() < 80 || b.Dx() > 600 || b.Dy() > 300 {
		t.Errorf("single node picture is %v; want a small but not tiny one", b.Size())
	}
	s := layout(wf, nil, nil)
	r := s.boxes["only"]
	if got := rgbaAt(img, r.Min.X+5, (r.Min.Y+r.Max.Y)/2); got != neutral.fill {
		t.Errorf("box fill = %v, want neutral %v", got, neutral.fill)
	}
	if s.title != "single" || s.subtitle != "1 node" {
		t.Errorf("title = %q %q", s.title, s.subtitle)
	}
}

func TestPNGSizeAdapts(t *testing.T) {
	wide := bigWorkflow(100)
	var tallIDs, tallEdges []string
	for i := range 300 {
		id := fmt.Sprintf("leaf-%03d", i)
		tallIDs = append(tallIDs, id)
		tallEdges = append(tallEdges, "root>"+id)
	}
	tall := newWorkflow("tall", "1", append([]string{"root"}, tallIDs...), tallEdges...)
	tests := []struct {
		name string
		wf   *tentacle.Workflow
	}{
		{"diamond", newWorkflow("d", "1", []string{"a", "b", "c", "d"}, "a>b", "a>c", "b>d", "c>d")},
		{"wide", wide},
		{"tall", tall},
		{"empty", &tentacle.Workflow{Name: "empty"}},
		{"nil", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			img := render(t, tt.wf, nil, nil)
			size := img.Bounds().Size()
			if size.X > maxSide || size.Y > maxSide || size.X < 50 || size.Y < 50 {
				t.Errorf("size %v out of bounds", size)
			}
			s := layout(tt.wf, nil, nil)
			checkNoOverlap(t, s)
		})
	}
}

// checkNoOverlap fails if two boxes overlap or one leaves the picture.
func checkNoOverlap(t *testing.T, s *scene) {
	t.Helper()
	pic := image.Rectangle{Max: s.size}
	for i, a := range s.order {
		ra := s.boxes[a]
		if !ra.In(pic) {
			t.Errorf("box %s %v outside picture %v", a, ra, pic)
		}
		for _, b := range s.order[i+1:] {
			if ra.Overlaps(s.boxes[b]) {
				t.Errorf("boxes %s %v and %s %v overlap", a, ra, b, s.boxes[b])
			}
		}
	}
}

func TestPNGDeterministic(t *testing.T) {
	wf := bigWorkflow(60)
	status := map[string]Status{"step-000": Succeeded, "step-010": Failed}
	var a, b bytes.Buffer
	if err := PNG(&a, wf, nil, status); err != nil {
		t.Fatal(err)
	}
	if err := PNG(&b, wf, nil, status); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Error("two renders of the same DAG differ")
	}
}

func TestOrderRemovesCrossings(t *testing.T) {
	wf := newWorkflow("x", "1", []string{"a", "b", "c", "d"}, "a>d", "b>c")
	g := buildGraph([][]string{{"a", "b"}, {"c", "d"}}, wf.Edges)
	if n := g.crossings(); n != 1 {
		t.Fatalf("before ordering: %d crossings, want 1", n)
	}
	g.order()
	if n := g.crossings(); n != 0 {
		t.Errorf("after ordering: %d crossings, want 0", n)
	}
}

func TestLanesAvoidBoxes(t *testing.T) {
	// a>c skips b's column: its route must pass through a lane, not b.
	wf := newWorkflow("skip", "1", []string{"a", "b", "c"}, "a>b", "b>c", "a>c")
	s := layout(wf, nil, nil)
	b := s.boxes["b"]
	for _, r := range s.routes {
		if r.from != "a" || r.to != "c" {
			continue
		}
		if len(r.pts) != 4 {
			t.Fatalf("a>c has %d points, want 4 (ends and one lane)", len(r.pts))
		}
		if y := int(r.pts[1].y); y >= b.Min.Y && y <= b.Max.Y {
			t.Errorf("lane at y=%d runs through b %v", y, b)
		}
	}
}

func TestTruncate(t *testing.T) {
	f := newFaces(baseMetrics())
	tests := []struct {
		in       string
		maxW     float64
		want     string // "" means: shortened with an ellipsis
		unchange bool
	}{
		{in: "fetch", maxW: 200, unchange: true},
		{in: strings.Repeat("very-long-node-name-", 5), maxW: 150},
		{in: "abc", maxW: 1, want: "…"},
	}
	for _, tt := range tests {
		got := truncate(f.label, tt.in, tt.maxW)
		switch {
		case tt.unchange:
			if got != tt.in {
				t.Errorf("truncate(%q) = %q, want unchanged", tt.in, got)
			}
		case tt.want != "":
			if got != tt.want {
				t.Errorf("truncate(%q) = %q, want %q", tt.in, got, tt.want)
			}
		default:
			if !strings.HasSuffix(got, "…") || utf8.RuneCountInString(got) >= utf8.RuneCountInString(tt.in) {
				t.Errorf("truncate(%q) = %q, want a shorter string ending in …", tt.in, got)
			}
			if w := f.labelWidth(got); w > tt.maxW {
				t.Errorf("truncate(%q) is %.1f px wide, want <= %.1f", tt.in, w, tt.maxW)
			}
		}
	}
}

func BenchmarkPNG100(b *testing.B) {
	wf := bigWorkflow(100)
	status := map[string]Status{}
	for i, id := range wf.NodeIDs {
		status[id] = []Status{Succeeded, Running, Failed, Pending, Skipped}[i%5]
	}
	var buf bytes.Buffer
	b.ReportAllocs()
	for b.Loop() {
		buf.Reset()
		if err := PNG(&buf, wf, nil, status); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(buf.Len()), "bytes/png")
}

func TestPNGConcurrent(t *testing.T) {
	// Faces are not safe for concurrent use; each drawing must get its own.
	wf := bigWorkflow(20)
	done := make(chan error)
	for range 4 {
		go func() { done <- PNG(io.Discard, wf, nil, nil) }()
	}
	for range 4 {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}
