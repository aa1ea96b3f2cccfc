package tentacle

import (
	"errors"
	"testing"
)

func FuzzParse(f *testing.F) {
	seeds := []string{
		fullSpec,
		base,
		base + "edges:\n  - {from: a, to: b}\n  - {from: b, to: a}\n",
		base + "triggers:\n  - type: cron\n    schedule: \"TZ=UTC\"\n",
		base + "triggers:\n  - {type: queue, subject: a.*.>}\n  - {type: webhook, path: /x}\n",
		base + "config:\n  timeout: 5m\n  retries: 3\n  x: {y: [1, 2.5, true, null]}\n",
		base + "contract:\n  version: 1\n  dependencies:\n    s:\n      type: dynamic-target\n      cidr: ::/0\n      dynPorts: [\"1/UDP\"]\n",
		base + "sidecars:\n  - {name: c, image: i, port: 9000, env: {A: b}}\n",
		"nodez: {}\n",
		"a: &a [*a]\n",
		"- 1\n",
		"",
		"name: t\nversion: 1.0\nnodes: {a: {path: ../a.ts}}\n---\nx: 1\n",
		"{name: t, version: \"1.0\", nodes: {a: {path: a.ts}}, edges: [{from: a, to: a}]}",
		"? [a]\n: b\n<<: {c: 1}\n",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		w, err := Parse("fuzz.yaml", data)
		if err != nil {
			var se *SpecError
			if !errors.As(err, &se) || len(se.Problems) == 0 {
				t.Fatalf("error is not a non-empty *SpecError: %v", err)
			}
			if w != nil {
				t.Fatal("workflow returned along with an error")
			}
			return
		}
		if w == nil || len(w.Nodes) == 0 || len(w.NodeIDs) != len(w.Nodes) || len(w.Triggers) == 0 {
			t.Fatalf("accepted workflow without nodes or triggers: %+v", w)
		}
		for _, e := range w.Edges {
			if _, ok := w.Nodes[e.From]; !ok {
				t.Fatalf("edge from unknown node %q", e.From)
			}
			if _, ok := w.Nodes[e.To]; !ok {
				t.Fatalf("edge to unknown node %q", e.To)
			}
		}
	})
}
