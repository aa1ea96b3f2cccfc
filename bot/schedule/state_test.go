package schedule

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kraken-ops/kraken/bot/runs"
	"github.com/kraken-ops/kraken/store"
)

func TestStateEncoding(t *testing.T) {
	state := sharedState{
		triggers: map[string]triggerState{
			"payments/sync/tick":      {last: t0},
			"payments/sync/0 8 * * *": {last: t0.Add(-time.Hour), failures: 2},
			"ops/report/morning":      {reason: "paused after 5 failed runs in a row", failures: 5},
		},
		resumes: map[string]resumeState{"ops/report": {n: 2, by: "U-alice", at: t0.Add(-time.Minute)}},
	}
	data, err := encodeState(state)
	if err != nil {
		t.Fatal(err)
	}
	again, err := encodeState(state)
	if err != nil || !bytes.Equal(data, again) {
		t.Fatalf("the same state encodes to other bytes (%v): a flush that changed nothing would write", err)
	}
	got, err := decodeState(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.triggers) != len(state.triggers) || len(got.resumes) != 1 {
		t.Fatalf("decoded %+v, want %+v", got, state)
	}
	for id, want := range state.triggers {
		if g := got.triggers[id]; !g.last.Equal(want.last) || g.failures != want.failures || g.reason != want.reason {
			t.Errorf("%s: decoded %+v, want %+v", id, g, want)
		}
	}
	if r := got.resumes["ops/report"]; r.n != 2 || r.by != "U-alice" || !r.at.Equal(t0.Add(-time.Minute)) {
		t.Errorf("resume decoded %+v", r)
	}
	if empty, err := decodeState(nil); err != nil || len(empty.triggers) != 0 {
		t.Errorf("no document: %v, %v; want an empty state", empty, err)
	}

	gz := func(s string) []byte {
		var b bytes.Buffer
		zw := gzip.NewWriter(&b)
		io.WriteString(zw, s)
		zw.Close()
		return b.Bytes()
	}
	for name, data := range map[string][]byte{
		"not gzip":      []byte(`{"v":1}`),
		"not JSON":      gz("v: 1"),
		"newer version": gz(`{"v":2,"at":0,"t":{}}`),
	} {
		if _, err := decodeState(data); !errors.Is(err, ErrStateUnreadable) {
			t.Errorf("%s: %v, want ErrStateUnreadable", name, err)
		}
	}
}

func TestMergeState(t *testing.T) {
	bob := map[string]resumeState{"a/b": {n: 1, by: "U-bob", at: t0}}
	tests := []struct {
		name           string
		stored, mine   triggerState
		storedR, mineR map[string]resumeState
		gone           bool
		want           triggerState
		wantResumedBy  string
	}{
		{name: "the leader's count and the later mark win",
			stored: triggerState{last: t0.Add(time.Minute), failures: 1}, mine: triggerState{last: t0, failures: 2},
			want: triggerState{last: t0.Add(time.Minute), failures: 2}},
		{name: "a resume elsewhere clears the leader's pause",
			storedR: bob, mine: triggerState{failures: 3, reason: "paused"}, wantResumedBy: "U-bob"},
		{name: "a resume the leader knows does not clear a later pause",
			storedR: bob, mineR: bob, mine: triggerState{failures: 3, reason: "paused"},
			want: triggerState{failures: 3, reason: "paused"}, wantResumedBy: "U-bob"},
		{name: "a gone tentacle is forgotten", storedR: bob,
			stored: triggerState{failures: 1}, mine: triggerState{failures: 2}, gone: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stored := sharedState{triggers: map[string]triggerState{"a/b/c": tt.stored, "x/y/z": {failures: 9}}, resumes: tt.storedR}
			mine := sharedState{triggers: map[string]triggerState{"a/b/c": tt.mine}, resumes: tt.mineR}
			got := mergeState(stored, mine, func(key string) bool { return tt.gone && strings.HasPrefix(key, "a/") })
			st, ok := got.triggers["a/b/c"]
			r, rok := got.resumes["a/b"]
			switch {
			case tt.gone && (ok || rok):
				t.Errorf("kept %+v, %+v", st, r)
			case !tt.gone && st != tt.want:
				t.Errorf("got %+v, want %+v", st, tt.want)
			case !tt.gone && r.by != tt.wantResumedBy:
				t.Errorf("resumed by %q, want %q", r.by, tt.wantResumedBy)
			}
			if _, ok := got.triggers["x/y/z"]; !ok {
				t.Error("a trigger only the store knows was dropped")
			}
		})
	}
}

// TestResumeOnAnotherReplica: a follower's Resume reaches the leader by
// its next flush, also when the leader had not written the pause yet.
func TestResumeOnAnotherReplica(t *testing.T) {
	w := newWorld(t)
	w.tents.deploy("payments", "sync", t0, `{type: cron, name: tick, schedule: "* * * * *"}`)
	w.scan(t)
	follower := w.newScheduler(t) // shares the store: the same Shared
	for i := range 3 {
		w.at(t, t0.Add(time.Duration(i+1)*time.Minute))
		w.runner.end(i, runs.Failed)
	}
	if st := w.s.Status("payments", "sync"); st[0].Paused == "" {
		t.Fatalf("not paused after three failures: %+v", st)
	}
	// The pause is not written yet when the follower resumes.
	if err := follower.Resume(t.Context(), "payments", "sync", "U-bob"); err != nil {
		t.Fatal(err)
	}
	w.at(t, t0.Add(4*time.Minute))
	if starts, _ := w.runner.counts(); starts != 3 {
		t.Fatalf("the leader fired before it read the resume: %d starts", starts)
	}
	if err := w.s.flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	if st := w.s.Status("payments", "sync"); st[0].Paused != "" || st[0].Failures != 0 || st[0].ResumedBy != "U-bob" {
		t.Fatalf("after the flush the leader has %+v, want resumed by U-bob", st)
	}
	w.at(t, t0.Add(5*time.Minute))
	if starts, _ := w.runner.counts(); starts != 4 {
		t.Fatalf("after the follower's resume, %d starts, want 4", starts)
	}
	// The flush wrote the resume, not the old pause, back.
	w.restart(t)
	w.scan(t)
	if st := w.s.Status("payments", "sync"); st[0].Paused != "" || st[0].ResumedBy != "U-bob" {
		t.Fatalf("a new leader reads %+v", st)
	}
}

// TestStateForgetsGoneTriggers: an undeployed tentacle's trigger leaves
// the state; one whose files cannot be read now stays.
func TestStateForgetsGoneTriggers(t *testing.T) {
	w := newWorld(t)
	w.tents.deploy("payments", "sync", t0, `{type: cron, name: tick, schedule: "* * * * *"}`)
	w.tents.deploy("ops", "sync", t0, `{type: cron, name: tick, schedule: "* * * * *"}`)
	w.scan(t)
	w.at(t, t0.Add(time.Minute))
	w.runner.end(0, runs.Failed)
	w.runner.end(1, runs.Failed)
	if err := w.s.flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	w.tents.undeploy("payments", "sync")
	w.tents.mu.Lock()
	delete(w.tents.wf, "ops/sync/1") // unreadable for now
	w.tents.mu.Unlock()
	w.s.files = map[string]parsed{}
	if err := w.s.scan(t.Context()); err == nil {
		t.Fatal("a scan with an unreadable workflow reported no error")
	}
	if err := w.s.flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	data, err := w.s.cfg.Shared.Load(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	states, err := decodeState(data)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := states.triggers["payments/sync/tick"]; ok {
		t.Error("the undeployed tentacle's trigger is still in the state")
	}
	if st, ok := states.triggers["ops/sync/tick"]; !ok || st.failures != 1 {
		t.Errorf("the unreadable tentacle's trigger: %+v, %v; want kept with its failure", st, ok)
	}
}

// TestRunFlushesOnLeaving: Run writes the state when its context ends,
// and refuses to run on a state it cannot read.
func TestRunFlushesOnLeaving(t *testing.T) {
	dir := t.TempDir()
	db, err := store.Open(filepath.Join(dir, "kraken.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	w := newWorld(t)
	w.tents.deploy("payments", "sync", time.Now().Add(-time.Hour), `{type: cron, name: tick, schedule: "@every 1s"}`)
	shared := NewLocalState(db)
	s, err := New(Config{Enclaves: w.encs, Tentacles: w.tents, Runner: w.runner, Shared: shared, FlushEvery: time.Hour,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for n, _ := w.runner.counts(); n == 0; n, _ = w.runner.counts() {
		if time.Now().After(deadline) {
			t.Fatal("no fire within 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	w.runner.end(0, runs.Failed)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	data, err := shared.Load(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	states, err := decodeState(data)
	if err != nil {
		t.Fatal(err)
	}
	st := states.triggers["payments/sync/tick"]
	if st.failures != 1 || time.Since(st.last) > 5*time.Second {
		t.Errorf("written on leaving: %+v, want one failure and a recent mark", st)
	}

	if err := shared.Update(t.Context(), func([]byte) ([]byte, error) { return []byte("garbage"), nil }); err != nil {
		t.Fatal(err)
	}
	if err := s.Run(t.Context()); !errors.Is(err, ErrStateUnreadable) {
		t.Errorf("Run on an unreadable state: %v, want ErrStateUnreadable", err)
	}
}

// countingShared counts the writes asked of a Shared.
type countingShared struct {
	Shared
	updates int
}

func (c *countingShared) Update(ctx context.Context, change func([]byte) ([]byte, error)) error {
	c.updates++
	return c.Shared.Update(ctx, change)
}

// TestIdleFlushWritesNothing: a leader whose view has not changed, and
// whose document nobody else changed, neither merges nor writes; a
// resume made on another replica is still picked up.
func TestIdleFlushWritesNothing(t *testing.T) {
	w := newWorld(t)
	w.tents.deploy("payments", "sync", t0, `{type: cron, name: tick, schedule: "* * * * *"}`)
	w.scan(t)
	counted := &countingShared{Shared: w.s.cfg.Shared}
	w.s.cfg.Shared = counted
	follower := w.newScheduler(t)
	for i := range 3 {
		w.at(t, t0.Add(time.Duration(i+1)*time.Minute))
		w.runner.end(i, runs.Failed)
	}
	if err := w.s.flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := w.s.flush(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	if counted.updates != 1 {
		t.Fatalf("%d writes for one change, want 1", counted.updates)
	}
	if err := follower.Resume(t.Context(), "payments", "sync", "U-bob"); err != nil {
		t.Fatal(err)
	}
	if err := w.s.flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	if counted.updates != 2 {
		t.Errorf("the document changed elsewhere, yet the flush did not fold it in (%d writes)", counted.updates)
	}
	if st := w.s.Status("payments", "sync"); st[0].Paused != "" || st[0].ResumedBy != "U-bob" {
		t.Errorf("after the flush the leader has %+v, want resumed by U-bob", st)
	}
}
