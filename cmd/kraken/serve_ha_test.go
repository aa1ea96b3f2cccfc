package main

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kraken-ops/kraken/bot/slacktest"
	"github.com/kraken-ops/kraken/k8s"
	"github.com/kraken-ops/kraken/k8s/k8stest/botenv"
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
	t        *testing.T
	name     string
	slackURL string
	adminURL string
	cancel   func()
	done     chan error
	out      *syncBuffer
	// leading receives the time each reconcile loop starts.
	leading chan time.Time
}

func startReplica(t *testing.T, bot *botenv.Env, srv *slacktest.Server, name string, hooks func(*haHooks)) *replica {
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
