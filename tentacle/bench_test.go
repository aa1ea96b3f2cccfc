package tentacle

import (
	"fmt"
	"strings"
	"testing"
)

// layeredSpec is a workflow of nodes in layers of ten, each node fed by
// one or two nodes of the layer before: about 1.5 edges per node.
func layeredSpec(nodes int) []byte {
	const width = 10
	var b strings.Builder
	b.WriteString("name: big\nversion: \"1.0\"\ntriggers:\n  - type: manual\nnodes:\n")
	for i := range nodes {
		fmt.Fprintf(&b, "  n%04d:\n    path: nodes/n%04d.ts\n    description: node %d\n", i, i, i)
	}
	b.WriteString("edges:\n")
	for i := width; i < nodes; i++ {
		layer, col := i/width, i%width
		prev := (layer - 1) * width
		fmt.Fprintf(&b, "  - from: n%04d\n    to: n%04d\n", prev+col, i)
		if col%2 == 0 {
			fmt.Fprintf(&b, "  - from: n%04d\n    to: n%04d\n", prev+(col+1)%width, i)
		}
	}
	return []byte(b.String())
}

func TestLayeredSpec(t *testing.T) {
	w, err := Parse("big.yaml", layeredSpec(1000))
	if err != nil {
		t.Fatal(err)
	}
	if len(w.Nodes) != 1000 || len(w.Edges) != 1485 {
		t.Errorf("got %d nodes and %d edges", len(w.Nodes), len(w.Edges))
	}
	if len(w.Roots()) != 10 {
		t.Errorf("got %d roots, want 10", len(w.Roots()))
	}
}

func BenchmarkParse1000Nodes(b *testing.B) {
	data := layeredSpec(1000)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse("big.yaml", data); err != nil {
			b.Fatal(err)
		}
	}
}

// A long chain closed into one cycle exercises the cycle search at depth.
func BenchmarkParse1000NodeCycle(b *testing.B) {
	var sb strings.Builder
	sb.WriteString("name: ring\nversion: \"1.0\"\nnodes:\n")
	for i := range 1000 {
		fmt.Fprintf(&sb, "  n%04d: {path: n.ts}\n", i)
	}
	sb.WriteString("edges:\n")
	for i := range 1000 {
		fmt.Fprintf(&sb, "  - {from: n%04d, to: n%04d}\n", i, (i+1)%1000)
	}
	data := []byte(sb.String())
	for b.Loop() {
		if _, err := Parse("ring.yaml", data); err == nil {
			b.Fatal("cycle not found")
		}
	}
}
