package diagram

import (
	"fmt"
	"strings"

	"github.com/kraken-ops/kraken/tentacle"
)

// newWorkflow builds a workflow by hand; edges are written "from>to".
func newWorkflow(name, version string, nodes []string, edges ...string) *tentacle.Workflow {
	wf := &tentacle.Workflow{Name: name, Version: version, Nodes: map[string]tentacle.Node{}}
	for _, id := range nodes {
		wf.Nodes[id] = tentacle.Node{ID: id, Path: "./nodes/" + id + ".ts"}
		wf.NodeIDs = append(wf.NodeIDs, id)
	}
	for _, e := range edges {
		from, to, _ := strings.Cut(e, ">")
		wf.Edges = append(wf.Edges, tentacle.Edge{From: from, To: to})
	}
	return wf
}

// bigWorkflow is a deterministic pseudo-random DAG of n nodes: each node
// after the first few depends on one to three earlier ones.
func bigWorkflow(n int) *tentacle.Workflow {
	var ids, edges []string
	seed := uint32(7)
	rnd := func(k int) int {
		seed = seed*1664525 + 1013904223
		return int(seed>>16) % k
	}
	for i := range n {
		id := fmt.Sprintf("step-%03d", i)
		ids = append(ids, id)
		if i < 3 {
			continue
		}
		seen := map[int]bool{}
		for range 1 + rnd(3) {
			j := max(0, i-1-rnd(12))
			if !seen[j] {
				seen[j] = true
				edges = append(edges, ids[j]+">"+id)
			}
		}
	}
	return newWorkflow("big-dag", "2.3.1", ids, edges...)
}
