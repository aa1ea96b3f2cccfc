package tentacle

import (
	"encoding/json"
	"errors"
	"io/fs"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestLoadFixtures(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{
		"tests/fixtures/store.json":       `{"input": {"items": [1]}, "expected": {"ok": true}}`,
		"tests/fixtures/fetch.json":       `{"input": {}, "expected": [1, 2]}`,
		"tests/fixtures/fetch-extra.json": `{"input": null}`,
		"tests/fixtures/pipeline.json":    `{"input": {}, "expected": {}}`,
		"tests/fixtures/notes.txt":        "not a fixture",
		"tests/fixtures/.draft.json":      "{",
		"tests/fixtures/sub.json/x":       "a directory named like a fixture",
	})
	got, err := LoadFixtures(dir)
	if err != nil {
		t.Fatal(err)
	}
	fdir := filepath.Join(dir, "tests", "fixtures")
	want := []Fixture{
		{Node: "fetch", Input: json.RawMessage(`{}`), Expected: json.RawMessage(`[1, 2]`), File: filepath.Join(fdir, "fetch.json")},
		{Node: "fetch-extra", Input: json.RawMessage(`null`), File: filepath.Join(fdir, "fetch-extra.json")},
		{Node: "store", Input: json.RawMessage(`{"items": [1]}`), Expected: json.RawMessage(`{"ok": true}`), File: filepath.Join(fdir, "store.json")},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("LoadFixtures:\n got  %+v\n want %+v", got, want)
	}

	// Exact names: the fixture of "fetch" is fetch.json, not fetch-extra.json.
	f, err := LoadFixture(dir, "fetch")
	if err != nil || string(f.Expected) != `[1, 2]` {
		t.Errorf("LoadFixture(fetch) = %+v, %v", f, err)
	}
	if _, err := LoadFixture(dir, "summarize"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("LoadFixture(summarize) error = %v, want fs.ErrNotExist", err)
	}
	if _, err := LoadFixture(dir, "../../etc/passwd"); err == nil {
		t.Errorf("LoadFixture accepted a path as node id")
	}

	w := &Workflow{Nodes: map[string]Node{"fetch": {}, "store": {}}, NodeIDs: []string{"fetch", "store"}}
	problems := CheckFixtures(w, got)
	if len(problems) != 1 || problems[0].File != filepath.Join(fdir, "fetch-extra.json") || !strings.Contains(problems[0].Msg, `no node "fetch-extra"`) {
		t.Errorf("CheckFixtures = %v", problems)
	}
}

func TestLoadFixturesNone(t *testing.T) {
	got, err := LoadFixtures(t.TempDir())
	if err != nil || got != nil {
		t.Errorf("LoadFixtures = %v, %v; want nothing", got, err)
	}
}

func TestLoadFixturesErrors(t *testing.T) {
	tests := []struct{ content, msg string }{
		{`{"input": {}, "expect": {}}`, `unknown field "expect"`},
		{`[1]`, "cannot unmarshal array"},
		{`{"input": {}} {}`, "unexpected data after the JSON object"},
		{`{"input": `, "unexpected EOF"},
	}
	for _, tt := range tests {
		dir := t.TempDir()
		writeTree(t, dir, map[string]string{"tests/fixtures/a.json": tt.content, "tests/fixtures/b.json": `{}`})
		got, err := LoadFixtures(dir)
		if err == nil || !strings.Contains(err.Error(), tt.msg) || !strings.Contains(err.Error(), "a.json") {
			t.Errorf("%s: error = %v, want %q", tt.content, err, tt.msg)
		}
		if len(got) != 1 || got[0].Node != "b" {
			t.Errorf("%s: the valid fixture should still load, got %v", tt.content, got)
		}
	}
}

func TestJSONEqual(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{`1`, `1.0`, true},
		{`1`, `1e0`, true},
		{`100`, `1E2`, true},
		{`-0`, `0`, true},
		{`0.1`, `1e-1`, true},
		{`1`, `2`, false},
		{`9007199254740993`, `9007199254740992`, false}, // equal as float64
		{`{"a": 1, "b": [1, 2]}`, `{"b": [1.0, 2], "a": 1}`, true},
		{`{"a": 1}`, `{"a": 1, "b": null}`, false},
		{`{"a": null}`, `{"b": null}`, false},
		{`[1, 2]`, `[2, 1]`, false},
		{`[]`, `{}`, false},
		{`"1"`, `1`, false},
		{`true`, `true`, true},
		{`null`, `null`, true},
		{`null`, `false`, false},
		{`"é"`, `"\u00e9"`, true},
		{` {"x": {"y": [ {"z": 1} ]}} `, `{"x":{"y":[{"z":1.00}]}}`, true},
	}
	for _, tt := range tests {
		got, err := JSONEqual(json.RawMessage(tt.a), json.RawMessage(tt.b))
		if err != nil || got != tt.want {
			t.Errorf("JSONEqual(%s, %s) = %v, %v; want %v", tt.a, tt.b, got, err, tt.want)
		}
	}
	for _, bad := range []string{``, `{`, `1 2`, `nope`} {
		if _, err := JSONEqual(json.RawMessage(bad), json.RawMessage(`1`)); err == nil {
			t.Errorf("JSONEqual(%q, 1) accepted invalid JSON", bad)
		}
		if _, err := JSONEqual(json.RawMessage(`1`), json.RawMessage(bad)); err == nil {
			t.Errorf("JSONEqual(1, %q) accepted invalid JSON", bad)
		}
	}
}

func TestPipelineFixture(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{
		"tests/fixtures/pipeline.json": `{
  "input": {"repo": "kraken"},
  "expected": {
    "fetch": {"count": 2},
    "summarize": {"text": "two events"},
    "notify": {"sent": true}
  }
}`,
	})
	f, err := LoadPipelineFixture(dir)
	if err != nil {
		t.Fatal(err)
	}
	if string(f.Input) != `{"repo": "kraken"}` || len(f.Expected) != 3 {
		t.Fatalf("fixture = %+v", f)
	}
	outputs := map[string]json.RawMessage{
		"fetch":     json.RawMessage(`{"count": 2.0}`),
		"summarize": json.RawMessage(`{"text": "three events"}`),
		"store":     json.RawMessage(`{"anything": "goes"}`), // not listed: not checked
	}
	want := []string{
		`notify: no output (the node did not run)`,
		`summarize: got {"text":"three events"}, want {"text":"two events"}`,
	}
	if got := f.Mismatches(outputs); !reflect.DeepEqual(got, want) {
		t.Errorf("Mismatches:\n got  %q\n want %q", got, want)
	}
	outputs["summarize"] = json.RawMessage(`{"text":"two events"}`)
	outputs["notify"] = json.RawMessage(`{"sent": true}`)
	if got := f.Mismatches(outputs); len(got) != 0 {
		t.Errorf("Mismatches = %q, want none", got)
	}
	outputs["notify"] = json.RawMessage(`{`)
	if got := f.Mismatches(outputs); len(got) != 1 || !strings.HasPrefix(got[0], "notify: cannot compare") {
		t.Errorf("Mismatches with invalid output = %q", got)
	}

	if _, err := LoadPipelineFixture(t.TempDir()); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing pipeline fixture: error = %v", err)
	}
}

func TestExcerptIsShort(t *testing.T) {
	long := json.RawMessage(`"` + strings.Repeat("é", 300) + `"`)
	got := excerpt(long)
	if len(got) > 210 || !strings.HasSuffix(got, "…") || !json.Valid([]byte(strings.TrimSuffix(got, "…")+`"`)) {
		t.Errorf("excerpt = %q", got)
	}
}
