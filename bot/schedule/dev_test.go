package schedule_test

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/kraken-ops/kraken/bot/runs"
	"github.com/kraken-ops/kraken/bot/schedule"
	"github.com/kraken-ops/kraken/enclave"
	"github.com/kraken-ops/kraken/engine/dev"
	"github.com/kraken-ops/kraken/store"
	"github.com/kraken-ops/kraken/tentacle"
)

// TestDevClusterFiresEverySecond deploys the hello-fanout example with
// its weekday cron trigger turned into "@every 1s" on the dev cluster
// (real Deno), and lets Run fire it through a real runs.Runner.
func TestDevClusterFiresEverySecond(t *testing.T) {
	if testing.Short() {
		t.Skip("runs Deno")
	}
	ctx := t.Context()
	cluster, err := dev.Open(ctx, dev.Options{Dir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("open the dev cluster (run `make deno` if Deno is missing): %v", err)
	}
	t.Cleanup(func() { cluster.Close() })
	p := enclave.Provenance{Actor: "U-alice", Channel: "C1"}
	e := enclave.Enclave{Name: "payments", Channel: enclave.Channel{TeamID: "T1", ID: "C1", Name: "general"}, Owner: "U-alice",
		Quota: enclave.Quota{CPU: "2", Pods: 5}, Governance: enclave.Governance{Mode: enclave.DefaultMode}}
	if err := cluster.Enclaves().Provision(ctx, e, p); err != nil {
		t.Fatal(err)
	}
	b, err := tentacle.LoadBundle(filepath.Join("..", "..", "examples", "hello-fanout"), nil)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for name, data := range b.Files {
		files[name] = data
	}
	files["workflow.yaml"] = bytes.Replace(files["workflow.yaml"], []byte(`"0 9 * * 1-5"`), []byte(`"@every 1s"`), 1)
	if b, err = tentacle.BundleFromFiles(files, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := cluster.Tentacles().Deploy(ctx, "payments", b, p); err != nil {
		t.Fatal(err)
	}

	db, err := store.Open(filepath.Join(t.TempDir(), "kraken.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	runner, err := runs.New(runs.Config{Tentacles: cluster.Tentacles(), Store: db})
	if err != nil {
		t.Fatal(err)
	}
	s, err := schedule.New(schedule.Config{Enclaves: cluster.Enclaves(), Tentacles: cluster.Tentacles(), Runner: runner, Store: db})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Run(runCtx) }()

	deadline := time.Now().Add(30 * time.Second)
	var ok []runs.Record
	for len(ok) < 2 && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
		recs, err := runner.List(ctx, "payments", "hello-fanout", 0)
		if err != nil {
			t.Fatal(err)
		}
		ok = ok[:0]
		for _, r := range recs {
			if r.State == runs.Succeeded {
				ok = append(ok, r)
			}
		}
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if len(ok) < 2 {
		recs, _ := runner.List(ctx, "payments", "hello-fanout", 0)
		t.Fatalf("want two scheduled runs that succeeded, got %+v", recs)
	}
	r := ok[0]
	if r.Trigger != "cron:weekday-morning" || string(r.Input) != `{"trigger":"weekday-morning"}` || r.Revision != 1 {
		t.Errorf("scheduled run %+v", r)
	}
	if st := s.Status("payments", "hello-fanout"); len(st) != 1 || st[0].Schedule != "@every 1s" {
		t.Errorf("status %+v", st)
	}
	runner.Drain(context.Background())
}
