package hooks

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/kraken-ops/kraken/enclave"
	"github.com/kraken-ops/kraken/tentacle"
)

// Enclaves is what webhooks need to know of enclaves: which exist and
// whether they take runs.
type Enclaves interface {
	List(ctx context.Context) ([]enclave.Enclave, error)
}

// Tentacles is what webhooks need to know of deployed tentacles: which
// exist (and at which revision) and their workflow.yaml.
type Tentacles interface {
	List(ctx context.Context, enclave string) ([]tentacle.Status, error)
	Files(ctx context.Context, enclave, name string, rev int) (map[string][]byte, error)
}

// target is what a request resolves to.
type target struct {
	enclave  enclave.Enclave
	revision int
	triggers []tentacle.Trigger // webhook triggers only
}

// registry resolves enclave/tentacle to its webhook triggers. It caches
// for ttl so a burst of deliveries does not hit the cluster each time,
// while a new deploy or a freeze is seen within ttl. Names are only ever
// looked up in lists the cluster returned, so a caller's made-up names
// never reach the cluster (or a file path) and cannot grow the cache.
type registry struct {
	enclaves  Enclaves
	tentacles Tentacles
	ttl       time.Duration
	now       func() time.Time

	mu        sync.Mutex
	encAt     time.Time
	encByName map[string]enclave.Enclave
	lists     map[string]tentacleList // by enclave
	workflows map[string]workflowEntry
}

type tentacleList struct {
	at        time.Time
	revisions map[string]int // tentacle → deployed revision
}

type workflowEntry struct {
	revision int
	triggers []tentacle.Trigger
}

func newRegistry(e Enclaves, t Tentacles, ttl time.Duration, now func() time.Time) *registry {
	return &registry{enclaves: e, tentacles: t, ttl: ttl, now: now, lists: map[string]tentacleList{}, workflows: map[string]workflowEntry{}}
}

// resolve returns the enclave and the tentacle's webhook triggers; ok is
// false when either is unknown. err is for the cluster failing.
func (r *registry) resolve(ctx context.Context, encName, name string) (target, bool, error) {
	e, ok, err := r.enclave(ctx, encName)
	if err != nil || !ok {
		return target{}, false, err
	}
	rev, ok, err := r.revision(ctx, encName, name)
	if err != nil || !ok {
		return target{}, false, err
	}
	trigs, err := r.triggers(ctx, encName, name, rev)
	if errors.Is(err, tentacle.ErrNotDeployed) {
		return target{}, false, nil // undeployed since the list was read
	}
	if err != nil {
		return target{}, false, err
	}
	return target{enclave: e, revision: rev, triggers: trigs}, true, nil
}

func (r *registry) enclave(ctx context.Context, name string) (enclave.Enclave, bool, error) {
	now := r.now()
	r.mu.Lock()
	fresh := r.encByName != nil && now.Sub(r.encAt) < r.ttl
	e, ok := r.encByName[name]
	r.mu.Unlock()
	if fresh {
		return e, ok, nil
	}
	all, err := r.enclaves.List(ctx)
	if err != nil {
		return enclave.Enclave{}, false, fmt.Errorf("list enclaves: %w", err)
	}
	m := make(map[string]enclave.Enclave, len(all))
	for _, e := range all {
		m[e.Name] = e
	}
	r.mu.Lock()
	r.encByName, r.encAt = m, now
	// Forget the tentacle lists of enclaves that are gone, so the cache
	// stays as big as the cluster.
	for enc := range r.lists {
		if _, ok := m[enc]; !ok {
			delete(r.lists, enc)
		}
	}
	r.mu.Unlock()
	e, ok = m[name]
	return e, ok, nil
}

func (r *registry) revision(ctx context.Context, enc, name string) (int, bool, error) {
	now := r.now()
	r.mu.Lock()
	l, cached := r.lists[enc]
	r.mu.Unlock()
	if !cached || now.Sub(l.at) >= r.ttl {
		all, err := r.tentacles.List(ctx, enc)
		if err != nil {
			return 0, false, fmt.Errorf("list tentacles of %s: %w", enc, err)
		}
		l = tentacleList{at: now, revisions: make(map[string]int, len(all))}
		for _, s := range all {
			l.revisions[s.Name] = s.Revision
		}
		r.mu.Lock()
		r.lists[enc] = l
		for k := range r.workflows {
			if e, n := splitKey(k); e == enc {
				if _, ok := l.revisions[n]; !ok {
					delete(r.workflows, k)
				}
			}
		}
		r.mu.Unlock()
	}
	rev, ok := l.revisions[name]
	return rev, ok, nil
}

// triggers parses the tentacle's workflow.yaml once per revision.
func (r *registry) triggers(ctx context.Context, enc, name string, rev int) ([]tentacle.Trigger, error) {
	k := enc + "/" + name
	r.mu.Lock()
	w, ok := r.workflows[k]
	r.mu.Unlock()
	if ok && w.revision == rev {
		return w.triggers, nil
	}
	files, err := r.tentacles.Files(ctx, enc, name, rev)
	if err != nil {
		return nil, fmt.Errorf("files of %s: %w", k, err)
	}
	wf, err := tentacle.Parse(tentacle.FileName, files[tentacle.FileName])
	if err != nil {
		return nil, fmt.Errorf("parse workflow of %s: %w", k, err)
	}
	var trigs []tentacle.Trigger
	for _, t := range wf.Triggers {
		if t.Type == tentacle.TriggerWebhook {
			trigs = append(trigs, t)
		}
	}
	r.mu.Lock()
	r.workflows[k] = workflowEntry{revision: rev, triggers: trigs}
	r.mu.Unlock()
	return trigs, nil
}

func splitKey(k string) (enc, name string) {
	for i := range len(k) {
		if k[i] == '/' {
			return k[:i], k[i+1:]
		}
	}
	return k, ""
}
