package runs_test

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/kraken-ops/kraken/bot/runs"
	"github.com/kraken-ops/kraken/store"
)

// engine answers POST /run as the engine does; block holds a run until
// released or cancelled. The real engine is exercised through the
// registry's and the bot's end-to-end tests.
type engine struct {
	mu    sync.Mutex
	body  string
	err   error
	block chan struct{}
	began chan struct{}
}

func (e *engine) Run(ctx context.Context, _, _ string, _ json.RawMessage) (json.RawMessage, error) {
	e.mu.Lock()
	body, err, block, began := e.body, e.err, e.block, e.began
	e.mu.Unlock()
	if began != nil {
		began <- struct{}{}
	}
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return json.RawMessage(body), err
}

const ok = `{"success":true,"outputs":{"a":1,"b":2},"errors":{},"timing":{"durationMs":12,"nodeTimings":{"a":{"durationMs":5},"b":{"durationMs":7}}}}`
const failed = `{"success":false,"outputs":{"a":1},"errors":{"b":"boom"},"timing":{"durationMs":9,"nodeTimings":{"a":{"durationMs":5},"b":{"durationMs":4}}}}`

func newRunner(t *testing.T, e *engine) (*runs.Runner, *store.DB, *[]runs.Record) {
	t.Helper()
	db, err := store.Open(filepath.Join(t.TempDir(), "kraken.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	var mu sync.Mutex
	ended := &[]runs.Record{}
	r, err := runs.New(runs.Config{Tentacles: e, Store: db, Ended: func(rec runs.Record) {
		mu.Lock()
		defer mu.Unlock()
		*ended = append(*ended, rec)
	}})
	if err != nil {
		t.Fatal(err)
	}
	return r, db, ended
}

var req = runs.Request{Enclave: "payments", Tentacle: "hello", Trigger: "manual", Actor: "U1", Input: json.RawMessage(`{"n":1}`)}

func TestRunRecords(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name    string
		e       *engine
		state   runs.State
		err     string
		summary string
		nodes   map[string]runs.Node
	}{
		{"success", &engine{body: ok}, runs.Succeeded, "", "2 steps in 12 ms",
			map[string]runs.Node{"a": {State: runs.Succeeded, DurationMs: 5}, "b": {State: runs.Succeeded, DurationMs: 7}}},
		{"a step failed", &engine{body: failed}, runs.Failed, "b: boom", "2 steps in 9 ms",
			map[string]runs.Node{"a": {State: runs.Succeeded, DurationMs: 5}, "b": {State: runs.Failed, DurationMs: 4, Error: "boom"}}},
		{"unreachable", &engine{err: errors.New("the tentacle is not answering")}, runs.Failed, "the tentacle is not answering", "", nil},
		{"garbage", &engine{body: "<html>"}, runs.Failed, "the tentacle answered something unreadable", "", nil},
	}
	for _, tt := range tests {
		r, _, ended := newRunner(t, tt.e)
		rec, _, err := r.Run(ctx, req)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if rec.State != tt.state || rec.Error != tt.err || rec.Summary != tt.summary || rec.Ended.IsZero() || rec.Trigger != "manual" || rec.Actor != "U1" {
			t.Errorf("%s: record %+v", tt.name, rec)
		}
		if len(tt.nodes) > 0 && !equalNodes(rec.Nodes, tt.nodes) {
			t.Errorf("%s: nodes %+v", tt.name, rec.Nodes)
		}
		list, err := r.List(ctx, "payments", "hello", 0)
		if err != nil || len(list) != 1 || list[0].State != tt.state {
			t.Errorf("%s: stored %+v %v", tt.name, list, err)
		}
		if len(*ended) != 1 {
			t.Errorf("%s: Ended told %d times", tt.name, len(*ended))
		}
	}
}

func equalNodes(a, b map[string]runs.Node) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestCancelAndDrain(t *testing.T) {
	ctx := context.Background()
	e := &engine{body: ok, block: make(chan struct{}), began: make(chan struct{}, 4)}
	r, _, _ := newRunner(t, e)
	done := make(chan runs.Record, 4)
	rec, err := r.Start(ctx, req, func(rec runs.Record, _ json.RawMessage) { done <- rec })
	if err != nil {
		t.Fatal(err)
	}
	<-e.began
	if got, _ := r.List(ctx, "payments", "", 0); len(got) != 1 || got[0].State != runs.Running {
		t.Errorf("while running: %+v", got)
	}
	if err := r.Cancel(rec.ID); err != nil {
		t.Fatal(err)
	}
	if end := <-done; end.State != runs.Cancelled {
		t.Errorf("cancelled run: %+v", end)
	}
	if err := r.Cancel(rec.ID); !errors.Is(err, runs.ErrNotRunning) {
		t.Errorf("cancelling again: %v", err)
	}

	// Draining: a run that ends in the grace period ends normally; one
	// that does not is interrupted; nothing new starts.
	if _, err := r.Start(ctx, req, func(rec runs.Record, _ json.RawMessage) { done <- rec }); err != nil {
		t.Fatal(err)
	}
	<-e.began
	drained := make(chan struct{})
	grace, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	go func() { r.Drain(grace); close(drained) }()
	<-drained
	if end := <-done; end.State != runs.Interrupted {
		t.Errorf("a run cut by the drain: %+v", end)
	}
	if _, _, err := r.Run(ctx, req); !errors.Is(err, runs.ErrStopping) {
		t.Errorf("a run while stopping: %v", err)
	}
}

func TestInterruptedAfterACrash(t *testing.T) {
	ctx := context.Background()
	e := &engine{body: ok, block: make(chan struct{}), began: make(chan struct{}, 1)}
	dir := t.TempDir()
	db, err := store.Open(filepath.Join(dir, "kraken.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	r, _ := runs.New(runs.Config{Tentacles: e, Store: db})
	if _, err := r.Start(ctx, req, nil); err != nil {
		t.Fatal(err)
	}
	<-e.began
	// The process "dies": a new runner on the same records.
	again, _ := runs.New(runs.Config{Tentacles: &engine{body: ok}, Store: db})
	marked, err := again.MarkInterrupted(ctx)
	if err != nil || len(marked) != 1 || marked[0].State != runs.Interrupted || string(marked[0].Input) != `{"n":1}` {
		t.Fatalf("marked %+v %v", marked, err)
	}
	if marked, _ := again.MarkInterrupted(ctx); len(marked) != 0 {
		t.Errorf("marked twice: %+v", marked)
	}
	close(e.block)
	db.Close()
}

func TestListNotePrune(t *testing.T) {
	ctx := context.Background()
	r, _, _ := newRunner(t, &engine{body: ok})
	for range 3 {
		if _, _, err := r.Run(ctx, req); err != nil {
			t.Fatal(err)
		}
	}
	other := req
	other.Tentacle = "other"
	if _, err := r.Note(ctx, other, runs.Skipped, "the last run was still going"); err != nil {
		t.Fatal(err)
	}
	if all, _ := r.List(ctx, "payments", "", 0); len(all) != 4 || all[0].Tentacle != "other" || all[0].State != runs.Skipped {
		t.Errorf("all runs, newest first: %+v", all)
	}
	if two, _ := r.List(ctx, "payments", "hello", 2); len(two) != 2 || !two[0].Started.After(two[1].Started) && !two[0].Started.Equal(two[1].Started) {
		t.Errorf("limited: %+v", two)
	}
	if got, found, err := r.Get(ctx, "payments", "nope"); found || err != nil {
		t.Errorf("Get of a missing run: %+v %v", got, err)
	}
	n, err := r.Prune(ctx, time.Now().Add(time.Hour))
	if err != nil || n != 4 {
		t.Errorf("prune: %d %v", n, err)
	}
}
