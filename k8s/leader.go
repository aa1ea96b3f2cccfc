package k8s

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// LeaderLease is the default name of the Lease the bot's replicas elect
// a leader with, in Config.BotNamespace.
const LeaderLease = "kraken-leader"

// LeaderConfig tunes Lead. The zero value is what the bot runs with.
type LeaderConfig struct {
	// Lease names the Lease; default LeaderLease.
	Lease string
	// Identity tells this replica from the others in the Lease; default
	// the host (pod) name and a random suffix, so a restarted pod with
	// the same name does not mistake its predecessor's lease for its own.
	Identity string
	// LeaseDuration is how long followers wait after the last renewal
	// before taking over (default 15s); RenewDeadline is how long the
	// leader keeps trying to renew before it stops leading (default 10s);
	// RetryPeriod is how often both try (default 2s). The gap between the
	// first two is the margin that keeps a leader cut off from the API
	// server from overlapping with its successor.
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	// KeepLease leaves the lease to expire when ctx ends instead of
	// releasing it, as a crashed replica would. Tests use it.
	KeepLease bool
}

func (cfg LeaderConfig) withDefaults() LeaderConfig {
	if cfg.Lease == "" {
		cfg.Lease = LeaderLease
	}
	if cfg.Identity == "" {
		cfg.Identity = NewLeaderIdentity("")
	}
	if cfg.LeaseDuration <= 0 {
		cfg.LeaseDuration = 15 * time.Second
	}
	if cfg.RenewDeadline <= 0 {
		cfg.RenewDeadline = 10 * time.Second
	}
	if cfg.RetryPeriod <= 0 {
		cfg.RetryPeriod = 2 * time.Second
	}
	return cfg
}

// NewLeaderIdentity is name (the host name when empty) and a random
// suffix.
func NewLeaderIdentity(name string) string {
	if name == "" {
		name, _ = os.Hostname()
	}
	if name == "" {
		name = "kraken"
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return name + "_" + hex.EncodeToString(b)
}

// Lead campaigns for the leader Lease in the bot's namespace and runs
// lead while this replica holds it; LeaderTermOf(lead's context) tells
// until when the previous leader was alive. lead's context ends when
// leadership is lost or ctx ends, and lead must return promptly then: the work it
// does must happen on one replica at a time. After losing the lease Lead
// campaigns again; if lead returns on its own, Lead gives the lease up
// and campaigns again too.
//
// When ctx ends Lead waits for lead to return, then releases the lease
// (unless cfg.KeepLease), so that another replica takes over at once
// rather than after LeaseDuration, and returns. It returns an error only
// for a bad configuration or a failed release.
func (c *Client) Lead(ctx context.Context, cfg LeaderConfig, lead func(ctx context.Context)) error {
	cfg = cfg.withDefaults()
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Name: cfg.Lease, Namespace: c.cfg.BotNamespace},
		Client:     c.cs.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: cfg.Identity},
	}
	log := c.log.With("lease", c.cfg.BotNamespace+"/"+cfg.Lease, "identity", cfg.Identity)
	for {
		led, err := c.campaign(ctx, cfg, &termLock{Interface: lock}, lead)
		if err != nil {
			return err
		}
		if led {
			log.Info("stopped leading")
		}
		if ctx.Err() != nil {
			// Also when it did not lead: it may have won the lease just
			// as ctx ended, and not started leading.
			if cfg.KeepLease {
				return nil
			}
			if err := c.releaseLease(cfg, lock); err != nil {
				return err
			}
			log.Info("released the leader lease")
			return nil
		}
	}
}

// LeaderTerm is what a new leader knows of the leadership before its own.
type LeaderTerm struct {
	// Previous is the identity that held the lease before, "" when the
	// lease was new or released.
	Previous string
	// PreviousRenew is when the previous holder last renewed the lease,
	// or released it: up to then it did the leader's work (zero when the
	// lease was new). A holder that died did its last work at most the
	// retry period after it.
	PreviousRenew time.Time
}

type termKey struct{}

// LeaderTermOf returns the term whose lead context ctx is (or derives
// from), and false outside of one.
func LeaderTermOf(ctx context.Context) (LeaderTerm, bool) {
	t, ok := ctx.Value(termKey{}).(LeaderTerm)
	return t, ok
}

// termLock notes, when this replica takes the lease over, the record it
// replaced: the elector reads the lease, then writes its own identity.
type termLock struct {
	resourcelock.Interface
	mu   sync.Mutex
	seen *resourcelock.LeaderElectionRecord // the last record read, until taken over
	term LeaderTerm
}

func (l *termLock) Get(ctx context.Context) (*resourcelock.LeaderElectionRecord, []byte, error) {
	rec, raw, err := l.Interface.Get(ctx)
	if err == nil {
		seen := *rec
		l.mu.Lock()
		l.seen = &seen
		l.mu.Unlock()
	}
	return rec, raw, err
}

func (l *termLock) Create(ctx context.Context, rec resourcelock.LeaderElectionRecord) error {
	err := l.Interface.Create(ctx, rec)
	if err == nil {
		l.mu.Lock()
		l.seen, l.term = nil, LeaderTerm{}
		l.mu.Unlock()
	}
	return err
}

func (l *termLock) Update(ctx context.Context, rec resourcelock.LeaderElectionRecord) error {
	err := l.Interface.Update(ctx, rec)
	if err == nil {
		l.mu.Lock()
		if l.seen != nil && l.seen.HolderIdentity != rec.HolderIdentity {
			l.term = LeaderTerm{Previous: l.seen.HolderIdentity, PreviousRenew: l.seen.RenewTime.Time}
		}
		l.seen = nil // renewals after this are this replica's own
		l.mu.Unlock()
	}
	return err
}

func (l *termLock) current() LeaderTerm {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.term
}

// campaign runs one election: it waits for the lease, runs lead while it
// holds it, and returns once leadership ends, reporting whether it led.
//
// client-go's elector would release the lease as soon as its context
// ends, while lead may still be finishing its work, and another replica
// could start the same work meanwhile. So the election runs on a context
// of its own, ended only once lead has returned, and Lead releases the
// lease itself after that.
func (c *Client) campaign(ctx context.Context, cfg LeaderConfig, lock *termLock, lead func(context.Context)) (bool, error) {
	elect, stopElect := context.WithCancel(context.WithoutCancel(ctx))
	defer stopElect()

	var (
		mu      sync.Mutex
		ended   bool // the election is over: too late to start leading
		running bool // lead is running
		led     bool
		wg      sync.WaitGroup
	)
	// While campaigning (not leading) the end of ctx ends the election at
	// once; while leading, only after lead has returned.
	stopWatch := context.AfterFunc(ctx, func() {
		mu.Lock()
		defer mu.Unlock()
		if !running {
			stopElect()
		}
	})
	defer stopWatch()

	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:          lock,
		Name:          cfg.Lease,
		LeaseDuration: cfg.LeaseDuration,
		RenewDeadline: cfg.RenewDeadline,
		RetryPeriod:   cfg.RetryPeriod,
		Callbacks: leaderelection.LeaderCallbacks{
			// The elector starts this in a goroutine that may run after
			// the election already ended; it must not lead then.
			OnStartedLeading: func(lctx context.Context) {
				mu.Lock()
				if ended || ctx.Err() != nil {
					mu.Unlock()
					return
				}
				running, led = true, true
				wg.Add(1)
				mu.Unlock()
				defer wg.Done()

				term := lock.current()
				c.log.Info("leading", "lease", c.cfg.BotNamespace+"/"+cfg.Lease, "identity", cfg.Identity,
					"previous", term.Previous, "previous_renew", term.PreviousRenew)
				work, cancel := context.WithCancel(context.WithValue(lctx, termKey{}, term))
				stop := context.AfterFunc(ctx, cancel)
				lead(work)
				stop()
				cancel()

				mu.Lock()
				running = false
				mu.Unlock()
				stopElect()
			},
			OnStoppedLeading: func() {},
		},
	})
	if err != nil {
		return false, fmt.Errorf("k8s: leader election: %w", err)
	}
	le.Run(elect)

	mu.Lock()
	ended = true
	mu.Unlock()
	wg.Wait()
	return led, nil
}

// releaseLease empties the lease if this replica still holds it, with a
// duration of one second, as client-go's ReleaseOnCancel does: the next
// candidate takes it on its next try.
func (c *Client) releaseLease(cfg LeaderConfig, lock resourcelock.Interface) error {
	ctx, cancel := context.WithTimeout(context.Background(), cfg.RenewDeadline)
	defer cancel()
	rec, _, err := lock.Get(ctx)
	switch {
	case apierrors.IsNotFound(err):
		return nil
	case err != nil:
		return fmt.Errorf("k8s: releasing the leader lease: %w", apiError("read the lease", err))
	case rec.HolderIdentity != cfg.Identity:
		return nil // taken over already
	}
	now := metav1.NewTime(time.Now())
	err = lock.Update(ctx, resourcelock.LeaderElectionRecord{
		LeaderTransitions:    rec.LeaderTransitions,
		LeaseDurationSeconds: 1,
		RenewTime:            now,
		AcquireTime:          now,
	})
	if err != nil {
		return fmt.Errorf("k8s: releasing the leader lease: %w", apiError("update the lease", err))
	}
	return nil
}

// LeaseHolder is the identity holding the leader lease, "" when none
// does. For tests and the admin surface.
func (c *Client) LeaseHolder(ctx context.Context, lease string) (string, error) {
	if lease == "" {
		lease = LeaderLease
	}
	l, err := c.cs.CoordinationV1().Leases(c.cfg.BotNamespace).Get(ctx, lease, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return "", nil
	}
	if err != nil {
		return "", apiError("read the leader lease", err)
	}
	return holder(l), nil
}

func holder(l *coordinationv1.Lease) string {
	if l.Spec.HolderIdentity == nil {
		return ""
	}
	return *l.Spec.HolderIdentity
}
