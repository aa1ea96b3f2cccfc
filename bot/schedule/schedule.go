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
// Known limits: a fire is skipped only while a run this scheduler started
// is going (a manual run does not hold a schedule back); failure pauses
// and the time of the last handled fire live in this replica's store, so
// a new leader on another replica does not see the old leader's pauses
// (Config.LastAlive covers the missed-fire count, not the pauses).
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
	// Store keeps what must survive a restart: failure pauses and the
	// time up to which fires were handled (for recording missed ones).
	Store  *store.DB
	Now    func() time.Time
	Logger *slog.Logger
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
	// fires (e.g. the previous leader's last lease renewal), so a new
	// leader does not report as missed what its predecessor fired. The
	// store only knows this replica's own fires.
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
	pauses *store.Bucket[pause]
	clock  *store.Bucket[time.Time]
	rescan chan struct{}

	mu      sync.Mutex
	running bool              // Run is running
	entries map[string]*entry // by entry id
	queue   queue             // the entries that fire, earliest first
	files   map[string]parsed // workflow of enclave/tentacle, by revision
	frozen  map[string]bool   // enclaves whose schedules are paused
	busy    map[string]bool   // enclave/tentacle with a scheduled run going
	failed  map[string]*pause // by entry id
	mark    time.Time         // fires due up to mark were handled
	saved   time.Time         // when mark was last written
}

// pause is a trigger's failure count, kept across restarts.
type pause struct {
	ID       string `json:"id"`
	Failures int    `json:"failures"`
	Paused   bool   `json:"paused"`
	Reason   string `json:"reason,omitempty"`
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

const clockKey = "handled-until"

// New makes a Scheduler and loads the pauses it kept.
func New(cfg Config) (*Scheduler, error) {
	if cfg.Enclaves == nil || cfg.Tentacles == nil || cfg.Runner == nil || cfg.Store == nil {
		return nil, errors.New("schedule: a scheduler needs enclaves, tentacles, a runner and a store")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.Logger = cmp.Or(cfg.Logger, slog.Default())
	cfg.MaxFailures = cmp.Or(cfg.MaxFailures, 5)
	cfg.Rescan = cmp.Or(cfg.Rescan, time.Minute)
	cfg.MaxMissed = cmp.Or(cfg.MaxMissed, 10)
	s := &Scheduler{
		cfg:     cfg,
		log:     cfg.Logger,
		pauses:  store.NewBucket[pause](cfg.Store, "schedule_pauses"),
		clock:   store.NewBucket[time.Time](cfg.Store, "schedule_clock"),
		rescan:  make(chan struct{}, 1),
		entries: map[string]*entry{},
		files:   map[string]parsed{},
		frozen:  map[string]bool{},
		busy:    map[string]bool{},
		failed:  map[string]*pause{},
	}
	ctx := context.Background()
	kept, err := s.pauses.List(ctx, "", 0)
	if err != nil {
		return nil, fmt.Errorf("schedule: load pauses: %w", err)
	}
	for _, p := range kept {
		s.failed[p.ID] = &p
	}
	if s.mark, _, err = s.clock.Get(ctx, clockKey); err != nil {
		return nil, fmt.Errorf("schedule: load the last fire: %w", err)
	}
	return s, nil
}

// Run fires schedules until ctx ends; the leader calls it. It first reads
// every schedule again and notes the fires missed since the last one this
// bot (or LastAlive) knows of: they are recorded, not replayed.
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
			s.saveMark(context.WithoutCancel(ctx), true)
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

// Resume clears the failure pause of a tentacle's triggers: they fire
// again from their next due time.
func (s *Scheduler) Resume(ctx context.Context, enclaveName, tentacleName string) error {
	prefix := enclaveName + "/" + tentacleName + "/"
	if _, err := s.pauses.DeleteFunc(ctx, prefix, func(string, pause) bool { return true }); err != nil {
		return fmt.Errorf("resume %s in %s: %w", tentacleName, enclaveName, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.cfg.Now()
	for id := range s.failed {
		if len(id) > len(prefix) && id[:len(prefix)] == prefix {
			delete(s.failed, id)
			if e, ok := s.entries[id]; ok && e.index < 0 && !s.frozen[e.enclave] {
				e.next = e.nextAfter(now)
				heap.Push(&s.queue, e)
			}
		}
	}
	s.log.Info("schedules resumed", "enclave", enclaveName, "tentacle", tentacleName)
	return nil
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
		st := TriggerStatus{Trigger: e.trigger, Schedule: e.spec, Timezone: e.zone}
		if p := s.failed[e.id]; p != nil {
			st.Failures = p.Failures
			if p.Paused {
				st.Paused = p.Reason
			}
		}
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
