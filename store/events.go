package store

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// maxEventID bounds an event id's length (Slack's are about a dozen bytes).
const maxEventID = 1024

// PendingEvent is an event that was claimed (and so acknowledged to its
// sender) but not yet marked done: the bot replays these after a restart.
type PendingEvent struct {
	ID        string
	Payload   []byte
	ClaimedAt time.Time
}

// eventRecord is the value stored under an event id:
// version(1) state(1) claimed-at unix nanos(8) payload.
const (
	eventFormat  = 1
	eventPending = 0
	eventDone    = 1
	eventHeader  = 10
)

type eventRecord struct {
	done      bool
	claimedAt int64
	payload   []byte
}

func (r eventRecord) encode() []byte {
	b := make([]byte, eventHeader+len(r.payload))
	b[0] = eventFormat
	if r.done {
		b[1] = eventDone
	}
	binary.BigEndian.PutUint64(b[2:], uint64(r.claimedAt))
	copy(b[eventHeader:], r.payload)
	return b
}

func decodeEvent(b []byte) (eventRecord, error) {
	if len(b) < eventHeader || b[0] != eventFormat || b[1] > eventDone {
		return eventRecord{}, fmt.Errorf("malformed event record (%d bytes)", len(b))
	}
	return eventRecord{
		done:      b[1] == eventDone,
		claimedAt: int64(binary.BigEndian.Uint64(b[2:])),
		payload:   append([]byte(nil), b[eventHeader:]...),
	}, nil
}

// timeKey is the index key claimed-at|id, so indexes iterate oldest first.
func timeKey(nanos int64, id string) []byte {
	k := make([]byte, 8+len(id))
	binary.BigEndian.PutUint64(k, uint64(nanos))
	copy(k[8:], id)
	return k
}

// ClaimEvent records that the event id (a Slack event_id, or a slash
// command's trigger id) was delivered, with its payload, and says whether
// this is its first delivery. A duplicate delivery returns first=false and
// changes nothing. An id is remembered until it is marked done and EventTTL
// has passed since it was claimed; after that a delivery counts as first
// again.
//
// When ClaimEvent returns first=true the claim is on disk: acknowledge the
// event to its sender only after that, handle it, then MarkEventDone. If
// the process dies in between, PendingEvents returns it after the restart.
func (db *DB) ClaimEvent(ctx context.Context, id string, payload []byte, now time.Time) (first bool, err error) {
	if id == "" || len(id) > maxEventID {
		return false, fmt.Errorf("store: claim event: id must be 1 to %d bytes, got %d", maxEventID, len(id))
	}
	// Even a duplicate is decided in a write transaction: a read could see
	// another claim's commit before its fsync finished, and dropping a
	// retry on the strength of a claim a power cut could still undo would
	// lose the event.
	err = db.update(ctx, func(tx *bolt.Tx) error {
		first = false
		events, err := bucket(tx, eventsBucket)
		if err != nil {
			return err
		}
		pending, err := bucket(tx, eventsPendingBucket)
		if err != nil {
			return err
		}
		if dup, err := db.isDuplicate(events, id, now); err != nil || dup {
			return err
		}
		if old := events.Get([]byte(id)); old != nil {
			// Done and expired but not pruned yet: forget it and claim anew.
			r, err := decodeEvent(old)
			if err != nil {
				return err
			}
			expiry, err := bucket(tx, eventsExpiryBucket)
			if err != nil {
				return err
			}
			if err := expiry.Delete(timeKey(r.claimedAt, id)); err != nil {
				return err
			}
		}
		r := eventRecord{claimedAt: now.UnixNano(), payload: payload}
		if err := events.Put([]byte(id), r.encode()); err != nil {
			return err
		}
		if err := pending.Put(timeKey(r.claimedAt, id), nil); err != nil {
			return err
		}
		first = true
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("store: claim event %q: %w", id, err)
	}
	return first, nil
}

// isDuplicate says whether id is remembered at now: claimed and either
// still pending or claimed less than EventTTL ago.
func (db *DB) isDuplicate(events *bolt.Bucket, id string, now time.Time) (bool, error) {
	old := events.Get([]byte(id))
	if old == nil {
		return false, nil
	}
	r, err := decodeEvent(old)
	if err != nil {
		return false, fmt.Errorf("event %q: %w", id, err)
	}
	return !r.done || now.Before(time.Unix(0, r.claimedAt).Add(db.eventTTL)), nil
}

// MarkEventDone records that a claimed event was handled; its payload is
// dropped and it no longer appears in PendingEvents. Marking an event done
// twice is not an error; marking one never claimed (or already pruned) is
// ErrNotFound.
func (db *DB) MarkEventDone(ctx context.Context, id string) error {
	err := db.update(ctx, func(tx *bolt.Tx) error {
		events, err := bucket(tx, eventsBucket)
		if err != nil {
			return err
		}
		old := events.Get([]byte(id))
		if old == nil {
			return ErrNotFound
		}
		r, err := decodeEvent(old)
		if err != nil {
			return err
		}
		if r.done {
			return nil
		}
		pending, err := bucket(tx, eventsPendingBucket)
		if err != nil {
			return err
		}
		expiry, err := bucket(tx, eventsExpiryBucket)
		if err != nil {
			return err
		}
		k := timeKey(r.claimedAt, id)
		if err := pending.Delete(k); err != nil {
			return err
		}
		if err := expiry.Put(k, nil); err != nil {
			return err
		}
		r.done, r.payload = true, nil
		return events.Put([]byte(id), r.encode())
	})
	if err != nil {
		return fmt.Errorf("store: mark event %q done: %w", id, err)
	}
	return nil
}

// PendingEvents returns the events claimed but not marked done, oldest
// claim first.
func (db *DB) PendingEvents(ctx context.Context) ([]PendingEvent, error) {
	var out []PendingEvent
	err := db.view(ctx, func(tx *bolt.Tx) error {
		events, err := bucket(tx, eventsBucket)
		if err != nil {
			return err
		}
		pending, err := bucket(tx, eventsPendingBucket)
		if err != nil {
			return err
		}
		return pending.ForEach(func(k, _ []byte) error {
			if len(k) < 8 {
				return fmt.Errorf("malformed pending key %x", k)
			}
			id := string(k[8:])
			r, err := decodeEvent(events.Get([]byte(id)))
			if err != nil {
				return fmt.Errorf("event %q: %w", id, err)
			}
			out = append(out, PendingEvent{ID: id, Payload: r.payload, ClaimedAt: time.Unix(0, r.claimedAt)})
			return ctx.Err()
		})
	})
	if err != nil {
		return nil, fmt.Errorf("store: pending events: %w", err)
	}
	return out, nil
}

// PruneEvents forgets the events marked done whose EventTTL has passed at
// now, in transactions of a bounded size so it never holds the writer for
// long, and returns how many it removed. Pending events are kept however
// old they are.
func (db *DB) PruneEvents(ctx context.Context, now time.Time) (int, error) {
	cutoff := now.Add(-db.eventTTL).UnixNano() // claimed at or before cutoff → expired
	total := 0
	for {
		n := 0
		err := db.update(ctx, func(tx *bolt.Tx) error {
			events, err := bucket(tx, eventsBucket)
			if err != nil {
				return err
			}
			expiry, err := bucket(tx, eventsExpiryBucket)
			if err != nil {
				return err
			}
			var keys [][]byte
			c := expiry.Cursor()
			for k, _ := c.First(); k != nil && len(keys) < db.batch; k, _ = c.Next() {
				if len(k) < 8 || int64(binary.BigEndian.Uint64(k)) > cutoff {
					break
				}
				keys = append(keys, append([]byte(nil), k...))
			}
			for _, k := range keys {
				if err := expiry.Delete(k); err != nil {
					return err
				}
				if err := events.Delete(k[8:]); err != nil {
					return err
				}
			}
			n = len(keys)
			return nil
		})
		total += n
		if err != nil {
			return total, fmt.Errorf("store: prune events: %w", err)
		}
		if n < db.batch {
			return total, nil
		}
	}
}
