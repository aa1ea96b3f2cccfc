package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// grant is what a sealed bucket keeps: a secret and some bookkeeping.
type grant struct {
	User         string
	RefreshToken string
	Expires      time.Time
}

func ring(t testing.TB, current []byte, previous ...[]byte) *Keyring {
	t.Helper()
	r, err := NewKeyring(current, previous...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func openAt(t testing.TB, path string, r *Keyring) *DB {
	t.Helper()
	db, err := Open(path, Options{Keyring: r})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// rawSealed returns the bytes on disk of one sealed record.
func rawSealed(t *testing.T, db *DB, bucket, key string) []byte {
	t.Helper()
	var out []byte
	if err := db.bolt.View(func(tx *bolt.Tx) error {
		bk := tx.Bucket(sealedBucket).Bucket([]byte(bucket))
		if bk == nil {
			return fmt.Errorf("no sealed bucket %s", bucket)
		}
		out = bytes.Clone(bk.Get([]byte(key)))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if out == nil {
		t.Fatalf("no sealed record %s/%s", bucket, key)
	}
	return out
}

// putRaw writes bytes as they are under a sealed record's place.
func putRaw(t *testing.T, db *DB, bucket, key string, data []byte) {
	t.Helper()
	if err := db.bolt.Update(func(tx *bolt.Tx) error {
		bk, err := tx.Bucket(sealedBucket).CreateBucketIfNotExists([]byte(bucket))
		if err != nil {
			return err
		}
		return bk.Put([]byte(key), data)
	}); err != nil {
		t.Fatal(err)
	}
}

// snapshot is every sealed record's bytes, to prove something changed
// nothing.
func snapshot(t *testing.T, db *DB) map[string]string {
	t.Helper()
	out := map[string]string{}
	if err := db.bolt.View(func(tx *bolt.Tx) error {
		root := tx.Bucket(sealedBucket)
		return root.ForEachBucket(func(name []byte) error {
			return root.Bucket(name).ForEach(func(k, v []byte) error {
				out[string(name)+"/"+string(k)] = string(v)
				return nil
			})
		})
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestSealedRoundTrip(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, Options{Keyring: ring(t, testKey(1))})
	b := NewSealedBucket[grant](db, "grants")

	if _, ok, err := b.Get(ctx, "U1"); ok || err != nil {
		t.Fatalf("get before any write: %v %v", ok, err)
	}
	if got, err := b.List(ctx, "", 0); len(got) != 0 || err != nil {
		t.Fatalf("list before any write: %v %v", got, err)
	}
	if err := b.Delete(ctx, "U1"); err != nil {
		t.Fatalf("delete before any write: %v", err)
	}
	want := map[string]grant{
		"U1": {"U1", "rt-one", t0},
		"U2": {"U2", "rt-two", t0.Add(time.Hour)},
		"V1": {"V1", "", t0},
	}
	for k, v := range want {
		if err := b.Put(ctx, k, v); err != nil {
			t.Fatal(err)
		}
	}
	for k, v := range want {
		got, ok, err := b.Get(ctx, k)
		if err != nil || !ok || got.RefreshToken != v.RefreshToken || !got.Expires.Equal(v.Expires) {
			t.Fatalf("get %s: %+v %v %v", k, got, ok, err)
		}
	}
	got, err := b.List(ctx, "U", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].User != "U1" || got[1].User != "U2" {
		t.Fatalf("list U: %+v", got)
	}
	if got, _ := b.List(ctx, "", 1); len(got) != 1 || got[0].User != "U1" {
		t.Fatalf("list limit 1: %+v", got)
	}
	// Overwrite, then delete.
	if err := b.Put(ctx, "U1", grant{"U1", "rt-new", t0}); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := b.Get(ctx, "U1"); got.RefreshToken != "rt-new" {
		t.Fatalf("after overwrite: %+v", got)
	}
	if err := b.Delete(ctx, "U1"); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := b.Get(ctx, "U1"); ok {
		t.Fatal("still there after delete")
	}
	// Sealing the same value twice gives different bytes: the nonce is
	// fresh each time.
	if err := b.Put(ctx, "W", want["V1"]); err != nil {
		t.Fatal(err)
	}
	first := rawSealed(t, db, "grants", "W")
	if err := b.Put(ctx, "W", want["V1"]); err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(first, rawSealed(t, db, "grants", "W")) {
		t.Fatal("the same value sealed twice gave the same bytes")
	}
	if err := b.Put(ctx, "", want["V1"]); err == nil {
		t.Fatal("put with an empty key succeeded")
	}
}

// The file never holds the secret; the same secret in a plain bucket is
// found by the same search, so the search works.
func TestSealedNotOnDisk(t *testing.T) {
	ctx := context.Background()
	const secret = "rt-6f1c0e9a-never-on-disk-b1d2"
	for _, s := range []struct {
		name   string
		put    func(db *DB) error
		onDisk bool
	}{
		{"sealed", func(db *DB) error {
			return NewSealedBucket[grant](db, "grants").Put(ctx, "U1", grant{"U1", secret, t0})
		}, false},
		{"plain", func(db *DB) error {
			return NewBucket[grant](db, "grants").Put(ctx, "U1", grant{"U1", secret, t0})
		}, true},
	} {
		t.Run(s.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "kraken.db")
			db := openAt(t, path, ring(t, testKey(1)))
			if err := s.put(db); err != nil {
				t.Fatal(err)
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			file, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if got := bytes.Contains(file, []byte(secret)); got != s.onDisk {
				t.Fatalf("secret in the file: %v, want %v", got, s.onDisk)
			}
			if bytes.Contains(file, testKey(1)) {
				t.Fatal("the key is in the file")
			}
		})
	}
}

func TestSealedDoesNotOpen(t *testing.T) {
	ctx := context.Background()
	for _, s := range []struct {
		name string
		// spoil changes the file or the ring and returns the bucket and
		// key to read back.
		spoil func(t *testing.T, path string, db *DB) (*DB, string, string)
	}{
		{"wrong key", func(t *testing.T, path string, db *DB) (*DB, string, string) {
			db.Close()
			return openAt(t, path, ring(t, testKey(2))), "grants", "a"
		}},
		{"ciphertext flipped", func(t *testing.T, _ string, db *DB) (*DB, string, string) {
			raw := rawSealed(t, db, "grants", "a")
			raw[len(raw)-20] ^= 1
			putRaw(t, db, "grants", "a", raw)
			return db, "grants", "a"
		}},
		{"tag flipped", func(t *testing.T, _ string, db *DB) (*DB, string, string) {
			raw := rawSealed(t, db, "grants", "a")
			raw[len(raw)-1] ^= 0x80
			putRaw(t, db, "grants", "a", raw)
			return db, "grants", "a"
		}},
		{"nonce flipped", func(t *testing.T, _ string, db *DB) (*DB, string, string) {
			raw := rawSealed(t, db, "grants", "a")
			raw[sealHeader] ^= 1
			putRaw(t, db, "grants", "a", raw)
			return db, "grants", "a"
		}},
		{"key id changed", func(t *testing.T, _ string, db *DB) (*DB, string, string) {
			raw := rawSealed(t, db, "grants", "a")
			raw[1] ^= 1
			putRaw(t, db, "grants", "a", raw)
			return db, "grants", "a"
		}},
		{"unknown version", func(t *testing.T, _ string, db *DB) (*DB, string, string) {
			raw := rawSealed(t, db, "grants", "a")
			raw[0] = 2
			putRaw(t, db, "grants", "a", raw)
			return db, "grants", "a"
		}},
		{"truncated", func(t *testing.T, _ string, db *DB) (*DB, string, string) {
			putRaw(t, db, "grants", "a", rawSealed(t, db, "grants", "a")[:sealOverhead-1])
			return db, "grants", "a"
		}},
		{"copied to another key", func(t *testing.T, _ string, db *DB) (*DB, string, string) {
			putRaw(t, db, "grants", "b", rawSealed(t, db, "grants", "a"))
			return db, "grants", "b"
		}},
		{"copied to another bucket", func(t *testing.T, _ string, db *DB) (*DB, string, string) {
			putRaw(t, db, "grant", "a", rawSealed(t, db, "grants", "a"))
			return db, "grant", "a"
		}},
		{"bucket and key boundary moved", func(t *testing.T, _ string, db *DB) (*DB, string, string) {
			putRaw(t, db, "grant", "sa", rawSealed(t, db, "grants", "a"))
			return db, "grant", "sa"
		}},
	} {
		t.Run(s.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "kraken.db")
			db := openAt(t, path, ring(t, testKey(1)))
			for _, k := range []string{"a", "b"} {
				if err := NewSealedBucket[grant](db, "grants").Put(ctx, k, grant{k, "rt-" + k, t0}); err != nil {
					t.Fatal(err)
				}
			}
			db, bucket, key := s.spoil(t, path, db)
			defer db.Close()
			b := NewSealedBucket[grant](db, bucket)
			got, ok, err := b.Get(ctx, key)
			if !errors.Is(err, ErrSealed) {
				t.Fatalf("get = %+v %v %v, want ErrSealed", got, ok, err)
			}
			if _, err := b.List(ctx, "", 0); !errors.Is(err, ErrSealed) {
				t.Fatalf("list: %v, want ErrSealed", err)
			}
		})
	}
}

// A name is a sealed bucket or a plain one, never both.
func TestBucketKindsDoNotMix(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, Options{Keyring: ring(t, testKey(1))})
	if err := NewSealedBucket[grant](db, "grants").Put(ctx, "a", grant{}); err != nil {
		t.Fatal(err)
	}
	if err := NewBucket[grant](db, "bindings").Put(ctx, "a", grant{}); err != nil {
		t.Fatal(err)
	}
	plain := NewBucket[grant](db, "grants")
	sealed := NewSealedBucket[grant](db, "bindings")
	for _, s := range []struct {
		name string
		err  error
	}{
		{"plain get", func() error { _, _, err := plain.Get(ctx, "a"); return err }()},
		{"plain put", plain.Put(ctx, "b", grant{})},
		{"plain list", func() error { _, err := plain.List(ctx, "", 0); return err }()},
		{"plain delete", plain.Delete(ctx, "a")},
		{"sealed get", func() error { _, _, err := sealed.Get(ctx, "a"); return err }()},
		{"sealed put", sealed.Put(ctx, "b", grant{})},
		{"sealed list", func() error { _, err := sealed.List(ctx, "", 0); return err }()},
		{"sealed delete", sealed.Delete(ctx, "a")},
	} {
		if !errors.Is(s.err, errBucketKind) {
			t.Errorf("%s: %v, want a bucket kind error", s.name, s.err)
		}
	}
	// Nothing was written by the refused calls.
	if _, ok, _ := NewSealedBucket[grant](db, "grants").Get(ctx, "b"); ok {
		t.Error("a refused plain put wrote into the sealed bucket")
	}
	if _, ok, _ := NewBucket[grant](db, "bindings").Get(ctx, "b"); ok {
		t.Error("a refused sealed put wrote into the plain bucket")
	}
}

func TestSealedWithoutKeyring(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "kraken.db")
	db := openAt(t, path, ring(t, testKey(1)))
	if err := NewSealedBucket[grant](db, "grants").Put(ctx, "a", grant{"a", "rt", t0}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db = openAt(t, path, nil)
	defer db.Close()
	b := NewSealedBucket[grant](db, "grants")
	for _, s := range []struct {
		name string
		err  error
	}{
		{"put", b.Put(ctx, "b", grant{})},
		{"get", func() error { _, _, err := b.Get(ctx, "a"); return err }()},
		{"list", func() error { _, err := b.List(ctx, "", 0); return err }()},
		{"delete", b.Delete(ctx, "a")},
		{"rekey", func() error { _, err := db.Rekey(ctx); return err }()},
	} {
		if !errors.Is(s.err, ErrNoKeyring) {
			t.Errorf("%s: %v, want ErrNoKeyring", s.name, s.err)
		}
	}
	// Plain buckets still work.
	if err := NewBucket[string](db, "plain").Put(ctx, "a", "x"); err != nil {
		t.Fatal(err)
	}
}

func TestRekey(t *testing.T) {
	ctx := context.Background()
	a, b := testKey(1), testKey(2)
	path := filepath.Join(t.TempDir(), "kraken.db")

	// Written under A, in two buckets, more records than one rekey
	// transaction takes.
	db := openAt(t, path, ring(t, a))
	want := map[string][]grant{}
	for _, bucket := range []string{"grants", "other"} {
		sb := NewSealedBucket[grant](db, bucket)
		for i := range 7 {
			g := grant{fmt.Sprintf("U%02d", i), fmt.Sprintf("rt-%s-%d", bucket, i), t0}
			if err := sb.Put(ctx, g.User, g); err != nil {
				t.Fatal(err)
			}
			want[bucket] = append(want[bucket], g)
		}
	}
	db.Close()

	// Only B: nothing opens, and Rekey changes nothing.
	db = openAt(t, path, ring(t, b))
	before := snapshot(t, db)
	if n, err := db.Rekey(ctx); !errors.Is(err, ErrSealed) || n != 0 {
		t.Fatalf("rekey without A = %d, %v; want 0, ErrSealed", n, err)
	}
	if !reflect.DeepEqual(before, snapshot(t, db)) {
		t.Fatal("a failed rekey changed the file")
	}
	db.Close()

	// B with A as previous: this process opens only "grants", but both
	// buckets are re-sealed; one record is already under B.
	db = openAt(t, path, ring(t, b, a))
	db.batch = 3
	g := NewSealedBucket[grant](db, "grants")
	if got, _, err := g.Get(ctx, "U00"); err != nil || got != want["grants"][0] {
		t.Fatalf("get under (B, A): %+v %v", got, err)
	}
	if err := g.Put(ctx, "U00", want["grants"][0]); err != nil {
		t.Fatal(err)
	}
	if n, err := db.Rekey(ctx); err != nil || n != 13 {
		t.Fatalf("rekey = %d, %v; want 13, nil", n, err)
	}
	if n, err := db.Rekey(ctx); err != nil || n != 0 {
		t.Fatalf("second rekey = %d, %v; want 0, nil", n, err)
	}
	db.Close()

	// Only B reads everything.
	db = openAt(t, path, ring(t, b))
	defer db.Close()
	for bucket, records := range want {
		got, err := NewSealedBucket[grant](db, bucket).List(ctx, "", 0)
		if err != nil {
			t.Fatalf("%s after rekey: %v", bucket, err)
		}
		if len(got) != len(records) {
			t.Fatalf("%s after rekey: %d records, want %d", bucket, len(got), len(records))
		}
		for i := range got {
			if got[i].RefreshToken != records[i].RefreshToken || !got[i].Expires.Equal(records[i].Expires) {
				t.Fatalf("%s[%d] after rekey: %+v, want %+v", bucket, i, got[i], records[i])
			}
		}
	}
	if n, err := db.Rekey(ctx); err != nil || n != 0 {
		t.Fatalf("rekey with only B = %d, %v; want 0, nil", n, err)
	}
}

// A ring whose current key is an old one seals under it again: rotation
// back is just another rotation.
func TestRekeyBack(t *testing.T) {
	ctx := context.Background()
	a, b := testKey(1), testKey(2)
	path := filepath.Join(t.TempDir(), "kraken.db")
	db := openAt(t, path, ring(t, a))
	if err := NewSealedBucket[string](db, "s").Put(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	for i, r := range []*Keyring{ring(t, b, a), ring(t, a, b)} {
		db = openAt(t, path, r)
		if n, err := db.Rekey(ctx); err != nil || n != 1 {
			t.Fatalf("rotation %d: rekey = %d, %v; want 1, nil", i+1, n, err)
		}
		db.Close()
	}
	db = openAt(t, path, ring(t, a))
	defer db.Close()
	if v, _, err := NewSealedBucket[string](db, "s").Get(ctx, "k"); err != nil || v != "v" {
		t.Fatalf("after rotating back: %q %v", v, err)
	}
}

func TestSealedConcurrent(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, Options{Keyring: ring(t, testKey(2), testKey(1))})
	b := NewSealedBucket[grant](db, "grants")
	const workers, each = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				key := fmt.Sprintf("w%d-%02d", w, i)
				if err := b.Put(ctx, key, grant{key, "rt-" + key, t0}); err != nil {
					errs <- err
					return
				}
				got, ok, err := b.Get(ctx, key)
				if err != nil || !ok || got.RefreshToken != "rt-"+key {
					errs <- fmt.Errorf("get %s: %+v %v %v", key, got, ok, err)
					return
				}
			}
		}()
	}
	// Rekey runs alongside: everything is already current, and it must
	// not disturb the writers.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range 5 {
			if n, err := db.Rekey(ctx); err != nil || n != 0 {
				errs <- fmt.Errorf("rekey during writes: %d %v", n, err)
				return
			}
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got, err := b.List(ctx, "", 0); err != nil || len(got) != workers*each {
		t.Fatalf("list: %d records, %v; want %d", len(got), err, workers*each)
	}
}

func TestSealedCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	db := openTest(t, Options{Keyring: ring(t, testKey(1))})
	b := NewSealedBucket[string](db, "s")
	if err := b.Put(ctx, "k", "v"); !errors.Is(err, context.Canceled) {
		t.Errorf("put: %v", err)
	}
	if _, _, err := b.Get(ctx, "k"); !errors.Is(err, context.Canceled) {
		t.Errorf("get: %v", err)
	}
	if _, err := db.Rekey(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("rekey: %v", err)
	}
}
