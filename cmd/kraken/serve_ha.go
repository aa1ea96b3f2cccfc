package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/kraken-ops/kraken/k8s"
)

// haSettings say how this replica takes part in leader election and how
// it stops.
type haSettings struct {
	// leader tunes the election; its Identity is the pod's name
	// (KRAKEN_POD_NAME, else HOSTNAME) and a random suffix.
	leader k8s.LeaderConfig
	// grace bounds how long a stopping bot waits for runs in flight
	// (KRAKEN_SHUTDOWN_GRACE; zero means defaultShutdownGrace).
	grace time.Duration
}

// defaultShutdownGrace is under the chart's terminationGracePeriodSeconds
// (40), leaving time to release the lease and close the store.
const defaultShutdownGrace = 25 * time.Second

// shutdownGrace is the grace, the default when none is set.
func (s haSettings) shutdownGrace() time.Duration {
	if s.grace <= 0 {
		return defaultShutdownGrace
	}
	return s.grace
}

// haSettingsFrom reads the settings and says what is wrong with them.
func haSettingsFrom(getenv func(string) string) (haSettings, []string) {
	var s haSettings
	s.leader.Identity = k8s.NewLeaderIdentity(or(getenv("KRAKEN_POD_NAME"), getenv("HOSTNAME")))
	var problems []string
	if v := getenv("KRAKEN_SHUTDOWN_GRACE"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			problems = append(problems, "KRAKEN_SHUTDOWN_GRACE must be a positive duration, like 25s")
		}
		s.grace = d
	}
	return s, problems
}

// haHooks let tests shorten the lease and watch the leader's work.
type haHooks struct {
	leader func(*k8s.LeaderConfig)
	// reconciling is called each time this replica starts its reconcile
	// loop, that is each time it becomes the leader.
	reconciling func()
	// drain stands in for the run drain (see serve) when set.
	drain func(context.Context)
}

// leader is what leaderLoops campaigns with: *k8s.Client.
type leader interface {
	Lead(ctx context.Context, cfg k8s.LeaderConfig, lead func(ctx context.Context)) error
}

// leaderLoopRetry is how long a leader waits before restarting a loop
// that failed.
var leaderLoopRetry = 10 * time.Second

// leaderLoops runs loops, the work that must happen on one replica at a
// time (reconcile, the cron scheduler), only while this replica holds the
// leader lease, until ctx ends. Each loop runs until its context ends,
// which happens when leadership is lost; a loop that fails is logged and
// started again after a pause, so one broken loop neither stops the
// others nor gives the lease up. On ctx's end leaderLoops waits for the
// loops to return and releases the lease, so that another replica takes
// over at once.
func leaderLoops(ctx context.Context, l leader, cfg k8s.LeaderConfig, log *slog.Logger, loops ...func(context.Context) error) error {
	err := l.Lead(ctx, cfg, func(ctx context.Context) {
		log.Info("leading: running the leader's loops", "identity", cfg.Identity, "loops", len(loops))
		var wg sync.WaitGroup
		for i, loop := range loops {
			wg.Go(func() {
				for {
					err := loop(ctx)
					if ctx.Err() != nil {
						return
					}
					log.Error("a leader loop stopped; starting it again", "loop", i, "err", err)
					select {
					case <-ctx.Done():
						return
					case <-time.After(leaderLoopRetry):
					}
				}
			})
		}
		wg.Wait()
		log.Info("not leading: the leader's loops stopped", "identity", cfg.Identity)
	})
	if err != nil {
		return fmt.Errorf("serve: leader election: %w", err)
	}
	return nil
}

// leaderLastAlive is the scheduler's LastAlive: the previous leader's
// last renewal of the lease, as Lead tells the leader's loops, so that a
// new leader notes as missed only the fires due after it.
func leaderLastAlive(ctx context.Context) (time.Time, error) {
	term, ok := k8s.LeaderTermOf(ctx)
	if !ok {
		return time.Time{}, errors.New("serve: the scheduler runs outside a leader's term")
	}
	return term.PreviousRenew, nil
}
