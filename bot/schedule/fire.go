package schedule

import (
	"container/heap"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/kraken-ops/kraken/bot/runs"
	"github.com/kraken-ops/kraken/enclave"
	"github.com/kraken-ops/kraken/tentacle"
	"github.com/robfig/cron/v3"
)

// maxCounted bounds how far back missed fires are counted, so a bot down
// for a week with "@every 1s" schedules does not spin at start.
const maxCounted = 10_000

// scan reads every enclave's schedules again. Schedules that did not
// change keep their next fire; those of undeployed tentacles go; what
// cannot be read now keeps what was read before.
func (s *Scheduler) scan(ctx context.Context) error {
	encs, err := s.cfg.Enclaves.List(ctx)
	if err != nil {
		return fmt.Errorf("list enclaves: %w", err)
	}
	wanted := map[string]*entry{}
	frozen := map[string]bool{}
	complete := map[string]bool{} // by enclave: all its triggers were read
	kept := map[string]bool{}     // enclaves or tentacles whose old entries stay: reading them failed
	files := map[string]parsed{}
	var errs []error
	for _, enc := range encs {
		complete[enc.Name] = false
		switch enclave.StateOf(enc).Phase {
		case enclave.PhaseFrozen, enclave.PhaseFlagged:
			frozen[enc.Name] = true
		case enclave.PhaseActive:
		default:
			continue // provisioning or going: nothing of it runs
		}
		sts, err := s.cfg.Tentacles.List(ctx, enc.Name)
		if err != nil {
			errs = append(errs, fmt.Errorf("list tentacles of %s: %w", enc.Name, err))
			kept[enc.Name+"/"] = true
			continue
		}
		complete[enc.Name] = true
		for _, st := range sts {
			key := enc.Name + "/" + st.Name
			p, err := s.triggers(ctx, enc.Name, st)
			if err != nil {
				errs = append(errs, err)
				kept[key+"/"] = true
				complete[enc.Name] = false
				continue
			}
			files[key] = p
			for _, t := range p.triggers {
				e, err := newEntry(enc.Name, st, t)
				if err != nil {
					errs = append(errs, err)
					continue
				}
				if _, dup := wanted[e.id]; !dup {
					wanted[e.id] = e
				}
			}
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.cfg.Now()
	for name := range frozen {
		if !s.frozen[name] {
			s.log.Info("schedules paused: the enclave is frozen", "enclave", name)
		}
	}
	for name := range s.frozen {
		if !frozen[name] {
			s.log.Info("schedules no longer paused by a freeze", "enclave", name)
		}
	}
	s.frozen = frozen
	s.enclaves, s.listed = complete, true
	for id, old := range s.entries {
		if kept[old.enclave+"/"] || kept[old.enclave+"/"+old.tentacle+"/"] {
			if _, ok := wanted[id]; !ok {
				wanted[id] = old
			}
		}
	}
	for key, p := range files {
		s.files[key] = p
	}
	for key := range s.files {
		if _, ok := files[key]; !ok {
			delete(s.files, key)
		}
	}
	for id, e := range wanted {
		if old, ok := s.entries[id]; ok && old.spec == e.spec && old.zone == e.zone && !old.next.IsZero() {
			e.next = old.next
		}
		if e.next.IsZero() { // new, changed, or back from a pause: from now on
			e.next = e.nextAfter(now)
		}
	}
	s.entries = wanted
	s.queue = s.queue[:0]
	for _, e := range wanted {
		e.index = -1
		if s.frozen[e.enclave] || s.states.triggers[e.id].paused() {
			e.next = time.Time{}
			continue
		}
		e.index = len(s.queue)
		s.queue = append(s.queue, e)
	}
	heap.Init(&s.queue)
	return errors.Join(errs...)
}

// triggers returns a deployed revision's cron triggers, reading its files
// only when the revision is new to the scheduler.
func (s *Scheduler) triggers(ctx context.Context, enc string, st tentacle.Status) (parsed, error) {
	key := enc + "/" + st.Name
	s.mu.Lock()
	p, ok := s.files[key]
	s.mu.Unlock()
	if ok && p.revision == st.Revision && st.Revision != 0 {
		return p, nil
	}
	files, err := s.cfg.Tentacles.Files(ctx, enc, st.Name, st.Revision)
	if err != nil {
		return parsed{}, fmt.Errorf("read %s in %s: %w", st.Name, enc, err)
	}
	data, ok := files["workflow.yaml"]
	if !ok {
		return parsed{}, fmt.Errorf("read %s in %s: no workflow.yaml", st.Name, enc)
	}
	wf, err := tentacle.Parse("workflow.yaml", data)
	if err != nil {
		return parsed{}, fmt.Errorf("read %s in %s: %w", st.Name, enc, err)
	}
	p = parsed{revision: st.Revision}
	for _, t := range wf.Triggers {
		if t.Type == tentacle.TriggerCron {
			p.triggers = append(p.triggers, t)
		}
	}
	return p, nil
}

func newEntry(enc string, st tentacle.Status, t tentacle.Trigger) (*entry, error) {
	// The zone is applied to the time passed to Next, not with a TZ=
	// prefix, which robfig/cron v3.0.1 can panic on.
	sched, err := cron.ParseStandard(t.Schedule)
	if err != nil {
		return nil, fmt.Errorf("%s in %s: schedule %q: %w", st.Name, enc, t.Schedule, err)
	}
	loc := time.UTC
	if t.Timezone != "" {
		if loc, err = time.LoadLocation(t.Timezone); err != nil {
			return nil, fmt.Errorf("%s in %s: time zone %q: %w", st.Name, enc, t.Timezone, err)
		}
	}
	name, input := t.Name, json.RawMessage(`{}`)
	if name == "" {
		name = t.Schedule
	} else if input, err = json.Marshal(map[string]string{"trigger": name}); err != nil {
		return nil, fmt.Errorf("%s in %s: %w", st.Name, enc, err)
	}
	return &entry{
		id: enc + "/" + st.Name + "/" + name, enclave: enc, tentacle: st.Name, revision: st.Revision,
		trigger: name, input: input, spec: t.Schedule, zone: t.Timezone, loc: loc, sched: sched,
		deployed: st.DeployedAt, index: -1,
	}, nil
}

// fire starts the runs due at now and schedules each trigger's next fire.
// A late wake-up fires once, not once per due time it slept through.
func (s *Scheduler) fire(ctx context.Context, now time.Time) {
	type due struct {
		e    *entry
		req  runs.Request
		skip bool
	}
	var fires []due
	s.mu.Lock()
	for len(s.queue) > 0 && !s.queue[0].next.After(now) {
		e := s.queue[0]
		tk := e.enclave + "/" + e.tentacle
		fires = append(fires, due{e: e, req: e.request(), skip: s.busy[tk]})
		s.busy[tk] = true
		e.next = e.nextAfter(now)
		heap.Fix(&s.queue, 0)
	}
	s.mu.Unlock()

	// Due fires start together: each run's record is written to disk
	// before it starts, and writes made at once share their syncs.
	var wg sync.WaitGroup
	sem := make(chan struct{}, firePool)
	for _, f := range fires {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			s.start(ctx, f.e, f.req, f.skip)
		})
	}
	wg.Wait()
	if len(fires) > 0 {
		s.mu.Lock()
		s.mark = now.Truncate(time.Second)
		s.mu.Unlock()
	}
}

// ended counts a scheduled run's outcome toward its trigger's pause.
// The count reaches Shared with the next flush; a pause at once.
func (s *Scheduler) ended(ctx context.Context, id string, rec runs.Record) {
	s.mu.Lock()
	delete(s.busy, rec.Enclave+"/"+rec.Tentacle)
	st := s.states.triggers[id]
	changed := false
	switch rec.State {
	case runs.Succeeded:
		if st.failures > 0 && !st.paused() {
			st.failures, changed = 0, true
		}
	case runs.Failed:
		if !st.paused() {
			st.failures++
			changed = true
			if st.failures >= s.cfg.MaxFailures {
				st.reason = fmt.Sprintf("paused after %d failed runs in a row", st.failures)
				if e, ok := s.entries[id]; ok && e.index >= 0 {
					heap.Remove(&s.queue, e.index)
					e.next = time.Time{}
				}
			}
		}
	}
	if changed {
		s.states.triggers[id] = st
	}
	s.mu.Unlock()
	if !changed {
		return
	}
	if st.paused() {
		s.flushSoon()
	}
	if rec.State != runs.Failed || s.cfg.Notify == nil {
		return
	}
	trigger := id[len(rec.Enclave)+len(rec.Tentacle)+2:]
	n := Notice{Kind: NoticeFailed, Enclave: rec.Enclave, Tentacle: rec.Tentacle, Trigger: trigger, Run: rec, Failures: st.failures,
		Text: fmt.Sprintf("The scheduled run of %s (%s) failed: %s", rec.Tentacle, trigger, rec.Error)}
	if st.paused() {
		n.Kind = NoticePaused
		n.Text = fmt.Sprintf("%s's schedule %s is paused after %d failed runs in a row (the last: %s). Resume it when it is fixed.",
			rec.Tentacle, trigger, st.failures, rec.Error)
	}
	s.cfg.Notify(ctx, n)
}

// noteMissed records, without running them, the fires due between a
// trigger's mark (or LastAlive, when later) and now: at most MaxMissed
// one by one per trigger, then one count. A trigger with neither is new
// to every leader: nothing was missed.
func (s *Scheduler) noteMissed(ctx context.Context, now time.Time) {
	var alive time.Time
	if s.cfg.LastAlive != nil {
		var err error
		if alive, err = s.cfg.LastAlive(ctx); err != nil {
			s.log.Error("the previous leader's last renewal is unknown; missed fires are counted from the triggers' marks", "err", err)
		}
	}
	type missed struct {
		req   runs.Request
		times []time.Time
		count int
	}
	var all []missed
	s.mu.Lock()
	for _, e := range s.entries {
		if e.index < 0 { // frozen or paused: nothing was due
			continue
		}
		since := s.states.triggers[e.id].last
		if alive.After(since) {
			since = alive
		}
		if since.IsZero() {
			continue
		}
		if e.deployed.After(since) {
			since = e.deployed
		}
		m := missed{req: e.request()}
		// Only before the trigger's next fire: the scan queued it from
		// a moment ago, and a fire that still runs is not missed.
		for t := e.nextAfter(since); !t.After(now) && t.Before(e.next) && !t.IsZero() && m.count < maxCounted; t = e.nextAfter(t) {
			if len(m.times) < s.cfg.MaxMissed {
				m.times = append(m.times, t)
			}
			m.count++
		}
		if m.count > 0 {
			all = append(all, m)
		}
	}
	s.mark = now.Truncate(time.Second)
	s.mu.Unlock()
	s.flushSoon()

	for _, m := range all {
		for _, t := range m.times {
			if _, err := s.cfg.Runner.Note(ctx, m.req, runs.Missed, "due at "+t.UTC().Format(time.RFC3339)+" while no bot ran schedules"); err != nil {
				s.log.Error("missed fire not recorded", "enclave", m.req.Enclave, "tentacle", m.req.Tentacle, "err", err)
			}
		}
		if rest := m.count - len(m.times); rest > 0 {
			more := fmt.Sprint(rest)
			if m.count >= maxCounted {
				more += " or more"
			}
			if _, err := s.cfg.Runner.Note(ctx, m.req, runs.Missed, more+" more fires were due while no bot ran schedules"); err != nil {
				s.log.Error("missed fires not recorded", "enclave", m.req.Enclave, "tentacle", m.req.Tentacle, "err", err)
			}
		}
		s.log.Warn("missed fires recorded, not replayed", "enclave", m.req.Enclave, "tentacle", m.req.Tentacle, "trigger", m.req.Trigger, "count", m.count)
	}
}

// firePool bounds how many due fires start at once.
const firePool = 256

// start starts one due fire, or notes it skipped.
func (s *Scheduler) start(ctx context.Context, e *entry, req runs.Request, skip bool) {
	if skip {
		if _, err := s.cfg.Runner.Note(ctx, req, runs.Skipped, "the last run was still going"); err != nil {
			s.log.Error("skipped fire not recorded", "enclave", e.enclave, "tentacle", e.tentacle, "err", err)
		}
		return
	}
	id, tk := e.id, e.enclave+"/"+e.tentacle
	_, err := s.cfg.Runner.Start(ctx, req, func(rec runs.Record, _ json.RawMessage) {
		s.ended(context.WithoutCancel(ctx), id, rec)
	})
	if err != nil {
		s.mu.Lock()
		delete(s.busy, tk)
		s.mu.Unlock()
		s.log.Error("scheduled run not started", "enclave", e.enclave, "tentacle", e.tentacle, "trigger", e.trigger, "err", err)
	}
}
