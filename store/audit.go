package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Values of AuditEntry.Decision, Result and Via.
const (
	DecisionAllowed = "allowed"
	DecisionDenied  = "denied"

	ResultOK                  = "ok"
	ResultError               = "error"
	ResultPendingConfirmation = "pending-confirmation"

	ViaSlack   = "slack"
	ViaConsole = "console"
	ViaAdmin   = "admin"
	ViaLLM     = "llm"
)

// AuditEntry is one attempted operation.
//
// The store writes what it is given: Args (and Error, Reason) must already
// have secrets redacted by the caller.
type AuditEntry struct {
	// ID is assigned by AppendAudit; ids only ever increase.
	ID uint64 `json:"id"`
	// At is when the operation began; AppendAudit sets it to now when zero.
	At time.Time `json:"at"`
	// Recorded is when the store appended the entry, set by AppendAudit.
	// It never decreases from one id to the next, and At is never after
	// it (a later At is clamped to it), which lets ListAudit stop early on
	// Since and PruneAudit delete from the oldest end.
	Recorded time.Time `json:"recorded"`

	Actor      string `json:"actor"` // Slack user id, "system", …
	ActorEmail string `json:"actor_email,omitempty"`
	Issuer     string `json:"issuer,omitempty"`  // identity provider, when the actor came from one
	Subject    string `json:"subject,omitempty"` // the actor's subject at the issuer

	Enclave string            `json:"enclave,omitempty"`
	Verb    string            `json:"verb"`
	Args    map[string]string `json:"args,omitempty"` // redacted by the caller

	Decision string        `json:"decision"` // DecisionAllowed or DecisionDenied
	Reason   string        `json:"reason,omitempty"`
	Result   string        `json:"result,omitempty"` // ResultOK, ResultError, ResultPendingConfirmation
	Error    string        `json:"error,omitempty"`
	Duration time.Duration `json:"duration_ns"`
	Via      string        `json:"via"` // ViaSlack, ViaConsole, ViaAdmin, ViaLLM
}

// AuditQuery selects audit entries. Zero fields do not filter.
type AuditQuery struct {
	Enclave string // uses the enclave index: cheap however large the log
	Actor   string
	Verb    string
	Since   time.Time // At >= Since
	Until   time.Time // At < Until
	// Before is a paging cursor: only entries with ID < Before. Pass the
	// last ID of one page to get the next.
	Before uint64
	// Limit caps the entries returned; <= 0 means DefaultAuditLimit.
	Limit int
}

// DefaultAuditLimit is ListAudit's page size when the query sets none.
const DefaultAuditLimit = 100

// AppendAudit appends e to the audit log and returns its id. It is on disk
// when AppendAudit returns.
func (db *DB) AppendAudit(ctx context.Context, e AuditEntry) (uint64, error) {
	if strings.IndexByte(e.Enclave, 0) >= 0 {
		return 0, fmt.Errorf("store: append audit: enclave name contains a NUL byte")
	}
	now := db.now()
	var id uint64
	err := db.update(ctx, func(tx *bolt.Tx) (err error) {
		id, err = appendAudit(tx, e, now)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("store: append audit: %w", err)
	}
	return id, nil
}

// appendAudit appends e within tx, stamped as recorded at now.
func appendAudit(tx *bolt.Tx, e AuditEntry, now time.Time) (uint64, error) {
	audit, err := bucket(tx, auditBucket)
	if err != nil {
		return 0, err
	}
	byEnclave, err := bucket(tx, auditByEnclaveBucket)
	if err != nil {
		return 0, err
	}
	meta, err := bucket(tx, metaBucket)
	if err != nil {
		return 0, err
	}
	id, err := audit.NextSequence()
	if err != nil {
		return 0, err
	}
	// Recorded never goes back, even when the wall clock does.
	rec := now
	if last := meta.Get(auditClockKey); len(last) == 8 {
		if l := time.Unix(0, int64(binary.BigEndian.Uint64(last))); l.After(rec) {
			rec = l
		}
	}
	e.ID, e.Recorded = id, rec
	if e.At.IsZero() {
		e.At = now
	}
	if e.At.After(rec) {
		e.At = rec
	}
	v, err := json.Marshal(e)
	if err != nil {
		return 0, err
	}
	if err := audit.Put(u64(id), v); err != nil {
		return 0, err
	}
	if e.Enclave != "" {
		if err := byEnclave.Put(enclaveKey(e.Enclave, id), nil); err != nil {
			return 0, err
		}
	}
	return id, meta.Put(auditClockKey, u64(uint64(rec.UnixNano())))
}

func enclaveKey(enclave string, id uint64) []byte {
	k := make([]byte, 0, len(enclave)+9)
	k = append(k, enclave...)
	k = append(k, 0)
	return binary.BigEndian.AppendUint64(k, id)
}

// ListAudit returns the entries matching q, newest first, at most q.Limit.
// With q.Enclave set it walks only that enclave's entries; a Since bound
// stops the walk at the first entry recorded before it. Actor, Verb and
// Until filter the entries walked.
func (db *DB) ListAudit(ctx context.Context, q AuditQuery) ([]AuditEntry, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = DefaultAuditLimit
	}
	var out []AuditEntry
	err := db.view(ctx, func(tx *bolt.Tx) error {
		audit, err := bucket(tx, auditBucket)
		if err != nil {
			return err
		}
		// next yields the ids to look at, newest first.
		var next func() (uint64, bool)
		if q.Enclave != "" {
			idx, err := bucket(tx, auditByEnclaveBucket)
			if err != nil {
				return err
			}
			prefix := append([]byte(q.Enclave), 0)
			var start []byte
			if q.Before > 0 {
				start = enclaveKey(q.Enclave, q.Before)
			} else {
				start = append([]byte(q.Enclave), 1) // just past the enclave's keys
			}
			next = newestFirst(idx.Cursor(), start, func(k []byte) (uint64, bool) {
				if !bytes.HasPrefix(k, prefix) || len(k) != len(prefix)+8 {
					return 0, false
				}
				return binary.BigEndian.Uint64(k[len(prefix):]), true
			})
		} else {
			var start []byte
			if q.Before > 0 {
				start = u64(q.Before)
			}
			next = newestFirst(audit.Cursor(), start, func(k []byte) (uint64, bool) {
				if len(k) != 8 {
					return 0, false
				}
				return binary.BigEndian.Uint64(k), true
			})
		}
		for n := 0; len(out) < limit; n++ {
			if n%1024 == 1023 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			id, ok := next()
			if !ok {
				return nil
			}
			v := audit.Get(u64(id))
			if v == nil {
				return fmt.Errorf("audit entry %d is indexed but missing", id)
			}
			var e AuditEntry
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("audit entry %d: %w", id, err)
			}
			if !q.Since.IsZero() && e.Recorded.Before(q.Since) {
				return nil // every older entry has At <= Recorded < Since
			}
			if (q.Actor != "" && e.Actor != q.Actor) ||
				(q.Verb != "" && e.Verb != q.Verb) ||
				(!q.Since.IsZero() && e.At.Before(q.Since)) ||
				(!q.Until.IsZero() && !e.At.Before(q.Until)) {
				continue
			}
			out = append(out, e)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: list audit: %w", err)
	}
	return out, nil
}

// newestFirst walks a cursor backwards from just before start (from the
// last key when start is nil), decoding each key with id until it says
// stop.
func newestFirst(c *bolt.Cursor, start []byte, id func(k []byte) (uint64, bool)) func() (uint64, bool) {
	var k []byte
	begun := false
	return func() (uint64, bool) {
		if !begun {
			begun = true
			if start == nil {
				k, _ = c.Last()
			} else if k, _ = c.Seek(start); k == nil {
				k, _ = c.Last()
			} else {
				k, _ = c.Prev()
			}
		} else {
			k, _ = c.Prev()
		}
		if k == nil {
			return 0, false
		}
		return id(k)
	}
}

// PruneAudit deletes the entries recorded before olderThan (retention), in
// transactions of a bounded size, and returns how many it deleted.
func (db *DB) PruneAudit(ctx context.Context, olderThan time.Time) (int, error) {
	total := 0
	for {
		n := 0
		done := false
		err := db.update(ctx, func(tx *bolt.Tx) error {
			audit, err := bucket(tx, auditBucket)
			if err != nil {
				return err
			}
			byEnclave, err := bucket(tx, auditByEnclaveBucket)
			if err != nil {
				return err
			}
			type victim struct {
				key     []byte
				enclave string
			}
			var victims []victim
			c := audit.Cursor()
			k, v := c.First()
			for ; k != nil && len(victims) < db.batch; k, v = c.Next() {
				var e AuditEntry
				if err := json.Unmarshal(v, &e); err != nil {
					return fmt.Errorf("audit entry %x: %w", k, err)
				}
				if !e.Recorded.Before(olderThan) {
					break
				}
				victims = append(victims, victim{append([]byte(nil), k...), e.Enclave})
			}
			done = len(victims) < db.batch
			for _, x := range victims {
				if err := audit.Delete(x.key); err != nil {
					return err
				}
				if x.enclave != "" {
					if err := byEnclave.Delete(enclaveKey(x.enclave, binary.BigEndian.Uint64(x.key))); err != nil {
						return err
					}
				}
			}
			n = len(victims)
			return nil
		})
		total += n
		if err != nil {
			return total, fmt.Errorf("store: prune audit: %w", err)
		}
		if done {
			return total, nil
		}
	}
}
