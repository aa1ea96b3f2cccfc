package engine

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"strings"
	"testing"
	"time"
)

// goodTentacle is two chained nodes with a fixture each and a pipeline
// fixture; the cases below break one thing in it at a time.
func goodTentacle() map[string][]byte {
	return map[string][]byte{
		"workflow.yaml": []byte(`name: shout-count
version: "1.0"
nodes:
  upper:
    path: ./nodes/upper.ts
  count:
    path: ./nodes/count.ts
edges:
  - from: upper
    to: count
config:
  timeout: 2s
`),
		"nodes/upper.ts": []byte(`export default async function run(ctx, input) {
  return { text: String(input.text ?? "").toUpperCase() };
}
`),
		"nodes/count.ts": []byte(`export default async function run(ctx, input) {
  return { text: input.text, length: input.text.length };
}
`),
		"tests/fixtures/upper.json":    []byte(`{"input": {"text": "hi"}, "expected": {"text": "HI"}}`),
		"tests/fixtures/count.json":    []byte(`{"input": {"text": "HI"}, "expected": {"length": 2, "text": "HI"}}`),
		"tests/fixtures/pipeline.json": []byte(`{"input": {"text": "abc"}, "expected": {"count": {"text": "ABC", "length": 3}}}`),
	}
}

// with returns the good tentacle changed: an empty body removes the file.
func with(changes map[string]string) map[string][]byte {
	files := goodTentacle()
	for p, body := range changes {
		if body == "" {
			delete(files, p)
			continue
		}
		files[p] = []byte(body)
	}
	return files
}

// exampleFiles reads an example tentacle the way the bot ships them.
func exampleFiles(t *testing.T, name string) map[string][]byte {
	t.Helper()
	fsys := os.DirFS("../examples/" + name)
	files := map[string][]byte{}
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		files[p], err = fs.ReadFile(fsys, p)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func TestCheck(t *testing.T) {
	deno := denoBinary(t)
	long := strings.Repeat("x", 2000)
	tests := []struct {
		name     string
		files    map[string][]byte
		timeout  time.Duration
		ok       bool
		fixtures int
		passed   int
		want     []string // substrings, each of a different problem
	}{
		{name: "good tentacle", files: goodTentacle(), ok: true, fixtures: 3, passed: 3},
		{name: "hello-fanout example", files: exampleFiles(t, "hello-fanout"), ok: true, fixtures: 5, passed: 5},
		{name: "a fixture that only asks the node to succeed", files: with(map[string]string{"tests/fixtures/count.json": `{"input": {"text": "HI"}}`}), ok: true, fixtures: 3, passed: 3},
		{
			name:  "malformed YAML",
			files: with(map[string]string{"workflow.yaml": "name: broken\nversion: \"1.0\"\nnodes:\n  upper:\n    path: ./nodes/upper.ts\n\tcount: x\n"}),
			want:  []string{"workflow.yaml:5: invalid YAML: found a tab character"},
		},
		{
			name:  "missing node file",
			files: with(map[string]string{"nodes/count.ts": ""}),
			want:  []string{"workflow.yaml:7:11: nodes.count.path: node file ./nodes/count.ts does not exist"},
		},
		{
			name:     "node throws",
			files:    with(map[string]string{"nodes/upper.ts": `export default async function run(ctx, input) { return input.missing.field; }`}),
			fixtures: 3, passed: 1,
			want: []string{"node upper failed: Cannot read properties of undefined (reading 'field')", "pipeline fixture"},
		},
		{
			name:     "fixture mismatch",
			files:    with(map[string]string{"tests/fixtures/upper.json": `{"input": {"text": "hi"}, "expected": {"text": "Hi"}}`}),
			fixtures: 3, passed: 2,
			want: []string{`node upper: fixture expected {"text":"Hi"}, got {"text":"HI"}`},
		},
		{
			name:     "long mismatch is truncated",
			files:    with(map[string]string{"tests/fixtures/upper.json": `{"input": {"text": "` + long + `"}, "expected": {"text": "no"}}`}),
			fixtures: 3, passed: 2,
			want: []string{`node upper: fixture expected {"text":"no"}, got {"text":"XXXX`, "…"},
		},
		{
			name: "infinite loop is stopped",
			files: with(map[string]string{
				"workflow.yaml":  strings.Replace(string(goodTentacle()["workflow.yaml"]), "timeout: 2s", "timeout: 1s", 1),
				"nodes/upper.ts": `export default async function run() { while (true) {} }`,
			}),
			fixtures: 3, passed: 1,
			want: []string{"node upper failed: timed out after 1s; it did not stop when asked"},
		},
		{
			name:     "the whole check has a time limit",
			files:    with(map[string]string{"workflow.yaml": strings.Replace(string(goodTentacle()["workflow.yaml"]), "timeout: 2s", "timeout: 5m", 1), "nodes/upper.ts": `export default async function run() { while (true) {} }`}),
			timeout:  3 * time.Second,
			fixtures: 2, passed: 1, // count runs first, then upper spins until the check's time is up
			want: []string{"node upper failed: the run ran out of time", "the check ran out of time after 3s"},
		},
		{
			name:     "no network",
			files:    with(map[string]string{"nodes/upper.ts": `export default async function run() { return { text: (await fetch("https://example.com")).status }; }`}),
			fixtures: 3, passed: 1,
			want: []string{"node upper failed: the node tried to reach example.com:443: the contract does not declare it (add it to contract.dependencies), and fixtures run with no network at all", "pipeline fixture"},
		},
		{
			name: "contract hosts are closed too",
			files: with(map[string]string{
				"workflow.yaml":  string(goodTentacle()["workflow.yaml"]) + "contract:\n  version: \"1\"\n  dependencies:\n    api:\n      protocol: https\n      host: example.com\n      port: 443\n",
				"nodes/upper.ts": `export default async function run(ctx) { return { text: (await ctx.fetch("api", "/")).status }; }`,
			}),
			fixtures: 3, passed: 1,
			want: []string{"node upper failed: the node tried to reach example.com:443: fixtures run with no network at all, so give a fixture only to what works offline", "pipeline fixture"},
		},
		{
			name:  "no fixtures",
			files: with(map[string]string{"tests/fixtures/upper.json": "", "tests/fixtures/count.json": "", "tests/fixtures/pipeline.json": ""}),
			want:  []string{"no fixtures: add tests/fixtures/<node>.json"},
		},
		{
			name: "bad fixtures do not stop the good ones",
			files: with(map[string]string{
				"tests/fixtures/count.json":  `{"input": {}, "expect": {}}`,
				"tests/fixtures/uppper.json": `{"input": {}}`,
			}),
			fixtures: 2, passed: 2,
			want: []string{`fixture tests/fixtures/count.json: json: unknown field "expect"`, `tests/fixtures/uppper.json: no node "uppper" in the workflow`},
		},
		{
			name:     "node does not load",
			files:    with(map[string]string{"nodes/count.ts": `export default async function run( {`}),
			fixtures: 3, passed: 1,
			want: []string{"node count: the file does not load: SyntaxError: Unexpected token `<eof>`. Expected identifier, string literal, numeric literal or [ for the computed key (at nodes/count.ts:1:37)"},
		},
		{
			name:  "path traversal",
			files: with(map[string]string{"../escape.ts": "x", "nodes/../../x.ts": "y"}),
			want:  []string{`the file path "../escape.ts" cannot be used`},
		},
		{
			name:  "too large",
			files: with(map[string]string{"data.json": strings.Repeat(" ", 1<<20)}),
			want:  []string{"more than the 900.0 KiB"},
		},
		{
			name:  "file used as a directory",
			files: with(map[string]string{"nodes": "x"}),
			want:  []string{"nodes/count.ts: nodes is a file"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r, err := Check(context.Background(), tt.files, CheckOptions{Deno: deno, Timeout: tt.timeout})
			if err != nil {
				t.Fatal(err)
			}
			if r.OK != tt.ok || r.Fixtures != tt.fixtures || r.Passed != tt.passed {
				t.Errorf("OK %v, %d of %d fixtures passed; want OK %v, %d of %d", r.OK, r.Passed, r.Fixtures, tt.ok, tt.passed, tt.fixtures)
			}
			if r.OK != (len(r.Problems) == 0) {
				t.Errorf("OK %v with %d problems", r.OK, len(r.Problems))
			}
			if len(r.Problems) > len(tt.want)+1 {
				t.Errorf("too many problems for one mistake")
			}
			for _, w := range tt.want {
				if !strings.Contains(strings.Join(r.Problems, "\n"), w) {
					t.Errorf("no problem says %q", w)
				}
			}
			for _, p := range r.Problems {
				if strings.Contains(p, os.TempDir()) || strings.Contains(p, "\n") || len(p) > 1000 {
					t.Errorf("problem should be one short line without scratch paths: %q", p)
				}
			}
			if t.Failed() {
				t.Logf("problems:\n%s", strings.Join(r.Problems, "\n"))
			}
		})
	}
}

func TestCheckErrors(t *testing.T) {
	deno := denoBinary(t)
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name string
		ctx  context.Context
		opts CheckOptions
		want error
	}{
		{"cancelled context", cancelled, CheckOptions{Deno: deno}, context.Canceled},
		{"no deno", context.Background(), CheckOptions{Deno: "/nonexistent/deno"}, ErrNoDeno},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := Check(tt.ctx, goodTentacle(), tt.opts)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v (report %+v)", err, tt.want, r)
			}
		})
	}
}

func TestCheckCancelledWhileRunning(t *testing.T) {
	files := with(map[string]string{"nodes/upper.ts": `export default async function run() { while (true) {} }`})
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := Check(ctx, files, CheckOptions{Deno: denoBinary(t)})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the caller's deadline", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("took %s to notice", d)
	}
}

// TestCheckScratchDir is not parallel: it points TMPDIR elsewhere.
func TestCheckScratchDir(t *testing.T) {
	deno := denoBinary(t)
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	r, err := Check(context.Background(), goodTentacle(), CheckOptions{Deno: deno})
	if err != nil || !r.OK {
		t.Fatalf("%+v, %v", r, err)
	}
	if left, _ := os.ReadDir(tmp); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}

	t.Setenv("TMPDIR", tmp+"/missing")
	if _, err := Check(context.Background(), goodTentacle(), CheckOptions{Deno: deno}); err == nil {
		t.Error("no error for a scratch directory that cannot be made")
	}
}
