// Package dev is an in-process stand-in for the cluster that keeps
// enclaves and tentacles in a data directory and runs tentacles through
// the engine. It is what `kraken dev` uses instead of Kubernetes, so a
// newcomer can provision, deploy and run on one machine with nothing but
// Deno installed.
//
// The data directory holds plain files, so restarting keeps everything:
//
//	enclaves/<enclave>/enclave.json                      the enclave's record
//	enclaves/<enclave>/tentacles/<name>/tentacle.json    its revisions, newest first
//	enclaves/<enclave>/tentacles/<name>/r<N>/...         revision N's files
//	enclaves/<enclave>/tentacles/<name>/secrets          -> .secrets-*/ (0700, files 0600)
//	trash/                                               what is being removed
//
// Every record is written to a temporary file and renamed into place, and
// a revision's files to a temporary directory renamed as a whole, so a
// crash leaves either the old state or the new one. What a cluster keeps
// only while pods live (logs, events, restart counts, the last run's
// error) is kept in memory.
package dev

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/kraken-ops/kraken/engine"
	"github.com/kraken-ops/kraken/tentacle"
)

// ErrTerminating means the enclave is being removed: nothing can be
// created in it until it is gone. It is the stand-in for the cluster's
// error of the same name.
var ErrTerminating = errors.New("enclave is being removed, try again shortly")

// Options configures a Runtime.
type Options struct {
	// Dir is the data directory; it is created when missing.
	Dir string
	// Deno is the Deno binary; empty means engine.FindDeno's choice.
	Deno string
	// Logger gets the runtime's own messages and every tentacle's log
	// lines; nil discards them.
	Logger *slog.Logger
	// RunTimeout bounds a run; zero means 5 minutes, as in the cluster.
	RunTimeout time.Duration
	// MemoryMB caps each tentacle's node runtime heap; zero means the
	// engine's default.
	MemoryMB int
}

// Runtime is the stand-in cluster: the enclave side (Enclaves) and the
// tentacle side (Tentacles) share its state. It is safe for concurrent
// use.
type Runtime struct {
	dir        string
	deno       string
	log        *slog.Logger
	runTimeout time.Duration
	memoryMB   int

	// ctx ends when the runtime closes; workers start under it.
	ctx    context.Context
	cancel context.CancelFunc
	// stopping tracks workers being stopped, for Close to wait on.
	stopping sync.WaitGroup

	// mu guards the data directory and the fields below. It is never
	// held while a worker starts or a run executes.
	mu      sync.Mutex
	closed  bool
	workers map[key]*worker // of each tentacle's deployed revision
	live    map[key]*liveState
}

// key names one tentacle of one enclave.
type key struct{ enclave, name string }

// liveState is what the cluster would know from a tentacle's pods and
// events: it lasts as long as the process, as pods do.
type liveState struct {
	logs      *ring
	events    []tentacle.Event // oldest first
	restarts  int
	lastError string
}

// Open opens (or creates) the data directory and finishes what a crash
// may have left half done: enclaves whose removal had begun are removed.
func Open(ctx context.Context, opts Options) (*Runtime, error) {
	if opts.Dir == "" {
		return nil, errors.New("dev: no data directory given")
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("dev: %w", err)
	}
	deno := opts.Deno
	if deno == "" {
		if deno, err = engine.FindDeno("", os.Getenv); err != nil {
			return nil, fmt.Errorf("dev: %w", err)
		}
	}
	r := &Runtime{
		dir:        dir,
		deno:       deno,
		log:        cmp.Or(opts.Logger, slog.New(slog.DiscardHandler)),
		runTimeout: cmp.Or(opts.RunTimeout, 5*time.Minute),
		memoryMB:   opts.MemoryMB,
		workers:    map[key]*worker{},
		live:       map[key]*liveState{},
	}
	r.ctx, r.cancel = context.WithCancel(context.WithoutCancel(ctx))
	// The data directory holds secrets: only its owner may look inside.
	for _, d := range []string{dir, r.enclavesDir(), r.trashDir()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("dev: %w", err)
		}
	}
	if err := r.finishRemovals(ctx); err != nil {
		r.cancel()
		return nil, err
	}
	r.log.Debug("dev cluster opened", "dir", dir, "deno", deno)
	return r, nil
}

// finishRemovals empties the trash and finishes interrupted deprovisions.
func (r *Runtime) finishRemovals(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.emptyTrash(); err != nil {
		return err
	}
	names, err := listDirs(r.enclavesDir())
	if err != nil {
		return fmt.Errorf("dev: %w", err)
	}
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return err
		}
		rec, err := r.readEnclave(name)
		if err != nil || !rec.Enclave.Terminating {
			continue // an unreadable record is reported when it is asked for
		}
		r.log.Info("finishing the removal of an enclave", "enclave", name)
		if err := r.trash(r.enclaveDir(name)); err != nil {
			return err
		}
	}
	return r.emptyTrash()
}

// Enclaves is the enclave side of the runtime.
func (r *Runtime) Enclaves() *Enclaves { return &Enclaves{r: r} }

// Tentacles is the tentacle side of the runtime.
func (r *Runtime) Tentacles() *Tentacles { return &Tentacles{r: r} }

// Close stops every worker and waits until they are gone. Runs still in
// flight fail; the data directory is kept for the next Open.
func (r *Runtime) Close() error {
	r.mu.Lock()
	if !r.closed {
		r.closed = true
		r.cancel() // workers still starting give up
		for k, w := range r.workers {
			delete(r.workers, k)
			w.retired = true
			r.stopping.Go(w.close)
		}
	}
	r.mu.Unlock()
	r.stopping.Wait()
	return nil
}

func (r *Runtime) enclavesDir() string { return filepath.Join(r.dir, "enclaves") }
func (r *Runtime) trashDir() string    { return filepath.Join(r.dir, "trash") }

func (r *Runtime) enclaveDir(enc string) string { return filepath.Join(r.enclavesDir(), enc) }

func (r *Runtime) tentaclesDir(enc string) string {
	return filepath.Join(r.enclaveDir(enc), "tentacles")
}

func (r *Runtime) tentacleDir(enc, name string) string {
	return filepath.Join(r.tentaclesDir(enc), name)
}

// trash moves dir out of the way in one rename, so a removal that stops
// half way never leaves a half-removed enclave or tentacle behind.
func (r *Runtime) trash(dir string) error {
	if _, err := os.Lstat(dir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	to, err := os.MkdirTemp(r.trashDir(), filepath.Base(dir)+"-")
	if err != nil {
		return fmt.Errorf("dev: %w", err)
	}
	if err := os.Rename(dir, filepath.Join(to, "x")); err != nil {
		return fmt.Errorf("dev: %w", err)
	}
	return r.emptyTrash()
}

func (r *Runtime) emptyTrash() error {
	entries, err := os.ReadDir(r.trashDir())
	if err != nil {
		return fmt.Errorf("dev: %w", err)
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(r.trashDir(), e.Name())); err != nil {
			return fmt.Errorf("dev: %w", err)
		}
	}
	return nil
}

// liveOf returns the in-memory state of a tentacle, made on first use.
// r.mu must be held.
func (r *Runtime) liveOf(k key) *liveState {
	s := r.live[k]
	if s == nil {
		s = &liveState{logs: newRing(maxLogLines)}
		r.live[k] = s
	}
	return s
}

// writeFileAtomic writes data to path through a temporary file in the
// same directory, so readers see the old content or the new, never part.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // fails harmlessly once renamed
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	// Synced before the rename: after a power cut the new name must not
	// point at an empty file.
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// listDirs lists the directories in dir that can be names (not hidden),
// sorted; a missing dir has none.
func listDirs(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			names = append(names, e.Name())
		}
	}
	return names, nil
}
