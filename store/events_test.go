package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func TestClaimEvent(t *testing.T) {
	type step struct {
		op        string // claim, done, prune
		id        string
		at        time.Duration // after t0
		wantFirst bool
		wantPrune int
	}
	tests := []struct {
		name        string
		steps       []step
		wantPending []string
	}{
		{"first then duplicate", []step{
			{op: "claim", id: "a", wantFirst: true},
			{op: "claim", id: "a", at: time.Second},
			{op: "claim", id: "b", at: time.Second, wantFirst: true},
		}, []string{"a", "b"}},
		{"done is still a duplicate within the TTL", []step{
			{op: "claim", id: "a", wantFirst: true},
			{op: "done", id: "a"},
			{op: "claim", id: "a", at: 24*time.Hour - time.Nanosecond},
		}, nil},
		{"done expires after the TTL", []step{
			{op: "claim", id: "a", wantFirst: true},
			{op: "done", id: "a"},
			{op: "claim", id: "a", at: 24 * time.Hour, wantFirst: true},
		}, []string{"a"}},
		{"pending never expires", []step{
			{op: "claim", id: "a", wantFirst: true},
			{op: "claim", id: "a", at: 100 * time.Hour},
			{op: "prune", at: 100 * time.Hour},
			{op: "claim", id: "a", at: 100 * time.Hour},
		}, []string{"a"}},
		{"prune removes only expired done events", []step{
			{op: "claim", id: "old-done", wantFirst: true},
			{op: "claim", id: "old-pending", wantFirst: true},
			{op: "claim", id: "new-done", at: 2 * time.Hour, wantFirst: true},
			{op: "done", id: "old-done"},
			{op: "done", id: "new-done"},
			{op: "prune", at: 25 * time.Hour, wantPrune: 1},
			{op: "prune", at: 25 * time.Hour, wantPrune: 0},
			{op: "claim", id: "new-done", at: 25 * time.Hour},
			{op: "claim", id: "old-pending", at: 25 * time.Hour},
			{op: "claim", id: "old-done", at: 25 * time.Hour, wantFirst: true},
			{op: "prune", at: 26 * time.Hour, wantPrune: 1},
		}, []string{"old-pending", "old-done"}},
		{"a re-claimed event is pruned by its new claim time", []step{
			{op: "claim", id: "a", wantFirst: true},
			{op: "done", id: "a"},
			{op: "claim", id: "a", at: 30 * time.Hour, wantFirst: true},
			{op: "done", id: "a"},
			{op: "prune", at: 50 * time.Hour, wantPrune: 0},
			{op: "prune", at: 54 * time.Hour, wantPrune: 1},
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			db := openTest(t, Options{EventTTL: 24 * time.Hour})
			for i, s := range tt.steps {
				now := t0.Add(s.at)
				switch s.op {
				case "claim":
					first, err := db.ClaimEvent(ctx, s.id, []byte("payload of "+s.id), now)
					if err != nil {
						t.Fatalf("step %d: %v", i, err)
					}
					if first != s.wantFirst {
						t.Fatalf("step %d: claim %s at +%v: first=%v, want %v", i, s.id, s.at, first, s.wantFirst)
					}
				case "done":
					if err := db.MarkEventDone(ctx, s.id); err != nil {
						t.Fatalf("step %d: %v", i, err)
					}
				case "prune":
					n, err := db.PruneEvents(ctx, now)
					if err != nil {
						t.Fatalf("step %d: %v", i, err)
					}
					if n != s.wantPrune {
						t.Fatalf("step %d: pruned %d, want %d", i, n, s.wantPrune)
					}
				}
			}
			pending, err := db.PendingEvents(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, p := range pending {
				ids = append(ids, p.ID)
				if string(p.Payload) != "payload of "+p.ID {
					t.Errorf("pending %s has payload %q", p.ID, p.Payload)
				}
			}
			if fmt.Sprint(ids) != fmt.Sprint(tt.wantPending) {
				t.Errorf("pending %v, want %v", ids, tt.wantPending)
			}
			if err := db.Check(ctx); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestClaimEventDefaultTTL(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, Options{})
	db.ClaimEvent(ctx, "a", nil, t0)
	db.MarkEventDone(ctx, "a")
	for _, c := range []struct {
		at   time.Duration
		want bool
	}{{23 * time.Hour, false}, {DefaultEventTTL, true}} {
		// A duplicate claim changes nothing, so the second probe still
		// measures from t0.
		if first, err := db.ClaimEvent(ctx, "a", nil, t0.Add(c.at)); err != nil || first != c.want {
			t.Errorf("claim at +%v: %v %v, want %v", c.at, first, err, c.want)
		}
	}
}

func TestPruneEventsInBatches(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, Options{})
	db.batch = 3
	for i := range 10 {
		id := fmt.Sprint("e", i)
		if _, err := db.ClaimEvent(ctx, id, nil, t0.Add(time.Duration(i)*time.Minute)); err != nil {
			t.Fatal(err)
		}
		if err := db.MarkEventDone(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	// Expired: e0..e6 (claimed at or before +6m, TTL 24h).
	n, err := db.PruneEvents(ctx, t0.Add(24*time.Hour+6*time.Minute))
	if err != nil || n != 7 {
		t.Fatalf("pruned %d (%v), want 7", n, err)
	}
	for i := range 10 {
		first, err := db.ClaimEvent(ctx, fmt.Sprint("e", i), nil, t0.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if want := i < 7; first != want {
			t.Errorf("e%d after prune: first=%v, want %v", i, first, want)
		}
	}
}

func TestPendingEventsSurviveReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "kraken.db")
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i, id := range []string{"Ev1", "Ev2", "Ev3"} {
		if _, err := db.ClaimEvent(ctx, id, []byte(`{"event":"`+id+`"}`), t0.Add(time.Duration(3-i)*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.MarkEventDone(ctx, "Ev2"); err != nil {
		t.Fatal(err)
	}
	db.Close()

	db, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	pending, err := db.PendingEvents(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Oldest claim first: Ev3 was claimed at +1s, Ev1 at +3s.
	want := []PendingEvent{
		{ID: "Ev3", Payload: []byte(`{"event":"Ev3"}`), ClaimedAt: t0.Add(time.Second)},
		{ID: "Ev1", Payload: []byte(`{"event":"Ev1"}`), ClaimedAt: t0.Add(3 * time.Second)},
	}
	if len(pending) != len(want) {
		t.Fatalf("pending %+v, want %+v", pending, want)
	}
	for i := range want {
		p, w := pending[i], want[i]
		if p.ID != w.ID || string(p.Payload) != string(w.Payload) || !p.ClaimedAt.Equal(w.ClaimedAt) {
			t.Errorf("pending[%d] = %+v, want %+v", i, p, w)
		}
	}
	// Still a duplicate after the restart: Slack's retry is dropped.
	if first, err := db.ClaimEvent(ctx, "Ev1", nil, t0.Add(time.Minute)); err != nil || first {
		t.Errorf("retry after restart: first=%v %v", first, err)
	}
	for _, p := range pending {
		if err := db.MarkEventDone(ctx, p.ID); err != nil {
			t.Fatal(err)
		}
	}
	if pending, _ := db.PendingEvents(ctx); len(pending) != 0 {
		t.Errorf("pending after replay: %+v", pending)
	}
}

func TestEventErrors(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, Options{})
	if err := db.MarkEventDone(ctx, "never"); !errors.Is(err, ErrNotFound) {
		t.Errorf("mark unknown done: %v, want ErrNotFound", err)
	}
	db.ClaimEvent(ctx, "a", nil, t0)
	for range 2 {
		if err := db.MarkEventDone(ctx, "a"); err != nil {
			t.Errorf("mark done: %v", err)
		}
	}
	for _, id := range []string{"", strings.Repeat("x", maxEventID+1)} {
		if _, err := db.ClaimEvent(ctx, id, nil, t0); err == nil {
			t.Errorf("claim of a %d-byte id succeeded", len(id))
		}
	}
}

func TestClaimEventConcurrentDeliveries(t *testing.T) {
	// A retry can arrive while the first delivery is still being
	// claimed: exactly one claim wins.
	ctx := context.Background()
	db := openTest(t, Options{})
	const n = 16
	results := make(chan bool, n)
	for range n {
		go func() {
			first, err := db.ClaimEvent(ctx, "Ev-same", nil, time.Now())
			if err != nil {
				t.Error(err)
			}
			results <- first
		}()
	}
	wins := 0
	for range n {
		if <-results {
			wins++
		}
	}
	if wins != 1 {
		t.Errorf("%d first deliveries, want 1", wins)
	}
}
