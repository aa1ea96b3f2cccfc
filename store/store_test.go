package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// openTest opens a fresh store in a temporary directory, closed when the
// test ends.
func openTest(t testing.TB, opts Options) *DB {
	t.Helper()
	db, err := Open(filepath.Join(t.TempDir(), "kraken.db"), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func versionOf(t *testing.T, db *DB) uint64 {
	t.Helper()
	var v uint64
	if err := db.bolt.View(func(tx *bolt.Tx) error { v = schemaVersion(tx); return nil }); err != nil {
		t.Fatal(err)
	}
	return v
}

// loggingMigrations returns n migrations that each append their number
// to the "migration_log" bucket and to *ran.
func loggingMigrations(n int, ran *[]int) []migration {
	migs := []migration{migrations[0]}
	for i := 2; i <= n; i++ {
		migs = append(migs, migration{fmt.Sprintf("log %d", i), func(tx *bolt.Tx) error {
			*ran = append(*ran, i)
			b, err := tx.CreateBucketIfNotExists([]byte("migration_log"))
			if err != nil {
				return err
			}
			return b.Put([]byte{byte(i)}, []byte(fmt.Sprint(i)))
		}})
	}
	return migs
}

func TestOpenFreshFileIsAtCurrentSchema(t *testing.T) {
	db := openTest(t, Options{})
	if got, want := versionOf(t, db), uint64(SchemaVersion()); got != want {
		t.Fatalf("schema version %d, want %d", got, want)
	}
	if err := db.Check(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestMigrationsRunOnceInOrder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kraken.db")
	var ran []int
	steps := []struct {
		migrations  int
		wantRan     []int // migrations run by this open
		wantVersion uint64
	}{
		{3, []int{2, 3}, 3},
		{3, nil, 3}, // reopening runs nothing
		{5, []int{4, 5}, 5},
		{5, nil, 5},
	}
	for i, s := range steps {
		ran = nil
		db, err := open(path, Options{}, loggingMigrations(s.migrations, &ran))
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if fmt.Sprint(ran) != fmt.Sprint(s.wantRan) {
			t.Errorf("step %d: ran %v, want %v", i, ran, s.wantRan)
		}
		if v := versionOf(t, db); v != s.wantVersion {
			t.Errorf("step %d: version %d, want %d", i, v, s.wantVersion)
		}
		db.Close()
	}
}

func TestFailingMigrationLeavesFileUntouched(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kraken.db")
	var ran []int
	db, err := open(path, Options{}, loggingMigrations(2, &ran))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := NewBucket[string](db, "things").Put(ctx, "k", "before"); err != nil {
		t.Fatal(err)
	}
	db.Close()

	boom := errors.New("boom")
	bad := append(loggingMigrations(2, &ran), migration{"half done", func(tx *bolt.Tx) error {
		// Writes, then fails: none of it may stay.
		if err := tx.Bucket(recordsBucket).Bucket([]byte("things")).Put([]byte("k"), []byte(`"clobbered"`)); err != nil {
			return err
		}
		if _, err := tx.CreateBucket([]byte("half")); err != nil {
			return err
		}
		return boom
	}})
	_, err = open(path, Options{}, bad)
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "migration 3 (half done)") {
		t.Fatalf("open with a failing migration: %v", err)
	}

	db, err = open(path, Options{}, loggingMigrations(2, &ran))
	if err != nil {
		t.Fatalf("reopen after failed migration: %v", err)
	}
	defer db.Close()
	if v := versionOf(t, db); v != 2 {
		t.Errorf("version %d after failed migration, want 2", v)
	}
	v, ok, err := NewBucket[string](db, "things").Get(ctx, "k")
	if err != nil || !ok || v != "before" {
		t.Errorf("data after failed migration: %q %v %v", v, ok, err)
	}
	db.bolt.View(func(tx *bolt.Tx) error {
		if tx.Bucket([]byte("half")) != nil {
			t.Error("the failed migration's bucket was kept")
		}
		return nil
	})
}

func TestNewerSchemaIsRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kraken.db")
	var ran []int
	db, err := open(path, Options{}, loggingMigrations(4, &ran))
	if err != nil {
		t.Fatal(err)
	}
	db.Close()

	_, err = open(path, Options{}, loggingMigrations(2, &ran))
	if !errors.Is(err, ErrSchemaTooNew) {
		t.Fatalf("opening a newer file: %v, want ErrSchemaTooNew", err)
	}
	for _, want := range []string{"schema version 4", "up to 2", "newer kraken"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	// Not downgraded: the newer binary still opens it at its version.
	db, err = open(path, Options{}, loggingMigrations(4, &ran))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if v := versionOf(t, db); v != 4 {
		t.Errorf("version %d, want 4", v)
	}
}

func TestSecondOpenGetsLockedError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kraken.db")
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = Open(path, Options{LockTimeout: 100 * time.Millisecond})
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second open: %v, want ErrLocked", err)
	}
	if !strings.Contains(err.Error(), "another kraken") || !strings.Contains(err.Error(), path) {
		t.Errorf("unclear error: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("second open took %v", d)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db, err = Open(path, Options{LockTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatalf("open after the holder closed: %v", err)
	}
	db.Close()
}

func TestOpenErrors(t *testing.T) {
	_, err := Open(filepath.Join(t.TempDir(), "missing", "dir", "kraken.db"), Options{})
	if err == nil || !strings.Contains(err.Error(), "missing/dir") {
		t.Errorf("open in a missing directory: %v", err)
	}
}

func TestCanceledContext(t *testing.T) {
	db := openTest(t, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	calls := map[string]error{}
	_, calls["ClaimEvent"] = db.ClaimEvent(ctx, "e", nil, time.Now())
	_, calls["AppendAudit"] = db.AppendAudit(ctx, AuditEntry{Verb: "x"})
	_, calls["ListAudit"] = db.ListAudit(ctx, AuditQuery{})
	calls["Put"] = NewBucket[int](db, "b").Put(ctx, "k", 1)
	for name, err := range calls {
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a canceled context: %v", name, err)
		}
	}
}
