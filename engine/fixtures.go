package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"

	"github.com/kraken-ops/kraken/tentacle"
)

// TestOutcome is the verdict on one fixture.
type TestOutcome struct {
	Name     string // the node, or "pipeline"
	Passed   bool
	Problem  string // why it failed, in words
	Got      json.RawMessage
	Duration time.Duration
}

// TestNodes runs every node fixture (tests/fixtures/<node>.json), or only
// the given node's, through the worker and compares the output with the
// expected value, deeply and regardless of key order.
func (l *Local) TestNodes(ctx context.Context, node string) ([]TestOutcome, error) {
	var fixtures []tentacle.Fixture
	if node != "" {
		if _, ok := l.Workflow.Nodes[node]; !ok {
			return nil, fmt.Errorf("%s has no node %q (nodes: %s)", l.Workflow.Name, node, strings.Join(l.Workflow.NodeIDs, ", "))
		}
		f, err := tentacle.LoadFixture(l.Workflow.Dir, node)
		if err != nil {
			return nil, err
		}
		fixtures = []tentacle.Fixture{f}
	} else {
		var err error
		if fixtures, err = tentacle.LoadFixtures(l.Workflow.Dir); err != nil {
			return nil, err
		}
	}
	out := make([]TestOutcome, 0, len(fixtures))
	for _, f := range fixtures {
		o := TestOutcome{Name: f.Node}
		if _, ok := l.Workflow.Nodes[f.Node]; !ok {
			o.Problem = fmt.Sprintf("%s is a fixture for a node the workflow does not have", f.File)
			out = append(out, o)
			continue
		}
		start := time.Now()
		got, err := l.Exec.RunOne(ctx, NewRunID(), f.Node, f.Input)
		o.Duration, o.Got = time.Since(start), got
		switch {
		case err != nil:
			o.Problem = "the node failed: " + err.Error()
		case f.Expected == nil:
			o.Passed = true // the fixture only asks that the node succeed
		default:
			o.Passed, o.Problem = compare(f.Expected, got)
		}
		out = append(out, o)
	}
	return out, nil
}

// TestPipeline runs the whole DAG with tests/fixtures/pipeline.json's input
// and checks the outputs it names; without that file it runs with {} and
// passes when the run succeeds.
func (l *Local) TestPipeline(ctx context.Context) ([]TestOutcome, error) {
	f, err := tentacle.LoadPipelineFixture(l.Workflow.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		f, err = &tentacle.PipelineFixture{Input: json.RawMessage(`{}`)}, nil
	}
	if err != nil {
		return nil, err
	}
	start := time.Now()
	res := l.Exec.Run(ctx, NewRunID(), f.Input)
	o := TestOutcome{Name: "pipeline", Duration: time.Since(start)}
	o.Got, _ = json.Marshal(res.Outputs)
	switch {
	case !res.Success:
		var parts []string
		for _, id := range l.Workflow.NodeIDs {
			if msg, ok := res.Errors[id]; ok {
				parts = append(parts, id+": "+msg)
			}
		}
		o.Problem = "the run failed: " + strings.Join(parts, "; ")
	default:
		mismatches := f.Mismatches(res.Outputs)
		o.Passed = len(mismatches) == 0
		o.Problem = strings.Join(mismatches, "; ")
	}
	return []TestOutcome{o}, nil
}

func compare(expected, got json.RawMessage) (bool, string) {
	eq, err := tentacle.JSONEqual(expected, got)
	if err != nil {
		return false, err.Error()
	}
	if !eq {
		return false, fmt.Sprintf("expected %s, got %s", compact(expected), compact(got))
	}
	return true, ""
}

func compact(raw json.RawMessage) string {
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return string(raw)
	}
	s := b.String()
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}
