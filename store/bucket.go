package store

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Bucket is a named set of records of type T, stored as JSON and keyed by
// string, ordered by key. The bot keeps its enclave bindings, run records
// and conversation memory in these. Each write is one transaction, on
// disk when the method returns nil.
type Bucket[T any] struct {
	shelf
}

// NewBucket returns the bucket called name, created on its first write.
// Buckets of different names never share records. It panics on an empty
// name, a programming error.
func NewBucket[T any](db *DB, name string) *Bucket[T] {
	if name == "" {
		panic("store: NewBucket with an empty name")
	}
	return &Bucket[T]{shelf{db: db, kind: plainKind, other: sealedKind, name: []byte(name)}}
}

func checkKey(key string) error {
	if key == "" || len(key) > bolt.MaxKeySize {
		return fmt.Errorf("key must be 1 to %d bytes, got %d", bolt.MaxKeySize, len(key))
	}
	return nil
}

// Put stores v under key, replacing what was there.
func (b *Bucket[T]) Put(ctx context.Context, key string, v T) error {
	if err := checkKey(key); err != nil {
		return fmt.Errorf("store: %s: put: %w", b.name, err)
	}
	data, err := json.Marshal(v)
	if err == nil {
		err = b.put(ctx, key, data)
	}
	if err != nil {
		return fmt.Errorf("store: %s: put %q: %w", b.name, key, err)
	}
	return nil
}

// Get returns the record under key and whether there is one.
func (b *Bucket[T]) Get(ctx context.Context, key string) (T, bool, error) {
	var v T
	found, err := b.get(ctx, key, func(data []byte) error { return json.Unmarshal(data, &v) })
	if err != nil {
		var zero T
		return zero, false, fmt.Errorf("store: %s: get %q: %w", b.name, key, err)
	}
	return v, found, nil
}

// Delete removes the record under key; removing one that is not there is
// not an error.
func (b *Bucket[T]) Delete(ctx context.Context, key string) error {
	if err := b.delete(ctx, key); err != nil {
		return fmt.Errorf("store: %s: delete %q: %w", b.name, key, err)
	}
	return nil
}

// Update reads the record under key, passes it to fn (the zero T and false
// when there is none), and stores what fn returns, all in one transaction:
// no other write comes in between. If fn returns an error nothing is
// written and the error is returned (wrapped). Update returns the stored
// value. fn runs while the store's writer is held: keep it quick and do
// not call the store from it.
func (b *Bucket[T]) Update(ctx context.Context, key string, fn func(v T, exists bool) (T, error)) (T, error) {
	var out T
	if err := checkKey(key); err != nil {
		return out, fmt.Errorf("store: %s: update: %w", b.name, err)
	}
	err := b.db.update(ctx, func(tx *bolt.Tx) error {
		bk, err := b.write(tx)
		if err != nil {
			return err
		}
		var cur T
		data := bk.Get([]byte(key))
		if data != nil {
			if err := json.Unmarshal(data, &cur); err != nil {
				return err
			}
		}
		next, err := fn(cur, data != nil)
		if err != nil {
			return err
		}
		enc, err := json.Marshal(next)
		if err != nil {
			return err
		}
		if err := bk.Put([]byte(key), enc); err != nil {
			return err
		}
		out = next
		return nil
	})
	if err != nil {
		var zero T
		return zero, fmt.Errorf("store: %s: update %q: %w", b.name, key, err)
	}
	return out, nil
}

// List returns the records whose keys start with prefix, in key order, at
// most limit of them (all when limit <= 0).
func (b *Bucket[T]) List(ctx context.Context, prefix string, limit int) ([]T, error) {
	var out []T
	err := b.list(ctx, prefix, limit, func(_, data []byte) error {
		var v T
		if err := json.Unmarshal(data, &v); err != nil {
			return err
		}
		out = append(out, v)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: %s: list %q: %w", b.name, prefix, err)
	}
	return out, nil
}

// DeleteFunc deletes the records under prefix for which drop returns true
// and returns how many it deleted: retention for run records and memory,
// where T carries its own time. It works in transactions of a bounded
// size, so each batch is durable on its own.
func (b *Bucket[T]) DeleteFunc(ctx context.Context, prefix string, drop func(key string, v T) bool) (int, error) {
	total := 0
	from := []byte(prefix)
	for {
		n, scanned := 0, 0
		var resume []byte
		err := b.db.update(ctx, func(tx *bolt.Tx) error {
			bk, err := b.read(tx)
			if err != nil || bk == nil {
				return err
			}
			p := []byte(prefix)
			var victims [][]byte
			c := bk.Cursor()
			k, data := c.Seek(from)
			for ; k != nil && bytes.HasPrefix(k, p) && scanned < b.db.batch; k, data = c.Next() {
				scanned++
				var v T
				if err := json.Unmarshal(data, &v); err != nil {
					return fmt.Errorf("%q: %w", k, err)
				}
				if drop(string(k), v) {
					victims = append(victims, append([]byte(nil), k...))
				}
			}
			if k != nil && bytes.HasPrefix(k, p) {
				resume = append([]byte(nil), k...)
			}
			for _, v := range victims {
				if err := bk.Delete(v); err != nil {
					return err
				}
			}
			n = len(victims)
			return nil
		})
		total += n
		if err != nil {
			return total, fmt.Errorf("store: %s: delete under %q: %w", b.name, prefix, err)
		}
		if resume == nil {
			return total, nil
		}
		from = resume
	}
}
