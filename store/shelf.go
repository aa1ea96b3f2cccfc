package store

import (
	"bytes"
	"context"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// A bucket is of one kind, plain or sealed: its records live under the
// kind's parent bucket, and its name may not be the other kind's too.
type bucketKind struct {
	parent []byte
	what   string // for the error: "plain", "sealed"
	opener string // the constructor of the kind
}

var (
	plainKind  = bucketKind{recordsBucket, "plain", "NewBucket"}
	sealedKind = bucketKind{sealedBucket, "sealed", "NewSealedBucket"}
)

// shelf is one named bucket of one kind, read and written as bytes:
// Bucket and SealedBucket put their encodings on top of it.
type shelf struct {
	db          *DB
	kind, other bucketKind
	name        []byte
}

// bucket returns the shelf's bucket, created when create is set and
// otherwise nil before its first write, and refuses a name the other
// kind holds.
func (s shelf) bucket(tx *bolt.Tx, create bool) (*bolt.Bucket, error) {
	if o := tx.Bucket(s.other.parent); o != nil && o.Bucket(s.name) != nil {
		return nil, fmt.Errorf("%w: %s holds %s records; open it with %s", errBucketKind, s.name, s.other.what, s.other.opener)
	}
	parent, err := bucket(tx, s.kind.parent)
	if err != nil {
		return nil, err
	}
	if create {
		return parent.CreateBucketIfNotExists(s.name)
	}
	return parent.Bucket(s.name), nil
}

func (s shelf) read(tx *bolt.Tx) (*bolt.Bucket, error)  { return s.bucket(tx, false) }
func (s shelf) write(tx *bolt.Tx) (*bolt.Bucket, error) { return s.bucket(tx, true) }

// put stores data under key. Puts from many goroutines at once (a burst
// of scheduled runs recording their start) share one transaction and one
// sync; a lone put waits at most batchDelay for company. data must not
// change: a batched write may run twice.
func (s shelf) put(ctx context.Context, key string, data []byte) error {
	return s.db.batched(ctx, func(tx *bolt.Tx) error {
		bk, err := s.write(tx)
		if err != nil {
			return err
		}
		return bk.Put([]byte(key), data)
	})
}

// get hands the record under key to decode, and says whether there is one.
func (s shelf) get(ctx context.Context, key string, decode func(data []byte) error) (bool, error) {
	found := false
	err := s.db.view(ctx, func(tx *bolt.Tx) error {
		bk, err := s.read(tx)
		if err != nil || bk == nil {
			return err
		}
		data := bk.Get([]byte(key))
		if data == nil {
			return nil
		}
		found = true
		return decode(data)
	})
	return found, err
}

// delete removes the record under key, if there is one.
func (s shelf) delete(ctx context.Context, key string) error {
	return s.db.update(ctx, func(tx *bolt.Tx) error {
		bk, err := s.read(tx)
		if err != nil || bk == nil {
			return err
		}
		return bk.Delete([]byte(key))
	})
}

// list hands each record whose key starts with prefix to decode, in key
// order, until decode has taken limit of them (all when limit <= 0).
func (s shelf) list(ctx context.Context, prefix string, limit int, decode func(key, data []byte) error) error {
	return s.db.view(ctx, func(tx *bolt.Tx) error {
		bk, err := s.read(tx)
		if err != nil || bk == nil {
			return err
		}
		p := []byte(prefix)
		c := bk.Cursor()
		n := 0
		for k, data := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, data = c.Next() {
			if limit > 0 && n >= limit {
				return nil
			}
			if err := decode(k, data); err != nil {
				return fmt.Errorf("%q: %w", k, err)
			}
			n++
			if n%1024 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
		}
		return nil
	})
}
