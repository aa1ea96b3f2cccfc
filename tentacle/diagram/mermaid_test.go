package diagram

import (
	"fmt"
	"testing"

	"github.com/kraken-ops/kraken/tentacle"
)

func TestMermaid(t *testing.T) {
	diamond := newWorkflow("d", "1", []string{"fetch", "left", "right", "join"},
		"fetch>left", "fetch>right", "left>join", "right>join")
	tests := []struct {
		name   string
		wf     *tentacle.Workflow
		stages [][]string
		want   string
	}{
		{
			name:   "diamond",
			wf:     diamond,
			stages: [][]string{{"fetch"}, {"left", "right"}, {"join"}},
			want: `graph LR
  fetch["fetch"]
  left["left"]
  right["right"]
  join["join"]
  fetch --> left
  fetch --> right
  left --> join
  right --> join
`,
		},
		{
			// Without stages the engine's layering is used: same output.
			name: "diamond without stages",
			wf:   diamond,
			want: `graph LR
  fetch["fetch"]
  left["left"]
  right["right"]
  join["join"]
  fetch --> left
  fetch --> right
  left --> join
  right --> join
`,
		},
		{
			name:   "single node",
			wf:     newWorkflow("one", "1", []string{"only"}),
			stages: [][]string{{"only"}},
			want: `graph LR
  only["only"]
`,
		},
		{
			// A node the stages forget is still drawn, after them.
			name:   "stale stages",
			wf:     newWorkflow("s", "1", []string{"a", "b"}, "a>b"),
			stages: [][]string{{"a"}},
			want: `graph LR
  a["a"]
  b["b"]
  a --> b
`,
		},
		{
			name: "nil workflow",
			want: "graph LR\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Mermaid(tt.wf, tt.stages); got != tt.want {
				t.Errorf("Mermaid() =\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

func TestMermaidEscaping(t *testing.T) {
	wf := newWorkflow("e", "1",
		[]string{"end", "fetch-data", "fetch_data", `say"hi"`, "a<b>#1", "9lives", "n_end"},
		"end>fetch-data", "fetch-data>fetch_data", `fetch_data>say"hi"`, `say"hi">a<b>#1`)
	stages := [][]string{{"end"}, {"fetch-data"}, {"fetch_data"}, {`say"hi"`}, {"a<b>#1"}, {"9lives", "n_end"}}
	want := `graph LR
  n_end["end"]
  n_fetch_data["fetch-data"]
  fetch_data["fetch_data"]
  n_say_hi_["say#quot;hi#quot;"]
  n_a_b__1["a#lt;b#gt;#35;1"]
  n_9lives["9lives"]
  n_end_2["n_end"]
  n_end --> n_fetch_data
  n_fetch_data --> fetch_data
  fetch_data --> n_say_hi_
  n_say_hi_ --> n_a_b__1
`
	if got := Mermaid(wf, stages); got != want {
		t.Errorf("Mermaid() =\n%s\nwant\n%s", got, want)
	}
}

func TestMermaidLabel(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain", "plain"},
		{`a"b`, "a#quot;b"},
		{"#quot;", "#35;quot;"}, // literal text stays literal
		{"`md`", "#96;md#96;"},
		{"two\nlines", "two lines"},
	}
	for _, tt := range tests {
		if got := mermaidLabel(tt.in); got != tt.want {
			t.Errorf("mermaidLabel(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestColumns(t *testing.T) {
	tests := []struct {
		name   string
		wf     *tentacle.Workflow
		stages [][]string
		want   [][]string
	}{
		{
			name: "longest path",
			wf:   newWorkflow("w", "1", []string{"a", "b", "c"}, "a>b", "b>c", "a>c"),
			want: [][]string{{"a"}, {"b"}, {"c"}},
		},
		{
			name: "no edges",
			wf:   newWorkflow("w", "1", []string{"b", "a"}),
			want: [][]string{{"a", "b"}},
		},
		{
			name: "cycle goes last",
			wf:   newWorkflow("w", "1", []string{"a", "b", "c"}, "b>c", "c>b"),
			want: [][]string{{"a"}, {"b", "c"}},
		},
		{
			name:   "stages deduplicated, missing appended",
			wf:     newWorkflow("w", "1", []string{"a", "b", "c"}),
			stages: [][]string{{"b", "b"}, {}, {"a"}},
			want:   [][]string{{"b"}, {"a"}, {"c"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := columns(tt.wf, tt.stages)
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("columns() = %v, want %v", got, tt.want)
			}
		})
	}
}
