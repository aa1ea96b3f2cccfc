package diagram

import (
	"fmt"
	"strings"

	"github.com/kraken-ops/kraken/tentacle"
)

// Mermaid returns the DAG as a Mermaid flowchart, left to right: one line
// per node in stage order, then one line per edge in workflow order, so the
// same workflow always gives the same text (and diffs stay small).
//
// Node ids are made safe for Mermaid; the label always shows the real id.
func Mermaid(wf *tentacle.Workflow, stages [][]string) string {
	var b strings.Builder
	b.WriteString("graph LR\n")
	ids := newMermaidIDs()
	for _, col := range columns(wf, stages) {
		for _, id := range col {
			fmt.Fprintf(&b, "  %s[\"%s\"]\n", ids.get(id), mermaidLabel(id))
		}
	}
	for _, e := range edges(wf) {
		fmt.Fprintf(&b, "  %s --> %s\n", ids.get(e.From), ids.get(e.To))
	}
	return b.String()
}

// mermaidReserved are words Mermaid's flowchart grammar reads as keywords
// when used as a node id ("end" famously breaks the whole chart).
var mermaidReserved = map[string]bool{
	"end": true, "graph": true, "flowchart": true, "subgraph": true,
	"direction": true, "style": true, "class": true, "classdef": true,
	"linkstyle": true, "click": true, "call": true, "href": true,
	"default": true,
}

// mermaidIDs hands out Mermaid node ids: the tentacle id itself when it
// is a plain identifier, otherwise a sanitised one made unique, so that
// e.g. "fetch-data" and "fetch_data" stay two nodes.
type mermaidIDs struct {
	byID  map[string]string
	taken map[string]bool
}

func newMermaidIDs() *mermaidIDs {
	return &mermaidIDs{byID: map[string]string{}, taken: map[string]bool{}}
}

func (m *mermaidIDs) get(id string) string {
	if s, ok := m.byID[id]; ok {
		return s
	}
	base := sanitize(id)
	s := base
	for n := 2; m.taken[s]; n++ {
		s = fmt.Sprintf("%s_%d", base, n)
	}
	m.byID[id] = s
	m.taken[s] = true
	return s
}

// sanitize keeps ASCII letters, digits and underscores, which every
// Mermaid version accepts in an id; hyphens and dots are read as parts of
// arrows by some versions.
func sanitize(id string) string {
	var b strings.Builder
	for _, r := range id {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	s := b.String()
	if s == "" || s[0] < 'A' || mermaidReserved[strings.ToLower(s)] || s != id {
		// A prefix marks every rewritten id, which also keeps it from
		// colliding with a real node that happens to be called the same.
		return "n_" + s
	}
	return s
}

// mermaidLabel escapes text for a quoted label. Mermaid decodes #name; and
// #NN; entity codes, so '#' itself is escaped first.
var mermaidLabel = strings.NewReplacer(
	"#", "#35;",
	`"`, "#quot;",
	"`", "#96;",
	"<", "#lt;",
	">", "#gt;",
	"\r", " ",
	"\n", " ",
).Replace
