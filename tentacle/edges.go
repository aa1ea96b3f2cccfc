package tentacle

import (
	"strings"

	"gopkg.in/yaml.v3"
)

var edgeKeys = []string{"from", "to"}

// maxNodeHints bounds the "did you mean" searches among node ids: both
// the ids and the unknown names are the author's, and a file full of them
// must not make validation quadratic. Past a few typos, hints stop helping.
const maxNodeHints = 20

// edgeRef is an edge between two known nodes, as indexes into the sorted
// node ids.
type edgeRef struct{ from, to int }

// edgeSite is where an edge is written, to report problems it causes.
type edgeSite struct {
	node  *yaml.Node
	field string
}

// edges reads the edges list and reports unknown nodes, self-loops,
// duplicates and cycles. A missing list means no edges: Tentacular's
// parser accepts that, and refusing to start later helps nobody.
func (r *report) edges(o *object, ids []string) []Edge {
	out := []Edge{}
	n := o.get("edges")
	if n == nil || !r.mustBeList(n, "edges", "edges") {
		return out
	}
	pos := make(map[string]int, len(ids))
	for i, id := range ids {
		pos[id] = i
	}
	sites := make(map[edgeRef]edgeSite, len(n.Content))
	adj := make([][]int, len(ids))
	for i, item := range n.Content {
		field := index("edges", i)
		eo, ok := r.object(item, item, field)
		if !ok {
			continue
		}
		eo.only(edgeKeys...)
		from, fromOK := r.endpoint(eo, "from", pos, ids)
		to, toOK := r.endpoint(eo, "to", pos, ids)
		out = append(out, Edge{From: from, To: to})
		if !fromOK || !toOK {
			continue
		}
		ref := edgeRef{pos[from], pos[to]}
		if from == to {
			r.errorf(item, field, "node %q cannot depend on itself", from)
			continue
		}
		if first, dup := sites[ref]; dup {
			r.errorf(item, field, "duplicate edge %s → %s; first at line %d", from, to, first.node.Line)
			continue
		}
		sites[ref] = edgeSite{item, field}
		adj[ref.from] = append(adj[ref.from], ref.to)
	}
	for _, c := range findCycles(adj) {
		names := make([]string, len(c))
		for i, v := range c {
			names[i] = ids[v]
		}
		closing := sites[edgeRef{c[len(c)-2], c[len(c)-1]}]
		r.errorf(closing.node, closing.field, "cycle: %s", strings.Join(names, " → "))
	}
	return out
}

// endpoint reads one end of an edge; ok is false unless it names a node.
func (r *report) endpoint(o *object, key string, pos map[string]int, ids []string) (id string, ok bool) {
	id, n := o.required(key)
	if n == nil {
		return id, false
	}
	if _, known := pos[id]; !known {
		// Without nodes every edge would be "unknown"; the missing
		// nodes are already reported.
		if len(ids) > 0 {
			hint := ""
			if r.nodeHints < maxNodeHints {
				r.nodeHints++
				hint = didYouMean(id, ids)
			}
			r.errorf(n, o.path(key), "unknown node %q%s", id, hint)
		}
		return id, false
	}
	return id, true
}
