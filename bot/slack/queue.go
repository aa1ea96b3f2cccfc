package slack

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"
)

// How often Run looks for requests that were claimed but could not be
// queued (soon after the queue was full, and now and then anyway), and
// forgets requests done long ago.
const (
	overflowRetry = time.Second
	sweepEvery    = time.Minute
	pruneEvery    = time.Hour
)

// Kinds of request, as stored and as Config.Observe names them.
const (
	kindEvent       = "events"
	kindCommand     = "commands"
	kindInteraction = "interactions"
	// kindSubmission is only how Config.Observe names a secret form's
	// submission; it is stored and handled as an interaction.
	kindSubmission = "submissions"
)

// job is a request as the store keeps it until it is done: enough to
// handle it again after a restart, in the same form whichever way it
// came (HTTP or Socket Mode).
type job struct {
	Kind string `json:"kind"`
	// Body is the event_callback JSON for events, the form-encoded
	// fields for slash commands, the payload JSON for interactions.
	Body []byte `json:"body"`
	// RID is the request id the request was logged under when received.
	RID string `json:"rid"`
	// Secret is a secret form's value, in memory only: it is never
	// stored, so a job replayed from the store has none.
	Secret *submission `json:"-"`
}

// work is a queued job with its store id.
type work struct {
	id  string
	job job
}

// newRequestID makes an id to follow one request through the logs.
func newRequestID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

type logKey struct{}

// withLog puts a logger (carrying the request id) in the context.
func withLog(ctx context.Context, l *slog.Logger) context.Context {
	return context.WithValue(ctx, logKey{}, l)
}

// logOf is the request's logger.
func (a *App) logOf(ctx context.Context) *slog.Logger {
	if l, ok := ctx.Value(logKey{}).(*slog.Logger); ok {
		return l
	}
	return a.log
}

// admission is what admit decided about a request.
type admission int

const (
	admitted admission = iota
	duplicate
	notReady
	// busy: a secret form's submission found the queue full. It is not
	// left waiting in the store, which would bring it back without its
	// value; the person submits again.
	busy
)

// admit claims a request's id in the store and queues it. Once it returns
// admitted the request is on disk, and will be handled even if the
// process dies before a worker gets to it. A request already claimed is a
// duplicate: a retry from Slack, dropped. An error means nothing was
// recorded, and Slack should be asked to retry.
func (a *App) admit(ctx context.Context, id string, j job) (admission, error) {
	if !a.accepting() {
		return notReady, nil
	}
	// The id is marked in flight before it is claimed, so the sweep
	// never takes a claim this request is about to queue.
	a.mu.Lock()
	if a.inflight[id] {
		a.mu.Unlock()
		return duplicate, nil
	}
	a.inflight[id] = true
	a.mu.Unlock()

	stored := j
	stored.Body = storedBody(j.Body, a.cfg.Redact)
	payload, err := json.Marshal(stored)
	if err != nil {
		a.forget(id)
		return 0, fmt.Errorf("encode request: %w", err)
	}
	first, err := a.cfg.Store.ClaimEvent(context.WithoutCancel(ctx), id, payload, time.Now())
	if err != nil || !first {
		a.forget(id)
		if err != nil {
			return 0, err
		}
		return duplicate, nil
	}
	select {
	case a.queue <- work{id: id, job: j}:
	default:
		if j.Secret != nil {
			a.count("queue_full")
			a.done(ctx, id)
			return busy, nil
		}
		// Claimed and acknowledged, but the workers are behind: it waits
		// in the store, and Run queues it when there is room.
		a.forget(id)
		a.count("queue_full")
		a.logOf(ctx).Warn("request queue full; the request waits in the store", "id", id)
		select {
		case a.overflow <- struct{}{}:
		default:
		}
	}
	return admitted, nil
}

func (a *App) forget(id string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.inflight, id)
}

// requeuePending queues the requests claimed but not done that nothing is
// handling, oldest first. At start (wait) it waits for room in the queue;
// later it takes only what fits, and says whether some were left out.
func (a *App) requeuePending(ctx context.Context, wait bool) (n int, full bool, err error) {
	pending, err := a.cfg.Store.PendingEvents(ctx)
	if err != nil {
		return 0, false, err
	}
	for _, p := range pending {
		var j job
		if err := json.Unmarshal(p.Payload, &j); err != nil {
			// Nothing can ever handle it: drop it rather than fail every
			// start.
			a.log.Error("pending request unreadable; dropped", "id", p.ID, "err", err)
			a.done(ctx, p.ID)
			continue
		}
		a.mu.Lock()
		busy := a.inflight[p.ID]
		if !busy {
			a.inflight[p.ID] = true
		}
		a.mu.Unlock()
		if busy {
			continue
		}
		w := work{id: p.ID, job: j}
		if wait {
			select {
			case a.queue <- w:
			case <-ctx.Done():
				a.forget(p.ID)
				return n, false, nil
			}
		} else {
			select {
			case a.queue <- w:
			default:
				a.forget(p.ID)
				return n, true, nil
			}
		}
		n++
		a.count("replayed")
	}
	return n, false, nil
}

// worker handles queued requests until ctx ends.
func (a *App) worker(ctx context.Context, cmds Commands) {
	for {
		select {
		case <-ctx.Done():
			return
		case w := <-a.queue:
			a.handle(ctx, cmds, w)
		}
	}
}

// handle runs one request and marks it done, unless ctx ended first: then
// it may have been cut short, and stays pending for the next Run.
func (a *App) handle(ctx context.Context, cmds Commands, w work) {
	log := a.log.With("rid", w.job.RID, "id", w.id)
	ctx = withLog(ctx, log)
	start := time.Now()
	func() {
		defer func() {
			if p := recover(); p != nil {
				// A request that panics would panic again on every replay:
				// it is marked done below, like any other failure.
				log.Error("request handler panicked", "panic", p)
				a.count("failed")
			}
		}()
		var err error
		switch w.job.Kind {
		case kindEvent:
			err = a.handleEvent(ctx, cmds, w.job.Body)
		case kindCommand:
			err = a.handleCommand(ctx, cmds, w.job.Body)
		case kindInteraction:
			err = a.handleInteraction(ctx, cmds, w.job.Body, w.job.Secret)
		default:
			err = fmt.Errorf("unknown kind %q", w.job.Kind)
		}
		if err != nil && ctx.Err() == nil {
			log.Warn("request not fully handled", "kind", w.job.Kind, "err", err)
			a.count("failed")
		}
	}()
	if ctx.Err() != nil {
		log.Info("request interrupted; it runs again at the next start", "kind", w.job.Kind)
		a.forget(w.id)
		return
	}
	a.count("handled")
	log.Debug("request handled", "kind", w.job.Kind, "took", time.Since(start))
	a.done(ctx, w.id)
}

// done marks a request done. If the store fails, the id stays in flight so
// this process does not run it again; the next start will.
func (a *App) done(ctx context.Context, id string) {
	if err := a.cfg.Store.MarkEventDone(context.WithoutCancel(ctx), id); err != nil {
		a.log.Error("request not marked done; it runs again at the next start", "id", id, "err", err)
		return
	}
	a.forget(id)
}

// prune forgets requests done longer ago than the store remembers them.
func (a *App) prune(ctx context.Context) {
	n, err := a.cfg.Store.PruneEvents(ctx, time.Now())
	if err != nil && ctx.Err() == nil {
		a.log.Warn("old request ids not pruned", "err", err)
	}
	if n > 0 {
		a.log.Debug("old request ids pruned", "count", n)
	}
	a.pruneThreads(ctx, time.Now())
}
