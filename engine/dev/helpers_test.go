package dev

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kraken-ops/kraken/enclave"
	"github.com/kraken-ops/kraken/tentacle"
)

// open opens a runtime on dir with the real Deno (engine.FindDeno finds
// the pinned one `make deno` installs; without it Open fails saying so)
// and closes it when the test ends.
func open(t *testing.T, dir string) (*Runtime, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	r, err := Open(t.Context(), Options{Dir: dir, Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatalf("open the dev cluster (run `make deno` if Deno is missing): %v", err)
	}
	t.Cleanup(func() { r.Close() })
	return r, logs
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	t.Cleanup(cancel)
	return c
}

var (
	alice = enclave.Provenance{Actor: "U-alice", Channel: "C1"}
	bob   = enclave.Provenance{Actor: "U-bob", Channel: "C1"}
)

// enc is an enclave of channel C1 in team T1.
func enc(name string) enclave.Enclave {
	return enclave.Enclave{
		Name:       name,
		Channel:    enclave.Channel{TeamID: "T1", ID: "C1", Name: "general"},
		Owner:      "U-alice",
		Quota:      enclave.Quota{CPU: "2", Pods: 5},
		Governance: enclave.Governance{Members: []string{"U-bob"}, Mode: enclave.DefaultMode},
	}
}

func provision(t *testing.T, r *Runtime, name string) {
	t.Helper()
	if err := r.Enclaves().Provision(ctx(t), enc(name), alice); err != nil {
		t.Fatal(err)
	}
}

func example(name string) string { return filepath.Join("..", "..", "examples", name) }

func bundle(t *testing.T, name string, secrets map[string]any) *tentacle.Bundle {
	t.Helper()
	b, err := tentacle.LoadBundle(example(name), secrets)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// edited is b with one file's text replaced, parsed again.
func edited(t *testing.T, b *tentacle.Bundle, file, old, new string) *tentacle.Bundle {
	t.Helper()
	files := map[string][]byte{}
	for p, data := range b.Files {
		files[p] = data
	}
	if !bytes.Contains(files[file], []byte(old)) {
		t.Fatalf("%s does not contain %q", file, old)
	}
	files[file] = bytes.ReplaceAll(files[file], []byte(old), []byte(new))
	nb, err := tentacle.BundleFromFiles(files, b.Secrets)
	if err != nil {
		t.Fatal(err)
	}
	return nb
}

func deploy(t *testing.T, r *Runtime, encName string, b *tentacle.Bundle, p enclave.Provenance) tentacle.Revision {
	t.Helper()
	rev, err := r.Tentacles().Deploy(ctx(t), encName, b, p)
	if err != nil {
		t.Fatal(err)
	}
	return rev
}

// result is the engine's POST /run body.
type result struct {
	Success bool                       `json:"success"`
	Outputs map[string]json.RawMessage `json:"outputs"`
	Errors  map[string]string          `json:"errors"`
	Timing  struct {
		StartedAt   int64                      `json:"startedAt"`
		CompletedAt int64                      `json:"completedAt"`
		DurationMs  *int64                     `json:"durationMs"`
		NodeTimings map[string]json.RawMessage `json:"nodeTimings"`
	} `json:"timing"`
}

func run(t *testing.T, r *Runtime, encName, name, input string) result {
	t.Helper()
	body, err := r.Tentacles().Run(ctx(t), encName, name, json.RawMessage(input))
	if err != nil {
		t.Fatal(err)
	}
	var res result
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&res); err != nil {
		t.Fatalf("the result is not the engine's: %v\n%s", err, body)
	}
	if res.Timing.StartedAt == 0 || res.Timing.DurationMs == nil || res.Outputs == nil || res.Errors == nil {
		t.Fatalf("the result lacks fields: %s", body)
	}
	return res
}

func output(t *testing.T, res result, node string) map[string]any {
	t.Helper()
	var out map[string]any
	if err := json.Unmarshal(res.Outputs[node], &out); err != nil {
		t.Fatalf("output of %s: %v (%s)", node, err, res.Outputs[node])
	}
	return out
}

func logsOf(t *testing.T, r *Runtime, encName, name string, tail int) string {
	t.Helper()
	rc, err := r.Tentacles().Logs(ctx(t), encName, name, tentacle.LogOptions{TailLines: tail})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func hasEvent(evs []tentacle.Event, reason, text string, warning bool) bool {
	for _, e := range evs {
		if e.Reason == reason && strings.Contains(e.Message, text) && e.Warning == warning && !e.Time.IsZero() {
			return true
		}
	}
	return false
}

// syncBuffer is a bytes.Buffer the runtime's goroutines can log into.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
