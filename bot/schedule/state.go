package schedule

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"strings"
	"time"

	"github.com/kraken-ops/kraken/store"
)

// Shared keeps what the schedules must remember across a change of
// leader, where every replica of the bot reads it: failure counts, pauses
// (and who resumed them), and up to when each trigger's fires were
// handled. The cluster's implementation is a ConfigMap
// (k8s.ScheduleState); NewLocalState keeps it in one replica's store,
// for `kraken dev` and tests.
//
// It holds one document, whose format is this package's: Shared only
// stores bytes, and changes them by compare-and-swap, since the leader
// and a replica serving someone's Resume may write at the same time.
type Shared interface {
	// Load returns the document, nil when there is none yet.
	Load(ctx context.Context) ([]byte, error)
	// Update calls change with the document as stored and writes what
	// it returns; when another writer came first, it calls change again
	// with theirs. Returning the input unchanged writes nothing.
	Update(ctx context.Context, change func(current []byte) ([]byte, error)) error
}

// ErrStateUnreadable means the shared document is not one this bot can
// read: written by a newer bot, or damaged. Schedules do not run until
// someone fixes or removes it, rather than forget pauses.
var ErrStateUnreadable = errors.New("schedule: the shared schedule state cannot be read")

// sharedState is what Shared holds: each trigger's state by entry id,
// and each tentacle's resumes by enclave/tentacle.
type sharedState struct {
	triggers map[string]triggerState
	resumes  map[string]resumeState
}

func newSharedState() sharedState {
	return sharedState{triggers: map[string]triggerState{}, resumes: map[string]resumeState{}}
}

// triggerState is what a trigger's schedule keeps in Shared.
type triggerState struct {
	// last: the trigger's fires due up to here were handled (started,
	// skipped or noted missed). The leader moves it at each flush.
	last     time.Time
	failures int
	// reason says why the trigger is paused; empty when it is not.
	reason string
}

func (st triggerState) paused() bool { return st.reason != "" }

// resumeState is a tentacle's last Resume. Resumes are counted, so a
// leader tells one made on another replica from its own view without
// comparing clocks, and kept by tentacle, so a replica that knows none
// of its triggers (a follower, or a pause not written yet) can resume.
type resumeState struct {
	n  int
	by string
	at time.Time
}

// tentacleOf is the enclave/tentacle part of an entry id.
func tentacleOf(id string) string {
	enc, rest, _ := strings.Cut(id, "/")
	tent, _, _ := strings.Cut(rest, "/")
	return enc + "/" + tent
}

// stateVersion is the document format written by this bot.
const stateVersion = 1

// stateDoc is the document: JSON, gzipped. 10,000 triggers whose marks
// all sit within the last flush take a few dozen KiB, so the ConfigMap
// stays far under its 1 MiB limit (BenchmarkSharedState measures it).
type stateDoc struct {
	Version int `json:"v"`
	// At is the latest mark, in Unix seconds; marks are stored as
	// seconds before it, which is 0 for every trigger that fires.
	At       int64                  `json:"at"`
	Triggers map[string]triggerWire `json:"t"`
	Resumes  map[string]resumeWire  `json:"r,omitempty"`
}

type triggerWire struct {
	Mark     *int64 `json:"m,omitempty"` // At minus last; absent when never handled
	Failures int    `json:"f,omitempty"`
	Paused   string `json:"p,omitempty"`
}

type resumeWire struct {
	N  int    `json:"n"`
	By string `json:"by,omitempty"`
	At int64  `json:"at"` // Unix seconds
}

// decodeState reads a document; nil is an empty one.
func decodeState(data []byte) (sharedState, error) {
	out := newSharedState()
	if len(data) == 0 {
		return out, nil
	}
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return out, fmt.Errorf("%w: not gzip: %v", ErrStateUnreadable, err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		return out, fmt.Errorf("%w: %v", ErrStateUnreadable, err)
	}
	var doc stateDoc
	if err := json.Unmarshal(raw, &doc); err != nil {
		return out, fmt.Errorf("%w: %v", ErrStateUnreadable, err)
	}
	if doc.Version != stateVersion {
		return out, fmt.Errorf("%w: format version %d, this bot reads %d", ErrStateUnreadable, doc.Version, stateVersion)
	}
	for id, w := range doc.Triggers {
		st := triggerState{failures: w.Failures, reason: w.Paused}
		if w.Mark != nil {
			st.last = time.Unix(doc.At-*w.Mark, 0)
		}
		out.triggers[id] = st
	}
	for k, w := range doc.Resumes {
		out.resumes[k] = resumeState{n: w.N, by: w.By, at: time.Unix(w.At, 0)}
	}
	return out, nil
}

// encodeState writes a document. The same state gives the same bytes,
// so a flush that changed nothing writes nothing.
func encodeState(state sharedState) ([]byte, error) {
	doc := stateDoc{Version: stateVersion, Triggers: make(map[string]triggerWire, len(state.triggers))}
	for _, st := range state.triggers {
		doc.At = max(doc.At, st.last.Unix())
	}
	for id, st := range state.triggers {
		w := triggerWire{Failures: st.failures, Paused: st.reason}
		if !st.last.IsZero() {
			m := doc.At - st.last.Unix()
			w.Mark = &m
		}
		doc.Triggers[id] = w
	}
	if len(state.resumes) > 0 {
		doc.Resumes = make(map[string]resumeWire, len(state.resumes))
		for k, r := range state.resumes {
			doc.Resumes[k] = resumeWire{N: r.n, By: r.by, At: r.at.Unix()}
		}
	}
	raw, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("schedule: encode the shared state: %w", err)
	}
	var b bytes.Buffer
	// No name or time in the header: same input, same bytes. The marks
	// repeat so much that the fastest level compresses them well.
	zw, err := gzip.NewWriterLevel(&b, gzip.BestSpeed)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(raw); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// mergeState folds a leader's view (mine) into the stored state. The
// leader owns the counts and marks; a Resume made elsewhere since the
// leader last read (more resumes stored than it knows) clears its
// pauses of that tentacle. What only the store knows stays, unless gone
// says it belongs to a tentacle that no longer exists.
func mergeState(stored, mine sharedState, gone func(key string) bool) sharedState {
	out := newSharedState()
	for k, r := range stored.resumes {
		if !gone(k) {
			out.resumes[k] = r
		}
	}
	for k, r := range mine.resumes {
		if !gone(k) && r.n > out.resumes[k].n {
			out.resumes[k] = r
		}
	}
	for id, st := range stored.triggers {
		if _, ok := mine.triggers[id]; !ok && !gone(id) {
			out.triggers[id] = st
		}
	}
	for id, m := range mine.triggers {
		if gone(id) {
			continue
		}
		if s, ok := stored.triggers[id]; ok && s.last.After(m.last) {
			m.last = s.last
		}
		if tk := tentacleOf(id); stored.resumes[tk].n > mine.resumes[tk].n {
			m.reason, m.failures = "", 0
		}
		out.triggers[id] = m
	}
	return out
}

// localState is Shared in one replica's store.
type localState struct {
	b *store.Bucket[[]byte]
}

// NewLocalState keeps the shared schedule state in db: enough for one
// replica (`kraken dev`, tests), where no other replica needs to read it.
func NewLocalState(db *store.DB) Shared {
	return localState{b: store.NewBucket[[]byte](db, "schedule_state")}
}

const localStateKey = "state"

func (l localState) Load(ctx context.Context) ([]byte, error) {
	data, _, err := l.b.Get(ctx, localStateKey)
	if err != nil {
		return nil, fmt.Errorf("schedule: load the state: %w", err)
	}
	return data, nil
}

func (l localState) Update(ctx context.Context, change func([]byte) ([]byte, error)) error {
	// The store's Update is one transaction: no other writer comes first.
	_, err := l.b.Update(ctx, localStateKey, func(cur []byte, _ bool) ([]byte, error) { return change(cur) })
	if err != nil {
		return fmt.Errorf("schedule: save the state: %w", err)
	}
	return nil
}

// load replaces this replica's view of the state with Shared's, as a new
// leader must: another replica may have led since.
func (s *Scheduler) load(ctx context.Context) error {
	data, err := s.cfg.Shared.Load(ctx)
	if err != nil {
		return fmt.Errorf("schedule: load the shared state: %w", err)
	}
	states, err := decodeState(data)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.states = states
	s.mark = time.Time{}
	s.written, s.writtenDoc = nil, nil
	// Next fires computed in an earlier term are stale: another replica
	// fired since. The first scan queues every trigger from now.
	s.entries, s.queue = map[string]*entry{}, s.queue[:0]
	return nil
}

// flushSoon asks the flush loop to write the state now, e.g. after a
// pause, which a change of leader must not lose.
func (s *Scheduler) flushSoon() {
	select {
	case s.soon <- struct{}{}:
	default:
	}
}

// flushLoop writes the state every FlushEvery and when asked, until stop
// is closed (Run's loop has ended, so no fire is in flight), then once
// more, and closes done. A write that fails is tried again on the next
// tick: nothing is lost until this replica stops.
func (s *Scheduler) flushLoop(ctx context.Context, stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(s.cfg.FlushEvery)
	defer t.Stop()
	for {
		select {
		case <-stop:
			last, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			if err := s.flush(last); err != nil {
				s.log.Error("schedule state not written on leaving; a new leader loses the failure counts since the last write", "err", err)
			}
			return
		case <-t.C:
		case <-s.soon:
		}
		if err := s.flush(ctx); err != nil && ctx.Err() == nil {
			s.log.Error("schedule state not written", "err", err)
		}
	}
}

// flush folds this leader's view into Shared: every trigger that fires
// has had its fires handled up to the mark, paused and frozen ones keep
// theirs. It takes back Resumes made on other replicas.
func (s *Scheduler) flush(ctx context.Context) error {
	s.mu.Lock()
	mine := sharedState{triggers: maps.Clone(s.states.triggers), resumes: maps.Clone(s.states.resumes)}
	known := make(map[string]bool, 2*len(s.entries)) // entry ids and their tentacles
	for id, e := range s.entries {
		known[id], known[tentacleOf(id)] = true, true
		st := mine.triggers[id]
		if e.index >= 0 && s.mark.After(st.last) {
			st.last = s.mark
		}
		if st != (triggerState{}) {
			mine.triggers[id] = st
		}
	}
	enclaves, listed := maps.Clone(s.enclaves), s.listed
	unchanged := s.written != nil && sameState(*s.written, mine)
	writtenDoc := s.writtenDoc
	s.mu.Unlock()

	// Nothing changed here, and the document is still the one this
	// leader wrote (no resume from another replica): nothing to do.
	if unchanged {
		if cur, err := s.cfg.Shared.Load(ctx); err == nil && bytes.Equal(cur, writtenDoc) {
			return nil
		}
	}

	// What no scan found is forgotten once its enclave was read
	// completely, or is gone; a passing read error forgets nothing.
	gone := func(key string) bool {
		enc, _, _ := strings.Cut(key, "/")
		complete, present := enclaves[enc]
		return listed && !known[key] && (complete || !present)
	}
	var merged sharedState
	var doc []byte
	err := s.cfg.Shared.Update(ctx, func(cur []byte) ([]byte, error) {
		stored, err := decodeState(cur)
		if err != nil {
			return nil, err
		}
		merged = mergeState(stored, mine, gone)
		if doc, err = encodeState(merged); err != nil {
			return nil, err
		}
		// Unchanged, the stored bytes stay (and nothing is written).
		if cur != nil && bytes.Equal(doc, cur) {
			return cur, nil
		}
		return doc, nil
	})
	if err != nil {
		return fmt.Errorf("schedule: write the shared state: %w", err)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	s.written, s.writtenDoc = &mine, doc
	now := s.cfg.Now()
	for tk, r := range merged.resumes {
		if r.n <= s.states.resumes[tk].n {
			continue
		}
		s.states.resumes[tk] = r
		s.clearPauses(tk, now)
		s.log.Info("schedule resumed on another replica", "tentacle", tk, "by", r.by)
	}
	for id := range s.states.triggers {
		if _, ok := merged.triggers[id]; !ok {
			delete(s.states.triggers, id)
		}
	}
	for tk := range s.states.resumes {
		if _, ok := merged.resumes[tk]; !ok {
			delete(s.states.resumes, tk)
		}
	}
	return nil
}

// sameState reports whether two views hold the same triggers and resumes.
func sameState(a, b sharedState) bool {
	return maps.EqualFunc(a.triggers, b.triggers, func(x, y triggerState) bool {
		return x.last.Equal(y.last) && x.failures == y.failures && x.reason == y.reason
	}) && maps.EqualFunc(a.resumes, b.resumes, func(x, y resumeState) bool {
		return x.n == y.n && x.by == y.by && x.at.Equal(y.at)
	})
}

// clearPauses clears the pauses and counts of a tentacle's triggers and
// queues them again. s.mu is held.
func (s *Scheduler) clearPauses(tentacleKey string, now time.Time) {
	prefix := tentacleKey + "/"
	for id, st := range s.states.triggers {
		if strings.HasPrefix(id, prefix) {
			st.reason, st.failures = "", 0
			s.states.triggers[id] = st
		}
	}
	for id := range s.entries {
		if strings.HasPrefix(id, prefix) {
			s.requeue(id, now)
		}
	}
}
