package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kraken-ops/kraken/bot/runs"
	"github.com/kraken-ops/kraken/bot/schedule"
	"github.com/kraken-ops/kraken/bot/slacktest"
	"github.com/kraken-ops/kraken/enclave"
	"github.com/kraken-ops/kraken/k8s"
	"github.com/kraken-ops/kraken/k8s/k8stest/botenv"
	"github.com/kraken-ops/kraken/tentacle"
)

// A fake leader: leads while its channel says so.
type fakeLeader struct{ terms chan time.Duration }

func (f fakeLeader) Lead(ctx context.Context, _ k8s.LeaderConfig, lead func(context.Context)) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case d := <-f.terms:
			term, cancel := context.WithTimeout(ctx, d)
			lead(term)
			cancel()
		}
	}
}

// TestLeaderLoops: the loops run only while leading, all of them, and
// one that fails is started again without ending the others' term.
func TestLeaderLoops(t *testing.T) {
	defer func(d time.Duration) { leaderLoopRetry = d }(leaderLoopRetry)
	leaderLoopRetry = 10 * time.Millisecond
	var steady, failing, running atomic.Int32
	l := fakeLeader{terms: make(chan time.Duration)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- leaderLoops(ctx, l, k8s.LeaderConfig{}, slog.New(slog.DiscardHandler),
			func(ctx context.Context) error {
				steady.Add(1)
				running.Add(1)
				defer running.Add(-1)
				<-ctx.Done()
				return nil
			},
			func(ctx context.Context) error {
				failing.Add(1)
				return errors.New("broken")
			})
	}()
	time.Sleep(50 * time.Millisecond)
	if steady.Load() != 0 || failing.Load() != 0 {
		t.Fatal("loops ran before leading")
	}
	l.terms <- 200 * time.Millisecond
	time.Sleep(100 * time.Millisecond)
	if running.Load() != 1 || steady.Load() != 1 {
		t.Errorf("while leading: %d steady loops running, started %d times; want 1, once", running.Load(), steady.Load())
	}
	if failing.Load() < 2 {
		t.Errorf("the failing loop ran %d times, want it started again", failing.Load())
	}
	time.Sleep(200 * time.Millisecond)
	if running.Load() != 0 {
		t.Error("a loop still runs after the term ended")
	}
	l.terms <- time.Hour
	time.Sleep(50 * time.Millisecond)
	if steady.Load() != 2 {
		t.Errorf("a second term started the steady loop %d times in all, want 2", steady.Load())
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if running.Load() != 0 {
		t.Error("a loop still runs after leaderLoops returned")
	}
}

var testLease = k8s.LeaderConfig{LeaseDuration: 3 * time.Second, RenewDeadline: 2 * time.Second, RetryPeriod: 500 * time.Millisecond}

// replica is one in-process `kraken serve`, as the bot's ServiceAccount,
// sharing the bot's namespace (and so its leader lease) and the fake
// Slack with the others.
type replica struct {
	t        testing.TB
	name     string
	slackURL string
	adminURL string
	cancel   func()
	done     chan error
	out      *syncBuffer
	// leading receives the time each reconcile loop starts.
	leading chan time.Time
}

func startReplica(t testing.TB, bot *botenv.Env, srv *slacktest.Server, name string, hooks func(*haHooks)) *replica {
	t.Helper()
	r := &replica{t: t, name: name, done: make(chan error, 1), out: &syncBuffer{}, leading: make(chan time.Time, 8)}
	s := serveSettings{
		kube:       bot.Config(t),
		kubeconfig: os.Getenv("KUBECONFIG"), // replaced by the bot's own token
		data:       filepath.Join(t.TempDir(), "kraken.db"),
		httpAddr:   "127.0.0.1:0",
		adminAddr:  "127.0.0.1:0",
		reconcile:  time.Hour,
		storeKeys:  testStoreKeys(t),
	}
	s.slack.BotToken, s.slack.SigningSecret, s.slack.APIURL = srv.BotToken(), srv.SigningSecret(), srv.APIURL()
	s.ha.leader.Identity = name
	addrs := make(chan [2]string, 1)
	h := serveHooks{
		kube: func(c *k8s.Config) {
			c.Rest = bot.Rest
			c.RuntimeClass = "none"
		},
		listening: func(h, a string) { addrs <- [2]string{h, a} },
		ha: haHooks{
			leader: func(c *k8s.LeaderConfig) {
				c.LeaseDuration, c.RenewDeadline, c.RetryPeriod = testLease.LeaseDuration, testLease.RenewDeadline, testLease.RetryPeriod
			},
			reconciling: func() { r.leading <- time.Now() },
		},
	}
	if hooks != nil {
		hooks(&h.ha)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() {
		r.done <- serve(ctx, env{stdout: r.out, stderr: r.out, getenv: func(string) string { return "" }}, s, h)
	}()
	t.Cleanup(func() {
		r.stop()
		if t.Failed() {
			t.Logf("replica %s's log:\n%s", name, r.out.String())
		}
	})
	select {
	case a := <-addrs:
		r.slackURL, r.adminURL = "http://"+a[0], "http://"+a[1]
	case err := <-r.done:
		r.cancel = nil
		t.Fatalf("replica %s ended: %v\n%s", name, err, r.out.String())
	case <-time.After(time.Minute):
		t.Fatalf("replica %s did not start listening", name)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := http.Get(r.adminURL + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica %s not ready", name)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return r
}

// stop is SIGTERM: it ends serve's context and waits for serve to return.
func (r *replica) stop() {
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	select {
	case err := <-r.done:
		if err != nil {
			r.t.Errorf("replica %s: serve: %v", r.name, err)
		}
	case <-time.After(30 * time.Second):
		r.t.Errorf("replica %s did not stop within 30s of its context ending", r.name)
	}
}

// leads waits for the replica to start reconciling, and says when it did.
func (r *replica) leads(within time.Duration) time.Time {
	r.t.Helper()
	select {
	case at := <-r.leading:
		return at
	case <-time.After(within):
		r.t.Fatalf("replica %s did not start reconciling within %v", r.name, within)
		return time.Time{}
	}
}

// follows fails when the replica started reconciling.
func (r *replica) follows() {
	r.t.Helper()
	select {
	case <-r.leading:
		r.t.Fatalf("replica %s started reconciling while another led", r.name)
	default:
	}
}

// TestServeReplicas runs replicas of the bot side by side: one
// reconciles, the others only serve Slack; when the leader dies without
// releasing the lease another takes over once it expires; when the
// leader gets SIGTERM it stops taking Slack's requests (503, so Slack
// retries elsewhere) and hands the lease over at once, while its runs in
// flight still drain.
func TestServeReplicas(t *testing.T) {
	t.Parallel()
	bot := botenv.Install(t)
	srv := slacktest.New(t, slacktest.WithWaitTimeout(time.Minute))

	// a is the first, so it leads. It will die as a crash does: without
	// releasing the lease.
	a := startReplica(t, bot, srv, "a", func(h *haHooks) {
		h.leader = func(c *k8s.LeaderConfig) {
			*c = testLease
			c.Identity, c.KeepLease = "a", true
		}
	})
	a.leads(30 * time.Second) // the bot's Role may take a moment to apply
	drainStarted, drainDone := make(chan struct{}), make(chan struct{})
	b := startReplica(t, bot, srv, "b", func(h *haHooks) {
		h.drain = func(ctx context.Context) {
			close(drainStarted)
			select {
			case <-drainDone:
			case <-ctx.Done():
			}
		}
	})
	time.Sleep(2 * testLease.LeaseDuration)
	b.follows()
	a.follows() // and it did not start again either

	crashed := time.Now()
	a.stop()
	took := b.leads(2 * testLease.LeaseDuration).Sub(crashed)
	t.Logf("failover after the leader died: %v (lease %v, retry %v)", took.Round(time.Millisecond), testLease.LeaseDuration, testLease.RetryPeriod)
	// The follower counts the lease from when it saw the last renewal,
	// up to a (jittered) retry after it was made, and tries again every
	// retry (jittered).
	if max := testLease.LeaseDuration + 3*testLease.RetryPeriod + time.Second; took > max {
		t.Errorf("failover after the leader died took %v, want under %v", took, max)
	}

	c := startReplica(t, bot, srv, "c", nil)
	time.Sleep(2 * testLease.RetryPeriod)
	c.follows()

	// SIGTERM to b: while its runs drain, Slack's requests to it get 503
	// and c already leads.
	terminated := time.Now()
	var stopped sync.WaitGroup
	stopped.Go(b.stop)
	<-drainStarted
	code := 0
	alice := srv.AddUser(slacktest.User{Name: "alice"})
	ch := srv.AddChannel(slacktest.Channel{Name: "ha", Members: []string{srv.BotUserID(), alice.ID}})
	for range 100 {
		// A new command each time: a repeated one would be a duplicate.
		cmd := srv.SlashCommand(slacktest.SlashCommand{Command: "/kraken", Text: "help", UserID: alice.ID, ChannelID: ch.ID})
		resp, err := http.DefaultClient.Do(srv.SignedRequest(b.slackURL+"/slack/commands", cmd.Body(), time.Now()))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if code = resp.StatusCode; code == http.StatusServiceUnavailable {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code != http.StatusServiceUnavailable {
		t.Errorf("a slash command to a stopping replica got %d, want 503", code)
	}
	took = c.leads(testLease.LeaseDuration).Sub(terminated)
	t.Logf("failover after SIGTERM: %v", took.Round(time.Millisecond))
	if max := 2*testLease.RetryPeriod + time.Second; took > max {
		t.Errorf("failover after SIGTERM took %v, want under %v", took, max)
	}
	close(drainDone)
	stopped.Wait()
	c.stop()
}

func TestHASettings(t *testing.T) {
	s, problems := haSettingsFrom(envMap{"KRAKEN_POD_NAME": "kraken-7f9c", "HOSTNAME": "other", "KRAKEN_SHUTDOWN_GRACE": "40s"}.get)
	if len(problems) > 0 || s.shutdownGrace() != 40*time.Second || !strings.HasPrefix(s.leader.Identity, "kraken-7f9c_") {
		t.Errorf("got %+v, %v", s, problems)
	}
	s, _ = haSettingsFrom(envMap{"HOSTNAME": "host-1"}.get)
	if s.shutdownGrace() != defaultShutdownGrace || !strings.HasPrefix(s.leader.Identity, "host-1_") {
		t.Errorf("defaults: %+v", s)
	}
	if t2, _ := haSettingsFrom(envMap{"HOSTNAME": "host-1"}.get); t2.leader.Identity == s.leader.Identity {
		t.Error("two starts of one pod share an identity")
	}
	if _, problems := haSettingsFrom(envMap{"KRAKEN_SHUTDOWN_GRACE": "soon"}.get); len(problems) != 1 {
		t.Errorf("a bad grace: %v", problems)
	}
}

// The fakes of TestHASchedules: one active enclave, deployed tentacles
// with a cron trigger each, and a runner that records every fire.
type haEnclaves struct{}

func (haEnclaves) List(context.Context) ([]enclave.Enclave, error) {
	return []enclave.Enclave{{Name: "payments", Ready: true}}, nil
}

// haTentacles are tick (every second, succeeds), broken (every second,
// fails) and flaky (every three seconds, fails).
type haTentacles struct{ deployed time.Time }

var haSchedules = map[string]string{"tick": "@every 1s", "broken": "@every 1s", "flaky": "@every 3s"}

func (h haTentacles) List(context.Context, string) ([]tentacle.Status, error) {
	var out []tentacle.Status
	for name := range haSchedules {
		out = append(out, tentacle.Status{Name: name, Revision: 1, Ready: true, DeployedAt: h.deployed})
	}
	return out, nil
}

func (haTentacles) Files(_ context.Context, _, name string, _ int) (map[string][]byte, error) {
	wf := fmt.Sprintf("name: %s\nversion: \"1.0\"\ntriggers:\n  - {type: cron, name: cron, schedule: %q}\nnodes:\n  a:\n    path: ./nodes/a.ts\n", name, haSchedules[name])
	return map[string][]byte{"workflow.yaml": []byte(wf)}, nil
}

// haFire is one start or note, by a replica, at a due second (in UTC,
// so that equal times are equal keys).
type haFire struct {
	replica, tentacle string
	due               time.Time
}

type haRunner struct {
	replica string
	log     *haLog
}

// haLog is what every replica's runner saw.
type haLog struct {
	mu     sync.Mutex
	starts []haFire
	missed []haFire
}

func (r haRunner) Start(_ context.Context, req runs.Request, done func(runs.Record, json.RawMessage)) (runs.Record, error) {
	r.log.mu.Lock()
	r.log.starts = append(r.log.starts, haFire{r.replica, req.Tentacle, time.Now().Truncate(time.Second).UTC()})
	r.log.mu.Unlock()
	rec := runs.Record{Enclave: req.Enclave, Tentacle: req.Tentacle, Trigger: req.Trigger, State: runs.Succeeded}
	if req.Tentacle != "tick" {
		rec.State, rec.Error = runs.Failed, "boom"
	}
	done(rec, nil)
	return rec, nil
}

func (r haRunner) Note(_ context.Context, req runs.Request, state runs.State, why string) (runs.Record, error) {
	if state == runs.Missed {
		at, err := time.Parse(time.RFC3339, strings.TrimSuffix(strings.TrimPrefix(why, "due at "), " while no bot ran schedules"))
		if err != nil {
			return runs.Record{}, fmt.Errorf("a missed fire without its due time: %q", why)
		}
		r.log.mu.Lock()
		r.log.missed = append(r.log.missed, haFire{r.replica, req.Tentacle, at.UTC()})
		r.log.mu.Unlock()
	}
	return runs.Record{}, nil
}

func (l *haLog) fires(tentacle string) []haFire {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []haFire
	for _, f := range l.starts {
		if f.tentacle == tentacle {
			out = append(out, f)
		}
	}
	return out
}

// cutState is the cluster's state as a replica reaches it; once cut, as
// when the replica died, it writes nothing more.
type cutState struct {
	schedule.Shared
	cut atomic.Bool
}

func (c *cutState) Update(ctx context.Context, change func([]byte) ([]byte, error)) error {
	if c.cut.Load() {
		return errors.New("this replica is dead")
	}
	return c.Shared.Update(ctx, change)
}

// schedReplica is one replica's scheduler, run by leaderLoops under the
// real lease, on the cluster's shared state, as serve runs it.
type schedReplica struct {
	name   string
	sched  *schedule.Scheduler
	state  *cutState
	cancel func()
	done   chan error
	// alive is what LastAlive told this replica when it started leading.
	alive chan time.Time
}

func startSchedReplica(t *testing.T, bot *botenv.Env, log *haLog, name string, flush time.Duration, keepLease bool) *schedReplica {
	t.Helper()
	kube, err := k8s.New(bot.Config(t))
	if err != nil {
		t.Fatal(err)
	}
	r := &schedReplica{name: name, state: &cutState{Shared: kube.ScheduleState()}, done: make(chan error, 1), alive: make(chan time.Time, 4)}
	r.sched, err = schedule.New(schedule.Config{
		Enclaves: haEnclaves{}, Tentacles: haTentacles{deployed: time.Now().Add(-time.Hour)}, Runner: haRunner{name, log},
		Shared: r.state, FlushEvery: flush, MaxFailures: 3,
		LastAlive: func(ctx context.Context) (time.Time, error) {
			at, err := leaderLastAlive(ctx)
			r.alive <- at
			return at, err
		},
		Logger: slog.New(slog.NewTextHandler(t.Output(), nil)).With("replica", name),
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg := testLease
	cfg.Identity, cfg.KeepLease = name, keepLease
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.done <- leaderLoops(ctx, kube, cfg, slog.New(slog.DiscardHandler), r.sched.Run) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

func (r *schedReplica) stop(t *testing.T) {
	t.Helper()
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("replica %s: %v", r.name, err)
		}
	case <-time.After(30 * time.Second):
		t.Errorf("replica %s did not stop", r.name)
	}
}

// leads waits for the replica to start leading and returns what
// LastAlive told it.
func (r *schedReplica) leads(t *testing.T, within time.Duration) time.Time {
	t.Helper()
	select {
	case at := <-r.alive:
		return at
	case <-time.After(within):
		t.Fatalf("replica %s did not start the scheduler within %v", r.name, within)
		return time.Time{}
	}
}

// status is the replica's view of a tentacle's one trigger.
func (r *schedReplica) status(tentacle string) schedule.TriggerStatus {
	st := r.sched.Status("payments", tentacle)
	if len(st) != 1 {
		return schedule.TriggerStatus{}
	}
	return st[0]
}

func haWaitFor(t *testing.T, what string, within time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestHASchedules runs the scheduler on replicas that share the lease
// and the schedules' state in the real control plane, as the bot's
// ServiceAccount: a pause made on one leader holds on the next, failure
// counts continue, a Resume on a follower reaches the leader, no fire is
// doubled, and after a leader dies the fires are noted missed for the
// real gap only (give or take what it fired after its last renewal).
func TestHASchedules(t *testing.T) {
	t.Parallel()
	bot := botenv.Install(t)
	log := &haLog{}

	// a leads first; it will hand over cleanly.
	a := startSchedReplica(t, bot, log, "a", time.Second, false)
	a.leads(t, 30*time.Second) // the bot's Role may take a moment to apply
	// b follows; it will die, having last written the state long before.
	b := startSchedReplica(t, bot, log, "b", time.Hour, true)
	haWaitFor(t, "broken paused and flaky failed once on a", 20*time.Second, func() bool {
		return a.status("broken").Paused != "" && a.status("flaky").Failures >= 1
	})
	a.stop(t)
	flakyOnA := a.status("flaky").Failures
	if flakyOnA >= 3 {
		t.Fatalf("flaky paused on a already (%d failures); the test needs it mid-count", flakyOnA)
	}
	b.leads(t, 2*testLease.LeaseDuration)

	// The pause holds on b, and flaky's count goes on from a's.
	haWaitFor(t, "b to read the schedules", 10*time.Second, func() bool { return b.status("broken").Schedule != "" })
	if st := b.status("broken"); st.Paused == "" || st.Failures != 3 {
		t.Errorf("on the next leader broken is %+v, want paused after 3 failures", st)
	}
	haWaitFor(t, "flaky paused on b", 20*time.Second, func() bool { return b.status("flaky").Paused != "" })
	var flakyOnB int
	for _, f := range log.fires("flaky") {
		if f.replica == "b" {
			flakyOnB++
		}
	}
	if flakyOnA+flakyOnB != 3 {
		t.Errorf("flaky failed %d times on a and %d on b before its pause, want 3 in all", flakyOnA, flakyOnB)
	}

	// b dies: its state writes stop (the last was at flaky's pause), it
	// keeps the lease until it expires.
	c := startSchedReplica(t, bot, log, "c", time.Second, false)
	time.Sleep(5 * time.Second)
	b.state.cut.Store(true)
	died := time.Now()
	b.stop(t)
	alive := c.leads(t, 2*testLease.LeaseDuration+time.Second)
	t.Logf("c leads %v after b died; b's last renewal was %v before", time.Since(died).Round(time.Millisecond), died.Sub(alive).Round(time.Millisecond))
	if alive.IsZero() || alive.After(died) || died.Sub(alive) > 2*testLease.RetryPeriod+time.Second {
		t.Errorf("LastAlive told c %s; want b's last renewal, shortly before it died at %s", alive.Format(time.StampMilli), died.Format(time.StampMilli))
	}
	haWaitFor(t, "c to fire tick", 10*time.Second, func() bool {
		fs := log.fires("tick")
		return fs[len(fs)-1].replica == "c"
	})
	if st := c.status("broken"); st.Paused == "" {
		t.Errorf("after b died broken is %+v on c, want still paused", st)
	}
	if st := c.status("flaky"); st.Paused == "" {
		t.Errorf("after b died flaky is %+v on c, want still paused (b wrote the pause at once)", st)
	}

	// A person resumes broken on a replica that does not lead.
	follower, err := schedule.New(schedule.Config{Enclaves: haEnclaves{}, Tentacles: haTentacles{}, Runner: haRunner{"follower", log},
		Shared: mustKube(t, bot).ScheduleState()})
	if err != nil {
		t.Fatal(err)
	}
	if err := follower.Resume(t.Context(), "payments", "broken", "U-alice"); err != nil {
		t.Fatal(err)
	}
	resumed := time.Now()
	haWaitFor(t, "broken to fire on c after the resume", 10*time.Second, func() bool {
		fs := log.fires("broken")
		return fs[len(fs)-1].replica == "c"
	})
	if st := c.status("broken"); st.ResumedBy != "U-alice" {
		t.Errorf("on c broken is %+v, want resumed by U-alice", st)
	}
	t.Logf("a resume on a follower reached the leader in %v", time.Since(resumed).Round(time.Millisecond))
	c.stop(t)

	// No due second fired twice, by one replica or two.
	log.mu.Lock()
	defer log.mu.Unlock()
	fired := map[haFire]string{}
	for _, f := range log.starts {
		key := haFire{tentacle: f.tentacle, due: f.due}
		if by, dup := fired[key]; dup {
			t.Errorf("%s at %s fired twice: by %s and %s", f.tentacle, f.due.Format(time.TimeOnly), by, f.replica)
		}
		fired[key] = f.replica
	}
	// Missed fires: tick's, after b died, are the due seconds no one
	// fired between b's last renewal and c's first fire; at most one of
	// them b fired after that renewal.
	var lastB, firstC time.Time
	for _, f := range log.starts {
		if f.tentacle != "tick" {
			continue
		}
		if f.replica == "b" && f.due.After(lastB) {
			lastB = f.due
		}
		if f.replica == "c" && (firstC.IsZero() || f.due.Before(firstC)) {
			firstC = f.due
		}
	}
	noted := map[time.Time]bool{}
	overCounted := 0
	for _, m := range log.missed {
		if m.tentacle != "tick" || m.replica != "c" {
			continue
		}
		noted[m.due] = true
		if _, ok := fired[haFire{tentacle: "tick", due: m.due}]; ok {
			overCounted++
		}
	}
	from := alive
	if from.Before(lastB) { // a wrong LastAlive (reported above) would make this loop endless
		from = lastB
	}
	for d := from.Truncate(time.Second).Add(time.Second).UTC(); d.Before(firstC); d = d.Add(time.Second) {
		if _, ok := fired[haFire{tentacle: "tick", due: d}]; !ok && !noted[d] {
			t.Errorf("tick's fire due at %s was neither fired nor noted missed", d.Format(time.TimeOnly))
		}
	}
	t.Logf("tick: b fired last at %s, died at %s, c fired first at %s; %d noted missed, %d of them fired by b after its last renewal",
		lastB.Format(time.TimeOnly), died.Format("15:04:05.000"), firstC.Format(time.TimeOnly), len(noted), overCounted)
	if overCounted > 1 {
		t.Errorf("%d of tick's fires b made were noted missed by c; LastAlive should leave at most one", overCounted)
	}
	if len(noted) == 0 {
		t.Error("c noted no missed fire of tick, though none ran for seconds")
	}
}

func mustKube(t *testing.T, bot *botenv.Env) *k8s.Client {
	t.Helper()
	c, err := k8s.New(bot.Config(t))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// BenchmarkFailover measures, on the real control plane, how long the
// bot goes without a leader: after the leader's SIGTERM (it releases the
// lease) and after its death (the lease must expire), from the stop to
// the next replica starting its leader loops, with the lease the tests
// use (3s, renew 2s, retry 0.5s; the bot's defaults are 15s, 10s, 2s,
// and a death takes about the lease duration). Replicas are full
// in-process `kraken serve`s, as in TestServeReplicas. It measures three
// of each, whatever b.N: run it with -benchtime=1x.
func BenchmarkFailover(b *testing.B) {
	bot := botenv.Install(b)
	srv := slacktest.New(b, slacktest.WithWaitTimeout(time.Minute))
	n := 0
	start := func(dies bool) *replica {
		n++
		name := fmt.Sprintf("r%d", n)
		return startReplica(b, bot, srv, name, func(h *haHooks) {
			h.leader = func(c *k8s.LeaderConfig) {
				*c = testLease
				c.Identity, c.KeepLease = name, dies
			}
		})
	}
	const rounds = 3
	for range b.N {
		var clean, death []time.Duration
		// Replicas alternate: one that stops cleanly, one that dies.
		leader := start(false)
		leader.leads(30 * time.Second) // the bot's Role may take a moment to apply
		for i := range 2 * rounds {
			dies := i%2 == 0 // the next replica dies when its turn comes
			next := start(dies)
			time.Sleep(2 * testLease.RetryPeriod)
			stopped := time.Now()
			leader.stop()
			took := next.leads(2 * testLease.LeaseDuration).Sub(stopped)
			if dies { // the leader just stopped releases the lease
				clean = append(clean, took)
			} else {
				death = append(death, took)
			}
			leader = next
		}
		leader.stop()
		slices.Sort(clean)
		slices.Sort(death)
		b.ReportMetric(float64(clean[len(clean)/2].Milliseconds()), "clean-stop-ms")
		b.ReportMetric(float64(clean[len(clean)-1].Milliseconds()), "clean-stop-max-ms")
		b.ReportMetric(float64(death[len(death)/2].Milliseconds()), "leader-death-ms")
		b.ReportMetric(float64(death[len(death)-1].Milliseconds()), "leader-death-max-ms")
	}
}
