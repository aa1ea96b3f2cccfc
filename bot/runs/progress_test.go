package runs_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/kraken-ops/kraken/bot/runs"
	"github.com/kraken-ops/kraken/store"
	"github.com/kraken-ops/kraken/tentacle"
)

// watching is an engine that tells progress: each event the test sends
// is handed on, and the run ends with body when the test closes events.
type watching struct {
	body   string
	events chan tentacle.NodeProgress
}

func (w *watching) Run(context.Context, string, string, json.RawMessage) (json.RawMessage, error) {
	panic("a runner with a RunWatcher must follow its runs")
}

func (w *watching) RunWatch(ctx context.Context, _, _ string, _ json.RawMessage, progress func(tentacle.NodeProgress)) (json.RawMessage, error) {
	for {
		select {
		case p, ok := <-w.events:
			if !ok {
				return json.RawMessage(w.body), nil
			}
			progress(p)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func newWatchingRunner(t *testing.T, every time.Duration) (*runs.Runner, *watching) {
	t.Helper()
	db, err := store.Open(filepath.Join(t.TempDir(), "kraken.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	w := &watching{body: ok, events: make(chan tentacle.NodeProgress)}
	r, err := runs.New(runs.Config{Tentacles: w, Store: db, ProgressEvery: every})
	if err != nil {
		t.Fatal(err)
	}
	return r, w
}

// next reads updates until one satisfies want.
func next(t *testing.T, updates <-chan runs.Record, what string, want func(runs.Record) bool) runs.Record {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case rec, open := <-updates:
			if !open {
				t.Fatalf("the updates ended before %s", what)
			}
			if want(rec) {
				return rec
			}
		case <-timeout:
			t.Fatalf("no update with %s", what)
		}
	}
}

func TestFollow(t *testing.T) {
	ctx := context.Background()
	r, w := newWatchingRunner(t, time.Hour)
	done := make(chan runs.Record, 1)
	rec, err := r.Start(ctx, req, func(rec runs.Record, _ json.RawMessage) { done <- rec })
	if err != nil {
		t.Fatal(err)
	}
	updates, found := r.Follow(rec.ID)
	if !found {
		t.Fatal("a run in flight cannot be followed")
	}
	if first := <-updates; first.ID != rec.ID || first.State != runs.Running || len(first.Nodes) != 0 {
		t.Fatalf("the first update: %+v", first)
	}
	for _, p := range []tentacle.NodeProgress{
		{Node: "a", State: tentacle.NodeStarted, Attempt: 1},
		{Node: "a", State: tentacle.NodeSucceeded, Attempt: 1, Duration: 5 * time.Millisecond},
		{Node: "b", State: tentacle.NodeStarted, Attempt: 1},
		{Node: "b", State: tentacle.NodeRetrying, Attempt: 1, Duration: time.Millisecond, Error: "glitch"},
		{Node: "b", State: tentacle.NodeStarted, Attempt: 2},
		{Node: "b", State: "paused"}, // unknown to this bot: skipped
	} {
		w.events <- p
	}
	got := next(t, updates, "b's second attempt", func(rec runs.Record) bool { return rec.Nodes["b"].Attempt == 2 })
	want := map[string]runs.Node{
		"a": {State: runs.Succeeded, Attempt: 1, DurationMs: 5},
		"b": {State: runs.Running, Attempt: 2, Error: "glitch"},
	}
	if got.State != runs.Running || !equalNodes(got.Nodes, want) {
		t.Fatalf("progress %+v, want nodes %+v", got, want)
	}
	// The store has the record as it started: the next progress write is
	// an hour away.
	if stored, _, _ := r.Get(ctx, req.Enclave, rec.ID); len(stored.Nodes) != 0 || stored.State != runs.Running {
		t.Errorf("the store has every step: %+v", stored)
	}
	// A second follower starts from where the run is.
	late, _ := r.Follow(rec.ID)
	if l := <-late; !equalNodes(l.Nodes, want) {
		t.Errorf("a late follower starts with %+v", l.Nodes)
	}
	close(w.events)

	final := next(t, updates, "the end", func(rec runs.Record) bool { return rec.State != runs.Running })
	if _, open := <-updates; open {
		t.Error("the updates go on after the end")
	}
	end := <-done
	wantEnd := map[string]runs.Node{"a": {State: runs.Succeeded, Attempt: 1, DurationMs: 5}, "b": {State: runs.Succeeded, Attempt: 2, DurationMs: 7}}
	if final.State != runs.Succeeded || !equalNodes(final.Nodes, wantEnd) || !equalNodes(end.Nodes, wantEnd) {
		t.Errorf("the end: followed %+v, done %+v", final, end)
	}
	if stored, _, _ := r.Get(ctx, req.Enclave, rec.ID); stored.State != runs.Succeeded || !equalNodes(stored.Nodes, wantEnd) {
		t.Errorf("stored at the end: %+v", stored)
	}
	if _, found := r.Follow(rec.ID); found {
		t.Error("an ended run can still be followed")
	}
	if _, found := r.Follow("nope"); found {
		t.Error("an unknown run can be followed")
	}
}

// TestProgressIsStored: the store gets the progress, at most once a
// period, while the run goes on.
func TestProgressIsStored(t *testing.T) {
	ctx := context.Background()
	r, w := newWatchingRunner(t, 10*time.Millisecond)
	ended := make(chan struct{})
	rec, err := r.Start(ctx, req, func(runs.Record, json.RawMessage) { close(ended) })
	if err != nil {
		t.Fatal(err)
	}
	w.events <- tentacle.NodeProgress{Node: "a", State: tentacle.NodeStarted, Attempt: 1}
	w.events <- tentacle.NodeProgress{Node: "a", State: tentacle.NodeSucceeded, Attempt: 1}
	deadline := time.Now().Add(10 * time.Second)
	for {
		stored, _, err := r.Get(ctx, req.Enclave, rec.ID)
		if err != nil {
			t.Fatal(err)
		}
		if stored.Nodes["a"].State == runs.Succeeded && stored.State == runs.Running {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the store never had the progress: %+v", stored)
		}
		time.Sleep(5 * time.Millisecond)
	}
	close(w.events)
	<-ended
}

// TestCancelWhileFollowed: steps left running end as the run did.
func TestCancelWhileFollowed(t *testing.T) {
	ctx := context.Background()
	r, w := newWatchingRunner(t, time.Millisecond)
	done := make(chan runs.Record, 1)
	rec, err := r.Start(ctx, req, func(rec runs.Record, _ json.RawMessage) { done <- rec })
	if err != nil {
		t.Fatal(err)
	}
	updates, _ := r.Follow(rec.ID)
	w.events <- tentacle.NodeProgress{Node: "a", State: tentacle.NodeSucceeded, Attempt: 1}
	w.events <- tentacle.NodeProgress{Node: "b", State: tentacle.NodeStarted, Attempt: 1}
	next(t, updates, "b running", func(rec runs.Record) bool { return rec.Nodes["b"].State == runs.Running })
	if err := r.Cancel(rec.ID); err != nil {
		t.Fatal(err)
	}
	end := <-done
	want := map[string]runs.Node{"a": {State: runs.Succeeded, Attempt: 1}, "b": {State: runs.Cancelled, Attempt: 1}}
	if end.State != runs.Cancelled || !equalNodes(end.Nodes, want) {
		t.Fatalf("cancelled: %+v", end)
	}
	if stored, _, _ := r.Get(ctx, req.Enclave, rec.ID); stored.State != runs.Cancelled || !equalNodes(stored.Nodes, want) {
		t.Errorf("stored: %+v", stored)
	}
}

// TestSlowFollowerGetsTheNewest: a follower that does not read holds up
// neither the run nor the other followers, and then reads the newest.
func TestSlowFollowerGetsTheNewest(t *testing.T) {
	ctx := context.Background()
	r, w := newWatchingRunner(t, time.Hour)
	ended := make(chan struct{})
	rec, err := r.Start(ctx, req, func(runs.Record, json.RawMessage) { close(ended) })
	if err != nil {
		t.Fatal(err)
	}
	slow, _ := r.Follow(rec.ID)
	for i := 1; i <= 100; i++ {
		w.events <- tentacle.NodeProgress{Node: "a", State: tentacle.NodeStarted, Attempt: i}
	}
	// Once the engine takes this one, it has handed on the one before.
	w.events <- tentacle.NodeProgress{Node: "a", State: "sync"}
	if got := next(t, slow, "the newest", func(runs.Record) bool { return true }); got.Nodes["a"].Attempt != 100 {
		t.Errorf("the slow follower got attempt %d first, want the newest (100)", got.Nodes["a"].Attempt)
	}
	close(w.events)
	<-ended
}

// BenchmarkProgress: the cost of a step's progress through the runner,
// followed, with the store written once a second.
func BenchmarkProgress(b *testing.B) {
	db, err := store.Open(filepath.Join(b.TempDir(), "kraken.db"), store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	w := &watching{body: ok, events: make(chan tentacle.NodeProgress, 64)}
	r, _ := runs.New(runs.Config{Tentacles: w, Store: db})
	ended := make(chan struct{})
	rec, err := r.Start(context.Background(), req, func(runs.Record, json.RawMessage) { close(ended) })
	if err != nil {
		b.Fatal(err)
	}
	updates, _ := r.Follow(rec.ID)
	go func() {
		for range updates {
		}
	}()
	nodes := []string{"fetch", "parse", "enrich", "store", "notify"}
	b.ResetTimer()
	for i := range b.N {
		w.events <- tentacle.NodeProgress{Node: nodes[i%len(nodes)], State: tentacle.NodeSucceeded, Attempt: 1}
	}
	close(w.events)
	<-ended
}
