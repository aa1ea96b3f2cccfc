package engine

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/kraken-ops/kraken/tentacle"
)

// LocalOptions configures a tentacle opened on this machine.
type LocalOptions struct {
	Deno string // the Deno binary
	// SecretsPath, if set, is the only secrets source (--secrets).
	SecretsPath string
	// MountedSecrets is the cluster's secret mount; "" skips it.
	MountedSecrets string
	// ServicesPath is where the rooms granted on the enclave's services
	// are mounted (LoadServices); "" or a missing directory means none.
	ServicesPath string
	MemoryMB     int
	Logger       *slog.Logger
}

// Local is a tentacle loaded from a directory with its worker running:
// what `kraken engine` serves and what the developer commands use.
type Local struct {
	Workflow *tentacle.Workflow
	Worker   *Deno
	Exec     *Executor
}

// OpenLocal starts the worker of a tentacle loaded from its directory
// (tentacle.Load) and compiles it.
func OpenLocal(ctx context.Context, wf *tentacle.Workflow, opts LocalOptions) (*Local, error) {
	secrets, err := tentacle.LoadSecrets(wf.Dir, opts.SecretsPath, opts.MountedSecrets)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", wf.Name, err)
	}
	services, err := LoadServices(opts.ServicesPath)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", wf.Name, err)
	}
	w, err := NewDeno(DenoConfig{Binary: opts.Deno, Workflow: wf, Secrets: secrets, Services: services, MemoryMB: opts.MemoryMB, Logger: opts.Logger})
	if err != nil {
		return nil, err
	}
	exec, err := NewExecutor(wf, w)
	if err != nil {
		w.Close()
		return nil, err
	}
	if err := w.Start(ctx); err != nil {
		w.Close()
		return nil, fmt.Errorf("%s: %w", wf.Name, err)
	}
	return &Local{Workflow: wf, Worker: w, Exec: exec}, nil
}

// Close stops the worker.
func (l *Local) Close() error { return l.Worker.Close() }
