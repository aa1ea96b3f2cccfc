package tentacle

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"time"

	"github.com/kraken-ops/kraken/enclave"
)

// Bundle is a tentacle ready to deploy: its spec, the files it runs
// (workflow.yaml and every module, by slash-separated path relative to the
// tentacle directory) and its secrets.
type Bundle struct {
	Workflow *Workflow
	Files    map[string][]byte
	Secrets  map[string]any
	// Services are the rooms on the enclave's services granted for the
	// contract's exoskeleton dependencies (Workflow.Services), by
	// dependency name. The deploy path fills them; they hold credentials.
	Services map[string]enclave.Space
}

// Revision is one deployed version of a tentacle. Every deploy makes a new
// one and the previous ones are kept for rollback.
type Revision struct {
	Number     int
	Version    string // the workflow's version
	Digest     string // sha256 of the bundle's files, to tell real changes
	DeployedAt time.Time
	DeployedBy string
	// Warnings are what the person who deployed should know although the
	// deploy went through, in plain words: the tentacle runs without
	// sandbox isolation, a dependency it cannot reach, ... Deploy and
	// Rollback fill them; Revisions leaves them empty.
	Warnings []string
}

// Status is a deployed tentacle's health in terms a person can act on.
type Status struct {
	Name     string
	Version  string
	Revision int
	// Ready means at least one replica serves runs.
	Ready         bool
	Replicas      int
	ReadyReplicas int
	Restarts      int
	// LastError is the most recent problem in plain words, empty when
	// there is none.
	LastError  string
	DeployedAt time.Time
	DeployedBy string
}

// Event is something the cluster reported about a tentacle.
type Event struct {
	Time    time.Time
	Warning bool
	Reason  string
	Message string
}

// LogOptions selects log lines.
type LogOptions struct {
	TailLines int // zero means 100
	Follow    bool
}

// Cluster is what the tentacle service needs from the orchestrator.
type Cluster interface {
	Deploy(ctx context.Context, enclave string, b *Bundle, p enclave.Provenance) (Revision, error)
	Status(ctx context.Context, enclave, name string) (Status, error)
	List(ctx context.Context, enclave string) ([]Status, error)
	Logs(ctx context.Context, enclave, name string, opts LogOptions) (io.ReadCloser, error)
	Events(ctx context.Context, enclave, name string) ([]Event, error)
	Revisions(ctx context.Context, enclave, name string) ([]Revision, error)
	// Files returns the files revision rev deployed (zero: the current
	// revision), without its secrets: what a redeploy is compared with.
	Files(ctx context.Context, enclave, name string, rev int) (map[string][]byte, error)
	Restart(ctx context.Context, enclave, name string, p enclave.Provenance) error
	// Rollback redeploys revision rev, or the one before the current when
	// rev is zero, as a new revision.
	Rollback(ctx context.Context, enclave, name string, rev int, p enclave.Provenance) (Revision, error)
	Undeploy(ctx context.Context, enclave, name string, p enclave.Provenance) error
	// SetSecret sets (or, with an empty value, removes) one secret of a
	// deployed tentacle, keeping the others, and restarts it so that the
	// next run sees the change. The value is never logged.
	SetSecret(ctx context.Context, enclave, name, key, value string, p enclave.Provenance) error
	// Run posts input to the tentacle's /run and returns the result body
	// as the engine wrote it.
	Run(ctx context.Context, enclave, name string, input json.RawMessage) (json.RawMessage, error)
}

// RunWatcher is a Cluster that can also tell a run's progress as it
// goes. It is optional: callers fall back to Cluster.Run when the
// cluster does not implement it.
type RunWatcher interface {
	// RunWatch is Run, calling progress as each node starts, retries and
	// ends, in the order the engine reported, before it returns. progress
	// is called from one goroutine and must not block: a slow observer
	// holds up reading the run's answer.
	RunWatch(ctx context.Context, enclave, name string, input json.RawMessage, progress func(NodeProgress)) (json.RawMessage, error)
}

// NodeProgress is one step of a node in a run as it happens.
type NodeProgress struct {
	Node    string
	State   NodeState
	Attempt int // 1-based
	// Duration is the attempt's, once it ended.
	Duration time.Duration
	// Error is why the attempt failed, for NodeRetrying and NodeFailed.
	Error string
}

// NodeState is where a node is in a run.
type NodeState string

const (
	NodeStarted   NodeState = "started"
	NodeRetrying  NodeState = "retrying" // an attempt failed; another follows
	NodeSucceeded NodeState = "succeeded"
	NodeFailed    NodeState = "failed"
)

// Errors callers branch on.
var (
	ErrNotDeployed = errors.New("tentacle not deployed")
	ErrTooLarge    = errors.New("tentacle too large")
	ErrNoRevision  = errors.New("no such revision")
)
