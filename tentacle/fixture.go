package tentacle

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// FixtureDir is where a tentacle keeps its test fixtures, relative to its
// directory.
const FixtureDir = "tests/fixtures"

// PipelineFixtureFile is the fixture for a whole run rather than one node,
// so no node can have its own fixture named "pipeline".
const PipelineFixtureFile = "pipeline.json"

// Fixture is tests/fixtures/<node>.json: the input a node is given and
// the output it must return.
type Fixture struct {
	Node string
	// Input is nil when the fixture has none.
	Input json.RawMessage
	// Expected is nil when the fixture only checks that the node succeeds.
	Expected json.RawMessage
	File     string
}

// PipelineFixture is tests/fixtures/pipeline.json: the input of a whole
// run, and the expected outputs of some of its nodes.
type PipelineFixture struct {
	Input json.RawMessage
	// Expected maps node ids to their expected output; nodes not listed
	// are not checked.
	Expected map[string]json.RawMessage
	File     string
}

// LoadFixtures returns the node fixtures of the tentacle in dir, sorted
// by node; none when there is no fixture directory. CheckFixtures tells
// which of them name no node.
func LoadFixtures(dir string) ([]Fixture, error) {
	fdir := filepath.Join(dir, filepath.FromSlash(FixtureDir))
	entries, err := os.ReadDir(fdir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("fixtures: %w", err)
	}
	var out []Fixture
	var errs []error
	for _, e := range entries {
		node, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || node == "" || e.IsDir() || strings.HasPrefix(node, ".") || e.Name() == PipelineFixtureFile {
			continue
		}
		f, err := readFixture(filepath.Join(fdir, e.Name()), node)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, f)
	}
	slices.SortFunc(out, func(a, b Fixture) int { return strings.Compare(a.Node, b.Node) })
	return out, errors.Join(errs...)
}

// LoadFixture returns the fixture of one node; the error wraps
// fs.ErrNotExist when it has none.
func LoadFixture(dir, node string) (Fixture, error) {
	if err := checkIdent("node id", node); err != nil {
		return Fixture{}, fmt.Errorf("fixture: %w", err)
	}
	return readFixture(filepath.Join(dir, filepath.FromSlash(FixtureDir), node+".json"), node)
}

// CheckFixtures reports fixtures whose node the workflow does not have:
// they would otherwise never run, and silently.
func CheckFixtures(w *Workflow, fixtures []Fixture) []Problem {
	var out []Problem
	for _, f := range fixtures {
		if _, ok := w.Nodes[f.Node]; !ok {
			out = append(out, Problem{File: f.File, Msg: fmt.Sprintf("no node %q in the workflow%s", f.Node, didYouMean(f.Node, w.NodeIDs))})
		}
	}
	return out
}

// LoadPipelineFixture returns tests/fixtures/pipeline.json; the error
// wraps fs.ErrNotExist when there is none.
func LoadPipelineFixture(dir string) (*PipelineFixture, error) {
	file := filepath.Join(dir, filepath.FromSlash(FixtureDir), PipelineFixtureFile)
	var raw struct {
		Input    json.RawMessage            `json:"input"`
		Expected map[string]json.RawMessage `json:"expected"`
	}
	if err := decodeFixture(file, &raw); err != nil {
		return nil, err
	}
	return &PipelineFixture{Input: raw.Input, Expected: raw.Expected, File: file}, nil
}

// Mismatches compares the outputs of a run, by node id, with the expected
// ones and describes each difference; none means the run passes. Only the
// nodes the fixture lists are checked.
func (f *PipelineFixture) Mismatches(outputs map[string]json.RawMessage) []string {
	var out []string
	for _, id := range slices.Sorted(maps.Keys(f.Expected)) {
		want := f.Expected[id]
		got, ok := outputs[id]
		if !ok {
			out = append(out, fmt.Sprintf("%s: no output (the node did not run)", id))
			continue
		}
		equal, err := JSONEqual(got, want)
		switch {
		case err != nil:
			out = append(out, fmt.Sprintf("%s: cannot compare: %v", id, err))
		case !equal:
			out = append(out, fmt.Sprintf("%s: got %s, want %s", id, excerpt(got), excerpt(want)))
		}
	}
	return out
}

func readFixture(file, node string) (Fixture, error) {
	var raw struct {
		Input    json.RawMessage `json:"input"`
		Expected json.RawMessage `json:"expected"`
	}
	if err := decodeFixture(file, &raw); err != nil {
		return Fixture{}, err
	}
	return Fixture{Node: node, Input: raw.Input, Expected: raw.Expected, File: file}, nil
}

// decodeFixture decodes one JSON object strictly: a misspelt "expected"
// must not turn into a fixture that checks nothing.
func decodeFixture(file string, v any) error {
	data, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("fixture: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("fixture %s: %w", file, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("fixture %s: unexpected data after the JSON object", file)
	}
	return nil
}

// JSONEqual reports whether a and b are the same JSON value, whatever the
// order of object keys and however numbers are written (1 equals 1.0 and
// 1e0).
func JSONEqual(a, b json.RawMessage) (bool, error) {
	va, err := decodeJSON(a)
	if err != nil {
		return false, fmt.Errorf("first value: %w", err)
	}
	vb, err := decodeJSON(b)
	if err != nil {
		return false, fmt.Errorf("second value: %w", err)
	}
	return jsonValuesEqual(va, vb), nil
}

func decodeJSON(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber() // compare numbers exactly, not as float64
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("unexpected data after the JSON value")
	}
	return v, nil
}

func jsonValuesEqual(a, b any) bool {
	switch a := a.(type) {
	case map[string]any:
		b, ok := b.(map[string]any)
		if !ok || len(a) != len(b) {
			return false
		}
		for k, va := range a {
			vb, ok := b[k]
			if !ok || !jsonValuesEqual(va, vb) {
				return false
			}
		}
		return true
	case []any:
		b, ok := b.([]any)
		return ok && slices.EqualFunc(a, b, jsonValuesEqual)
	case json.Number:
		b, ok := b.(json.Number)
		return ok && numbersEqual(a, b)
	default: // string, bool, nil
		return a == b
	}
}

// numbersEqual compares exactly, so that large integers that share a
// float64 are still told apart.
func numbersEqual(a, b json.Number) bool {
	if a == b {
		return true
	}
	x, okx := new(big.Rat).SetString(string(a))
	y, oky := new(big.Rat).SetString(string(b))
	return okx && oky && x.Cmp(y) == 0
}

// excerpt renders a JSON value compactly for a message, cut short when
// long.
func excerpt(v json.RawMessage) string {
	const limit = 200
	var b bytes.Buffer
	s := string(v)
	if json.Compact(&b, v) == nil {
		s = b.String()
	}
	if len(s) > limit {
		s = strings.ToValidUTF8(s[:limit], "") + "…"
	}
	return s
}
