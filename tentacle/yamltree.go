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
// decoding to nodes). It returns false when the tree holds an alias, which
// the rest of the reader cannot follow. Messages never quote values.
func checkTree(n *yaml.Node, field string, bad func(at *yaml.Node, field, msg string)) bool {
	ok := true
	switch n.Kind {
	case yaml.AliasNode:
		bad(n, field, "aliases (*name) are not allowed")
		return false
	case yaml.SequenceNode:
		for i, c := range n.Content {
			ok = checkTree(c, index(field, i), bad) && ok
		}
	case yaml.MappingNode:
		first := make(map[string]*yaml.Node, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			kf := join(field, k.Value)
			switch {
			case k.Kind == yaml.AliasNode:
				bad(k, field, "aliases (*name) are not allowed")
				ok = false
			case k.Kind != yaml.ScalarNode:
				bad(k, field, fmt.Sprintf("keys must be plain strings, not %s", describe(k)))
			case k.ShortTag() == "!!merge":
				bad(k, field, "merge keys (<<) are not supported")
			case first[k.Value] != nil:
				bad(k, kf, fmt.Sprintf("duplicate key; first defined at line %d", first[k.Value].Line))
			default:
				first[k.Value] = k
			}
			ok = checkTree(v, kf, bad) && ok
		}
	}
	return ok
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
	return n == nil || n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
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
