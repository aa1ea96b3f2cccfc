package store

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Every write below is fsync'd, so these measure the disk. Set
// KRAKEN_STORE_BENCH_DIR to put the file on the disk the bot will use.
func benchDB(b *testing.B) *DB {
	b.Helper()
	dir := os.Getenv("KRAKEN_STORE_BENCH_DIR")
	if dir == "" {
		dir = b.TempDir()
	} else {
		var err error
		if dir, err = os.MkdirTemp(dir, "kraken-bench-"); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { os.RemoveAll(dir) })
	}
	db, err := Open(filepath.Join(dir, "kraken.db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	return db
}

func opsPerSecond(b *testing.B, n int) {
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "ops/s")
}

func BenchmarkAppendAudit(b *testing.B) {
	db := benchDB(b)
	ctx := context.Background()
	e := AuditEntry{
		Actor: "U0123ABCD", ActorEmail: "someone@example.com", Enclave: "payments", Verb: "deploy",
		Args:     map[string]string{"tentacle": "hello-fanout", "revision": "12", "token": "[redacted]"},
		Decision: DecisionAllowed, Result: ResultOK, Duration: 850 * time.Millisecond, Via: ViaSlack,
	}
	n := 0
	for b.Loop() {
		if _, err := db.AppendAudit(ctx, e); err != nil {
			b.Fatal(err)
		}
		n++
	}
	opsPerSecond(b, n)
}

func BenchmarkAppendAuditParallel(b *testing.B) {
	db := benchDB(b)
	ctx := context.Background()
	e := AuditEntry{Actor: "U0123ABCD", Enclave: "payments", Verb: "run", Decision: DecisionAllowed, Via: ViaSlack}
	b.SetParallelism(4)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := db.AppendAudit(ctx, e); err != nil {
				b.Error(err)
				return
			}
		}
	})
	opsPerSecond(b, b.N)
}

func BenchmarkClaimEvent(b *testing.B) {
	db := benchDB(b)
	ctx := context.Background()
	payload := make([]byte, 1500) // a typical Events API body
	now := time.Now()
	n := 0
	for b.Loop() {
		first, err := db.ClaimEvent(ctx, fmt.Sprintf("Ev%010d", n), payload, now)
		if err != nil || !first {
			b.Fatal(first, err)
		}
		n++
	}
	opsPerSecond(b, n)
}

func BenchmarkClaimEventDuplicate(b *testing.B) {
	db := benchDB(b)
	ctx := context.Background()
	now := time.Now()
	db.ClaimEvent(ctx, "Ev-retried", nil, now)
	n := 0
	for b.Loop() {
		if first, err := db.ClaimEvent(ctx, "Ev-retried", nil, now); err != nil || first {
			b.Fatal(first, err)
		}
		n++
	}
	opsPerSecond(b, n)
}

// BenchmarkListAuditEnclave lists one enclave's newest 50 entries out of a
// million, where that enclave has one entry in a hundred.
func BenchmarkListAuditEnclave(b *testing.B) {
	db := benchDB(b)
	ctx := context.Background()
	const total, batch = 1_000_000, 100_000
	for i := 0; i < total; i += batch {
		err := db.bolt.Update(func(tx *bolt.Tx) error {
			for j := i; j < i+batch; j++ {
				enc := fmt.Sprint("busy-", j%7)
				if j%100 == 0 {
					enc = "rare"
				}
				e := AuditEntry{Actor: "U1", Enclave: enc, Verb: "run", Decision: DecisionAllowed, Via: ViaSlack}
				if _, err := appendAudit(tx, e, time.Now()); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	for _, q := range []AuditQuery{
		{Enclave: "rare", Limit: 50},
		{Enclave: "rare", Limit: 50, Before: total / 2},
		{Limit: 50},
	} {
		b.Run(fmt.Sprintf("enclave=%q before=%d", q.Enclave, q.Before), func(b *testing.B) {
			for b.Loop() {
				es, err := db.ListAudit(ctx, q)
				if err != nil || len(es) != 50 {
					b.Fatal(len(es), err)
				}
			}
		})
	}
}
