package tentacle

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// yamlLine picks the line out of yaml.v3 syntax errors, which carry no
// column: "yaml: line 3: did not find expected key".
var yamlLine = regexp.MustCompile(`^yaml: line ([0-9]+): `)

// decodeYAML parses data as a single YAML document and returns its root
// node. It returns nil and ok when data holds no document at all, and
// nil and !ok after reporting why data is unusable. Secrets go through
// here too, so no message may quote the content.
func decodeYAML(r *report, data []byte) (root *yaml.Node, ok bool) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, true
		}
		r.syntaxError(err)
		return nil, false
	}
	for {
		var next yaml.Node
		err := dec.Decode(&next)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			r.syntaxError(err)
			return nil, false
		}
		// A trailing "---" opens an empty document: harmless.
		if len(next.Content) == 1 && isNull(next.Content[0]) && next.Content[0].Value == "" {
			continue
		}
		r.errorf(&next, "", "the file holds more than one YAML document; a spec is exactly one")
		return nil, false
	}
	if len(doc.Content) == 0 {
		return nil, true
	}
	return doc.Content[0], true
}

func (r *report) syntaxError(err error) {
	msg := err.Error()
	p := Problem{File: r.file}
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		p.Line, _ = strconv.Atoi(m[1])
		msg = msg[len(m[0]):]
	}
	p.Msg = "invalid YAML: " + strings.TrimPrefix(msg, "yaml: ")
	r.errs = append(r.errs, p)
}

// checkTree reports what YAML allows but a spec must not contain: aliases
// (decoding them can expand a small file exponentially), merge keys, keys
// that are not plain scalars, and duplicate keys (yaml.v3 keeps both when
// decoding to nodes). It returns the repeated keys, for readers to skip,
// and false when the tree holds an alias, which readers cannot follow.
// Messages never quote values.
func checkTree(root *yaml.Node, bad func(at *yaml.Node, field, msg string)) (dups map[*yaml.Node]bool, noAliases bool) {
	c := &treeChecker{bad: bad}
	ok := c.walk(root)
	return c.dups, ok
}

type treeChecker struct {
	bad  func(at *yaml.Node, field, msg string)
	dups map[*yaml.Node]bool
	// path leads to the node being checked; it is rendered as a field
	// only when there is something to report, which is rare.
	path []pathStep
}

// pathStep is a mapping key, or a list index when key is nil.
type pathStep struct {
	key   *yaml.Node
	index int
}

func (c *treeChecker) report(at *yaml.Node, msg string) {
	field := ""
	for _, s := range c.path {
		if s.key == nil {
			field = index(field, s.index)
		} else {
			field = join(field, s.key.Value)
		}
	}
	c.bad(at, field, msg)
}

func (c *treeChecker) walk(n *yaml.Node) bool {
	const aliasMsg = "aliases (*name) are not allowed"
	ok := true
	switch n.Kind {
	case yaml.AliasNode:
		c.report(n, aliasMsg)
		return false
	case yaml.SequenceNode:
		for i, child := range n.Content {
			c.path = append(c.path, pathStep{index: i})
			ok = c.walk(child) && ok
			c.path = c.path[:len(c.path)-1]
		}
	case yaml.MappingNode:
		seen := keySet{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			switch {
			case k.Kind == yaml.AliasNode:
				c.report(k, aliasMsg)
				ok = false
			case k.Kind != yaml.ScalarNode:
				c.report(k, "keys must be plain strings, not "+describe(k))
			case k.Value == "<<" && k.ShortTag() == "!!merge":
				c.report(k, "merge keys (<<) are not supported")
			}
			c.path = append(c.path, pathStep{key: k})
			if k.Kind == yaml.ScalarNode {
				if first := seen.add(n, i); first != nil {
					c.report(k, fmt.Sprintf("duplicate key; first defined at line %d", first.Line))
					if c.dups == nil {
						c.dups = map[*yaml.Node]bool{}
					}
					c.dups[k] = true
				}
			}
			ok = c.walk(n.Content[i+1]) && ok
			c.path = c.path[:len(c.path)-1]
		}
	}
	return ok
}

// keySet finds repeated keys in one mapping: by scanning the keys before
// for small mappings, which is cheaper than building a map, and with a map
// for big ones, which would otherwise take quadratic time.
type keySet struct {
	big map[string]*yaml.Node
}

const smallMapping = 16

// add returns the earlier key equal to the i-th entry of m, or nil.
func (s *keySet) add(m *yaml.Node, i int) *yaml.Node {
	k := m.Content[i]
	if len(m.Content) <= 2*smallMapping {
		for j := 0; j < i; j += 2 {
			if prev := m.Content[j]; prev.Kind == yaml.ScalarNode && prev.Value == k.Value {
				return prev
			}
		}
		return nil
	}
	if s.big == nil {
		s.big = make(map[string]*yaml.Node, len(m.Content)/2)
	}
	if first := s.big[k.Value]; first != nil {
		return first
	}
	s.big[k.Value] = k
	return nil
}

// plainValue converts a node to the Go values encoding/json would give
// (map[string]any, []any, string, int, float64, bool, nil), so that config
// extras reach nodes as ordinary JSON. Aliases are rejected before this.
func plainValue(n *yaml.Node) any {
	switch n.Kind {
	case yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			m[n.Content[i].Value] = plainValue(n.Content[i+1])
		}
		return m
	case yaml.SequenceNode:
		s := make([]any, len(n.Content))
		for i, c := range n.Content {
			s[i] = plainValue(c)
		}
		return s
	case yaml.ScalarNode:
		return scalarValue(n)
	}
	return nil
}

func scalarValue(n *yaml.Node) any {
	switch n.ShortTag() {
	case "!!null":
		return nil
	case "!!bool":
		var b bool
		if n.Decode(&b) == nil {
			return b
		}
	case "!!int":
		var i int
		if n.Decode(&i) == nil {
			return i
		}
		var f float64 // beyond int64, as JSON would have it
		if n.Decode(&f) == nil {
			return f
		}
	case "!!float":
		var f float64
		if n.Decode(&f) == nil {
			return f
		}
	}
	// Strings, timestamps and custom tags stay as written.
	return n.Value
}

func isNull(n *yaml.Node) bool {
	if n == nil {
		return true
	}
	if n.Kind != yaml.ScalarNode {
		return false
	}
	// Resolving a tag is costly; only these plain values can be null.
	switch n.Value {
	case "", "~", "null", "Null", "NULL":
		return n.ShortTag() == "!!null"
	}
	return n.Tag != "" && n.ShortTag() == "!!null"
}

// describe names a node's kind for messages such as "must be a mapping,
// got a list". It never quotes the value.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	case yaml.DocumentNode:
		return "a document"
	}
	switch tag := n.ShortTag(); tag {
	case "!!null":
		return "nothing (null)"
	case "!!str":
		return "a string"
	case "!!int", "!!float":
		return "a number"
	case "!!bool":
		return "a boolean"
	case "!!timestamp":
		return "a date"
	case "!!binary":
		return "binary data"
	default:
		return "a value tagged " + tag
	}
}

// walkScalars calls fn for every scalar key and value under n.
func walkScalars(n *yaml.Node, field string, fn func(n *yaml.Node, field string)) {
	switch n.Kind {
	case yaml.ScalarNode:
		fn(n, field)
	case yaml.SequenceNode:
		for i, c := range n.Content {
			walkScalars(c, index(field, i), fn)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			kf := join(field, n.Content[i].Value)
			walkScalars(n.Content[i], kf, fn)
			walkScalars(n.Content[i+1], kf, fn)
		}
	}
}
