package engine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/kraken-ops/kraken/tentacle"
)

// NodeRunner runs one attempt of one node. It must stop promptly when ctx
// is done. The Deno worker is the production runner; tests use functions.
type NodeRunner interface {
	RunNode(ctx context.Context, call NodeCall) (json.RawMessage, error)
}

// NodeCall is one attempt of one node within a run.
type NodeCall struct {
	RunID   string
	Node    string
	Attempt int // 1-based
	Input   json.RawMessage
}

// RunnerFunc adapts a function to NodeRunner.
type RunnerFunc func(ctx context.Context, call NodeCall) (json.RawMessage, error)

// RunNode calls f.
func (f RunnerFunc) RunNode(ctx context.Context, call NodeCall) (json.RawMessage, error) {
	return f(ctx, call)
}

// NodeError is a node's failure as the runner saw it. Kind tells the
// executor whether trying again can help. Msg does not repeat the node id:
// results key errors by node already.
type NodeError struct {
	Node string
	Kind ErrorKind
	Msg  string
}

func (e *NodeError) Error() string { return e.Msg }

// ErrorKind classifies a node failure.
type ErrorKind string

const (
	KindThrow      ErrorKind = "throw"      // the node threw or rejected: may be transient
	KindTimeout    ErrorKind = "timeout"    // the attempt ran out of time: may be transient
	KindLoad       ErrorKind = "load"       // the module does not load or export a function
	KindPermission ErrorKind = "permission" // the node reached beyond what it may
	KindOutput     ErrorKind = "output"     // the node returned something that is not JSON
	KindCrash      ErrorKind = "crash"      // the worker process died under the node
	KindCancelled  ErrorKind = "cancelled"  // the run was cancelled
)

// retryable reports whether another attempt could succeed. Load errors,
// refusals and bad outputs fail the same way every time, and a crashed
// worker fails only the runs in flight, so those are not retried.
func retryable(err error) bool {
	var ne *NodeError
	if errors.As(err, &ne) {
		return ne.Kind == KindThrow || ne.Kind == KindTimeout
	}
	return true
}

// Event reports a node's progress to an observer (live progress in Slack,
// run records).
type Event struct {
	RunID    string
	Node     string
	State    NodeState
	Attempt  int
	Err      error // set for StateRetrying and StateFailed
	Duration time.Duration
}

// NodeState is where a node is in a run.
type NodeState string

const (
	StateStarted   NodeState = "started"
	StateRetrying  NodeState = "retrying"
	StateSucceeded NodeState = "succeeded"
	StateFailed    NodeState = "failed"
)

// Executor runs a compiled plan. It is safe for concurrent runs: each run
// keeps its own inputs and outputs.
type Executor struct {
	Plan   *Plan
	Runner NodeRunner
	// Timeout is per attempt; zero means tentacle.DefaultTimeout.
	Timeout time.Duration
	// Retries is how many more attempts a failing node gets.
	Retries int
	// Backoff is the wait before retry n (0-based); nil means 100ms·2^n.
	Backoff func(n int) time.Duration
	// Observe, if set, is called as nodes start, retry and finish. It must
	// not block.
	Observe func(Event)
}

// NewExecutor compiles wf and returns an executor using its config.
func NewExecutor(wf *tentacle.Workflow, runner NodeRunner) (*Executor, error) {
	plan, err := Compile(wf)
	if err != nil {
		return nil, err
	}
	return &Executor{
		Plan:    plan,
		Runner:  runner,
		Timeout: wf.Config.NodeTimeout(),
		Retries: wf.Config.Retries,
	}, nil
}

// NewRunID returns a random run id.
func NewRunID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Run executes the plan with the given input. A missing or non-JSON input
// becomes {}. It stops after the first stage with a failure (the stage's
// other nodes finish) and when ctx is done; it never returns nil.
func (e *Executor) Run(ctx context.Context, runID string, input json.RawMessage) *Result {
	start := time.Now()
	if len(input) == 0 || !json.Valid(input) {
		input = json.RawMessage(`{}`)
	}
	res := &Result{
		Outputs: map[string]json.RawMessage{},
		Errors:  map[string]string{},
		Timing:  Timing{StartedAt: start.UnixMilli(), NodeTimings: map[string]NodeTiming{}},
	}
	for _, stage := range e.Plan.Stages {
		if err := ctx.Err(); err != nil {
			// The nodes that will not run carry the reason, so a caller
			// never mistakes a cancelled run for a shorter successful one.
			for _, id := range stage {
				res.Errors[id] = runStopped(err) + " before this step started"
			}
			break
		}
		e.runStage(ctx, runID, stage, input, res)
		if len(res.Errors) > 0 {
			break
		}
	}
	end := time.Now()
	res.Success = len(res.Errors) == 0
	res.Timing.CompletedAt = end.UnixMilli()
	res.Timing.DurationMs = end.Sub(start).Milliseconds()
	return res
}

func runStopped(err error) string {
	if errors.Is(err, context.DeadlineExceeded) {
		return "the run ran out of time"
	}
	return "the run was cancelled"
}

type nodeOutcome struct {
	id     string
	output json.RawMessage
	err    error
	timing NodeTiming
}

func (e *Executor) runStage(ctx context.Context, runID string, stage []string, runInput json.RawMessage, res *Result) {
	outcomes := make([]nodeOutcome, len(stage))
	var wg sync.WaitGroup
	for i, id := range stage {
		in := e.inputFor(id, runInput, res.Outputs)
		wg.Go(func() {
			start := time.Now()
			out, err := e.runNode(ctx, runID, id, in)
			outcomes[i] = nodeOutcome{id: id, output: out, err: err, timing: newTiming(start, time.Now())}
		})
	}
	wg.Wait()
	for _, o := range outcomes {
		res.Timing.NodeTimings[o.id] = o.timing
		if o.err != nil {
			res.Errors[o.id] = o.err.Error()
			continue
		}
		res.Outputs[o.id] = o.output
	}
}

// inputFor resolves what a node receives: the run input for a root, its
// predecessor's output for one dependency, and an object keyed by
// predecessor for several.
func (e *Executor) inputFor(id string, runInput json.RawMessage, outputs map[string]json.RawMessage) json.RawMessage {
	deps := e.Plan.Deps[id]
	switch len(deps) {
	case 0:
		return runInput
	case 1:
		return outputs[deps[0]]
	}
	merged := make(map[string]json.RawMessage, len(deps))
	for _, d := range deps {
		merged[d] = outputs[d]
	}
	b, _ := json.Marshal(merged) // raw messages from runners are valid JSON
	return b
}

func (e *Executor) runNode(ctx context.Context, runID, id string, input json.RawMessage) (out json.RawMessage, err error) {
	timeout := e.Timeout
	if timeout <= 0 {
		timeout = tentacle.DefaultTimeout
	}
	for attempt := 1; ; attempt++ {
		e.observe(Event{RunID: runID, Node: id, State: StateStarted, Attempt: attempt})
		start := time.Now()
		out, err = e.attempt(ctx, timeout, NodeCall{RunID: runID, Node: id, Attempt: attempt, Input: input})
		took := time.Since(start)
		if err == nil {
			e.observe(Event{RunID: runID, Node: id, State: StateSucceeded, Attempt: attempt, Duration: took})
			return out, nil
		}
		if attempt > e.Retries || !retryable(err) || ctx.Err() != nil {
			if attempt > 1 {
				err = fmt.Errorf("%w (gave up after %d attempts)", err, attempt)
			}
			e.observe(Event{RunID: runID, Node: id, State: StateFailed, Attempt: attempt, Err: err, Duration: took})
			return nil, err
		}
		e.observe(Event{RunID: runID, Node: id, State: StateRetrying, Attempt: attempt, Err: err, Duration: took})
		t := time.NewTimer(e.backoff(attempt - 1))
		select {
		case <-ctx.Done():
			t.Stop()
			err = &NodeError{Node: id, Kind: KindCancelled, Msg: runStopped(ctx.Err()) + " while waiting to retry"}
			e.observe(Event{RunID: runID, Node: id, State: StateFailed, Attempt: attempt, Err: err})
			return nil, err
		case <-t.C:
		}
	}
}

// attempt runs one try under its own deadline, turning a runner panic or
// an overrun into a node error rather than taking the run down.
func (e *Executor) attempt(ctx context.Context, timeout time.Duration, call NodeCall) (out json.RawMessage, err error) {
	actx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	defer func() {
		if r := recover(); r != nil {
			out, err = nil, &NodeError{Node: call.Node, Kind: KindCrash, Msg: fmt.Sprintf("the node runner failed: %v", r)}
		}
	}()
	out, err = e.Runner.RunNode(actx, call)
	switch {
	case err == nil && out != nil && json.Valid(out):
		// A node that finished is kept even if time ran out just after.
		return out, nil
	case ctx.Err() != nil:
		return nil, &NodeError{Node: call.Node, Kind: KindCancelled, Msg: runStopped(ctx.Err())}
	case actx.Err() != nil && (err != nil || out == nil):
		msg := fmt.Sprintf("timed out after %s", timeout)
		if ne := (*NodeError)(nil); errors.As(err, &ne) && ne.Msg != "" {
			msg += "; " + ne.Msg
		}
		return nil, &NodeError{Node: call.Node, Kind: KindTimeout, Msg: msg}
	case err != nil:
		return nil, err
	case out == nil || !json.Valid(out):
		return nil, &NodeError{Node: call.Node, Kind: KindOutput, Msg: "returned something that is not JSON"}
	}
	return out, nil
}

func (e *Executor) backoff(n int) time.Duration {
	if e.Backoff != nil {
		return e.Backoff(n)
	}
	return 100 * time.Millisecond << min(n, 10)
}

func (e *Executor) observe(ev Event) {
	if e.Observe != nil {
		e.Observe(ev)
	}
}

// RunOne runs a single node of the plan, with the executor's timeout and
// retries, as fixture tests do.
func (e *Executor) RunOne(ctx context.Context, runID, node string, input json.RawMessage) (json.RawMessage, error) {
	if _, ok := e.Plan.Deps[node]; !ok {
		return nil, fmt.Errorf("the workflow has no node %q", node)
	}
	return e.runNode(ctx, runID, node, input)
}
