package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// ErrNoKeyring means a sealed bucket was used on a DB opened without
// Options.Keyring.
var ErrNoKeyring = errors.New("the store was opened without a key, and sealed buckets need one")

// errBucketKind means a name used as a plain bucket is being used as a
// sealed one, or the reverse: two parts of the bot disagree about whether
// its records are secret.
var errBucketKind = errors.New("bucket kind mismatch")

// SealedBucket is a Bucket whose records are secret: each value is JSON
// sealed with AES-256-GCM under the DB's keyring, bound to its bucket and
// record key. Record keys are stored in the clear, so they must not be
// secret themselves. Sealed buckets live apart from plain ones, and a
// name is one or the other: using a sealed bucket's name as a plain
// Bucket, or the reverse, is an error.
type SealedBucket[T any] struct {
	shelf
}

// NewSealedBucket returns the sealed bucket called name, created on its
// first write. It panics on an empty name, a programming error.
func NewSealedBucket[T any](db *DB, name string) *SealedBucket[T] {
	if name == "" {
		panic("store: NewSealedBucket with an empty name")
	}
	return &SealedBucket[T]{shelf{db: db, kind: sealedKind, other: plainKind, name: []byte(name)}}
}

func (b *SealedBucket[T]) keyring() (*Keyring, error) {
	if b.db.keyring == nil {
		return nil, ErrNoKeyring
	}
	return b.db.keyring, nil
}

// decode opens and unmarshals one sealed record.
func (b *SealedBucket[T]) decode(ring *Keyring, key string, data []byte) (T, error) {
	var v T
	plain, err := ring.open(b.name, key, data)
	if err != nil {
		return v, err
	}
	if err := json.Unmarshal(plain, &v); err != nil {
		// The error is about the JSON's shape, never its content.
		return v, fmt.Errorf("decode: %w", err)
	}
	return v, nil
}

// Put seals v and stores it under key, replacing what was there.
func (b *SealedBucket[T]) Put(ctx context.Context, key string, v T) error {
	if err := checkKey(key); err != nil {
		return fmt.Errorf("store: %s: put: %w", b.name, err)
	}
	ring, err := b.keyring()
	if err != nil {
		return fmt.Errorf("store: %s: put %q: %w", b.name, key, err)
	}
	plain, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("store: %s: put %q: %w", b.name, key, err)
	}
	// Sealed once, outside the transaction: a batched fn may run twice
	// and must write the same bytes each time.
	data, err := ring.seal(b.name, key, plain)
	if err != nil {
		return fmt.Errorf("store: %s: put %q: %w", b.name, key, err)
	}
	if err := b.put(ctx, key, data); err != nil {
		return fmt.Errorf("store: %s: put %q: %w", b.name, key, err)
	}
	return nil
}

// Get returns the record under key and whether there is one. A record no
// key in the ring opens is ErrSealed.
func (b *SealedBucket[T]) Get(ctx context.Context, key string) (T, bool, error) {
	var v T
	found := false
	ring, err := b.keyring()
	if err == nil {
		found, err = b.get(ctx, key, func(data []byte) (err error) {
			v, err = b.decode(ring, key, data)
			return err
		})
	}
	if err != nil {
		var zero T
		return zero, false, fmt.Errorf("store: %s: get %q: %w", b.name, key, err)
	}
	return v, found, nil
}

// Delete removes the record under key; removing one that is not there is
// not an error. It needs the keyring like every other use, so a store
// opened without one cannot quietly lose secrets.
func (b *SealedBucket[T]) Delete(ctx context.Context, key string) error {
	_, err := b.keyring()
	if err == nil {
		err = b.delete(ctx, key)
	}
	if err != nil {
		return fmt.Errorf("store: %s: delete %q: %w", b.name, key, err)
	}
	return nil
}

// List returns the records whose keys start with prefix, in key order, at
// most limit of them (all when limit <= 0). One record that does not open
// fails the whole list with ErrSealed.
func (b *SealedBucket[T]) List(ctx context.Context, prefix string, limit int) ([]T, error) {
	var out []T
	ring, err := b.keyring()
	if err == nil {
		err = b.list(ctx, prefix, limit, func(k, data []byte) error {
			v, err := b.decode(ring, string(k), data)
			if err != nil {
				return err
			}
			out = append(out, v)
			return nil
		})
	}
	if err != nil {
		return nil, fmt.Errorf("store: %s: list %q: %w", b.name, prefix, err)
	}
	return out, nil
}

// sealedRef names one sealed record.
type sealedRef struct{ bucket, key []byte }

// Rekey re-seals under the current key every value of every sealed bucket
// (those this process never opened too) that another key in the ring
// sealed, and returns how many it re-sealed. It first checks that every
// such value opens: if one does not (ErrSealed), it changes nothing, so a
// ring missing a key never leaves a half-rotated file. The re-sealing
// then happens in transactions of a bounded size, each durable on its
// own; running Rekey again finishes an interrupted one.
func (db *DB) Rekey(ctx context.Context) (int, error) {
	ring := db.keyring
	if ring == nil {
		return 0, fmt.Errorf("store: rekey: %w", ErrNoKeyring)
	}
	var stale []sealedRef
	err := db.view(ctx, func(tx *bolt.Tx) error {
		root, err := bucket(tx, sealedBucket)
		if err != nil {
			return err
		}
		return root.ForEachBucket(func(name []byte) error {
			return root.Bucket(name).ForEach(func(k, data []byte) error {
				if ring.isCurrent(data) {
					return nil
				}
				if _, err := ring.open(name, string(k), data); err != nil {
					return fmt.Errorf("%s %q: %w", name, k, err)
				}
				stale = append(stale, sealedRef{bytes.Clone(name), bytes.Clone(k)})
				if len(stale)%1024 == 0 {
					return ctx.Err()
				}
				return nil
			})
		})
	})
	if err != nil {
		return 0, fmt.Errorf("store: rekey: %w", err)
	}
	total := 0
	for len(stale) > 0 {
		chunk := stale[:min(len(stale), db.batch)]
		stale = stale[len(chunk):]
		n := 0
		err := db.update(ctx, func(tx *bolt.Tx) error {
			root, err := bucket(tx, sealedBucket)
			if err != nil {
				return err
			}
			for _, ref := range chunk {
				bk := root.Bucket(ref.bucket)
				if bk == nil {
					continue
				}
				data := bk.Get(ref.key)
				// Deleted or rewritten since the check: nothing to redo.
				if data == nil || ring.isCurrent(data) {
					continue
				}
				plain, err := ring.open(ref.bucket, string(ref.key), data)
				if err != nil {
					return fmt.Errorf("%s %q: %w", ref.bucket, ref.key, err)
				}
				resealed, err := ring.seal(ref.bucket, string(ref.key), plain)
				if err != nil {
					return fmt.Errorf("%s %q: %w", ref.bucket, ref.key, err)
				}
				if err := bk.Put(ref.key, resealed); err != nil {
					return err
				}
				n++
			}
			return nil
		})
		if err != nil {
			return total, fmt.Errorf("store: rekey: %w", err)
		}
		total += n
	}
	return total, nil
}
