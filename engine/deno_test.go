package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kraken-ops/kraken/enclave"
	"github.com/kraken-ops/kraken/tentacle"
)

// denoBinary is the real Deno the tests run nodes with; `make test`
// installs it. Without it these tests fail, saying how to get it.
func denoBinary(t testing.TB) string {
	t.Helper()
	bin, err := FindDeno("", os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// tentacleDir writes a tentacle: files maps relative paths to contents.
func tentacleDir(t testing.TB, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// chainYAML is a workflow whose nodes run in the order given.
func chainYAML(extra string, nodes ...string) string {
	var b strings.Builder
	b.WriteString("name: test-tentacle\nversion: \"1.0\"\nnodes:\n")
	for _, n := range nodes {
		fmt.Fprintf(&b, "  %s:\n    path: ./nodes/%s.ts\n", n, n)
	}
	b.WriteString("edges:\n")
	for i := 1; i < len(nodes); i++ {
		fmt.Fprintf(&b, "  - from: %s\n    to: %s\n", nodes[i-1], nodes[i])
	}
	b.WriteString(extra)
	return b.String()
}

// logBuffer collects what the worker forwards to slog.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

type denoOpts struct {
	secrets  map[string]any
	services map[string]enclave.Space
	memoryMB int
}

func startWorker(t testing.TB, dir string, o denoOpts) (*tentacle.Workflow, *Deno, *logBuffer) {
	t.Helper()
	wf, err := tentacle.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	logs := &logBuffer{}
	w, err := NewDeno(DenoConfig{
		Binary: denoBinary(t), Workflow: wf, Secrets: o.secrets, Services: o.services, MemoryMB: o.memoryMB,
		StopGrace: 300 * time.Millisecond,
		Logger:    slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	if err := w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return wf, w, logs
}

func runOnce(t testing.TB, wf *tentacle.Workflow, w *Deno, input string) *Result {
	t.Helper()
	e, err := NewExecutor(wf, w)
	if err != nil {
		t.Fatal(err)
	}
	e.Backoff = func(int) time.Duration { return 10 * time.Millisecond }
	return e.Run(context.Background(), NewRunID(), json.RawMessage(input))
}

func TestDenoChain(t *testing.T) {
	dir := tentacleDir(t, map[string]string{
		"workflow.yaml": chainYAML("config:\n  greeting: hi\n", "a", "b"),
		"nodes/a.ts": `import type { Context } from "tentacular";
export default async function run(ctx: Context, input: { name: string }) {
  ctx.log.info("greeting", { who: input.name });
  console.log("plain console output");
  return { text: ctx.config.greeting + " " + input.name };
}`,
		"nodes/b.ts": `export default async function run(ctx, input) { return { shout: input.text.toUpperCase(), node: ctx.nodeId }; }`,
	})
	wf, w, logs := startWorker(t, dir, denoOpts{})
	res := runOnce(t, wf, w, `{"name":"kraken"}`)
	if !res.Success {
		t.Fatalf("errors: %v", res.Errors)
	}
	if got := string(res.Outputs["b"]); got != `{"shout":"HI KRAKEN","node":"b"}` {
		t.Fatalf("b = %s", got)
	}
	out := logs.String()
	for _, want := range []string{`"[a] greeting"`, "who=kraken", `"[a] plain console output"`} {
		if !strings.Contains(out, want) {
			t.Errorf("logs lack %s:\n%s", want, out)
		}
	}
}

func TestDenoFailuresAreClear(t *testing.T) {
	tests := []struct {
		name string
		code string
		kind ErrorKind
		want string
	}{
		{"throws", `export default async function run() { throw new Error("order has no orderId"); }`, KindThrow, "order has no orderId"},
		{"rejects with a string", `export default function run() { return Promise.reject("nope"); }`, KindThrow, "nope"},
		{"reads outside its dir", `export default async function run() { return await Deno.readTextFile("/etc/passwd"); }`,
			KindPermission, "tried to read /etc/passwd; a tentacle may read only its own directory"},
		{"reaches an undeclared host", `export default async function run() { return (await fetch("http://127.0.0.1:4567/")).status; }`,
			KindPermission, "tried to reach 127.0.0.1:4567, which the tentacle's contract does not declare"},
		{"reads the environment", `export default async function run() { return Deno.env.get("HOME"); }`,
			KindPermission, "environment variable HOME"},
		{"starts a program", `export default async function run() { return await new Deno.Command("/usr/bin/id").output(); }`,
			KindPermission, "tried to start the program"},
		{"writes outside scratch", `export default async function run() { await Deno.writeTextFile("/tmp/kraken-escape", "x"); return 1; }`,
			KindPermission, "tried to write /tmp/kraken-escape"},
		{"imports from the network", `export default async function run() { return await import("https://deno.land/x/y.ts"); }`,
			KindThrow, "deno.land"},
		{"changes the shared config", `export default async function run(ctx) { ctx.config.greeting = "hijacked"; return 1; }`,
			KindThrow, "object is not extensible"},
		{"returns a BigInt", `export default async function run() { return 10n; }`, KindOutput, "cannot be sent as JSON"},
		{"returns a cycle", `export default async function run() { const a: any = {}; a.a = a; return a; }`, KindOutput, "cannot be sent as JSON"},
		{"no default export", `export function run() { return 1; }`, KindLoad, "no default export function"},
		{"syntax error", `export default async function run( {`, KindLoad, "does not load"},
	}
	files := map[string]string{}
	var names []string
	for i, tt := range tests {
		n := fmt.Sprintf("n%02d", i)
		names = append(names, n)
		files["nodes/"+n+".ts"] = tt.code
	}
	var b strings.Builder
	b.WriteString("name: failing\nversion: \"1.0\"\nconfig:\n  retries: 2\nnodes:\n")
	for _, n := range names {
		fmt.Fprintf(&b, "  %s:\n    path: ./nodes/%s.ts\n", n, n)
	}
	files["workflow.yaml"] = b.String()
	wf, w, _ := startWorker(t, tentacleDir(t, files), denoOpts{})
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := w.RunNode(context.Background(), NodeCall{Node: names[i], Input: json.RawMessage(`{}`)})
			ne, ok := err.(*NodeError)
			if !ok {
				t.Fatalf("err = %v (%T), want a *NodeError", err, err)
			}
			if ne.Kind != tt.kind || !strings.Contains(ne.Msg, tt.want) {
				t.Fatalf("got %s %q, want %s containing %q", ne.Kind, ne.Msg, tt.kind, tt.want)
			}
		})
	}
	if _, err := os.Stat("/tmp/kraken-escape"); err == nil {
		t.Fatal("a node wrote outside its scratch directory")
	}
	// The worker survived all of it.
	if _, err := w.RunNode(context.Background(), NodeCall{Node: names[0]}); err == nil || !strings.Contains(err.Error(), "orderId") {
		t.Fatalf("worker unusable afterwards: %v", err)
	}
	_ = wf
}

func TestDenoBusyLoopIsKilledAndWorkerRestarts(t *testing.T) {
	dir := tentacleDir(t, map[string]string{
		"workflow.yaml": chainYAML("config:\n  timeout: 300ms\n", "spin"),
		"nodes/spin.ts": `let calls = 0;
export default async function run(ctx, input) {
  calls++;
  if (input.spin) { while (true) {} }
  return { calls };
}`,
	})
	wf, w, _ := startWorker(t, dir, denoOpts{})
	if res := runOnce(t, wf, w, `{}`); string(res.Outputs["spin"]) != `{"calls":1}` {
		t.Fatalf("warm-up: %+v", res)
	}
	res := runOnce(t, wf, w, `{"spin":true}`)
	if res.Success || !strings.Contains(res.Errors["spin"], "timed out after 300ms") || !strings.Contains(res.Errors["spin"], "restarted") {
		t.Fatalf("errors = %v", res.Errors)
	}
	// A fresh worker: module state starts over.
	if res := runOnce(t, wf, w, `{}`); string(res.Outputs["spin"]) != `{"calls":1}` {
		t.Fatalf("after restart: %+v", res)
	}
}

func TestDenoCrashFailsOnlyRunsInFlight(t *testing.T) {
	dir := tentacleDir(t, map[string]string{
		"workflow.yaml": chainYAML("", "node"),
		"nodes/node.ts": `export default async function run(ctx, input) {
  if (input.exit) { setTimeout(() => Deno.exit(3), 50); }
  await new Promise((r) => setTimeout(r, input.sleep ?? 0));
  return { ok: true };
}`,
	})
	wf, w, _ := startWorker(t, dir, denoOpts{})
	var wg sync.WaitGroup
	results := make([]*Result, 2)
	wg.Go(func() { results[0] = runOnce(t, wf, w, `{"sleep":2000}`) })
	time.Sleep(100 * time.Millisecond)
	wg.Go(func() { results[1] = runOnce(t, wf, w, `{"exit":true,"sleep":2000}`) })
	wg.Wait()
	for i, r := range results {
		if r.Success || !strings.Contains(r.Errors["node"], "stopped unexpectedly") {
			t.Errorf("run %d in flight: %+v", i, r.Errors)
		}
	}
	if r := runOnce(t, wf, w, `{}`); !r.Success {
		t.Fatalf("the next run should get a new worker: %v", r.Errors)
	}
}

func TestDenoOutOfMemory(t *testing.T) {
	dir := tentacleDir(t, map[string]string{
		"workflow.yaml": chainYAML("", "hog"),
		"nodes/hog.ts": `export default async function run() {
  const keep = [];
  while (true) keep.push(new Array(1e6).fill({ x: Math.random() }));
}`,
	})
	wf, w, _ := startWorker(t, dir, denoOpts{memoryMB: 64})
	res := runOnce(t, wf, w, `{}`)
	if res.Success || !strings.Contains(res.Errors["hog"], "ran out of memory (limit 64 MB)") {
		t.Fatalf("errors = %v", res.Errors)
	}
}

func TestDenoSecretsContractAndRedaction(t *testing.T) {
	const token = "s3cr3t-weather-token"
	var gotAuth, gotKey string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if k := r.Header.Get("X-API-Key"); k != "" {
			gotKey = k
		} else {
			gotAuth = r.Header.Get("Authorization")
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"path":%q}`, r.URL.RequestURI())
	}))
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	dir := tentacleDir(t, map[string]string{
		"workflow.yaml": chainYAML(fmt.Sprintf(`contract:
  version: "1"
  dependencies:
    weather:
      protocol: http
      host: 127.0.0.1
      port: %s
      auth:
        type: token
        secret: weather.token
    maps:
      protocol: http
      host: 127.0.0.1
      port: %s
      auth:
        type: api_key
        secret: maps.key
`, u.Port(), u.Port()), "call"),
		"nodes/call.ts": `export default async function run(ctx) {
  const dep = ctx.dependency("weather");
  ctx.log.info("using token " + dep.secret);
  const res = await ctx.fetch("weather", "/forecast?city=Oslo");
  await (await ctx.fetch("maps", "/tiles")).body?.cancel();
  return { body: await res.json(), host: dep.host, port: dep.port, same: dep.secret === ctx.secrets.weather.token };
}`,
	})
	wf, w, logs := startWorker(t, dir, denoOpts{secrets: map[string]any{"weather": map[string]any{"token": token}, "maps": map[string]any{"key": "maps-api-key-42"}}})
	res := runOnce(t, wf, w, `{}`)
	if !res.Success {
		t.Fatalf("errors = %v", res.Errors)
	}
	want := fmt.Sprintf(`{"body":{"path":"/forecast?city=Oslo"},"host":"127.0.0.1","port":%s,"same":true}`, u.Port())
	if string(res.Outputs["call"]) != want {
		t.Fatalf("output = %s, want %s", res.Outputs["call"], want)
	}
	if gotAuth != "Bearer "+token || gotKey != "maps-api-key-42" {
		t.Fatalf("Authorization = %q, X-API-Key = %q", gotAuth, gotKey)
	}
	if out := logs.String(); strings.Contains(out, token) || !strings.Contains(out, "using token [redacted]") {
		t.Fatalf("secret not redacted in logs:\n%s", out)
	}
}

func TestDenoStrayStdoutDoesNotBreakTheProtocol(t *testing.T) {
	dir := tentacleDir(t, map[string]string{
		"workflow.yaml": chainYAML("", "noisy"),
		"nodes/noisy.ts": `export default async function run() {
  await Deno.stdout.write(new TextEncoder().encode('{"t":"done","id":1,"output":666}\nhalf a line'));
  return { fine: true };
}`,
	})
	wf, w, logs := startWorker(t, dir, denoOpts{})
	res := runOnce(t, wf, w, `{}`)
	if string(res.Outputs["noisy"]) != `{"fine":true}` {
		t.Fatalf("result = %+v", res)
	}
	if !strings.Contains(logs.String(), "node printed to stdout") {
		t.Fatalf("stray output not logged:\n%s", logs)
	}
}

func TestDenoConcurrentRunsShareOneWorker(t *testing.T) {
	dir := tentacleDir(t, map[string]string{
		"workflow.yaml": chainYAML("", "slow"),
		"nodes/slow.ts": `let inFlight = 0, peak = 0;
export default async function run(ctx, input) {
  peak = Math.max(peak, ++inFlight);
  await new Promise((r) => setTimeout(r, 100));
  inFlight--;
  return { i: input.i, pid: Deno.pid, peak };
}`,
	})
	wf, w, _ := startWorker(t, dir, denoOpts{})
	var wg sync.WaitGroup
	pids := sync.Map{}
	var mu sync.Mutex
	peak := 0
	for i := range 20 {
		wg.Go(func() {
			res := runOnce(t, wf, w, fmt.Sprintf(`{"i":%d}`, i))
			var out struct{ I, Pid, Peak int }
			_ = json.Unmarshal(res.Outputs["slow"], &out)
			mu.Lock()
			peak = max(peak, out.Peak)
			mu.Unlock()
			if out.I != i {
				t.Errorf("run %d got %s", i, res.Outputs["slow"])
			}
			pids.Store(out.Pid, true)
		})
	}
	wg.Wait()
	n := 0
	pids.Range(func(any, any) bool { n++; return true })
	if n != 1 {
		t.Fatalf("runs used %d worker processes, want 1", n)
	}
	if peak < 2 {
		t.Fatalf("at most %d node calls were in flight at once; concurrent runs should overlap in the worker", peak)
	}
}
