// Package store keeps the bot's local records in one bbolt file: event
// de-duplication, the audit log, and typed records (enclave bindings, run
// records, conversation memory) in named buckets.
//
// Every write is one bbolt read-write transaction, fsync'd when it commits:
// when a write method returns nil, the data is on disk and survives the
// process being killed at any later point. A write that returns an error,
// or is interrupted by a crash, leaves nothing behind.
//
// The file carries a schema version. Open runs the migrations the file has
// not had yet, each in its own transaction together with the version bump,
// and refuses a file written by a newer kraken rather than downgrade it.
//
// Only one process may have the file open: a second kraken opening it gets
// ErrLocked after Options.LockTimeout instead of waiting forever.
package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// Typed errors callers branch on (use errors.Is).
var (
	// ErrLocked means another process holds the file open.
	ErrLocked = errors.New("store file is locked by another process")
	// ErrSchemaTooNew means the file was written by a newer kraken.
	ErrSchemaTooNew = errors.New("store schema is newer than this kraken")
	// ErrNotFound means the record asked for does not exist.
	ErrNotFound = errors.New("not found")
)

// Defaults for Options' zero values.
const (
	DefaultLockTimeout = 2 * time.Second
	DefaultEventTTL    = 24 * time.Hour
)

// pruneBatch bounds how many records one pruning transaction deletes, so
// pruning never holds the writer for long.
const pruneBatch = 1000

// Options configure Open. The zero value is usable.
type Options struct {
	// LockTimeout is how long Open waits for another process to release
	// the file before returning ErrLocked. Default DefaultLockTimeout.
	LockTimeout time.Duration
	// EventTTL is how long a delivered event id is remembered after it was
	// claimed (pending events are remembered until marked done).
	// Default DefaultEventTTL.
	EventTTL time.Duration
	// Now is the clock used to stamp audit entries. Default time.Now.
	Now func() time.Time
	// Keyring seals and opens the values of sealed buckets. Without one,
	// sealed buckets return ErrNoKeyring; plain buckets work as ever.
	Keyring *Keyring
}

// DB is the bot's store: one bbolt file. It is safe for concurrent use.
type DB struct {
	bolt     *bolt.DB
	path     string
	eventTTL time.Duration
	now      func() time.Time
	batch    int // records per pruning transaction
	keyring  *Keyring
}

// Bucket names. Typed records live in nested buckets under recordsBucket,
// so their names never collide with the store's own.
var (
	metaBucket           = []byte("meta")
	eventsBucket         = []byte("events")           // event id → eventRecord
	eventsPendingBucket  = []byte("events_pending")   // claimed-at|id → nil, not yet done
	eventsExpiryBucket   = []byte("events_expiry")    // claimed-at|id → nil, done
	auditBucket          = []byte("audit")            // big-endian id → JSON AuditEntry
	auditByEnclaveBucket = []byte("audit_by_enclave") // enclave|0x00|big-endian id → nil
	recordsBucket        = []byte("records")          // name → nested bucket of JSON records
	sealedBucket         = []byte("sealed")           // name → nested bucket of sealed JSON records

	schemaVersionKey = []byte("schema_version")
	auditClockKey    = []byte("audit_recorded") // newest audit Recorded, unix nanos
)

// migration brings the file from schema version N to N+1, where N is its
// index in the list. It runs in the same transaction that records N+1, so
// it either happens completely or not at all; it should still be written
// idempotently (CreateBucketIfNotExists and the like).
type migration struct {
	name string
	up   func(tx *bolt.Tx) error
}

// migrations is the schema's history, oldest first. Append only: never
// edit or reorder a migration that has shipped.
var migrations = []migration{
	{"create buckets", func(tx *bolt.Tx) error {
		for _, name := range [][]byte{
			eventsBucket, eventsPendingBucket, eventsExpiryBucket,
			auditBucket, auditByEnclaveBucket, recordsBucket,
		} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("bucket %s: %w", name, err)
			}
		}
		return nil
	}},
	{"sealed buckets", func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(sealedBucket)
		return err
	}},
}

// SchemaVersion is the schema version this kraken writes.
func SchemaVersion() int { return len(migrations) }

// Open opens (creating if needed) the store file at path, takes its lock,
// and migrates it to the current schema.
func Open(path string, opts Options) (*DB, error) {
	return open(path, opts, migrations)
}

func open(path string, opts Options, migs []migration) (*DB, error) {
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = DefaultLockTimeout
	}
	if opts.EventTTL <= 0 {
		opts.EventTTL = DefaultEventTTL
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	// NoSync stays false: every commit is fsync'd.
	b, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: opts.LockTimeout})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("store: %s is held by another kraken process (waited %s for its lock); stop it or point this one at another file: %w",
			path, opts.LockTimeout, ErrLocked)
	}
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	// A lone batched write waits this long for others to share its sync.
	b.MaxBatchDelay = batchDelay
	db := &DB{bolt: b, path: path, eventTTL: opts.EventTTL, now: opts.Now, batch: pruneBatch, keyring: opts.Keyring}
	if err := db.migrate(migs); err != nil {
		b.Close()
		return nil, err
	}
	return db, nil
}

// migrate runs the migrations the file has not had, one transaction each.
func (db *DB) migrate(migs []migration) error {
	var have uint64
	if err := db.bolt.View(func(tx *bolt.Tx) error {
		have = schemaVersion(tx)
		return nil
	}); err != nil {
		return fmt.Errorf("store: %s: read schema version: %w", db.path, err)
	}
	if have > uint64(len(migs)) {
		return fmt.Errorf("store: %s has schema version %d but this kraken knows only up to %d; run a newer kraken (downgrades are not supported): %w",
			db.path, have, len(migs), ErrSchemaTooNew)
	}
	for v := have; v < uint64(len(migs)); v++ {
		m := migs[v]
		err := db.bolt.Update(func(tx *bolt.Tx) error {
			// Re-check inside the writer lock: the version is the truth.
			if cur := schemaVersion(tx); cur != v {
				return fmt.Errorf("schema version changed to %d underneath", cur)
			}
			if err := m.up(tx); err != nil {
				return err
			}
			meta, err := tx.CreateBucketIfNotExists(metaBucket)
			if err != nil {
				return err
			}
			return meta.Put(schemaVersionKey, u64(v+1))
		})
		if err != nil {
			return fmt.Errorf("store: %s: migration %d (%s): %w", db.path, v+1, m.name, err)
		}
	}
	return nil
}

func schemaVersion(tx *bolt.Tx) uint64 {
	meta := tx.Bucket(metaBucket)
	if meta == nil {
		return 0
	}
	v := meta.Get(schemaVersionKey)
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

// Close releases the file and its lock.
func (db *DB) Close() error {
	if err := db.bolt.Close(); err != nil {
		return fmt.Errorf("store: close %s: %w", db.path, err)
	}
	return nil
}

// Path is the file the store lives in.
func (db *DB) Path() string { return db.path }

// Check runs bbolt's consistency check over the whole file (every page
// reachable once, no page both used and free) and returns the problems
// found, joined, or nil.
func (db *DB) Check(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	var errs []error
	err := db.bolt.View(func(tx *bolt.Tx) error {
		for e := range tx.Check() {
			errs = append(errs, e)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: check %s: %w", db.path, err)
	}
	if len(errs) > 0 {
		return fmt.Errorf("store: check %s: %w", db.path, errors.Join(errs...))
	}
	return nil
}

// update runs fn in one read-write transaction; it is durable when update
// returns nil.
func (db *DB) update(ctx context.Context, fn func(tx *bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return db.bolt.Update(fn)
}

// batchDelay is how long a batched write waits for company: about one
// sync, so a burst shares syncs and a lone write costs little more.
const batchDelay = 2 * time.Millisecond

// batched runs fn in a read-write transaction it may share with other
// goroutines' (bbolt's Batch): still on disk when it returns nil. fn may
// run more than once, so it must do the same thing each time.
func (db *DB) batched(ctx context.Context, fn func(tx *bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return db.bolt.Batch(fn)
}

// view runs fn in a read-only transaction.
func (db *DB) view(ctx context.Context, fn func(tx *bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return db.bolt.View(fn)
}

// bucket returns a top-level bucket the migrations created.
func bucket(tx *bolt.Tx, name []byte) (*bolt.Bucket, error) {
	b := tx.Bucket(name)
	if b == nil {
		return nil, fmt.Errorf("store: bucket %s missing", name)
	}
	return b, nil
}

func u64(v uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, v)
	return b
}
