package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kraken-ops/kraken/tentacle"
)

// graph builds a workflow from "a->b" edge strings and lone node names.
func graph(specs ...string) *tentacle.Workflow {
	wf := &tentacle.Workflow{Name: "t", Nodes: map[string]tentacle.Node{}}
	addNode := func(id string) {
		if _, ok := wf.Nodes[id]; !ok {
			wf.Nodes[id] = tentacle.Node{ID: id, Path: "nodes/" + id + ".ts"}
			wf.NodeIDs = append(wf.NodeIDs, id)
		}
	}
	for _, s := range specs {
		from, to, ok := strings.Cut(s, "->")
		addNode(from)
		if ok {
			addNode(to)
			wf.Edges = append(wf.Edges, tentacle.Edge{From: from, To: to})
		}
	}
	return wf
}

func TestCompile(t *testing.T) {
	tests := []struct {
		name   string
		wf     *tentacle.Workflow
		stages [][]string
		err    string
	}{
		{"single", graph("a"), [][]string{{"a"}}, ""},
		{"no edges: one stage", graph("c", "a", "b"), [][]string{{"a", "b", "c"}}, ""},
		{"chain", graph("a->b", "b->c"), [][]string{{"a"}, {"b"}, {"c"}}, ""},
		{"diamond", graph("fetch->transform", "fetch->enrich", "transform->notify", "enrich->notify"),
			[][]string{{"fetch"}, {"enrich", "transform"}, {"notify"}}, ""},
		{"longest path decides the stage", graph("a->b", "b->c", "a->c", "x->c"),
			[][]string{{"a", "x"}, {"b"}, {"c"}}, ""},
		{"repeated edge", graph("a->b", "a->b"), [][]string{{"a"}, {"b"}}, ""},
		{"cycle", graph("a->b", "b->c", "c->b"), nil, "cycle through b, c"},
		{"no nodes", &tentacle.Workflow{Name: "t"}, nil, "no nodes"},
		{"unknown node", func() *tentacle.Workflow {
			wf := graph("a")
			wf.Edges = append(wf.Edges, tentacle.Edge{From: "a", To: "zz"})
			return wf
		}(), nil, "unknown node"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plan, err := Compile(tt.wf)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(plan.Stages, tt.stages) {
				t.Fatalf("stages = %v, want %v", plan.Stages, tt.stages)
			}
		})
	}
}

func TestCompileIsDeterministic(t *testing.T) {
	wf := graph("m->z", "m->a", "k->a", "b->z", "a->q")
	first, err := Compile(wf)
	if err != nil {
		t.Fatal(err)
	}
	for range 50 {
		again, _ := Compile(wf)
		if !reflect.DeepEqual(first, again) {
			t.Fatalf("plans differ: %v vs %v", first, again)
		}
	}
}

// echo returns, for every node, {"node": id, "input": input}.
func echo(ctx context.Context, c NodeCall) (json.RawMessage, error) {
	return json.Marshal(map[string]any{"node": c.Node, "input": c.Input})
}

func mustExec(t *testing.T, wf *tentacle.Workflow, r RunnerFunc) *Executor {
	t.Helper()
	e, err := NewExecutor(wf, r)
	if err != nil {
		t.Fatal(err)
	}
	e.Backoff = func(int) time.Duration { return time.Millisecond }
	return e
}

func decode(t *testing.T, raw json.RawMessage) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("%s: %v", raw, err)
	}
	return v
}

func TestInputResolution(t *testing.T) {
	e := mustExec(t, graph("root->one", "root->x", "one->many", "x->many"), echo)
	res := e.Run(context.Background(), "r1", json.RawMessage(`{"hello":1}`))
	if !res.Success {
		t.Fatalf("run failed: %v", res.Errors)
	}
	root := decode(t, res.Outputs["root"]).(map[string]any)
	if !reflect.DeepEqual(root["input"], map[string]any{"hello": 1.0}) {
		t.Errorf("root got %v, want the run input", root["input"])
	}
	one := decode(t, res.Outputs["one"]).(map[string]any)
	if !reflect.DeepEqual(one["input"], decode(t, res.Outputs["root"])) {
		t.Errorf("one got %v, want root's output as is", one["input"])
	}
	many := decode(t, res.Outputs["many"]).(map[string]any)["input"].(map[string]any)
	if len(many) != 2 || many["one"] == nil || many["x"] == nil {
		t.Errorf("many got %v, want an object keyed by one and x", many)
	}
}

func TestEmptyOrBadInputBecomesObject(t *testing.T) {
	for _, in := range []string{"", "not json", "{"} {
		e := mustExec(t, graph("a"), echo)
		res := e.Run(context.Background(), "r", json.RawMessage(in))
		got := decode(t, res.Outputs["a"]).(map[string]any)["input"]
		if !reflect.DeepEqual(got, map[string]any{}) {
			t.Errorf("input %q: root got %v, want {}", in, got)
		}
	}
}

func TestResultShape(t *testing.T) {
	e := mustExec(t, graph("a->b"), echo)
	res := e.Run(context.Background(), "r", nil)
	b, _ := json.Marshal(res)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	for _, k := range []string{"success", "outputs", "errors", "timing"} {
		if _, ok := m[k]; !ok {
			t.Errorf("result lacks %q: %s", k, b)
		}
	}
	timing := m["timing"].(map[string]any)
	for _, k := range []string{"startedAt", "completedAt", "durationMs", "nodeTimings"} {
		if _, ok := timing[k]; !ok {
			t.Errorf("timing lacks %q: %s", k, b)
		}
	}
	nt := timing["nodeTimings"].(map[string]any)["a"].(map[string]any)
	if nt["startedAt"].(float64) < float64(time.Now().Add(-time.Minute).UnixMilli()) {
		t.Errorf("startedAt is not epoch milliseconds: %v", nt["startedAt"])
	}
}

func TestWideFanOutRunsConcurrently(t *testing.T) {
	specs := []string{}
	for i := range 64 {
		specs = append(specs, fmt.Sprintf("src->n%02d", i), fmt.Sprintf("n%02d->sink", i))
	}
	var running, peak atomic.Int32
	e := mustExec(t, graph(specs...), func(ctx context.Context, c NodeCall) (json.RawMessage, error) {
		n := running.Add(1)
		defer running.Add(-1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(20 * time.Millisecond)
		return json.RawMessage(`1`), nil
	})
	res := e.Run(context.Background(), "r", nil)
	if !res.Success || len(res.Outputs) != 66 {
		t.Fatalf("success=%v outputs=%d errors=%v", res.Success, len(res.Outputs), res.Errors)
	}
	if peak.Load() < 32 {
		t.Fatalf("at most %d nodes ran at once; a stage's nodes should run concurrently", peak.Load())
	}
	if len(e.Plan.Stages) != 3 || len(e.Plan.Deps["sink"]) != 64 {
		t.Fatalf("plan = %d stages, sink has %d deps", len(e.Plan.Stages), len(e.Plan.Deps["sink"]))
	}
}

func TestFailures(t *testing.T) {
	type attempts = map[string]*atomic.Int32
	tests := []struct {
		name     string
		wf       *tentacle.Workflow
		retries  int
		timeout  time.Duration
		runner   func(n attempts) RunnerFunc
		wantErr  map[string]string // node → message fragment
		wantOut  []string          // nodes with outputs
		absent   []string          // nodes with neither output, error nor timing
		attempts map[string]int32
	}{
		{
			name: "fail-fast: the stage finishes, later stages do not run",
			wf:   graph("a->bad", "a->good", "bad->z", "good->z"),
			runner: func(attempts) RunnerFunc {
				return func(ctx context.Context, c NodeCall) (json.RawMessage, error) {
					if c.Node == "bad" {
						return nil, &NodeError{Kind: KindThrow, Msg: "boom"}
					}
					return json.RawMessage(`true`), nil
				}
			},
			wantErr: map[string]string{"bad": "boom"}, wantOut: []string{"a", "good"}, absent: []string{"z"},
		},
		{
			name: "retries until success", wf: graph("a"), retries: 3,
			runner: func(n attempts) RunnerFunc {
				return func(ctx context.Context, c NodeCall) (json.RawMessage, error) {
					if n["a"].Add(1) < 3 {
						return nil, errors.New("flaky")
					}
					return json.RawMessage(`"ok"`), nil
				}
			},
			wantOut: []string{"a"}, attempts: map[string]int32{"a": 3},
		},
		{
			name: "retry exhaustion keeps the last error", wf: graph("a"), retries: 2,
			runner: func(n attempts) RunnerFunc {
				return func(ctx context.Context, c NodeCall) (json.RawMessage, error) {
					return nil, fmt.Errorf("failure %d", n["a"].Add(1))
				}
			},
			wantErr: map[string]string{"a": "failure 3 (gave up after 3 attempts)"}, attempts: map[string]int32{"a": 3},
		},
		{
			name: "load errors are not retried", wf: graph("a"), retries: 5,
			runner: func(n attempts) RunnerFunc {
				return func(ctx context.Context, c NodeCall) (json.RawMessage, error) {
					n["a"].Add(1)
					return nil, &NodeError{Kind: KindLoad, Msg: "no default export"}
				}
			},
			wantErr: map[string]string{"a": "no default export"}, attempts: map[string]int32{"a": 1},
		},
		{
			name: "timeout per attempt, retried", wf: graph("a"), retries: 1, timeout: 30 * time.Millisecond,
			runner: func(n attempts) RunnerFunc {
				return func(ctx context.Context, c NodeCall) (json.RawMessage, error) {
					n["a"].Add(1)
					<-ctx.Done()
					return nil, ctx.Err()
				}
			},
			wantErr: map[string]string{"a": "timed out after 30ms (gave up after 2 attempts)"}, attempts: map[string]int32{"a": 2},
		},
		{
			name: "a panicking runner fails the node, not the run", wf: graph("a->b"),
			runner: func(attempts) RunnerFunc {
				return func(ctx context.Context, c NodeCall) (json.RawMessage, error) { panic("kaboom") }
			},
			wantErr: map[string]string{"a": "the node runner failed: kaboom"}, absent: []string{"b"},
		},
		{
			name: "an output that is not JSON", wf: graph("a"),
			runner: func(attempts) RunnerFunc {
				return func(ctx context.Context, c NodeCall) (json.RawMessage, error) { return json.RawMessage(`{nope`), nil }
			},
			wantErr: map[string]string{"a": "not JSON"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := attempts{}
			for _, id := range tt.wf.NodeIDs {
				n[id] = &atomic.Int32{}
			}
			e := mustExec(t, tt.wf, tt.runner(n))
			e.Retries = tt.retries
			e.Timeout = tt.timeout
			res := e.Run(context.Background(), "r", nil)
			if res.Success != (len(tt.wantErr) == 0) {
				t.Fatalf("success = %v, errors = %v", res.Success, res.Errors)
			}
			for node, frag := range tt.wantErr {
				if !strings.Contains(res.Errors[node], frag) {
					t.Errorf("errors[%s] = %q, want it to contain %q", node, res.Errors[node], frag)
				}
				if _, ok := res.Timing.NodeTimings[node]; !ok {
					t.Errorf("failed node %s has no timing", node)
				}
			}
			for _, node := range tt.wantOut {
				if _, ok := res.Outputs[node]; !ok {
					t.Errorf("no output for %s", node)
				}
			}
			for _, node := range tt.absent {
				_, o := res.Outputs[node]
				_, e := res.Errors[node]
				_, tm := res.Timing.NodeTimings[node]
				if o || e || tm {
					t.Errorf("%s should be absent from the result", node)
				}
			}
			for node, want := range tt.attempts {
				if got := n[node].Load(); got != want {
					t.Errorf("%s ran %d times, want %d", node, got, want)
				}
			}
		})
	}
}

func TestDefaultBackoffDoubles(t *testing.T) {
	var e Executor
	for i, want := range []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond} {
		if got := e.backoff(i); got != want {
			t.Errorf("backoff(%d) = %s, want %s", i, got, want)
		}
	}
}

func TestCancellation(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan struct{})
	e := mustExec(t, graph("a->b"), func(ctx context.Context, c NodeCall) (json.RawMessage, error) {
		close(started)
		<-ctx.Done()
		return nil, ctx.Err()
	})
	e.Retries = 3
	done := make(chan *Result)
	go func() { done <- e.Run(ctx, "r", nil) }()
	<-started
	cancel()
	select {
	case res := <-done:
		if res.Success || !strings.Contains(res.Errors["a"], "cancelled") {
			t.Fatalf("errors = %v, want a cancelled", res.Errors)
		}
		if _, ok := res.Outputs["b"]; ok {
			t.Fatal("b ran after cancellation")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("run did not stop after cancellation")
	}
}

func TestCancelledBetweenStagesMarksTheRest(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	e := mustExec(t, graph("a->b"), func(_ context.Context, c NodeCall) (json.RawMessage, error) {
		cancel() // the node itself finishes; the next stage must not start
		return json.RawMessage(`1`), nil
	})
	res := e.Run(ctx, "r", nil)
	if res.Success || !strings.Contains(res.Errors["b"], "cancelled before this step started") {
		t.Fatalf("result = %+v", res)
	}
}

func TestObserverSeesEveryTransition(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	calls := 0
	e := mustExec(t, graph("a->b"), func(ctx context.Context, c NodeCall) (json.RawMessage, error) {
		mu.Lock()
		calls++
		first := c.Node == "a" && calls == 1
		mu.Unlock()
		if first {
			return nil, errors.New("once")
		}
		return json.RawMessage(`1`), nil
	})
	e.Retries = 1
	e.Observe = func(ev Event) {
		mu.Lock()
		seen = append(seen, fmt.Sprintf("%s:%s:%d", ev.Node, ev.State, ev.Attempt))
		mu.Unlock()
	}
	e.Run(context.Background(), "r", nil)
	want := []string{"a:started:1", "a:retrying:1", "a:started:2", "a:succeeded:2", "b:started:1", "b:succeeded:1"}
	if !reflect.DeepEqual(seen, want) {
		t.Fatalf("events = %v, want %v", seen, want)
	}
}

func TestConcurrentRunsAreIsolated(t *testing.T) {
	e := mustExec(t, graph("a->b"), func(ctx context.Context, c NodeCall) (json.RawMessage, error) {
		time.Sleep(time.Millisecond)
		return c.Input, nil
	})
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			in := json.RawMessage(fmt.Sprintf(`{"i":%d}`, i))
			res := e.Run(context.Background(), fmt.Sprint(i), in)
			if string(res.Outputs["b"]) != string(in) {
				t.Errorf("run %d got %s", i, res.Outputs["b"])
			}
		})
	}
	wg.Wait()
}
