package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// maxInput bounds a run's input body.
const maxInput = 8 << 20

// Server serves a tentacle as `kraken engine` does in its pod:
// POST /run (GET too) and GET /health.
type Server struct {
	exec    *Executor
	log     *slog.Logger
	started time.Time
	loadErr func() map[string]string

	inFlight atomic.Int64
	mu       sync.Mutex
	stats    runStats
}

type runStats struct {
	total, failed int64
	lastFailed    bool
	lastError     string
	lastErrorAt   time.Time
}

// NewServer serves runs of exec. loadErrors, if set, reports nodes that
// do not load, for /health?detail=1.
func NewServer(exec *Executor, log *slog.Logger, loadErrors func() map[string]string) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{exec: exec, log: log, started: time.Now(), loadErr: loadErrors}
}

// Handler routes the engine's endpoints.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /run", s.handleRun)
	mux.HandleFunc("GET /run", s.handleRun)
	mux.HandleFunc("GET /health", s.handleHealth)
	return mux
}

func (s *Server) handleRun(w http.ResponseWriter, r *http.Request) {
	s.inFlight.Add(1)
	defer s.inFlight.Add(-1)
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxInput))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeJSON(w, http.StatusRequestEntityTooLarge, map[string]string{"error": "the run input is larger than 8 MiB"})
			return
		}
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "the run input could not be read: " + err.Error()})
		return
	}
	runID := r.Header.Get("X-Kraken-Run-Id")
	if runID == "" {
		runID = NewRunID()
	}
	if AcceptsStream(r) {
		s.streamRun(w, r, runID, body)
		return
	}
	// A run outlives a client that hangs up only until the node notices
	// its context: the caller is the only one waiting for the result.
	res := s.exec.Run(r.Context(), runID, body)
	s.finished(runID, res)
	status := http.StatusOK
	if !res.Success {
		status = http.StatusInternalServerError
	}
	writeJSON(w, status, res)
}

// streamRun answers with StreamType: a line per node event, flushed as
// it happens, then the result line. The status is 200 whatever the
// outcome, since it goes out before the outcome is known: the result's
// success says it.
func (s *Server) streamRun(w http.ResponseWriter, r *http.Request, runID string, body []byte) {
	q := &eventQueue{wake: make(chan struct{}, 1)}
	// A copy of the executor observes this run alone; the shared one
	// and its own observer are left as they are.
	exec := *s.exec
	observe := exec.Observe
	exec.Observe = func(ev Event) {
		if observe != nil {
			observe(ev)
		}
		q.push(ev)
	}
	done := make(chan *Result, 1)
	go func() { done <- exec.Run(r.Context(), runID, body) }()

	w.Header().Set("Content-Type", StreamType)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	// Write errors are left to the run's context: a caller who hung up
	// cancels the run, and the loop ends with it.
	_ = rc.Flush()
	var buf []byte
	writeEvents := func() {
		buf = buf[:0]
		for _, ev := range q.take() {
			buf = appendNodeLine(buf, ev)
		}
		if len(buf) > 0 {
			_, _ = w.Write(buf)
			_ = rc.Flush()
		}
	}
	for {
		select {
		case <-q.wake:
			writeEvents()
		case res := <-done:
			writeEvents()
			s.finished(runID, res)
			line, err := resultLine(res)
			if err != nil {
				// Outputs are JSON the executor checked; this is a bug.
				s.log.Error("run result not encoded", "run", runID, "err", err)
				line = []byte(`{"event":"result","success":false,"outputs":{},"errors":{},"error":"the engine could not encode the result"}` + "\n")
			}
			_, _ = w.Write(line)
			_ = rc.Flush()
			return
		}
	}
}

// eventQueue hands a run's events from the executor, which must not
// block, to the handler writing them.
type eventQueue struct {
	mu     sync.Mutex
	events []Event
	wake   chan struct{} // buffered 1: there are events to take
}

func (q *eventQueue) push(ev Event) {
	q.mu.Lock()
	q.events = append(q.events, ev)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *eventQueue) take() []Event {
	q.mu.Lock()
	defer q.mu.Unlock()
	evs := q.events
	q.events = nil
	return evs
}

func (s *Server) finished(runID string, res *Result) {
	s.record(res)
	s.log.Info("run finished", "run", runID, "success", res.Success, "durationMs", res.Timing.DurationMs)
}

func (s *Server) record(res *Result) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.total++
	s.stats.lastFailed = !res.Success
	if !res.Success {
		s.stats.failed++
		for node, msg := range res.Errors {
			s.stats.lastError = node + ": " + msg
			break
		}
		s.stats.lastErrorAt = time.Now()
	}
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("detail") == "" {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
		return
	}
	s.mu.Lock()
	st := s.stats
	s.mu.Unlock()
	detail := map[string]any{
		"status":        "ok",
		"uptimeSeconds": int64(time.Since(s.started).Seconds()),
		"totalEvents":   st.total,
		"errorCount":    st.failed,
		"errorRate":     0.0,
		"inFlight":      s.inFlight.Load(),
		"lastRunFailed": st.lastFailed,
		// The pid tells a prober which process answered, should another
		// have taken the port.
		"pid": os.Getpid(),
	}
	if st.total > 0 {
		detail["errorRate"] = float64(st.failed) / float64(st.total)
	}
	if st.lastError != "" {
		detail["lastError"] = st.lastError
		detail["lastErrorAt"] = st.lastErrorAt.UTC().Format(time.RFC3339)
	}
	if s.loadErr != nil {
		if le := s.loadErr(); len(le) > 0 {
			detail["loadErrors"] = le
		}
	}
	writeJSON(w, http.StatusOK, detail)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// Serve serves on ln until ctx is done, then stops taking new runs and
// gives the ones in flight up to grace to finish.
func (s *Server) Serve(ctx context.Context, ln net.Listener, grace time.Duration) error {
	// Runs get a context of their own: shutdown must not cut them off
	// before the grace period is over.
	runs, cancelRuns := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelRuns()
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return runs },
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	s.log.Info("shutting down: finishing runs in flight", "inFlight", s.inFlight.Load(), "grace", grace)
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		// Out of patience: cancel what is left so its callers still get
		// an answer saying so, then close.
		cancelRuns()
		cctx, ccancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer ccancel()
		_ = srv.Shutdown(cctx)
		return fmt.Errorf("runs still in flight after %s were cancelled", grace)
	}
	return nil
}
