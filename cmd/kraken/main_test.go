package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image/png"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// kraken runs the command in-process and returns its exit status and
// output, as a person at a terminal would see them.
func kraken(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	err := run(context.Background(), args, &out, &errb, os.Getenv)
	var ee exitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = int(ee)
	case errors.Is(err, errUsage):
		code = 2
		errb.WriteString(err.Error())
	default:
		code = 1
		errb.WriteString(err.Error())
	}
	return code, out.String(), errb.String()
}

func examplesDir(name string) string { return filepath.Join("..", "..", "examples", name) }

// copyDir copies a tentacle so a test can change it.
func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

func TestExamplesValidateAndPassTheirFixtures(t *testing.T) {
	entries, err := os.ReadDir(filepath.Join("..", "..", "examples"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		n++
		t.Run(e.Name(), func(t *testing.T) {
			code, out, errs := kraken(t, "tentacle", "validate", examplesDir(e.Name()))
			if code != 0 || !strings.Contains(out, "is valid") {
				t.Fatalf("validate: %d %s %s", code, out, errs)
			}
			code, out, errs = kraken(t, "tentacle", "test", examplesDir(e.Name()))
			if code != 0 || !strings.Contains(out, " 0 failed") {
				t.Fatalf("test: %d\n%s\n%s", code, out, errs)
			}
		})
	}
	if n < 4 {
		t.Fatalf("only %d examples", n)
	}
}

func TestRunFanOutExample(t *testing.T) {
	code, out, errs := kraken(t, "tentacle", "run", examplesDir("hello-fanout"), "--input", `{"name":"octo"}`)
	if code != 0 {
		t.Fatalf("%d %s %s", code, out, errs)
	}
	var res struct {
		Success bool
		Outputs map[string]json.RawMessage
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if !res.Success || len(res.Outputs) != 5 {
		t.Fatalf("result = %s", out)
	}
	if !strings.Contains(string(res.Outputs["shout"]), "OCTO") {
		t.Fatalf("shout = %s", res.Outputs["shout"])
	}
}

func TestRunFlakyExampleRetries(t *testing.T) {
	code, out, errs := kraken(t, "tentacle", "run", examplesDir("flaky-retry"))
	if code != 0 || !strings.Contains(out, `"attempts": 3`) {
		t.Fatalf("%d %s %s", code, out, errs)
	}
}

func TestRunFailingExample(t *testing.T) {
	code, out, _ := kraken(t, "tentacle", "run", examplesDir("failing-step"))
	if code != 1 || !strings.Contains(out, "order has no orderId") || strings.Contains(out, `"ship"`) {
		t.Fatalf("want a failed run that stops before ship: %d %s", code, out)
	}
}

func TestRunContractExampleAgainstALocalServer(t *testing.T) {
	var auth string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth = r.Header.Get("Authorization")
		if auth != "Bearer test-token-123" {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		fmt.Fprintf(w, `{"city":%q,"tempC":4,"summary":"sleet","extra":"dropped"}`, r.URL.Query().Get("city"))
	}))
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	dir := copyDir(t, examplesDir("weather-contract"))
	wfPath := filepath.Join(dir, "workflow.yaml")
	b, _ := os.ReadFile(wfPath)
	if !bytes.Contains(b, []byte("18090")) {
		t.Fatal("the example no longer declares port 18090")
	}
	_ = os.WriteFile(wfPath, bytes.ReplaceAll(b, []byte("18090"), []byte(u.Port())), 0o644)
	_ = os.WriteFile(filepath.Join(dir, ".secrets.yaml"), []byte("weather:\n  token: test-token-123\n"), 0o600)

	code, out, errs := kraken(t, "tentacle", "run", dir, "--input", `{"city":"Bergen"}`)
	if code != 0 || !strings.Contains(out, `"city": "Bergen"`) || !strings.Contains(out, "coat") {
		t.Fatalf("%d %s %s", code, out, errs)
	}
	if strings.Contains(errs, "test-token-123") {
		t.Fatal("the token leaked into the logs")
	}

	// Without the token the dependency refuses, and the error says so.
	_ = os.Remove(filepath.Join(dir, ".secrets.yaml"))
	code, out, _ = kraken(t, "tentacle", "run", dir)
	if code != 1 || !strings.Contains(out, "401") {
		t.Fatalf("%d %s", code, out)
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	dir := t.TempDir()
	_ = os.WriteFile(filepath.Join(dir, "workflow.yaml"), []byte(`name: Bad_Name
version: "1.0"
nodez: {}
nodes:
  a: {path: ../outside.ts}
edges:
  - {from: a, to: ghost}
`), 0o644)
	code, _, errs := kraken(t, "tentacle", "validate", dir)
	if code != 1 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{"workflow.yaml:1:", "workflow.yaml:3:", `did you mean "nodes"`, "workflow.yaml:5:", "inside the tentacle directory", "ghost", "problem(s) found"} {
		if !strings.Contains(errs, want) {
			t.Errorf("output lacks %q:\n%s", want, errs)
		}
	}
}

func TestVisualize(t *testing.T) {
	code, out, errs := kraken(t, "tentacle", "visualize", examplesDir("hello-fanout"))
	if code != 0 || !strings.Contains(out, "greet --> shout") {
		t.Fatalf("%d %s %s", code, out, errs)
	}
	pngPath := filepath.Join(t.TempDir(), "dag.png")
	if code, out, errs := kraken(t, "tentacle", "visualize", examplesDir("hello-fanout"), "--png", pngPath); code != 0 {
		t.Fatalf("%d %s %s", code, out, errs)
	}
	f, err := os.Open(pngPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil || img.Bounds().Dx() < 100 {
		t.Fatalf("not a picture: %v", err)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{{}, {"bogus"}, {"tentacle"}, {"tentacle", "frobnicate", "x"}, {"engine"}, {"tentacle", "run"}} {
		if code, _, _ := kraken(t, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
	code, _, errs := kraken(t, "tentacle", "test", examplesDir("hello-fanout"), "no-such-node")
	if code != 1 || !strings.Contains(errs, `no node "no-such-node"`) {
		t.Errorf("unknown node: %d %s", code, errs)
	}
	code, _, errs = kraken(t, "tentacle", "run", examplesDir("hello-fanout"), "--deno", "/nonexistent/deno")
	if code != 1 || !strings.Contains(errs, "make deno") && !strings.Contains(errs, "not an executable") {
		t.Errorf("missing deno: %d %s", code, errs)
	}
}

// TestEngineProcess runs the real binary: serve, run, then SIGTERM while
// a run is in flight; the run finishes and the process exits cleanly.
func TestEngineProcess(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "kraken")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	dir := t.TempDir()
	_ = os.MkdirAll(filepath.Join(dir, "nodes"), 0o755)
	_ = os.WriteFile(filepath.Join(dir, "workflow.yaml"), []byte("name: slow\nversion: \"1.0\"\nnodes:\n  wait: {path: ./nodes/wait.ts}\n"), 0o644)
	_ = os.WriteFile(filepath.Join(dir, "nodes", "wait.ts"), []byte(
		"export default async function run(ctx, input) { await new Promise((r) => setTimeout(r, input.ms ?? 0)); return { waited: input.ms ?? 0 }; }\n"), 0o644)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := exec.Command(bin, "engine", "--workflow", dir, "--port", fmt.Sprint(port), "--addr", "127.0.0.1")
	var logs bytes.Buffer
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(base + "/health")
		if err == nil && resp.StatusCode == 200 {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("engine never became healthy:\n%s", logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	got := make(chan string, 1)
	go func() {
		resp, err := http.Post(base+"/run", "application/json", strings.NewReader(`{"ms":700}`))
		if err != nil {
			got <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- fmt.Sprint(resp.StatusCode, " ", string(b))
	}()
	// Wait until the run is in flight, then ask the engine to stop.
	for {
		resp, err := http.Get(base + "/health?detail=1")
		if err != nil {
			t.Fatal(err)
		}
		var d map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&d)
		resp.Body.Close()
		if d["inFlight"] == 1.0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	if answer := <-got; !strings.HasPrefix(answer, "200 ") || !strings.Contains(answer, `"waited":700`) {
		t.Fatalf("run in flight got %s", answer)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("engine exit: %v\n%s", err, logs.String())
	}
}
