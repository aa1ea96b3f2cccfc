package schedule

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kraken-ops/kraken/bot/runs"
	"github.com/kraken-ops/kraken/enclave"
	"github.com/kraken-ops/kraken/store"
)

// jitterRunner runs nothing; it notes how late each Start came after
// its due time, which for "@every 1s" schedules is the whole second.
type jitterRunner struct {
	mu    sync.Mutex
	late  []time.Duration
	notes int
}

func (r *jitterRunner) Start(_ context.Context, req runs.Request, done func(runs.Record, json.RawMessage)) (runs.Record, error) {
	now := time.Now()
	r.mu.Lock()
	r.late = append(r.late, now.Sub(now.Truncate(time.Second)))
	r.mu.Unlock()
	rec := runs.Record{Enclave: req.Enclave, Tentacle: req.Tentacle, Trigger: req.Trigger, State: runs.Succeeded}
	done(rec, nil)
	return rec, nil
}

func (r *jitterRunner) Note(context.Context, runs.Request, runs.State, string) (runs.Record, error) {
	r.mu.Lock()
	r.notes++
	r.mu.Unlock()
	return runs.Record{}, nil
}

// tenThousand is 100 enclaves of 100 tentacles, each with one trigger.
func tenThousand(spec string) (*fakeEnclaves, *fakeTentacles) {
	encs, tents := &fakeEnclaves{}, &fakeTentacles{}
	for i := range 100 {
		name := fmt.Sprintf("enc%03d", i)
		encs.encs = append(encs.encs, enclave.Enclave{Name: name, Ready: true})
		for j := range 100 {
			tents.deploy(name, fmt.Sprintf("t%03d", j), time.Now(), `{type: cron, name: tick, schedule: "`+spec+`"}`)
		}
	}
	return encs, tents
}

func benchScheduler(b *testing.B, spec string, runner Runner) (*Scheduler, func()) {
	b.Helper()
	encs, tents := tenThousand(spec)
	db, err := store.Open(filepath.Join(b.TempDir(), "kraken.db"), store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	// The state is written every second, five times as often as the
	// default, so the jitter includes the flushes.
	s, err := New(Config{Enclaves: encs, Tentacles: tents, Runner: runner, Store: db, FlushEvery: time.Second, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	return s, func() { cancel(); <-done; db.Close() }
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		panic(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// waitScheduled waits for Run's first read of all 10,000 schedules.
func waitScheduled(b *testing.B, s *Scheduler) time.Duration {
	start := time.Now()
	for {
		s.mu.Lock()
		n := len(s.queue)
		s.mu.Unlock()
		if n == 10_000 {
			return time.Since(start)
		}
		if time.Since(start) > time.Minute {
			b.Fatalf("only %d schedules after a minute", n)
		}
		time.Sleep(time.Millisecond)
	}
}

// BenchmarkTenThousandSchedules measures one bot with 10,000 scheduled
// tentacles: how late fires start (all 10,000 due on the same second),
// the CPU it uses while nothing is due, and the heap the schedules take.
// It measures once, whatever b.N: run it with -benchtime=1x.
func BenchmarkTenThousandSchedules(b *testing.B) {
	for range b.N {
		// Fire jitter: every schedule "@every 1s", for a few seconds.
		r := &jitterRunner{}
		s, stop := benchScheduler(b, "@every 1s", r)
		scan := waitScheduled(b, s)
		time.Sleep(4 * time.Second)
		stop()
		r.mu.Lock()
		late := slices.Clone(r.late)
		r.mu.Unlock()
		if len(late) < 20_000 {
			b.Fatalf("only %d fires in 4 s of 10,000 schedules every second", len(late))
		}
		slices.Sort(late)
		b.ReportMetric(float64(late[len(late)*99/100].Microseconds())/1000, "jitter-p99-ms")
		b.ReportMetric(float64(late[len(late)/2].Microseconds())/1000, "jitter-p50-ms")
		b.ReportMetric(float64(len(late)), "fires")
		b.ReportMetric(float64(r.notes), "skipped")
		b.ReportMetric(float64(scan.Milliseconds()), "first-scan-ms")

		// Idle: 10,000 yearly schedules, none due while measured.
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		s, stop = benchScheduler(b, "0 0 1 1 *", &jitterRunner{})
		waitScheduled(b, s)
		runtime.GC()
		runtime.ReadMemStats(&after)
		t0 := time.Now()
		if err := s.scan(context.Background()); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(time.Since(t0).Microseconds())/1000, "rescan-ms")
		cpu0, wall0 := cpuTime(), time.Now()
		time.Sleep(5 * time.Second)
		cpu, wall := cpuTime()-cpu0, time.Since(wall0)
		stop()
		b.ReportMetric(100*cpu.Seconds()/wall.Seconds(), "idle-cpu-%")
		// the fakes' workflows are counted too: an upper bound
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "heap-MiB")
	}
}

// recordingRunner is a real runs.Runner (one bbolt record per run) in
// front of tentacles that answer at once, timed like jitterRunner.
// The 10,000 fires of the first batch share one due time, the whole
// second before the first of them; a batch may last longer than a second.
type recordingRunner struct {
	jitterRunner
	real *runs.Runner
	due  time.Time
}

func (r *recordingRunner) Start(ctx context.Context, req runs.Request, done func(runs.Record, json.RawMessage)) (runs.Record, error) {
	now := time.Now()
	r.mu.Lock()
	if r.due.IsZero() {
		r.due = now.Truncate(time.Second)
	}
	r.late = append(r.late, now.Sub(r.due))
	r.mu.Unlock()
	return r.real.Start(ctx, req, done)
}

type instantTentacles struct{}

func (instantTentacles) Run(context.Context, string, string, json.RawMessage) (json.RawMessage, error) {
	return json.RawMessage(`{"success":true,"timing":{}}`), nil
}

// BenchmarkTenThousandFiresWithRunRecords is the first second's 10,000
// fires started through a real runs.Runner: each start writes its record
// to bbolt before the next, so this is the end-to-end jitter.
func BenchmarkTenThousandFiresWithRunRecords(b *testing.B) {
	for range b.N {
		db, err := store.Open(filepath.Join(b.TempDir(), "runs.db"), store.Options{})
		if err != nil {
			b.Fatal(err)
		}
		real, err := runs.New(runs.Config{Tentacles: instantTentacles{}, Store: db, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			b.Fatal(err)
		}
		r := &recordingRunner{real: real}
		s, stop := benchScheduler(b, "@every 1s", r)
		waitScheduled(b, s)
		start := time.Now()
		for {
			r.mu.Lock()
			n := len(r.late)
			r.mu.Unlock()
			if n >= 10_000 || time.Since(start) > 2*time.Minute {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		stop()
		real.Drain(context.Background())
		db.Close()
		r.mu.Lock()
		late := slices.Clone(r.late[:min(len(r.late), 10_000)])
		r.mu.Unlock()
		slices.Sort(late)
		b.ReportMetric(float64(late[len(late)*99/100].Microseconds())/1000, "jitter-p99-ms")
		b.ReportMetric(float64(late[len(late)/2].Microseconds())/1000, "jitter-p50-ms")
	}
}

// BenchmarkSharedState measures the document a leader writes for 10,000
// triggers: its size (the ConfigMap's limit is 1 MiB) and the time to
// merge and encode it, once with the benchmark's short names and once
// with long ones (enclave, tentacle and trigger names of 20-30
// characters), every trigger with a mark and one in ten with failures.
func BenchmarkSharedState(b *testing.B) {
	for _, long := range []bool{false, true} {
		name := "short-names"
		if long {
			name = "long-names"
		}
		b.Run(name, func(b *testing.B) {
			state := newSharedState()
			at := time.Now().Truncate(time.Second)
			for i := range 100 {
				for j := range 100 {
					id := fmt.Sprintf("enc%03d/t%03d/tick", i, j)
					if long {
						id = fmt.Sprintf("payments-platform-eu-%03d/nightly-reconciliation-%03d/weekday-morning", i, j)
					}
					st := triggerState{last: at}
					if j%10 == 0 {
						st.failures = 2
					}
					state.triggers[id] = st
				}
			}
			var data []byte
			b.ResetTimer()
			for range b.N {
				merged := mergeState(newSharedState(), state, func(string) bool { return false })
				var err error
				if data, err = encodeState(merged); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			if _, err := decodeState(data); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(len(data))/1024, "KiB")
		})
	}
}
