// Package engine executes a tentacle's DAG: it compiles the workflow into
// stages, runs each stage's nodes concurrently through a NodeRunner (a Deno
// worker in production), and serves runs over HTTP as `kraken engine`.
package engine

import (
	"fmt"
	"slices"
	"strings"

	"github.com/kraken-ops/kraken/tentacle"
)

// Plan is a compiled workflow: the order nodes run in and what each one
// receives.
type Plan struct {
	// Stages run one after another; the nodes of a stage run concurrently.
	// A node's stage is its longest-path depth from a root, and each stage
	// is sorted, so the same workflow always compiles to the same plan.
	Stages [][]string
	// Deps maps every node to its sorted predecessors.
	Deps map[string][]string
}

// Compile orders the workflow's nodes into stages with Kahn's algorithm,
// taking the lexicographically smallest ready node first so the order is
// deterministic. The parser already rejects cycles with their path; a cycle
// here means the workflow was built by hand, and the error names the nodes
// caught in it.
func Compile(wf *tentacle.Workflow) (*Plan, error) {
	ids := wf.NodeIDs
	if len(ids) == 0 {
		return nil, fmt.Errorf("compile %s: workflow has no nodes", wf.Name)
	}
	known := make(map[string]bool, len(ids))
	for _, id := range ids {
		known[id] = true
	}
	deps := make(map[string][]string, len(ids))
	next := make(map[string][]string, len(ids))
	indegree := make(map[string]int, len(ids))
	for _, id := range ids {
		deps[id] = nil
	}
	for _, e := range wf.Edges {
		if !known[e.From] || !known[e.To] {
			return nil, fmt.Errorf("compile %s: edge %s → %s names an unknown node", wf.Name, e.From, e.To)
		}
		if slices.Contains(deps[e.To], e.From) {
			continue // a repeated edge changes nothing
		}
		deps[e.To] = append(deps[e.To], e.From)
		next[e.From] = append(next[e.From], e.To)
		indegree[e.To]++
	}
	for id := range deps {
		slices.Sort(deps[id])
	}

	depth := make(map[string]int, len(ids))
	var ready []string
	for _, id := range ids {
		if indegree[id] == 0 {
			ready = append(ready, id)
		}
	}
	slices.Sort(ready)
	var order []string
	for len(ready) > 0 {
		id := ready[0]
		ready = ready[1:]
		order = append(order, id)
		for _, to := range next[id] {
			depth[to] = max(depth[to], depth[id]+1)
			indegree[to]--
			if indegree[to] == 0 {
				// Insert sorted: the queue stays ordered without re-sorting.
				i, _ := slices.BinarySearch(ready, to)
				ready = slices.Insert(ready, i, to)
			}
		}
	}
	if len(order) != len(ids) {
		var stuck []string
		for _, id := range ids {
			if indegree[id] > 0 {
				stuck = append(stuck, id)
			}
		}
		return nil, fmt.Errorf("compile %s: the edges form a cycle through %s", wf.Name, strings.Join(stuck, ", "))
	}

	var stages [][]string
	for _, id := range order {
		d := depth[id]
		for len(stages) <= d {
			stages = append(stages, nil)
		}
		stages[d] = append(stages[d], id)
	}
	for _, s := range stages {
		slices.Sort(s)
	}
	return &Plan{Stages: stages, Deps: deps}, nil
}
