// Package schedule fires tentacles' cron triggers.
//
// The leader runs one Scheduler. It reads every enclave's deployed
// tentacles, parses each one's workflow.yaml for cron triggers, and keeps
// one timer for the earliest fire of them all (a heap, so 10,000
// schedules cost one wake-up per due time, not one goroutine each). A fire
// starts a run through the runs package, so every fire has a record; a
// fire that cannot run (the last run still going, the bot down) is noted
// there too.
//
// What must survive a change of leader lives in Shared (in the cluster,
// a ConfigMap): each trigger's failure count, its pause and who resumed
// it, and up to when its fires were handled. A new leader loads it when
// it starts, so pauses hold and counts continue. The leader writes it
// every FlushEvery, at once after a pause, and when it stops leading;
// Resume writes it from any replica.
//
// Fires are never replayed, so a change of leader doubles none. Fires
// due while no replica led are noted missed, counted from the later of
// the trigger's mark and Config.LastAlive (the previous leader's last
// lease renewal). The window this leaves: when a leader dies, the fires
// it started after its last renewal (at most the lease's retry period,
// or FlushEvery without LastAlive) are noted missed too, and failure
// counts since its last flush are lost; a leader that stops cleanly
// flushes and releases the lease, leaving neither.
//
// Known limits: a fire is skipped only while a run this scheduler started
// is going (a manual run does not hold a schedule back); Status answers
// only on the leader.
package schedule

import (
	"cmp"
	"container/heap"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kraken-ops/kraken/bot/runs"
	"github.com/kraken-ops/kraken/enclave"
	"github.com/kraken-ops/kraken/store"
	"github.com/kraken-ops/kraken/tentacle"
	"github.com/robfig/cron/v3"
)

// Enclaves lists the enclaves whose schedules run.
type Enclaves interface {
	List(ctx context.Context) ([]enclave.Enclave, error)
}

// Tentacles lists an enclave's deployed tentacles and reads a revision's
// files (rev 0: the deployed one), where the cron triggers are declared.
type Tentacles interface {
	List(ctx context.Context, enclave string) ([]tentacle.Status, error)
	Files(ctx context.Context, enclave, name string, rev int) (map[string][]byte, error)
}

// Runner starts runs and notes the ones that did not happen; *runs.Runner
// is one.
type Runner interface {
	Start(ctx context.Context, req runs.Request, done func(runs.Record, json.RawMessage)) (runs.Record, error)
	Note(ctx context.Context, req runs.Request, state runs.State, why string) (runs.Record, error)
}

// NoticeKind says what a Notice is about.
type NoticeKind string

const (
	// NoticeFailed: a scheduled run failed.
	NoticeFailed NoticeKind = "failed"
	// NoticePaused: a trigger failed MaxFailures times in a row and fires
	// no more until someone resumes the tentacle (Scheduler.Resume).
	NoticePaused NoticeKind = "paused"
)

// Notice is something the enclave's channel should hear about.
type Notice struct {
	Kind     NoticeKind
	Enclave  string
	Tentacle string
	// Trigger is the trigger's name, or its schedule when it has none.
	Trigger string
	// Run is the run that failed.
	Run runs.Record
	// Failures is how many runs of the trigger failed in a row.
	Failures int
	// Text is one line for people.
	Text string
}

// Config wires a Scheduler.
type Config struct {
	Enclaves  Enclaves
	Tentacles Tentacles
	Runner    Runner
	// Shared keeps what must survive a restart or a change of leader
	// (see Shared). When nil, it is NewLocalState(Store).
	Shared Shared
	Store  *store.DB
	// FlushEvery is how often the leader writes Shared (default 5s).
	FlushEvery time.Duration
	Now        func() time.Time
	Logger     *slog.Logger
	// MaxFailures is how many failed runs in a row pause a trigger
	// (default 5).
	MaxFailures int
	// Rescan is how often every schedule is read again (default a
	// minute); Scheduler.Rescan asks for one sooner.
	Rescan time.Duration
	// MaxMissed bounds the missed fires noted one by one per trigger when
	// Run starts (default 10); the rest are noted as one count.
	MaxMissed int
	// LastAlive, when set, tells until when another replica handled the
	// fires (the previous leader's last lease renewal), so a new leader
	// does not report as missed what its predecessor fired after its
	// last flush. It is called with Run's context.
	LastAlive func(ctx context.Context) (time.Time, error)
	// Notify, when set, tells the enclave's channel of a failed
	// scheduled run and of a pause.
	Notify func(ctx context.Context, n Notice)
}

// Scheduler fires cron triggers. It is safe for concurrent use; Run runs
// at most once at a time.
type Scheduler struct {
	cfg    Config
	log    *slog.Logger
	rescan chan struct{}
	soon   chan struct{} // asks for a flush of the state now

	mu      sync.Mutex
	running bool              // Run is running
	entries map[string]*entry // by entry id
	queue   queue             // the entries that fire, earliest first
	files   map[string]parsed // workflow of enclave/tentacle, by revision
	frozen  map[string]bool   // enclaves whose schedules are paused
	busy    map[string]bool   // enclave/tentacle with a scheduled run going
	// states is this leader's view of Shared, by entry id, loaded when
	// Run starts.
	states sharedState
	// enclaves are those the last scan listed, true when it read all
	// their triggers: a trigger it did not find there, or of an enclave
	// no longer listed, is forgotten.
	enclaves map[string]bool
	listed   bool      // a scan listed the enclaves
	mark     time.Time // fires due up to mark were handled
	// written is this leader's view as it last wrote it, and the
	// document that write left: a flush finding both unchanged has
	// nothing to fold in, which keeps an idle leader idle.
	written    *sharedState
	writtenDoc []byte
}

// entry is one cron trigger of one deployed tentacle.
type entry struct {
	id       string // enclave/tentacle/trigger
	enclave  string
	tentacle string
	revision int
	trigger  string          // name, or schedule when unnamed
	input    json.RawMessage // what a fire posts: {"trigger": name}, or {}
	spec     string
	zone     string
	loc      *time.Location
	sched    cron.Schedule
	deployed time.Time
	next     time.Time
	index    int // in queue; -1 when not queued
}

// parsed is a revision's cron triggers, so a rescan reads only the files
// of tentacles deployed since the last one.
type parsed struct {
	revision int
	triggers []tentacle.Trigger
}

// New makes a Scheduler. It reads nothing yet: Run loads the state.
func New(cfg Config) (*Scheduler, error) {
	if cfg.Enclaves == nil || cfg.Tentacles == nil || cfg.Runner == nil {
		return nil, errors.New("schedule: a scheduler needs enclaves, tentacles and a runner")
	}
	if cfg.Shared == nil {
		if cfg.Store == nil {
			return nil, errors.New("schedule: a scheduler needs Shared (the cluster's state) or a Store to keep its state in")
		}
		cfg.Shared = NewLocalState(cfg.Store)
	}
	if cfg.FlushEvery < 0 {
		return nil, fmt.Errorf("schedule: FlushEvery %v is negative", cfg.FlushEvery)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.Logger = cmp.Or(cfg.Logger, slog.Default())
	cfg.MaxFailures = cmp.Or(cfg.MaxFailures, 5)
	cfg.Rescan = cmp.Or(cfg.Rescan, time.Minute)
	cfg.MaxMissed = cmp.Or(cfg.MaxMissed, 10)
	cfg.FlushEvery = cmp.Or(cfg.FlushEvery, 5*time.Second)
	return &Scheduler{
		cfg:      cfg,
		log:      cfg.Logger,
		rescan:   make(chan struct{}, 1),
		soon:     make(chan struct{}, 1),
		entries:  map[string]*entry{},
		files:    map[string]parsed{},
		frozen:   map[string]bool{},
		busy:     map[string]bool{},
		states:   newSharedState(),
		enclaves: map[string]bool{},
	}, nil
}

// Run fires schedules until ctx ends; the leader calls it. It first loads
// the shared state (failing when it cannot: pauses must hold), reads every
// schedule again and notes the fires missed since each trigger's mark or
// LastAlive: they are recorded, not replayed. When ctx ends it writes the
// state a last time before returning.
func (s *Scheduler) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.running {
		s.mu.Unlock()
		return errors.New("schedule: already running")
	}
	s.running = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.running = false
		s.mu.Unlock()
	}()
	if err := s.load(ctx); err != nil {
		return err
	}
	stopFlush := make(chan struct{})
	flushed := make(chan struct{})
	go s.flushLoop(ctx, stopFlush, flushed)
	defer func() { close(stopFlush); <-flushed }()

	missedDone := false
	scan := func() {
		if err := s.scan(ctx); err != nil {
			s.log.Error("schedules not read again", "err", err)
			if !missedDone {
				return // keep the old mark until we know the schedules
			}
		}
		if !missedDone {
			missedDone = true
			s.noteMissed(ctx, s.cfg.Now())
		}
	}
	scan()

	ticker := time.NewTicker(s.cfg.Rescan)
	defer ticker.Stop()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		timer.Reset(s.untilNext())
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
			s.fire(ctx, s.cfg.Now())
		case <-ticker.C:
			scan()
		case <-s.rescan:
			scan()
		}
	}
}

// Rescan asks Run to read every schedule again soon, e.g. after a deploy.
func (s *Scheduler) Rescan() {
	select {
	case s.rescan <- struct{}{}:
	default: // one is already asked for
	}
}

// untilNext is how long to sleep before the earliest fire; an hour when
// nothing is scheduled (a rescan wakes the loop sooner).
func (s *Scheduler) untilNext() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.queue) == 0 {
		return time.Hour
	}
	return max(s.queue[0].next.Sub(s.cfg.Now()), 0)
}

// Resume clears the failure pause of a tentacle's triggers, noting who
// did: they fire again from their next due time. Any replica may call it:
// it writes Shared at once, and the leader picks it up by its next flush.
func (s *Scheduler) Resume(ctx context.Context, enclaveName, tentacleName, by string) error {
	tk := enclaveName + "/" + tentacleName
	now := s.cfg.Now()
	s.mu.Lock()
	known := s.states.resumes[tk].n
	s.mu.Unlock()
	var r resumeState
	err := s.cfg.Shared.Update(ctx, func(cur []byte) ([]byte, error) {
		stored, err := decodeState(cur)
		if err != nil {
			return nil, err
		}
		r = resumeState{n: max(stored.resumes[tk].n, known) + 1, by: by, at: now}
		stored.resumes[tk] = r
		for id, st := range stored.triggers {
			if strings.HasPrefix(id, tk+"/") {
				st.reason, st.failures = "", 0
				stored.triggers[id] = st
			}
		}
		return encodeState(stored)
	})
	if err != nil {
		return fmt.Errorf("resume %s in %s: %w", tentacleName, enclaveName, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.states.resumes[tk] = r
	s.clearPauses(tk, now)
	s.log.Info("schedules resumed", "enclave", enclaveName, "tentacle", tentacleName, "by", by)
	return nil
}

// requeue puts a trigger that is not queued back in the queue, unless its
// enclave is frozen or it is paused. s.mu is held.
func (s *Scheduler) requeue(id string, now time.Time) {
	e, ok := s.entries[id]
	if !ok || e.index >= 0 || s.frozen[e.enclave] || s.states.triggers[id].paused() {
		return
	}
	e.next = e.nextAfter(now)
	heap.Push(&s.queue, e)
}

// TriggerStatus is where one cron trigger stands.
type TriggerStatus struct {
	Trigger  string
	Schedule string
	Timezone string
	// Next is when it fires next; zero while paused.
	Next time.Time
	// Paused says why it does not fire, empty when it does.
	Paused   string
	Failures int
	// ResumedBy and ResumedAt tell the tentacle's last Resume, if any.
	ResumedBy string
	ResumedAt time.Time
}

// Status returns a tentacle's cron triggers as the scheduler knows them,
// for /kraken status. It is empty before Run's first read.
func (s *Scheduler) Status(enclaveName, tentacleName string) []TriggerStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []TriggerStatus
	for _, e := range s.entries {
		if e.enclave != enclaveName || e.tentacle != tentacleName {
			continue
		}
		ts, r := s.states.triggers[e.id], s.states.resumes[tentacleOf(e.id)]
		st := TriggerStatus{Trigger: e.trigger, Schedule: e.spec, Timezone: e.zone,
			Failures: ts.failures, Paused: ts.reason, ResumedBy: r.by, ResumedAt: r.at}
		if s.frozen[e.enclave] {
			st.Paused = "the enclave is frozen"
		}
		if e.index >= 0 {
			st.Next = e.next
		}
		out = append(out, st)
	}
	slices.SortFunc(out, func(a, b TriggerStatus) int { return cmp.Compare(a.Trigger, b.Trigger) })
	return out
}

// nextAfter is the trigger's first due time after t, in its zone.
func (e *entry) nextAfter(t time.Time) time.Time {
	return e.sched.Next(t.In(e.loc))
}

func (e *entry) request() runs.Request {
	return runs.Request{Enclave: e.enclave, Tentacle: e.tentacle, Revision: e.revision, Trigger: "cron:" + e.trigger, Input: e.input}
}

// queue is a min-heap of entries by next fire.
type queue []*entry

func (q queue) Len() int           { return len(q) }
func (q queue) Less(i, j int) bool { return q[i].next.Before(q[j].next) }
func (q queue) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].index, q[j].index = i, j
}
func (q *queue) Push(x any) {
	e := x.(*entry)
	e.index = len(*q)
	*q = append(*q, e)
}
func (q *queue) Pop() any {
	old := *q
	e := old[len(old)-1]
	old[len(old)-1] = nil
	e.index = -1
	*q = old[:len(old)-1]
	return e
}
