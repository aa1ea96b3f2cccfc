package tentacle

import (
	"fmt"
	"strings"
)

// Problem is one thing wrong (or worth a warning) in a workflow, located
// precisely enough for an editor to jump to it.
type Problem struct {
	File   string // path as given to the parser
	Line   int    // 1-based; 0 when unknown
	Column int    // 1-based; 0 when unknown
	Field  string // e.g. "nodes.fetch.path" or "edges[2].to"
	Msg    string
}

func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.File)
	// yaml.v3 reports syntax errors by line only; "file:3:0" would
	// send editors to a column that does not exist.
	switch {
	case p.Line > 0 && p.Column > 0:
		fmt.Fprintf(&b, ":%d:%d", p.Line, p.Column)
	case p.Line > 0:
		fmt.Fprintf(&b, ":%d", p.Line)
	}
	if p.Field != "" {
		fmt.Fprintf(&b, ": %s", p.Field)
	}
	fmt.Fprintf(&b, ": %s", p.Msg)
	return b.String()
}

// SpecError is every problem found in one workflow, in file order.
// Callers that want to show each problem on its own line range over
// Problems; Error joins them.
type SpecError struct {
	Problems []Problem
}

func (e *SpecError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}
