// Package diagram draws a tentacle's DAG as Mermaid text or as a PNG
// picture.
package diagram

import (
	"slices"

	"github.com/kraken-ops/kraken/tentacle"
)

// Status is how far a node got in a run, as the PNG colours it.
type Status string

const (
	Pending   Status = "pending"
	Running   Status = "running"
	Succeeded Status = "succeeded"
	Failed    Status = "failed"
	Skipped   Status = "skipped"
)

// columns returns the stages to draw, one column each. The caller's stages
// win; a node they leave out (or an edge end that is no node) still gets
// drawn, in one extra column, so a stale or partial stages list never hides
// part of the workflow. With no stages at all it layers the DAG the way the
// engine does: a node's stage is its longest-path depth.
func columns(wf *tentacle.Workflow, stages [][]string) [][]string {
	all := nodeIDs(wf)
	if len(stages) == 0 {
		return layer(all, edges(wf))
	}
	seen := make(map[string]bool, len(all))
	var cols [][]string
	for _, stage := range stages {
		var col []string
		for _, id := range stage {
			if !seen[id] {
				seen[id] = true
				col = append(col, id)
			}
		}
		if len(col) > 0 {
			cols = append(cols, col)
		}
	}
	var rest []string
	for _, id := range all {
		if !seen[id] {
			rest = append(rest, id)
		}
	}
	if len(rest) > 0 {
		cols = append(cols, rest)
	}
	return cols
}

// nodeIDs lists every node the workflow mentions, sorted: NodeIDs, the keys
// of Nodes (for hand-built workflows that skip NodeIDs) and edge ends.
func nodeIDs(wf *tentacle.Workflow) []string {
	if wf == nil {
		return nil
	}
	set := make(map[string]bool, len(wf.Nodes))
	for _, id := range wf.NodeIDs {
		set[id] = true
	}
	for id := range wf.Nodes {
		set[id] = true
	}
	for _, e := range wf.Edges {
		set[e.From] = true
		set[e.To] = true
	}
	ids := make([]string, 0, len(set))
	for id := range set {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

func edges(wf *tentacle.Workflow) []tentacle.Edge {
	if wf == nil {
		return nil
	}
	return wf.Edges
}

// layer groups ids by longest-path depth, each layer sorted. Nodes on a
// cycle (an invalid workflow) have no depth; they go in a last layer so
// they are still visible.
func layer(ids []string, es []tentacle.Edge) [][]string {
	indeg := make(map[string]int, len(ids))
	next := make(map[string][]string, len(ids))
	for _, e := range es {
		indeg[e.To]++
		next[e.From] = append(next[e.From], e.To)
	}
	depth := make(map[string]int, len(ids))
	var queue []string
	for _, id := range ids {
		if indeg[id] == 0 {
			queue = append(queue, id)
		}
	}
	for len(queue) > 0 {
		id := queue[0]
		queue = queue[1:]
		for _, to := range next[id] {
			depth[to] = max(depth[to], depth[id]+1)
			if indeg[to]--; indeg[to] == 0 {
				queue = append(queue, to)
			}
		}
	}
	var layers [][]string
	var cyclic []string
	for _, id := range ids {
		if indeg[id] > 0 {
			cyclic = append(cyclic, id)
			continue
		}
		d := depth[id]
		for len(layers) <= d {
			layers = append(layers, nil)
		}
		layers[d] = append(layers[d], id)
	}
	if len(cyclic) > 0 {
		layers = append(layers, cyclic)
	}
	return layers
}
