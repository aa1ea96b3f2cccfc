package tentacle

import (
	"maps"
	"slices"

	"gopkg.in/yaml.v3"
)

var nodeKeys = []string{"capabilities", "description", "path"}

// nodes reads the nodes mapping. It returns the nodes, their sorted ids,
// and the path value of every node whose path is well formed.
func (r *report) nodes(o *object) (map[string]Node, []string, map[string]*yaml.Node) {
	nodes := map[string]Node{}
	paths := map[string]*yaml.Node{}
	if o.value("nodes") == nil {
		r.errorf(o.at, "nodes", `missing required field "nodes"`)
		return nodes, nil, paths
	}
	no, ok := o.child("nodes")
	if !ok {
		return nodes, nil, paths
	}
	if len(no.keys) == 0 {
		r.errorf(o.value("nodes"), "nodes", "must declare at least one node")
		return nodes, nil, paths
	}
	for i, k := range no.keys {
		id := k.Value
		if err := checkIdent("node id", id); err != nil {
			r.errorf(k, no.path(id), "%v", err)
		}
		// An invalid id still makes a node, so that edges naming it do
		// not pile up "unknown node" errors.
		nodes[id] = r.node(no.vals[i], k, no.path(id), id, paths)
	}
	return nodes, slices.Sorted(maps.Keys(nodes)), paths
}

func (r *report) node(n, key *yaml.Node, field, id string, paths map[string]*yaml.Node) Node {
	node := Node{ID: id}
	o, ok := r.object(n, key, field)
	if !ok {
		return node
	}
	o.only(nodeKeys...)
	p, pn := o.required("path")
	if pn != nil {
		if err := checkNodePath(p); err != nil {
			r.errorf(pn, o.path("path"), "%v", err)
		} else {
			paths[id] = pn
		}
	}
	node.Path = p
	node.Description, _ = o.str("description")
	node.Capabilities = o.strMap("capabilities")
	return node
}
