package queue

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kraken-ops/kraken/bot/runs"
	"github.com/kraken-ops/kraken/enclave"
	"github.com/kraken-ops/kraken/engine/dev"
	"github.com/kraken-ops/kraken/store"
	"github.com/kraken-ops/kraken/tentacle"
)

// TestAgainstDev runs a queue trigger for real: the dev cluster, the
// engine under Deno, run records in the store, the NATS server.
func TestAgainstDev(t *testing.T) {
	nc := connect(t)
	ctx := t.Context()
	dir := t.TempDir()
	rt, err := dev.Open(ctx, dev.Options{Dir: filepath.Join(dir, "cluster")})
	if err != nil {
		t.Fatalf("open the dev cluster (run `make deno` if Deno is missing): %v", err)
	}
	t.Cleanup(func() { rt.Close() })
	db, err := store.Open(filepath.Join(dir, "kraken.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	runner, err := runs.New(runs.Config{Tentacles: rt.Tentacles(), Store: db})
	if err != nil {
		t.Fatal(err)
	}
	who := enclave.Provenance{Actor: "U-alice", Channel: "C1"}
	for _, name := range []string{"payments", "other"} {
		e := enclave.Enclave{Name: name, Channel: enclave.Channel{TeamID: "T1", ID: "C-" + name, Name: name}, Owner: "U-alice",
			Quota: enclave.Quota{CPU: "2", Pods: 5}, Governance: enclave.Governance{Mode: enclave.DefaultMode}}
		if err := rt.Enclaves().Provision(ctx, e, who); err != nil {
			t.Fatal(err)
		}
	}
	b, err := tentacle.BundleFromFiles(map[string][]byte{
		tentacle.FileName: []byte("name: echo\nversion: \"1.0\"\ntriggers:\n  - type: queue\n    subject: orders.new\nnodes:\n  echo:\n    path: ./echo.ts\n"),
		"echo.ts":         []byte("export default async function run(ctx, input) { return { got: input }; }\n"),
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rt.Tentacles().Deploy(ctx, "payments", b, who); err != nil {
		t.Fatal(err)
	}
	p := prefix()
	q := start(t, Config{Prefix: p, Enclaves: rt.Enclaves(), Tentacles: rt.Tentacles(), Runner: runner})
	if got := q.Subscribed(); len(got) != 1 || got[0] != p+".payments.orders.new" {
		t.Fatalf("subscribed %v", got)
	}

	msg, err := nc.Request(p+".payments.orders.new", []byte(`{"id":7}`), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	var res struct {
		Success bool
		Outputs map[string]json.RawMessage
	}
	if err := json.Unmarshal(msg.Data, &res); err != nil || !res.Success || string(res.Outputs["echo"]) != `{"got":{"id":7}}` {
		t.Fatalf("reply %s (%v)", msg.Data, err)
	}
	// Another enclave's subject of the same name runs nothing.
	if _, err := nc.Request(p+".other.orders.new", []byte(`{}`), time.Second); err == nil {
		t.Fatal("other enclave's subject answered")
	}
	recs, err := runner.List(ctx, "payments", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || recs[0].Enclave != "payments" || recs[0].Trigger != "queue:orders.new" || recs[0].State != runs.Succeeded {
		t.Fatalf("records %+v", recs)
	}

	// Undeployed: unsubscribed after a rescan.
	if err := rt.Tentacles().Undeploy(ctx, "payments", "echo", who); err != nil {
		t.Fatal(err)
	}
	rescan(t, q)
	if got := q.Subscribed(); len(got) != 0 {
		t.Fatalf("still subscribed: %v", got)
	}
	if _, err := nc.Request(p+".payments.orders.new", []byte(`{}`), time.Second); err == nil || !strings.Contains(err.Error(), "no responders") {
		t.Fatalf("after undeploy: %v", err)
	}
	runner.Drain(context.Background())
}
