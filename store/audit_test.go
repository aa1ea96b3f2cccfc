package store

import (
	"context"
	"fmt"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// fakeClock is a settable clock for Options.Now.
type fakeClock struct{ t time.Time }

func (c *fakeClock) Now() time.Time { return c.t }

// auditFixture appends eight entries, one minute apart from t0:
//
//	id enclave  actor verb    decision
//	1  alpha    alice deploy  allowed
//	2  beta     bob   deploy  denied
//	3  alpha    bob   run     allowed
//	4  (none)   alice whoami  allowed
//	5  alphabet alice deploy  allowed   (shares alpha's prefix)
//	6  alpha    alice run     allowed
//	7  beta     alice logs    allowed
//	8  alpha    carol deploy  denied
func auditFixture(t *testing.T) (*DB, *fakeClock) {
	t.Helper()
	clock := &fakeClock{t0}
	db := openTest(t, Options{Now: clock.Now})
	rows := []struct{ enclave, actor, verb, decision string }{
		{"alpha", "alice", "deploy", DecisionAllowed},
		{"beta", "bob", "deploy", DecisionDenied},
		{"alpha", "bob", "run", DecisionAllowed},
		{"", "alice", "whoami", DecisionAllowed},
		{"alphabet", "alice", "deploy", DecisionAllowed},
		{"alpha", "alice", "run", DecisionAllowed},
		{"beta", "alice", "logs", DecisionAllowed},
		{"alpha", "carol", "deploy", DecisionDenied},
	}
	for i, r := range rows {
		clock.t = t0.Add(time.Duration(i) * time.Minute)
		id, err := db.AppendAudit(context.Background(), AuditEntry{
			At: clock.t.Add(-time.Second), Actor: r.actor, ActorEmail: r.actor + "@example.com",
			Enclave: r.enclave, Verb: r.verb, Args: map[string]string{"n": fmt.Sprint(i + 1)},
			Decision: r.decision, Result: ResultOK, Duration: time.Second, Via: ViaSlack,
		})
		if err != nil {
			t.Fatal(err)
		}
		if id != uint64(i+1) {
			t.Fatalf("entry %d got id %d", i+1, id)
		}
	}
	return db, clock
}

func ids(es []AuditEntry) []uint64 {
	out := []uint64{}
	for _, e := range es {
		out = append(out, e.ID)
	}
	return out
}

func TestListAudit(t *testing.T) {
	db, _ := auditFixture(t)
	at := func(n int) time.Time { return t0.Add(time.Duration(n)*time.Minute - time.Second) } // entry n+1's At
	tests := []struct {
		name string
		q    AuditQuery
		want []uint64
	}{
		{"everything newest first", AuditQuery{}, []uint64{8, 7, 6, 5, 4, 3, 2, 1}},
		{"limit", AuditQuery{Limit: 3}, []uint64{8, 7, 6}},
		{"enclave", AuditQuery{Enclave: "alpha"}, []uint64{8, 6, 3, 1}},
		{"enclave is not a prefix match", AuditQuery{Enclave: "alphabet"}, []uint64{5}},
		{"unknown enclave", AuditQuery{Enclave: "gamma"}, []uint64{}},
		{"actor", AuditQuery{Actor: "alice"}, []uint64{7, 6, 5, 4, 1}},
		{"verb", AuditQuery{Verb: "deploy"}, []uint64{8, 5, 2, 1}},
		{"enclave actor verb", AuditQuery{Enclave: "alpha", Actor: "alice", Verb: "run"}, []uint64{6}},
		{"since is inclusive", AuditQuery{Since: at(5)}, []uint64{8, 7, 6}},
		{"until is exclusive", AuditQuery{Until: at(2)}, []uint64{2, 1}},
		{"since and until", AuditQuery{Since: at(2), Until: at(5)}, []uint64{5, 4, 3}},
		{"enclave since", AuditQuery{Enclave: "beta", Since: at(2)}, []uint64{7}},
		{"before", AuditQuery{Before: 4}, []uint64{3, 2, 1}},
		{"before past the end", AuditQuery{Before: 100, Limit: 2}, []uint64{8, 7}},
		{"enclave before", AuditQuery{Enclave: "alpha", Before: 6}, []uint64{3, 1}},
		{"enclave before limit", AuditQuery{Enclave: "alpha", Before: 100, Limit: 1}, []uint64{8}},
		{"before the first", AuditQuery{Before: 1}, []uint64{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := db.ListAudit(context.Background(), tt.q)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(ids(got), tt.want) {
				t.Errorf("ids %v, want %v", ids(got), tt.want)
			}
		})
	}
}

func TestListAuditPaging(t *testing.T) {
	db, _ := auditFixture(t)
	for _, q := range []AuditQuery{{}, {Enclave: "alpha"}, {Actor: "alice"}} {
		all, err := db.ListAudit(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		var paged []uint64
		page := q
		page.Limit = 2
		for {
			got, err := db.ListAudit(context.Background(), page)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) == 0 {
				break
			}
			paged = append(paged, ids(got)...)
			page.Before = got[len(got)-1].ID
		}
		if !reflect.DeepEqual(paged, ids(all)) {
			t.Errorf("%+v: paged %v, want %v", q, paged, ids(all))
		}
	}
}

func TestAuditEntryRoundTrip(t *testing.T) {
	clock := &fakeClock{t0}
	db := openTest(t, Options{Now: clock.Now})
	in := AuditEntry{
		At: t0.Add(-1500 * time.Millisecond), Actor: "U123", ActorEmail: "a@example.com",
		Issuer: "https://idp.example.com", Subject: "sub-1", Enclave: "alpha", Verb: "deploy",
		Args: map[string]string{"tentacle": "hello", "token": "[redacted]"}, Decision: DecisionAllowed,
		Reason: "owner", Result: ResultError, Error: "quota exceeded", Duration: 1500 * time.Millisecond, Via: ViaLLM,
	}
	id, err := db.AppendAudit(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	got, err := db.ListAudit(context.Background(), AuditQuery{})
	if err != nil || len(got) != 1 {
		t.Fatalf("%v %v", got, err)
	}
	want := in
	want.ID, want.Recorded = id, t0
	g := got[0]
	if !g.At.Equal(want.At) || !g.Recorded.Equal(want.Recorded) {
		t.Errorf("times %v %v, want %v %v", g.At, g.Recorded, want.At, want.Recorded)
	}
	g.At, g.Recorded, want.At, want.Recorded = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	if !reflect.DeepEqual(g, want) {
		t.Errorf("got  %+v\nwant %+v", g, want)
	}
}

func TestAuditClock(t *testing.T) {
	clock := &fakeClock{t0}
	db := openTest(t, Options{Now: clock.Now})
	ctx := context.Background()
	add := func(at time.Time) AuditEntry {
		t.Helper()
		id, err := db.AppendAudit(ctx, AuditEntry{At: at, Verb: "x"})
		if err != nil {
			t.Fatal(err)
		}
		es, err := db.ListAudit(ctx, AuditQuery{Before: id + 1, Limit: 1})
		if err != nil || len(es) != 1 {
			t.Fatal(es, err)
		}
		return es[0]
	}
	if e := add(time.Time{}); !e.At.Equal(t0) || !e.Recorded.Equal(t0) {
		t.Errorf("zero At: %v %v, want now", e.At, e.Recorded)
	}
	if e := add(t0.Add(time.Hour)); !e.At.Equal(t0) {
		t.Errorf("At in the future: %v, want clamped to %v", e.At, t0)
	}
	clock.t = t0.Add(-time.Hour) // the wall clock steps back
	if e := add(time.Time{}); !e.Recorded.Equal(t0) || !e.At.Equal(clock.t) {
		t.Errorf("clock stepped back: recorded %v at %v, want %v and %v", e.Recorded, e.At, t0, clock.t)
	}
}

func TestAuditIDsIncreaseAcrossReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "kraken.db")
	var last uint64
	for range 3 {
		db, err := Open(path, Options{})
		if err != nil {
			t.Fatal(err)
		}
		for range 3 {
			id, err := db.AppendAudit(ctx, AuditEntry{Verb: "x"})
			if err != nil {
				t.Fatal(err)
			}
			if id <= last {
				t.Fatalf("id %d after %d", id, last)
			}
			last = id
		}
		// Pruning everything does not reuse ids.
		if _, err := db.PruneAudit(ctx, time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		db.Close()
	}
}

func TestPruneAudit(t *testing.T) {
	for _, batch := range []int{pruneBatch, 2} {
		t.Run(fmt.Sprint("batch ", batch), func(t *testing.T) {
			db, _ := auditFixture(t)
			db.batch = batch
			ctx := context.Background()
			n, err := db.PruneAudit(ctx, t0.Add(5*time.Minute)) // entries 1..5 were recorded before
			if err != nil || n != 5 {
				t.Fatalf("pruned %d (%v), want 5", n, err)
			}
			got, _ := db.ListAudit(ctx, AuditQuery{})
			if !reflect.DeepEqual(ids(got), []uint64{8, 7, 6}) {
				t.Errorf("left %v", ids(got))
			}
			got, _ = db.ListAudit(ctx, AuditQuery{Enclave: "alpha"})
			if !reflect.DeepEqual(ids(got), []uint64{8, 6}) {
				t.Errorf("alpha left %v", ids(got))
			}
			// The index lost the pruned entries too.
			db.bolt.View(func(tx *bolt.Tx) error {
				if n := tx.Bucket(auditByEnclaveBucket).Stats().KeyN; n != 3 {
					t.Errorf("%d index entries left, want 3", n)
				}
				return nil
			})
			if n, err := db.PruneAudit(ctx, t0.Add(5*time.Minute)); err != nil || n != 0 {
				t.Errorf("second prune: %d %v", n, err)
			}
			if err := db.Check(ctx); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestAppendAuditRejectsNULInEnclave(t *testing.T) {
	db := openTest(t, Options{})
	if _, err := db.AppendAudit(context.Background(), AuditEntry{Enclave: "a\x00b"}); err == nil {
		t.Error("an enclave name with a NUL byte was accepted")
	}
}

// TestListAuditEnclaveUsesIndex lists one enclave's newest entries out of
// many and checks it reads only those: every other enclave's entries are
// made unreadable, so touching one would fail the listing.
func TestListAuditEnclaveUsesIndex(t *testing.T) {
	db := openTest(t, Options{})
	ctx := context.Background()
	const total, every = 20000, 100 // one entry in 100 is "rare"
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		for i := range total {
			enc := "busy"
			if i%every == 0 {
				enc = "rare"
			}
			if _, err := appendAudit(tx, AuditEntry{Enclave: enc, Verb: "run"}, t0); err != nil {
				return err
			}
		}
		// Corrupt every busy entry.
		c := tx.Bucket(auditBucket).Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			if (bigEndian(k)-1)%every != 0 {
				if err := tx.Bucket(auditBucket).Put(k, []byte("not json")); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := db.ListAudit(ctx, AuditQuery{Enclave: "rare", Limit: 50})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 50 || got[0].ID != total-every+1 || got[49].ID != total-50*every+1 {
		t.Errorf("got %d entries, %v … %v", len(got), got[0].ID, got[len(got)-1].ID)
	}
	if _, err := db.ListAudit(ctx, AuditQuery{Limit: 50}); err == nil {
		t.Error("the unindexed listing read no corrupt entry: the test proves nothing")
	}
}

func bigEndian(k []byte) uint64 {
	var v uint64
	for _, b := range k {
		v = v<<8 | uint64(b)
	}
	return v
}
