package dev

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kraken-ops/kraken/engine"
	"github.com/kraken-ops/kraken/tentacle"
)

const (
	// maxLogLines is how many log lines are kept per tentacle.
	maxLogLines = 1000
	// maxEvents is how many events are kept per tentacle.
	maxEvents = 100
)

// worker is the engine of one revision of one tentacle: what a pod is in
// the cluster. It starts with the first run and stops when retired
// (redeploy, rollback, restart, undeploy, deprovision) once no run uses
// it any more, so a run in flight is not cut off by a deploy.
type worker struct {
	k   key
	rev int

	started chan struct{} // closed when the start is over, well or not
	local   *engine.Local // set when started well
	handler http.Handler  // the engine's POST /run
	err     error         // why it did not start

	users   int  // runs using it, and its start; guarded by Runtime.mu
	retired bool // guarded by Runtime.mu
	once    sync.Once
}

// close stops the worker, once its start is over.
func (w *worker) close() {
	w.once.Do(func() {
		<-w.started
		if w.local != nil {
			w.local.Close()
		}
	})
}

// retire takes k's worker out of use; it stops when its last run is
// done. r.mu must be held.
func (r *Runtime) retire(k key) {
	w := r.workers[k]
	if w == nil {
		return
	}
	delete(r.workers, k)
	w.retired = true
	if w.users == 0 {
		r.stopping.Go(w.close)
	}
}

// release ends one use of w.
func (r *Runtime) release(w *worker) {
	r.mu.Lock()
	defer r.mu.Unlock()
	w.users--
	// After Close every worker is being stopped already.
	if w.users == 0 && w.retired && !r.closed {
		r.stopping.Go(w.close)
	}
}

// acquire returns the started worker of the tentacle's deployed
// revision, starting it when there is none. The caller releases it.
func (r *Runtime) acquire(ctx context.Context, enc, name string) (*worker, error) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, errors.New("the dev cluster is closed")
	}
	rec, err := r.readTentacle(enc, name)
	if err != nil {
		r.mu.Unlock()
		return nil, err
	}
	k := key{enc, name}
	w := r.workers[k]
	if w != nil && w.rev != rec.current().Number {
		r.retire(k) // deploys retire it; this is only a safety net
		w = nil
	}
	if w == nil {
		w = &worker{k: k, rev: rec.current().Number, started: make(chan struct{}), users: 1}
		r.workers[k] = w
		go r.start(w, revisionDir(r.tentacleDir(enc, name), w.rev), secretsPath(r.tentacleDir(enc, name)), r.liveOf(k).logs)
	}
	w.users++
	r.mu.Unlock()

	select {
	case <-w.started:
	case <-ctx.Done():
		r.release(w)
		return nil, ctx.Err()
	}
	if w.err != nil {
		r.release(w)
		return nil, w.err
	}
	return w, nil
}

// start starts w's engine on the revision in dir, as `kraken engine`
// does in a pod, with the secrets where the cluster would mount them.
// Its log goes to the tentacle's ring and to the runtime's logger.
func (r *Runtime) start(w *worker, dir, secrets string, logs *ring) {
	defer r.release(w)
	defer close(w.started)
	log := slog.New(slog.NewMultiHandler(
		slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}),
		r.log.Handler().WithAttrs([]slog.Attr{slog.String("enclave", w.k.enclave)}),
	))
	wf, err := tentacle.Load(dir)
	if err == nil {
		// The runtime's context, not a caller's: a run that gives up
		// must not stop the start others wait for. Close cancels it.
		w.local, err = engine.OpenLocal(r.ctx, wf, engine.LocalOptions{
			Deno: r.deno, MountedSecrets: secrets, ServicesPath: servicesPath(filepath.Dir(dir)), MemoryMB: r.memoryMB, Logger: log,
		})
	}
	if err != nil {
		w.err = fmt.Errorf("the engine of revision %d did not start: %w", w.rev, err)
		r.mu.Lock()
		if r.workers[w.k] == w {
			delete(r.workers, w.k) // the next run tries again
			live := r.liveOf(w.k)
			live.lastError = w.err.Error()
			live.event(true, "StartFailed", w.err.Error())
		}
		r.mu.Unlock()
		r.log.Warn("tentacle engine did not start", "enclave", w.k.enclave, "tentacle", w.k.name, "revision", w.rev, "err", err)
		return
	}
	srv := engine.NewServer(w.local.Exec, log.With("tentacle", w.k.name), w.local.Worker.LoadErrors)
	w.handler = srv.Handler()
	log.Info("engine started", "tentacle", w.k.name, "revision", w.rev, "version", wf.Version)
}

// Run posts input to the tentacle's engine, starting it on the first
// run, and returns the result body as the engine wrote it: a failed run
// is a result too, not an error. tentacle.ErrNotDeployed when there is no
// such tentacle. The run is bounded by Options.RunTimeout.
func (t *Tentacles) Run(ctx context.Context, enc, name string, input json.RawMessage) (json.RawMessage, error) {
	return t.run(ctx, enc, name, input, nil)
}

var _ tentacle.RunWatcher = (*Tentacles)(nil)

// maxStreamedResult bounds a streamed answer, as the cluster does.
const maxStreamedResult = 16 << 20

// RunWatch is Run, asking the engine for its stream of node events, as
// the cluster does, and handing each to progress as it happens.
func (t *Tentacles) RunWatch(ctx context.Context, enc, name string, input json.RawMessage, progress func(tentacle.NodeProgress)) (json.RawMessage, error) {
	if progress == nil {
		progress = func(tentacle.NodeProgress) {}
	}
	return t.run(ctx, enc, name, input, progress)
}

// run is Run, streaming when progress is set.
func (t *Tentacles) run(ctx context.Context, enc, name string, input json.RawMessage, progress func(tentacle.NodeProgress)) (json.RawMessage, error) {
	op := fmt.Sprintf("run tentacle %s in enclave %s", name, enc)
	if len(bytes.TrimSpace(input)) == 0 {
		input = json.RawMessage("{}")
	}
	if !json.Valid(input) {
		return nil, fmt.Errorf("%s: the input is not valid JSON", op)
	}
	r := t.r
	w, err := r.acquire(ctx, enc, name)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	defer r.release(w)

	runCtx, cancel := context.WithTimeout(ctx, r.runTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(runCtx, http.MethodPost, "/run", bytes.NewReader(input))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	runID := engine.NewRunID()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Kraken-Run-Id", runID)
	if progress != nil {
		req.Header.Set("Accept", engine.StreamType)
	}
	// The engine's own handler, so the body is byte for byte what a
	// tentacle's pod answers.
	code, body, err := serve(w.handler, req, progress)
	if cerr := ctx.Err(); cerr != nil {
		return nil, fmt.Errorf("%s: %w", op, cerr)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if code != http.StatusOK && code != http.StatusInternalServerError {
		return nil, fmt.Errorf("%s: the engine answered %d: %s", op, code, strings.TrimSpace(string(body)))
	}
	r.recordRun(w, runID, body)
	return json.RawMessage(body), nil
}

// serve has h answer req and returns the status and the result: the
// whole body, or the result line of a stream, whose node events go to
// progress as h writes them.
func serve(h http.Handler, req *http.Request, progress func(tentacle.NodeProgress)) (int, []byte, error) {
	if progress == nil {
		resp := httptest.NewRecorder()
		h.ServeHTTP(resp, req)
		return resp.Code, resp.Body.Bytes(), nil
	}
	pr, pw := io.Pipe()
	resp := &pipeResponse{header: http.Header{}, w: pw, wrote: make(chan struct{})}
	served := make(chan struct{})
	go func() {
		defer close(served)
		h.ServeHTTP(resp, req)
		resp.WriteHeader(http.StatusOK)
		pw.Close()
	}()
	// Whatever is read, the handler is done before the worker is
	// released: a read that stops early closes the pipe under it.
	defer func() { pr.CloseWithError(errors.New("the answer was read")); <-served }()
	<-resp.wrote
	if ct := resp.header.Get("Content-Type"); resp.code != http.StatusOK || ct != engine.StreamType {
		body, err := io.ReadAll(pr)
		return resp.code, body, err
	}
	body, err := engine.ReadStream(pr, maxStreamedResult, progress)
	return resp.code, body, err
}

// pipeResponse hands what a handler writes to a reader as it writes it,
// as a connection would.
type pipeResponse struct {
	header http.Header
	w      *io.PipeWriter
	code   int
	wrote  chan struct{} // closed once the status is set
	once   sync.Once
}

func (p *pipeResponse) Header() http.Header { return p.header }

func (p *pipeResponse) WriteHeader(code int) {
	p.once.Do(func() { p.code = code; close(p.wrote) })
}

func (p *pipeResponse) Write(b []byte) (int, error) {
	p.WriteHeader(http.StatusOK)
	return p.w.Write(b)
}

// Flush has nothing to do: every write reaches the reader.
func (p *pipeResponse) Flush() {}

// recordRun keeps a failed run's error as the tentacle's last error, and
// a successful run clears it, as long as w is still the deployed
// revision's worker.
func (r *Runtime) recordRun(w *worker, runID string, body []byte) {
	var res struct {
		Success bool              `json:"success"`
		Errors  map[string]string `json:"errors"`
		Error   string            `json:"error"`
	}
	if err := json.Unmarshal(body, &res); err != nil {
		res.Error = "the engine's answer is not a result: " + err.Error()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.workers[w.k] != w {
		return
	}
	live := r.liveOf(w.k)
	if res.Success {
		live.lastError = ""
		return
	}
	msg := res.Error
	if nodes := slices.Sorted(maps.Keys(res.Errors)); len(nodes) > 0 {
		msg = nodes[0] + ": " + res.Errors[nodes[0]]
	}
	live.lastError = msg
	live.event(true, "RunFailed", fmt.Sprintf("run %s failed: %s", runID, msg))
}

// event records something that happened to the tentacle.
func (s *liveState) event(warning bool, reason, msg string) {
	s.events = append(s.events, tentacle.Event{Time: time.Now().UTC(), Warning: warning, Reason: reason, Message: msg})
	if len(s.events) > maxEvents {
		s.events = slices.Delete(s.events, 0, len(s.events)-maxEvents)
	}
}

// ring keeps the last lines written to it.
type ring struct {
	mu    sync.Mutex
	max   int
	lines []string
}

func newRing(max int) *ring { return &ring{max: max} }

// Write takes whole lines, as slog's handlers write them.
func (r *ring) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for line := range strings.SplitSeq(strings.TrimSuffix(string(p), "\n"), "\n") {
		r.lines = append(r.lines, line)
	}
	if len(r.lines) > r.max {
		r.lines = slices.Delete(r.lines, 0, len(r.lines)-r.max)
	}
	return len(p), nil
}

// tail returns the last n lines.
func (r *ring) tail(n int) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.lines[len(r.lines)-min(max(n, 0), len(r.lines)):])
}
