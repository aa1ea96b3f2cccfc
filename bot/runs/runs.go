// Package runs keeps a record of every run of a tentacle, whatever
// started it (a person, a schedule, a queue message, a webhook), and is
// the one way runs are started, so each has a record, can be cancelled,
// and is never left "running" after the bot stops.
package runs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/kraken-ops/kraken/store"
	"github.com/kraken-ops/kraken/tentacle"
)

// State is where a run is.
type State string

const (
	Running     State = "running"
	Succeeded   State = "succeeded"
	Failed      State = "failed"
	Cancelled   State = "cancelled"
	Interrupted State = "interrupted" // the bot stopped (or died) while it ran
	Skipped     State = "skipped"     // a schedule fired while the last run still ran
	Missed      State = "missed"      // a schedule was due while no bot ran it
)

// Record is one run.
type Record struct {
	ID       string `json:"id"`
	Enclave  string `json:"enclave"`
	Tentacle string `json:"tentacle"`
	Revision int    `json:"revision,omitempty"`
	// Trigger is what started it: "manual", "cron:<name>",
	// "queue:<subject>", "webhook:<path>", "retry:<id>".
	Trigger string    `json:"trigger"`
	Actor   string    `json:"actor,omitempty"`
	Started time.Time `json:"started"`
	Ended   time.Time `json:"ended,omitzero"`
	State   State     `json:"state"`
	// Nodes are each step's outcome, from the engine's result; while
	// the run goes on, where each step that started is (see Follow).
	Nodes map[string]Node `json:"nodes,omitempty"`
	// Summary is one line for people: "3 steps in 12 ms".
	Summary string `json:"summary,omitempty"`
	Error   string `json:"error,omitempty"`
	// Input is kept so an interrupted run can be retried; secrets are
	// the caller's to keep out of it.
	Input json.RawMessage `json:"input,omitempty"`
}

// Node is one step's outcome, or where it is: Running while an attempt
// runs (Error then says why the one before failed, when it did).
type Node struct {
	State State `json:"state"`
	// Attempt is the attempt it is at, or ended with; known when the
	// run's progress was followed.
	Attempt    int    `json:"attempt,omitempty"`
	DurationMs int64  `json:"duration_ms"`
	Error      string `json:"error,omitempty"`
}

// Duration is how long the run took, or has taken so far.
func (r Record) Duration(now time.Time) time.Duration {
	if r.Ended.IsZero() {
		return now.Sub(r.Started)
	}
	return r.Ended.Sub(r.Started)
}

// Request asks for a run.
type Request struct {
	Enclave  string
	Tentacle string
	Revision int
	Trigger  string
	Actor    string
	Input    json.RawMessage
}

// Tentacles is how runs reach a tentacle: its POST /run. When it is a
// tentacle.RunWatcher too, each run's progress is recorded as it goes.
type Tentacles interface {
	Run(ctx context.Context, enclave, name string, input json.RawMessage) (json.RawMessage, error)
}

// Config wires a Runner.
type Config struct {
	Tentacles Tentacles
	Store     *store.DB
	Now       func() time.Time
	Logger    *slog.Logger
	// Ended, when set, is told of every run that ends, for metrics and
	// for telling the channel about a failed scheduled run.
	Ended func(Record)
	// ProgressEvery is how often at most a running run's record is
	// written again with its progress; zero means DefaultProgressEvery.
	// Followers see every change at once; the store sees the latest one
	// per period, and always the end.
	ProgressEvery time.Duration
}

// DefaultProgressEvery bounds the store writes of a run's progress: a
// run of many short steps would otherwise write its record per step.
const DefaultProgressEvery = time.Second

// Errors callers branch on.
var (
	// ErrStopping: the bot is shutting down and starts no new runs.
	ErrStopping = errors.New("the bot is restarting and starts no new runs; try again in a minute")
	// ErrNotRunning: the run asked to cancel is not running here.
	ErrNotRunning = errors.New("that run is not running")
)

// Runner starts runs and keeps their records. It is safe for concurrent
// use.
type Runner struct {
	cfg     Config
	records *store.Bucket[Record]
	log     *slog.Logger

	mu       sync.Mutex
	stopping bool
	inflight map[string]*flight
	wg       sync.WaitGroup
}

// New makes a Runner.
func New(cfg Config) (*Runner, error) {
	if cfg.Tentacles == nil || cfg.Store == nil {
		return nil, errors.New("runs: a runner needs tentacles and a store")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.ProgressEvery <= 0 {
		cfg.ProgressEvery = DefaultProgressEvery
	}
	return &Runner{cfg: cfg, records: store.NewBucket[Record](cfg.Store, "run_records"), log: cfg.Logger, inflight: map[string]*flight{}}, nil
}

// key orders an enclave's records by start, newest last.
func key(r Record) string {
	return fmt.Sprintf("%s/%s/%020d/%s", r.Enclave, r.Tentacle, r.Started.UnixNano(), r.ID)
}

// Start records a run and starts it; the run goes on after Start returns
// (not bound to ctx, which only bounds writing the record), and done,
// when set, gets its record and the engine's result when it ends.
// Follow(rec.ID) follows it meanwhile.
func (r *Runner) Start(ctx context.Context, req Request, done func(Record, json.RawMessage)) (Record, error) {
	rec, runCtx, err := r.begin(ctx, req, Running)
	if err != nil {
		return Record{}, err
	}
	go func() {
		defer r.wg.Done()
		end, body := r.execute(runCtx, rec)
		if done != nil {
			done(end, body)
		}
	}()
	return rec, nil
}

// Run records a run, runs it, and returns its record and the engine's
// result when it ends. Cancelling ctx cancels the run.
func (r *Runner) Run(ctx context.Context, req Request) (Record, json.RawMessage, error) {
	rec, runCtx, err := r.begin(ctx, req, Running)
	if err != nil {
		return Record{}, nil, err
	}
	stop := context.AfterFunc(ctx, func() { r.Cancel(rec.ID) })
	defer stop()
	defer r.wg.Done()
	end, body := r.execute(runCtx, rec)
	return end, body, nil
}

// Note records a run that did not happen (skipped, missed), for the
// history.
func (r *Runner) Note(ctx context.Context, req Request, state State, why string) (Record, error) {
	now := r.cfg.Now()
	rec := Record{ID: newID(), Enclave: req.Enclave, Tentacle: req.Tentacle, Revision: req.Revision, Trigger: req.Trigger, Actor: req.Actor,
		Started: now, Ended: now, State: state, Summary: why}
	if err := r.records.Put(ctx, key(rec), rec); err != nil {
		return Record{}, fmt.Errorf("record %s run: %w", state, err)
	}
	return rec, nil
}

func (r *Runner) begin(ctx context.Context, req Request, state State) (Record, context.Context, error) {
	r.mu.Lock()
	if r.stopping {
		r.mu.Unlock()
		return Record{}, nil, ErrStopping
	}
	r.wg.Add(1)
	rec := Record{ID: newID(), Enclave: req.Enclave, Tentacle: req.Tentacle, Revision: req.Revision, Trigger: req.Trigger,
		Actor: req.Actor, Started: r.cfg.Now(), State: state, Input: req.Input}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	// The record written just below counts as the first write of its
	// progress.
	r.inflight[rec.ID] = &flight{cancel: cancel, rec: rec, lastWrite: time.Now()}
	r.mu.Unlock()
	if err := r.records.Put(ctx, key(rec), rec); err != nil {
		r.finish(rec.ID)
		r.wg.Done()
		return Record{}, nil, fmt.Errorf("record run: %w", err)
	}
	return rec, runCtx, nil
}

func (r *Runner) finish(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if f, ok := r.inflight[id]; ok {
		f.cancel()
		delete(r.inflight, id)
	}
}

func (r *Runner) flight(id string) *flight {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.inflight[id]
}

// engineResult is the part of POST /run's answer a record keeps.
type engineResult struct {
	Success bool              `json:"success"`
	Errors  map[string]string `json:"errors"`
	Timing  struct {
		DurationMs  int64 `json:"durationMs"`
		NodeTimings map[string]struct {
			DurationMs int64 `json:"durationMs"`
		} `json:"nodeTimings"`
	} `json:"timing"`
}

func (r *Runner) execute(ctx context.Context, rec Record) (Record, json.RawMessage) {
	defer r.finish(rec.ID)
	f := r.flight(rec.ID)
	var body json.RawMessage
	var err error
	if w, ok := r.cfg.Tentacles.(tentacle.RunWatcher); ok {
		body, err = w.RunWatch(ctx, rec.Enclave, rec.Tentacle, rec.Input, func(p tentacle.NodeProgress) { r.progress(f, p) })
	} else {
		body, err = r.cfg.Tentacles.Run(ctx, rec.Enclave, rec.Tentacle, rec.Input)
	}
	// What the progress said, for a run that ends without a result.
	rec.Nodes = f.nodes()
	rec.Ended = r.cfg.Now()
	switch {
	case err != nil && ctx.Err() != nil:
		rec.State, rec.Error = Cancelled, "cancelled while it ran"
		if r.isStopping() {
			rec.State, rec.Error = Interrupted, "the bot stopped while it ran"
		}
	case err != nil:
		rec.State, rec.Error = Failed, err.Error()
	default:
		progressed := rec.Nodes
		var res engineResult
		if jerr := json.Unmarshal(body, &res); jerr != nil {
			rec.State, rec.Error = Failed, "the tentacle answered something unreadable"
			break
		}
		rec.State = Succeeded
		if !res.Success {
			rec.State = Failed
		}
		rec.Nodes = map[string]Node{}
		for n, t := range res.Timing.NodeTimings {
			rec.Nodes[n] = Node{State: Succeeded, Attempt: progressed[n].Attempt, DurationMs: t.DurationMs}
		}
		for _, n := range slices.Sorted(maps.Keys(res.Errors)) {
			rec.Nodes[n] = Node{State: Failed, Attempt: progressed[n].Attempt, DurationMs: rec.Nodes[n].DurationMs, Error: res.Errors[n]}
			if rec.Error == "" {
				rec.Error = n + ": " + res.Errors[n]
			}
		}
		rec.Summary = fmt.Sprintf("%d steps in %d ms", len(res.Timing.NodeTimings), res.Timing.DurationMs)
	}
	stopSteps(rec.Nodes, rec.State)
	f.end(rec, func() {
		if err := r.records.Put(context.WithoutCancel(ctx), key(rec), rec); err != nil {
			r.log.Error("run record not updated", "run", rec.ID, "err", err)
		}
	})
	if r.cfg.Ended != nil {
		r.cfg.Ended(rec)
	}
	return rec, body
}

func (r *Runner) isStopping() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stopping
}

// Cancel cancels a run in flight on this bot.
func (r *Runner) Cancel(id string) error {
	f := r.flight(id)
	if f == nil {
		return ErrNotRunning
	}
	f.cancel()
	return nil
}

// List returns a tentacle's runs (all of an enclave's when tentacle is
// empty), newest first, at most limit (all when limit <= 0).
func (r *Runner) List(ctx context.Context, enclave, tentacle string, limit int) ([]Record, error) {
	prefix := enclave + "/"
	if tentacle != "" {
		prefix += tentacle + "/"
	}
	all, err := r.records.List(ctx, prefix, 0)
	if err != nil {
		return nil, fmt.Errorf("list runs: %w", err)
	}
	slices.SortFunc(all, func(a, b Record) int { return b.Started.Compare(a.Started) })
	if limit > 0 && len(all) > limit {
		all = all[:limit]
	}
	return all, nil
}

// Get finds a run by id in an enclave.
func (r *Runner) Get(ctx context.Context, enclave, id string) (Record, bool, error) {
	all, err := r.records.List(ctx, enclave+"/", 0)
	if err != nil {
		return Record{}, false, fmt.Errorf("find run: %w", err)
	}
	for _, rec := range all {
		if rec.ID == id {
			return rec, true, nil
		}
	}
	return Record{}, false, nil
}

// MarkInterrupted marks runs recorded as running that this process is not
// running (left by a crash or a replica that stopped) as interrupted, and
// returns them, so nothing stays "running" forever. Call it at start.
func (r *Runner) MarkInterrupted(ctx context.Context) ([]Record, error) {
	all, err := r.records.List(ctx, "", 0)
	if err != nil {
		return nil, fmt.Errorf("mark interrupted runs: %w", err)
	}
	var out []Record
	for _, rec := range all {
		r.mu.Lock()
		_, live := r.inflight[rec.ID]
		r.mu.Unlock()
		if rec.State != Running || live {
			continue
		}
		rec.State, rec.Ended, rec.Error = Interrupted, r.cfg.Now(), "the bot stopped while it ran"
		if err := r.records.Put(ctx, key(rec), rec); err != nil {
			return out, fmt.Errorf("mark interrupted runs: %w", err)
		}
		out = append(out, rec)
	}
	return out, nil
}

// Drain stops new runs and waits for those in flight, up to ctx's end;
// the runs still going then are cancelled and recorded as interrupted.
func (r *Runner) Drain(ctx context.Context) {
	r.mu.Lock()
	r.stopping = true
	r.mu.Unlock()
	done := make(chan struct{})
	go func() { r.wg.Wait(); close(done) }()
	select {
	case <-done:
		return
	case <-ctx.Done():
	}
	r.mu.Lock()
	for _, f := range r.inflight {
		f.cancel()
	}
	r.mu.Unlock()
	<-done
}

// Prune forgets runs that ended before olderThan (retention).
func (r *Runner) Prune(ctx context.Context, olderThan time.Time) (int, error) {
	return r.records.DeleteFunc(ctx, "", func(_ string, rec Record) bool {
		return rec.State != Running && !rec.Ended.IsZero() && rec.Ended.Before(olderThan)
	})
}

func newID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
