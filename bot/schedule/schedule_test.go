package schedule

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kraken-ops/kraken/bot/runs"
	"github.com/kraken-ops/kraken/enclave"
	"github.com/kraken-ops/kraken/store"
	"github.com/kraken-ops/kraken/tentacle"
)

// fakeEnclaves is the cluster's enclaves.
type fakeEnclaves struct {
	mu   sync.Mutex
	encs []enclave.Enclave
}

func (f *fakeEnclaves) List(context.Context) ([]enclave.Enclave, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]enclave.Enclave(nil), f.encs...), nil
}

func (f *fakeEnclaves) freeze(name string, frozen bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range f.encs {
		if f.encs[i].Name == name {
			f.encs[i].Frozen = frozen
		}
	}
}

// fakeTentacles holds each deployed tentacle's status and workflow.yaml.
type fakeTentacles struct {
	mu    sync.Mutex
	sts   map[string][]tentacle.Status // by enclave
	wf    map[string]string            // by enclave/name/revision
	reads int
}

func (f *fakeTentacles) List(_ context.Context, enc string) ([]tentacle.Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]tentacle.Status(nil), f.sts[enc]...), nil
}

func (f *fakeTentacles) Files(_ context.Context, enc, name string, rev int) (map[string][]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads++
	wf, ok := f.wf[fmt.Sprintf("%s/%s/%d", enc, name, rev)]
	if !ok {
		return nil, tentacle.ErrNotDeployed
	}
	return map[string][]byte{"workflow.yaml": []byte(wf)}, nil
}

// deploy deploys a new revision of name whose triggers are the given
// YAML list items.
func (f *fakeTentacles) deploy(enc, name string, deployed time.Time, triggers ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.sts == nil {
		f.sts, f.wf = map[string][]tentacle.Status{}, map[string]string{}
	}
	rev := 1
	var kept []tentacle.Status
	for _, st := range f.sts[enc] {
		if st.Name == name {
			rev = st.Revision + 1
			continue
		}
		kept = append(kept, st)
	}
	f.sts[enc] = append(kept, tentacle.Status{Name: name, Revision: rev, Ready: true, DeployedAt: deployed})
	f.wf[fmt.Sprintf("%s/%s/%d", enc, name, rev)] = workflow(name, triggers...)
}

func (f *fakeTentacles) undeploy(enc, name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var kept []tentacle.Status
	for _, st := range f.sts[enc] {
		if st.Name != name {
			kept = append(kept, st)
		}
	}
	f.sts[enc] = kept
}

func workflow(name string, triggers ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "name: %s\nversion: \"1.0\"\ntriggers:\n", name)
	for _, t := range triggers {
		b.WriteString("  - " + t + "\n")
	}
	b.WriteString("nodes:\n  a:\n    path: ./nodes/a.ts\n")
	return b.String()
}

// fakeRunner records starts and notes; a test ends the runs it started.
type fakeRunner struct {
	mu     sync.Mutex
	starts []runs.Request
	done   []func(runs.Record, json.RawMessage)
	notes  []note
}

type note struct {
	req   runs.Request
	state runs.State
	why   string
}

func (f *fakeRunner) Start(_ context.Context, req runs.Request, done func(runs.Record, json.RawMessage)) (runs.Record, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.starts = append(f.starts, req)
	f.done = append(f.done, done)
	return runs.Record{Enclave: req.Enclave, Tentacle: req.Tentacle, Trigger: req.Trigger, State: runs.Running}, nil
}

func (f *fakeRunner) Note(_ context.Context, req runs.Request, state runs.State, why string) (runs.Record, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.notes = append(f.notes, note{req, state, why})
	return runs.Record{}, nil
}

// end ends the i-th started run in state.
func (f *fakeRunner) end(i int, state runs.State) {
	f.mu.Lock()
	req, done := f.starts[i], f.done[i]
	f.mu.Unlock()
	done(runs.Record{Enclave: req.Enclave, Tentacle: req.Tentacle, Trigger: req.Trigger, State: state, Error: "boom"}, nil)
}

func (f *fakeRunner) counts() (starts, notes int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.starts), len(f.notes)
}

// clock is a settable Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// world is one scheduler with fakes around it.
type world struct {
	encs    *fakeEnclaves
	tents   *fakeTentacles
	runner  *fakeRunner
	clock   *clock
	db      *store.DB
	notices []Notice
	nmu     sync.Mutex
	s       *Scheduler
}

var t0 = time.Date(2026, 1, 5, 7, 0, 0, 0, time.UTC) // a Monday

func newWorld(t *testing.T) *world {
	t.Helper()
	db, err := store.Open(filepath.Join(t.TempDir(), "kraken.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	w := &world{
		encs:   &fakeEnclaves{encs: []enclave.Enclave{{Name: "payments", Ready: true}, {Name: "ops", Ready: true}}},
		tents:  &fakeTentacles{},
		runner: &fakeRunner{},
		clock:  &clock{t: t0},
		db:     db,
	}
	w.s = w.newScheduler(t)
	return w
}

// restart stops the scheduler as a leader that hands over does (a last
// flush) and starts another on the same world and state.
func (w *world) restart(t *testing.T) {
	t.Helper()
	if err := w.s.flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	w.s = w.newScheduler(t)
}

// newScheduler is another scheduler on the same world and store, with
// the state loaded as Run does.
func (w *world) newScheduler(t *testing.T) *Scheduler {
	t.Helper()
	s, err := New(Config{
		Enclaves: w.encs, Tentacles: w.tents, Runner: w.runner, Store: w.db, Now: w.clock.Now,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), MaxFailures: 3,
		Notify: func(_ context.Context, n Notice) {
			w.nmu.Lock()
			defer w.nmu.Unlock()
			w.notices = append(w.notices, n)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.load(t.Context()); err != nil {
		t.Fatal(err)
	}
	return s
}

func (w *world) scan(t *testing.T) {
	t.Helper()
	if err := w.s.scan(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// at moves the clock to t and fires what is due.
func (w *world) at(t *testing.T, at time.Time) {
	t.Helper()
	w.clock.set(at)
	w.s.fire(t.Context(), at)
}

func TestFireNamedAndUnnamedInTheirZone(t *testing.T) {
	w := newWorld(t)
	w.tents.deploy("payments", "report", t0,
		`{type: cron, name: morning, schedule: "0 9 * * *", timezone: Europe/Paris}`,
		`{type: cron, schedule: "30 * * * *"}`,
		`{type: manual}`)
	w.scan(t)

	w.at(t, t0.Add(29*time.Minute))
	if n, _ := w.runner.counts(); n != 0 {
		t.Fatalf("started %d runs before anything was due", n)
	}
	w.at(t, t0.Add(30*time.Minute)) // 07:30 UTC
	w.runner.end(0, runs.Succeeded)
	w.at(t, t0.Add(59*time.Minute))
	w.at(t, t0.Add(time.Hour)) // 08:00 UTC is 09:00 in Paris in January
	starts, _ := w.runner.counts()
	if starts != 2 {
		t.Fatalf("started %d runs, want 2: %+v", starts, w.runner.starts)
	}
	unnamed, named := w.runner.starts[0], w.runner.starts[1]
	if unnamed.Trigger != "cron:30 * * * *" || string(unnamed.Input) != `{}` || unnamed.Revision != 1 {
		t.Errorf("unnamed trigger started %+v", unnamed)
	}
	if named.Trigger != "cron:morning" || string(named.Input) != `{"trigger":"morning"}` || named.Enclave != "payments" || named.Tentacle != "report" {
		t.Errorf("named trigger started %+v", named)
	}
	st := w.s.Status("payments", "report")
	if len(st) != 2 || st[1].Trigger != "morning" || !st[1].Next.Equal(time.Date(2026, 1, 6, 8, 0, 0, 0, time.UTC)) {
		t.Errorf("status %+v", st)
	}
}

func TestFireWhileTheLastRunGoesIsSkipped(t *testing.T) {
	w := newWorld(t)
	w.tents.deploy("payments", "sync", t0, `{type: cron, name: tick, schedule: "* * * * *"}`)
	w.scan(t)
	w.at(t, t0.Add(time.Minute))
	w.at(t, t0.Add(2*time.Minute))
	starts, notes := w.runner.counts()
	if starts != 1 || notes != 1 || w.runner.notes[0].state != runs.Skipped || w.runner.notes[0].req.Trigger != "cron:tick" {
		t.Fatalf("starts %d, notes %+v: want one start and one skip", starts, w.runner.notes)
	}
	w.runner.end(0, runs.Succeeded)
	w.at(t, t0.Add(3*time.Minute))
	if starts, _ := w.runner.counts(); starts != 2 {
		t.Fatalf("after the run ended, %d starts, want 2", starts)
	}
}

func TestLateWakeUpFiresOnce(t *testing.T) {
	w := newWorld(t)
	w.tents.deploy("payments", "sync", t0, `{type: cron, schedule: "* * * * *"}`)
	w.scan(t)
	w.at(t, t0.Add(5*time.Minute+time.Second))
	if starts, _ := w.runner.counts(); starts != 1 {
		t.Fatalf("%d starts after sleeping through five due times, want 1", starts)
	}
}

func TestMissedFiresAreNotedNotReplayed(t *testing.T) {
	w := newWorld(t)
	w.tents.deploy("payments", "sync", t0.Add(-time.Hour), `{type: cron, name: tick, schedule: "* * * * *"}`)
	w.tents.deploy("payments", "daily", t0.Add(-time.Hour), `{type: cron, schedule: "0 8 * * *"}`)
	w.scan(t)
	w.s.noteMissed(t.Context(), t0) // the first start ever: nothing missed
	if _, notes := w.runner.counts(); notes != 0 {
		t.Fatalf("a first start noted %d missed fires", notes)
	}
	w.at(t, t0.Add(time.Minute))
	w.runner.end(0, runs.Succeeded)

	// The bot is down for half an hour, then starts again.
	w.restart(t)
	w.clock.set(t0.Add(31*time.Minute + 10*time.Second))
	w.scan(t)
	w.s.noteMissed(t.Context(), w.clock.Now())
	var missed []note
	for _, n := range w.runner.notes {
		if n.state != runs.Missed || n.req.Trigger != "cron:tick" {
			t.Fatalf("unexpected note %+v", n)
		}
		missed = append(missed, n)
	}
	// 07:02 to 07:31: 30 fires, 10 noted one by one and 20 as a count.
	if len(missed) != 11 || !strings.Contains(missed[0].why, "2026-01-05T07:02:00Z") || !strings.HasPrefix(missed[10].why, "20 more") {
		t.Fatalf("missed notes %+v", missed)
	}
	if starts, _ := w.runner.counts(); starts != 1 {
		t.Fatalf("missed fires were replayed: %d starts", starts)
	}
	w.at(t, t0.Add(32*time.Minute))
	if starts, _ := w.runner.counts(); starts != 2 {
		t.Fatalf("after a restart, the next fire started %d runs in all, want 2", starts)
	}
}

func TestMissedCountsFromTheDeployAndLastAlive(t *testing.T) {
	w := newWorld(t)
	w.tents.deploy("payments", "sync", t0.Add(25*time.Minute), `{type: cron, schedule: "* * * * *"}`)
	w.s.states.triggers["payments/sync/* * * * *"] = triggerState{last: t0} // the trigger's mark
	w.s.cfg.LastAlive = func(context.Context) (time.Time, error) { return t0.Add(20 * time.Minute), nil }
	w.clock.set(t0.Add(30 * time.Minute))
	w.scan(t)
	w.s.noteMissed(t.Context(), w.clock.Now())
	// due after the deploy (07:25): 07:26 to 07:30
	if _, notes := w.runner.counts(); notes != 5 {
		t.Fatalf("%d missed notes, want 5: %+v", notes, w.runner.notes)
	}
}

func TestFrozenEnclavePauses(t *testing.T) {
	w := newWorld(t)
	w.tents.deploy("payments", "sync", t0, `{type: cron, schedule: "* * * * *"}`)
	w.tents.deploy("ops", "sync", t0, `{type: cron, schedule: "* * * * *"}`)
	w.encs.freeze("payments", true)
	w.scan(t)
	w.at(t, t0.Add(time.Minute))
	starts, notes := w.runner.counts()
	if starts != 1 || notes != 0 || w.runner.starts[0].Enclave != "ops" {
		t.Fatalf("a frozen enclave's schedule fired: %+v, notes %d", w.runner.starts, notes)
	}
	if st := w.s.Status("payments", "sync"); len(st) != 1 || st[0].Paused == "" || !st[0].Next.IsZero() {
		t.Errorf("frozen status %+v", st)
	}
	w.encs.freeze("payments", false)
	w.scan(t)
	w.at(t, t0.Add(2*time.Minute))
	if starts, _ := w.runner.counts(); starts != 2 {
		t.Fatalf("after unfreezing, %d starts in all, want 2", starts)
	}
}

func TestFailuresPauseUntilResumed(t *testing.T) {
	w := newWorld(t)
	w.tents.deploy("payments", "sync", t0, `{type: cron, name: tick, schedule: "* * * * *"}`)
	w.scan(t)
	minute := 0
	fireAndEnd := func(state runs.State) {
		t.Helper()
		minute++
		before, _ := w.runner.counts()
		w.at(t, t0.Add(time.Duration(minute)*time.Minute))
		after, _ := w.runner.counts()
		if after != before+1 {
			t.Fatalf("minute %d: %d starts, want %d", minute, after, before+1)
		}
		w.runner.end(after-1, state)
	}
	fireAndEnd(runs.Failed)
	fireAndEnd(runs.Succeeded) // a success starts the count again
	fireAndEnd(runs.Failed)
	fireAndEnd(runs.Failed)
	if len(w.notices) != 3 || w.notices[2].Kind != NoticeFailed || w.notices[2].Failures != 2 {
		t.Fatalf("notices %+v", w.notices)
	}
	fireAndEnd(runs.Failed)
	n := w.notices[3]
	if n.Kind != NoticePaused || n.Tentacle != "sync" || n.Trigger != "tick" || n.Failures != 3 || !strings.Contains(n.Text, "boom") {
		t.Fatalf("pause notice %+v", n)
	}
	w.at(t, t0.Add(10*time.Minute))
	if starts, _ := w.runner.counts(); starts != 5 {
		t.Fatalf("a paused trigger fired: %d starts", starts)
	}

	// The pause survives a restart.
	w.restart(t)
	w.scan(t)
	w.at(t, t0.Add(11*time.Minute))
	if starts, _ := w.runner.counts(); starts != 5 {
		t.Fatalf("a paused trigger fired after a restart: %d starts", starts)
	}
	if st := w.s.Status("payments", "sync"); len(st) != 1 || !strings.Contains(st[0].Paused, "3 failed runs") {
		t.Fatalf("status after restart %+v", st)
	}

	if err := w.s.Resume(t.Context(), "payments", "sync", "U-alice"); err != nil {
		t.Fatal(err)
	}
	w.at(t, t0.Add(12*time.Minute))
	if starts, _ := w.runner.counts(); starts != 6 {
		t.Fatalf("after Resume, %d starts, want 6", starts)
	}
	w.runner.end(5, runs.Failed)
	if st := w.s.Status("payments", "sync"); st[0].Failures != 1 || st[0].Paused != "" || st[0].ResumedBy != "U-alice" || !st[0].ResumedAt.Equal(t0.Add(11*time.Minute)) {
		t.Fatalf("after Resume the count starts again, and who resumed is kept: %+v", st)
	}
	// and Resume and the count are kept too
	w.restart(t)
	w.scan(t)
	if st := w.s.Status("payments", "sync"); st[0].Paused != "" || st[0].Failures != 1 || st[0].ResumedBy != "U-alice" {
		t.Fatalf("after a restart: %+v, want not paused, one failure, resumed by U-alice", st)
	}
}

func TestRescanFollowsDeploys(t *testing.T) {
	w := newWorld(t)
	w.tents.deploy("payments", "sync", t0, `{type: cron, name: tick, schedule: "*/10 * * * *"}`)
	w.tents.deploy("payments", "other", t0, `{type: cron, schedule: "0 0 1 1 *"}`)
	w.scan(t)
	reads := w.tents.reads
	w.scan(t)
	if w.tents.reads != reads {
		t.Errorf("a rescan read the files of unchanged revisions again")
	}

	// Redeployed with another schedule: the new one counts.
	w.tents.deploy("payments", "sync", t0, `{type: cron, name: tick, schedule: "*/15 * * * *"}`)
	w.scan(t)
	if st := w.s.Status("payments", "sync"); len(st) != 1 || !st[0].Next.Equal(t0.Add(15*time.Minute)) {
		t.Fatalf("after a redeploy, status %+v", st)
	}
	w.at(t, t0.Add(10*time.Minute))
	if starts, _ := w.runner.counts(); starts != 0 {
		t.Fatalf("the old schedule fired")
	}
	w.at(t, t0.Add(15*time.Minute))
	if starts, _ := w.runner.counts(); starts != 1 || w.runner.starts[0].Revision != 2 {
		t.Fatalf("the new schedule did not fire with the new revision: %+v", w.runner.starts)
	}
	w.runner.end(0, runs.Succeeded)

	// Undeployed: its schedule goes.
	w.tents.undeploy("payments", "sync")
	w.scan(t)
	if st := w.s.Status("payments", "sync"); len(st) != 0 {
		t.Fatalf("an undeployed tentacle keeps %+v", st)
	}
	w.at(t, t0.Add(30*time.Minute))
	if starts, _ := w.runner.counts(); starts != 1 {
		t.Fatalf("an undeployed tentacle's schedule fired")
	}
}

func TestRunStopsWithItsContext(t *testing.T) {
	w := newWorld(t)
	w.clock = nil
	s, err := New(Config{Enclaves: w.encs, Tentacles: w.tents, Runner: w.runner, Store: w.db, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	s.Rescan()
	time.Sleep(50 * time.Millisecond)
	if err := s.Run(t.Context()); err == nil {
		t.Error("a second Run at the same time was not refused")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
}
