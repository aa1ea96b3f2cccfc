package tentacle

import "slices"

// findCycles returns one cycle in every strongly connected component of
// more than one node, each as node indexes from the component's smallest
// index back to it: [a b c a]. It runs in linear time (Tarjan's algorithm,
// iterative so that a long chain cannot exhaust the stack, then one
// breadth-first search per component), so large workflows stay cheap.
// adj must hold no self-loops; its lists are sorted in place so that the
// cycles named do not depend on edge order.
func findCycles(adj [][]int) [][]int {
	for _, succ := range adj {
		slices.Sort(succ)
	}
	n := len(adj)
	order := make([]int, n) // visit order + 1; 0 means unvisited
	low := make([]int, n)
	onStack := make([]bool, n)
	var stack []int
	type frame struct{ v, next int }
	var calls []frame
	visited := 0
	comp := make([]int, n) // component number + 1, once assigned
	comps := 0
	var cycles [][]int

	visit := func(v int) {
		visited++
		order[v], low[v] = visited, visited
		stack = append(stack, v)
		onStack[v] = true
		calls = append(calls, frame{v: v})
	}
	for s := range n {
		if order[s] != 0 {
			continue
		}
		visit(s)
		for len(calls) > 0 {
			f := &calls[len(calls)-1]
			v := f.v
			if f.next < len(adj[v]) {
				w := adj[v][f.next]
				f.next++
				switch {
				case order[w] == 0:
					visit(w)
				case onStack[w]:
					low[v] = min(low[v], order[w])
				}
				continue
			}
			calls = calls[:len(calls)-1]
			if len(calls) > 0 {
				p := calls[len(calls)-1].v
				low[p] = min(low[p], low[v])
			}
			if low[v] != order[v] {
				continue
			}
			comps++
			size, smallest := 0, v
			for {
				w := stack[len(stack)-1]
				stack = stack[:len(stack)-1]
				onStack[w] = false
				comp[w] = comps
				size++
				smallest = min(smallest, w)
				if w == v {
					break
				}
			}
			if size > 1 {
				cycles = append(cycles, cycleThrough(adj, comp, smallest))
			}
		}
	}
	return cycles
}

// cycleThrough finds a shortest cycle through start inside start's
// component, by breadth-first search back to it.
func cycleThrough(adj [][]int, comp []int, start int) []int {
	parent := map[int]int{start: -1}
	queue := []int{start}
	for len(queue) > 0 {
		u := queue[0]
		queue = queue[1:]
		for _, w := range adj[u] {
			if w == start {
				var path []int
				for x := u; x != -1; x = parent[x] {
					path = append(path, x)
				}
				slices.Reverse(path)
				return append(path, start)
			}
			if _, seen := parent[w]; !seen && comp[w] == comp[start] {
				parent[w] = u
				queue = append(queue, w)
			}
		}
	}
	return nil // unreachable: every node of a component reaches the others
}

// Dependencies returns the ids of the nodes id receives input from,
// sorted.
func (w *Workflow) Dependencies(id string) []string {
	var deps []string
	for _, e := range w.Edges {
		if e.To == id {
			deps = append(deps, e.From)
		}
	}
	slices.Sort(deps)
	return deps
}

// Roots returns the ids of the nodes without dependencies, which receive
// the run input, sorted.
func (w *Workflow) Roots() []string {
	hasInput := make(map[string]bool, len(w.Edges))
	for _, e := range w.Edges {
		hasInput[e.To] = true
	}
	var roots []string
	for _, id := range w.NodeIDs {
		if !hasInput[id] {
			roots = append(roots, id)
		}
	}
	return roots
}
