package hooks_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kraken-ops/kraken/bot/hooks"
	"github.com/kraken-ops/kraken/bot/runs"
	"github.com/kraken-ops/kraken/enclave"
	"github.com/kraken-ops/kraken/engine/dev"
	"github.com/kraken-ops/kraken/store"
	"github.com/kraken-ops/kraken/tentacle"
)

// echo is a tentacle run by webhooks: it answers with what it was given.
var echo = map[string][]byte{
	tentacle.FileName: []byte(`name: echo
version: "1.0"
triggers:
  - type: webhook
    name: push
    path: /push
nodes:
  echo:
    path: ./echo.ts
`),
	"echo.ts": []byte(`export default async function run(ctx, input) { return { got: input }; }
`),
}

// TestAgainstDev runs webhooks for real: the dev cluster, the engine
// under Deno, the run records in the store.
func TestAgainstDev(t *testing.T) {
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
	e := enclave.Enclave{Name: "payments", Channel: enclave.Channel{TeamID: "T1", ID: "C1", Name: "payments"}, Owner: "U-alice",
		Quota: enclave.Quota{CPU: "2", Pods: 5}, Governance: enclave.Governance{Mode: enclave.DefaultMode}}
	if err := rt.Enclaves().Provision(ctx, e, who); err != nil {
		t.Fatal(err)
	}
	fanout, err := tentacle.LoadBundle(filepath.Join("..", "..", "examples", "hello-fanout"), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := tentacle.BundleFromFiles(echo, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range []*tentacle.Bundle{fanout, b} {
		if _, err := rt.Tentacles().Deploy(ctx, "payments", b, who); err != nil {
			t.Fatal(err)
		}
	}

	h, err := hooks.New(hooks.Config{Enclaves: rt.Enclaves(), Tentacles: rt.Tentacles(), Runner: runner, Key: key, CacheTTL: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h.Handler())
	defer srv.Close()
	trig := tentacle.Trigger{Type: tentacle.TriggerWebhook, Name: "push", Path: "/push"}
	send := func(url, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, "POST", url, strings.NewReader(body))
		req.Header.Set(hooks.HeaderSignature, sign(h.Secret("payments", "echo", trig), body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, string(out)
	}
	url := hooks.URL(srv.URL, "payments", "echo", "/push")

	// Waiting: the engine's result comes back.
	code, out := send(url+"?wait=1", `{"ref":"main"}`)
	if code != http.StatusOK || !strings.Contains(out, `"got":{"ref":"main"}`) || !strings.Contains(out, `"success":true`) {
		t.Fatalf("wait: %d %s", code, out)
	}

	// Not waiting: 202 with the run, whose record ends succeeded.
	code, out = send(url, `plain text`)
	var started struct{ Run string }
	if code != http.StatusAccepted || json.Unmarshal([]byte(out), &started) != nil || started.Run == "" {
		t.Fatalf("async: %d %s", code, out)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		rec, ok, err := runner.Get(ctx, "payments", started.Run)
		if err != nil {
			t.Fatal(err)
		}
		if ok && rec.State != runs.Running {
			if rec.State != runs.Succeeded || rec.Trigger != "webhook:/push" || string(rec.Input) != `{"body":"plain text"}` {
				t.Fatalf("record %+v", rec)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %s still running", started.Run)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// hello-fanout has no webhook trigger: 404, nothing run.
	if code, _ := send(hooks.URL(srv.URL, "payments", "hello-fanout", "/push"), `{}`); code != http.StatusNotFound {
		t.Fatalf("tentacle without webhooks: %d", code)
	}

	// Frozen: 409 and nothing run.
	if err := rt.Enclaves().SetFrozen(ctx, "payments", true, who); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond) // past the cache
	if code, out := send(url, `{}`); code != http.StatusConflict {
		t.Fatalf("frozen: %d %s", code, out)
	}
	all, err := runner.List(ctx, "payments", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 {
		t.Fatalf("%d runs recorded, want 2: %+v", len(all), all)
	}
	runner.Drain(ctx)
}
