package tentacle

import (
	"slices"

	"gopkg.in/yaml.v3"
)

// object reads one YAML mapping as a set of named fields, reporting wrong
// kinds and missing or unknown fields on its report.
type object struct {
	r     *report
	field string     // dotted path of the mapping; "" for the document root
	at    *yaml.Node // where a missing field is reported
	// keys and vals are the entries in file order, duplicates left out.
	// Lookups scan them: most mappings have a handful of keys, and the
	// big ones (nodes, dependencies) are only ever iterated.
	keys []*yaml.Node
	vals []*yaml.Node
}

// object starts reading n as a mapping. at is where missing fields are
// reported: the key naming the mapping, or the mapping itself. A null n
// reads as an empty mapping, so that "config:" and no config behave alike;
// any other non-mapping is reported and ok is false.
func (r *report) object(n, at *yaml.Node, field string) (o *object, ok bool) {
	if at == nil {
		at = n
	}
	o = &object{r: r, field: field, at: at}
	if n == nil || isNull(n) {
		return o, true
	}
	if n.Kind != yaml.MappingNode {
		r.errorf(n, field, "must be a mapping, got %s", describe(n))
		return o, false
	}
	o.keys = make([]*yaml.Node, 0, len(n.Content)/2)
	o.vals = make([]*yaml.Node, 0, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		// checkTree has reported odd and duplicate keys; the first one wins.
		if k.Kind != yaml.ScalarNode || r.dupKeys[k] {
			continue
		}
		o.keys = append(o.keys, k)
		o.vals = append(o.vals, n.Content[i+1])
	}
	return o, true
}

// lookup returns the key and value nodes of key, or nils.
func (o *object) lookup(key string) (k, v *yaml.Node) {
	for i, k := range o.keys {
		if k.Value == key {
			return k, o.vals[i]
		}
	}
	return nil, nil
}

// value returns the value node of key as written, null included; nil
// when the key is absent.
func (o *object) value(key string) *yaml.Node {
	_, v := o.lookup(key)
	return v
}

func (o *object) path(key string) string { return join(o.field, key) }

// get returns the value of key, or nil when it is absent or null.
func (o *object) get(key string) *yaml.Node {
	n := o.value(key)
	if isNull(n) {
		return nil
	}
	return n
}

// child starts reading the mapping under key.
func (o *object) child(key string) (*object, bool) {
	k, _ := o.lookup(key)
	return o.r.object(o.get(key), k, o.path(key))
}

// unknown returns the positions in keys and vals of the keys that are not
// in known.
func (o *object) unknown(known []string) []int {
	var out []int
	for i, k := range o.keys {
		if !slices.Contains(known, k.Value) {
			out = append(out, i)
		}
	}
	return out
}

// only reports every key outside known as an error.
func (o *object) only(known ...string) {
	for _, i := range o.unknown(known) {
		k := o.keys[i]
		o.r.errorf(k, o.path(k.Value), "unknown field %q%s", k.Value, unknownHint(k.Value, known))
	}
}

// onlyWarn is only for blocks where an unknown key must not stop a real
// tentacle from validating.
func (o *object) onlyWarn(known ...string) {
	for _, i := range o.unknown(known) {
		k := o.keys[i]
		o.r.warnf(k, o.path(k.Value), "unknown field %q is ignored%s", k.Value, unknownHint(k.Value, known))
	}
}

// need reports key as missing or empty. A value of the wrong kind is not
// reported again: the reader of that value already did.
func (o *object) need(key string) {
	n := o.value(key)
	switch {
	case n == nil:
		o.r.errorf(o.at, o.path(key), "missing required field %q", key)
	case n.Kind == yaml.ScalarNode && (isNull(n) || n.Value == ""):
		o.r.errorf(n, o.path(key), "must not be empty")
	}
}

// str reads an optional string field as written, so that 1.10 stays
// "1.10". The node is nil when the field is absent, null or not a scalar.
func (o *object) str(key string) (string, *yaml.Node) {
	n := o.get(key)
	if n == nil {
		return "", nil
	}
	if n.Kind != yaml.ScalarNode {
		o.r.errorf(n, o.path(key), "must be a string, got %s", describe(n))
		return "", nil
	}
	return n.Value, n
}

// required reads a string field that must be present and non-empty.
func (o *object) required(key string) (string, *yaml.Node) {
	s, n := o.str(key)
	if n == nil || s == "" {
		o.need(key)
		return "", nil
	}
	return s, n
}

// int reads an optional integer field; ok is false when it is absent or
// invalid, and n is non-nil whenever the field has a value.
func (o *object) int(key string) (v int, n *yaml.Node, ok bool) {
	n = o.get(key)
	if n == nil {
		return 0, nil, false
	}
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" {
		o.r.errorf(n, o.path(key), "must be an integer, got %s", describe(n))
		return 0, n, false
	}
	if err := n.Decode(&v); err != nil {
		o.r.errorf(n, o.path(key), "is not a valid integer")
		return 0, n, false
	}
	return v, n, true
}

// strs reads an optional list of strings, checking each item with check
// when it is not nil.
func (o *object) strs(key string, check func(string) error) []string {
	n := o.get(key)
	if n == nil {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		o.r.errorf(n, o.path(key), "must be a list of strings, got %s", describe(n))
		return nil
	}
	out := make([]string, 0, len(n.Content))
	for i, item := range n.Content {
		field := index(o.path(key), i)
		if item.Kind != yaml.ScalarNode || isNull(item) {
			o.r.errorf(item, field, "must be a string, got %s", describe(item))
			continue
		}
		if check != nil {
			if err := check(item.Value); err != nil {
				o.r.errorf(item, field, "%v", err)
				continue
			}
		}
		out = append(out, item.Value)
	}
	return out
}

// strMap reads an optional mapping of strings; scalars are taken as
// written, so that "PORT: 8080" gives "8080".
func (o *object) strMap(key string) map[string]string {
	if o.get(key) == nil {
		return nil
	}
	m, ok := o.child(key)
	if !ok {
		return nil
	}
	out := make(map[string]string, len(m.keys))
	for i, k := range m.keys {
		v := m.vals[i]
		switch {
		case isNull(v):
			out[k.Value] = ""
		case v.Kind == yaml.ScalarNode:
			out[k.Value] = v.Value
		default:
			m.r.errorf(v, m.path(k.Value), "must be a string, got %s", describe(v))
		}
	}
	return out
}

// plainMap reads an optional open mapping as plain Go values.
func (o *object) plainMap(key string) map[string]any {
	n := o.get(key)
	if n == nil {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		o.r.errorf(n, o.path(key), "must be a mapping, got %s", describe(n))
		return nil
	}
	return plainValue(n).(map[string]any)
}
