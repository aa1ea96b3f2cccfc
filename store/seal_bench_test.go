package store

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// record is the shape of a refresh token record, the sealed bucket's
// first user.
type benchRecord struct {
	User         string
	Issuer       string
	RefreshToken string
	Expires      time.Time
}

// putGetter is what the benchmarks need of a Bucket or a SealedBucket.
type putGetter interface {
	Put(ctx context.Context, key string, v benchRecord) error
	Get(ctx context.Context, key string) (benchRecord, bool, error)
}

func benchBuckets(b *testing.B) map[string]putGetter {
	b.Helper()
	db, err := Open(filepath.Join(b.TempDir(), "kraken.db"), Options{Keyring: ring(b, testKey(2), testKey(1))})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	return map[string]putGetter{
		"plain":  NewBucket[benchRecord](db, "plain"),
		"sealed": NewSealedBucket[benchRecord](db, "sealed"),
	}
}

var benchValue = benchRecord{
	User: "U0123ABCD", Issuer: "https://idp.example.com/realms/corp",
	RefreshToken: "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSIsInR5cCI6IlJlZnJlc2gifQ.c2lnbmF0dXJlLXNpZ25hdHVyZS1zaWduYXR1cmU",
	Expires:      t0,
}

// Put is one fsync'd transaction: the disk, not the cipher, sets its
// pace; the parallel case shows what batching leaves for the cipher.
func BenchmarkBucketPut(b *testing.B) {
	for _, kind := range []string{"plain", "sealed"} {
		b.Run(kind, func(b *testing.B) {
			bk := benchBuckets(b)[kind]
			ctx := context.Background()
			n := 0
			for b.Loop() {
				if err := bk.Put(ctx, fmt.Sprintf("U%06d", n%1000), benchValue); err != nil {
					b.Fatal(err)
				}
				n++
			}
			opsPerSecond(b, n)
		})
		b.Run(kind+"/parallel", func(b *testing.B) {
			bk := benchBuckets(b)[kind]
			ctx := context.Background()
			b.SetParallelism(16)
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					if err := bk.Put(ctx, fmt.Sprintf("U%06d", i%1000), benchValue); err != nil {
						b.Error(err)
						return
					}
					i++
				}
			})
		})
	}
}

// Get reads from the mapped file: here the cipher shows.
func BenchmarkBucketGet(b *testing.B) {
	for _, kind := range []string{"plain", "sealed"} {
		b.Run(kind, func(b *testing.B) {
			bk := benchBuckets(b)[kind]
			ctx := context.Background()
			for i := range 1000 {
				if err := bk.Put(ctx, fmt.Sprintf("U%06d", i), benchValue); err != nil {
					b.Fatal(err)
				}
			}
			n := 0
			for b.Loop() {
				if _, ok, err := bk.Get(ctx, fmt.Sprintf("U%06d", n%1000)); err != nil || !ok {
					b.Fatal(ok, err)
				}
				n++
			}
			opsPerSecond(b, n)
		})
	}
}

// BenchmarkRekey re-seals 10,000 values, as a start after a rotation
// does; values/s is the figure.
func BenchmarkRekey(b *testing.B) {
	const values = 10000
	ctx := context.Background()
	path := filepath.Join(b.TempDir(), "kraken.db")
	db, err := Open(path, Options{Keyring: ring(b, testKey(1))})
	if err != nil {
		b.Fatal(err)
	}
	// Seeded in one transaction: 10,000 Puts would be 10,000 syncs.
	plain, err := json.Marshal(benchValue)
	if err != nil {
		b.Fatal(err)
	}
	err = db.bolt.Update(func(tx *bolt.Tx) error {
		bk, err := tx.Bucket(sealedBucket).CreateBucket([]byte("grants"))
		if err != nil {
			return err
		}
		for i := range values {
			key := fmt.Sprintf("U%06d", i)
			data, err := db.keyring.seal([]byte("grants"), key, plain)
			if err != nil {
				return err
			}
			if err := bk.Put([]byte(key), data); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	db.Close()
	// Each round rotates to the other key, so every value needs redoing.
	rings := []*Keyring{ring(b, testKey(2), testKey(1)), ring(b, testKey(1), testKey(2))}
	total, round := 0, 0
	for b.Loop() {
		db, err := Open(path, Options{Keyring: rings[round%2]})
		if err != nil {
			b.Fatal(err)
		}
		n, err := db.Rekey(ctx)
		db.Close()
		if err != nil || n != values {
			b.Fatalf("rekey = %d, %v; want %d", n, err, values)
		}
		total += n
		round++
	}
	b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "values/s")
}
