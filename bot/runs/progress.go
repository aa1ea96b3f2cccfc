package runs

import (
	"context"
	"maps"
	"sync"
	"time"

	"github.com/kraken-ops/kraken/tentacle"
)

// flight is a run in progress on this bot.
type flight struct {
	cancel context.CancelFunc

	mu sync.Mutex
	// rec is the run as its progress has it. Its Nodes map is replaced,
	// never changed, so the records handed to followers stay as they were.
	rec       Record
	followers []chan Record
	ended     bool
	timer     *time.Timer // a progress write is due
	lastWrite time.Time

	// writing orders the store's writes of the run: a progress write in
	// flight ends before the end's, which no progress write follows.
	writing sync.Mutex
}

// Follow follows a run in flight on this bot. The channel holds the
// run's record at once, then again each time one of its steps starts,
// retries or ends (when the tentacles tell progress: see Tentacles), and
// last the record it ended with; then it is closed. Only the newest
// record waits in it: a reader that falls behind skips to the newest,
// and one that stops reading holds nothing up. ok is false when the run
// is not running here.
func (r *Runner) Follow(id string) (updates <-chan Record, ok bool) {
	f := r.flight(id)
	if f == nil {
		return nil, false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	c := make(chan Record, 1)
	c <- f.rec
	if f.ended {
		close(c)
		return c, true
	}
	f.followers = append(f.followers, c)
	return c, true
}

// progress records a step's progress: followers see it at once, the
// store at most once per Config.ProgressEvery.
func (r *Runner) progress(f *flight, p tentacle.NodeProgress) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ended {
		return
	}
	n := f.rec.Nodes[p.Node]
	ms := p.Duration.Milliseconds()
	switch p.State {
	case tentacle.NodeStarted:
		// The error of the attempt before, if any, stays: it says why
		// this one runs.
		n.State, n.Attempt, n.DurationMs = Running, p.Attempt, 0
	case tentacle.NodeRetrying:
		n = Node{State: Running, Attempt: p.Attempt, DurationMs: ms, Error: p.Error}
	case tentacle.NodeSucceeded:
		n = Node{State: Succeeded, Attempt: p.Attempt, DurationMs: ms}
	case tentacle.NodeFailed:
		n = Node{State: Failed, Attempt: p.Attempt, DurationMs: ms, Error: p.Error}
	default:
		return // a state a newer engine tells; the result will say
	}
	nodes := maps.Clone(f.rec.Nodes)
	if nodes == nil {
		nodes = map[string]Node{}
	}
	nodes[p.Node] = n
	f.rec.Nodes = nodes
	f.tell(f.rec)
	if f.timer == nil {
		wait := max(0, r.cfg.ProgressEvery-time.Since(f.lastWrite))
		f.timer = time.AfterFunc(wait, func() { r.writeProgress(f) })
	}
}

// writeProgress writes the run's latest progress, unless it ended.
func (r *Runner) writeProgress(f *flight) {
	f.writing.Lock()
	defer f.writing.Unlock()
	f.mu.Lock()
	f.timer = nil
	if f.ended {
		f.mu.Unlock()
		return
	}
	rec := f.rec
	f.lastWrite = time.Now()
	f.mu.Unlock()
	if err := r.records.Put(context.Background(), key(rec), rec); err != nil {
		r.log.Warn("run progress not recorded", "run", rec.ID, "err", err)
	}
}

// tell hands rec to every follower, replacing one it has not taken.
// f.mu must be held: it makes tell the only sender, so the second send
// never blocks.
func (f *flight) tell(rec Record) {
	for _, c := range f.followers {
		select {
		case c <- rec:
			continue
		default:
		}
		select {
		case <-c:
		default:
		}
		c <- rec
	}
}

// nodes is a copy of the steps as the progress has them.
func (f *flight) nodes() map[string]Node {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.rec.Nodes)
}

// end stops progress, has write store the ended record after any
// progress write, then gives followers the ended record and closes them.
func (f *flight) end(rec Record, write func()) {
	f.mu.Lock()
	f.ended = true
	if f.timer != nil {
		f.timer.Stop()
		f.timer = nil
	}
	f.mu.Unlock()

	f.writing.Lock()
	write()
	f.writing.Unlock()

	f.mu.Lock()
	defer f.mu.Unlock()
	f.rec = rec
	f.tell(rec)
	for _, c := range f.followers {
		close(c)
	}
	f.followers = nil
}

// stopSteps marks the steps a run left running, when it ended without
// the engine's result (cancelled, interrupted, not answering), as the
// run ended.
func stopSteps(nodes map[string]Node, state State) {
	for id, n := range nodes {
		if n.State == Running {
			n.State = state
			nodes[id] = n
		}
	}
}
