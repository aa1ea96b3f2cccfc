package engine

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"
)

func newTestServer(t *testing.T, r RunnerFunc) *httptest.Server {
	t.Helper()
	e := mustExec(t, graph("a->b"), r)
	srv := httptest.NewServer(NewServer(e, nil, func() map[string]string { return map[string]string{"c": "c: does not load"} }).Handler())
	t.Cleanup(srv.Close)
	return srv
}

func decodeBody(t *testing.T, resp *http.Response) map[string]any {
	t.Helper()
	defer resp.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestServerRun(t *testing.T) {
	srv := newTestServer(t, func(ctx context.Context, c NodeCall) (json.RawMessage, error) {
		if strings.Contains(string(c.Input), "fail") {
			return nil, &NodeError{Kind: KindThrow, Msg: "asked to fail"}
		}
		return c.Input, nil
	})
	tests := []struct {
		name, method, body string
		status             int
		check              func(t *testing.T, m map[string]any)
	}{
		{"post with input", "POST", `{"x":1}`, 200, func(t *testing.T, m map[string]any) {
			if m["success"] != true || m["outputs"].(map[string]any)["b"].(map[string]any)["x"] != 1.0 {
				t.Errorf("body = %v", m)
			}
		}},
		{"empty post is {}", "POST", ``, 200, func(t *testing.T, m map[string]any) {
			if len(m["outputs"].(map[string]any)["b"].(map[string]any)) != 0 {
				t.Errorf("body = %v", m)
			}
		}},
		{"get runs too", "GET", ``, 200, func(t *testing.T, m map[string]any) {
			if m["success"] != true {
				t.Errorf("body = %v", m)
			}
		}},
		{"failure is 500 with the same shape", "POST", `"fail"`, 500, func(t *testing.T, m map[string]any) {
			if m["success"] != false || m["errors"].(map[string]any)["a"] != "asked to fail" {
				t.Errorf("body = %v", m)
			}
			if _, ok := m["timing"]; !ok {
				t.Errorf("no timing: %v", m)
			}
		}},
		{"too large", "POST", `"` + strings.Repeat("x", maxInput) + `"`, 413, func(t *testing.T, m map[string]any) {
			if !strings.Contains(m["error"].(string), "larger than 8 MiB") {
				t.Errorf("body = %v", m)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, srv.URL+"/run", strings.NewReader(tt.body))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.status {
				t.Fatalf("status = %d, want %d", resp.StatusCode, tt.status)
			}
			tt.check(t, decodeBody(t, resp))
		})
	}

	resp, _ := http.Get(srv.URL + "/health")
	if m := decodeBody(t, resp); len(m) != 1 || m["status"] != "ok" {
		t.Fatalf("health = %v", m)
	}
	resp, _ = http.Get(srv.URL + "/health?detail=1")
	m := decodeBody(t, resp)
	if m["totalEvents"] != 4.0 || m["errorCount"] != 1.0 || m["errorRate"] != 0.25 || m["lastRunFailed"] != true ||
		m["lastError"] != "a: asked to fail" || m["loadErrors"] == nil || m["inFlight"] != 0.0 || m["pid"] != float64(os.Getpid()) {
		t.Fatalf("health detail = %v", m)
	}
	resp, _ = http.Post(srv.URL+"/health", "", nil)
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST /health = %d", resp.StatusCode)
	}
}

func TestServerShutdownFinishesRunsInFlight(t *testing.T) {
	started := make(chan struct{}, 1)
	e := mustExec(t, graph("slow"), func(ctx context.Context, c NodeCall) (json.RawMessage, error) {
		started <- struct{}{}
		select {
		case <-time.After(300 * time.Millisecond):
			return json.RawMessage(`"finished"`), nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	})
	s := NewServer(e, nil, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, ln, 5*time.Second) }()

	type answer struct {
		status int
		body   string
	}
	got := make(chan answer, 1)
	go func() {
		resp, err := http.Post("http://"+ln.Addr().String()+"/run", "application/json", nil)
		if err != nil {
			got <- answer{body: err.Error()}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- answer{resp.StatusCode, string(b)}
	}()
	<-started
	stop() // SIGTERM, as far as the server knows
	a := <-got
	if a.status != 200 || !strings.Contains(a.body, `"finished"`) {
		t.Fatalf("run in flight got %d %s", a.status, a.body)
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if _, err := http.Post("http://"+ln.Addr().String()+"/run", "", nil); err == nil {
		t.Fatal("server still takes runs after shutdown")
	}
}

func TestServerShutdownCancelsRunsPastGrace(t *testing.T) {
	started := make(chan struct{}, 1)
	e := mustExec(t, graph("stuck"), func(ctx context.Context, c NodeCall) (json.RawMessage, error) {
		started <- struct{}{}
		<-ctx.Done()
		return nil, ctx.Err()
	})
	s := NewServer(e, nil, nil)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, ln, 100*time.Millisecond) }()
	got := make(chan string, 1)
	go func() {
		resp, err := http.Post("http://"+ln.Addr().String()+"/run", "", nil)
		if err != nil {
			got <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- string(b)
	}()
	<-started
	stop()
	if err := <-served; err == nil || !strings.Contains(err.Error(), "cancelled") {
		t.Fatalf("Serve = %v, want it to report cancelled runs", err)
	}
	if body := <-got; !strings.Contains(body, "the run was cancelled") {
		t.Fatalf("caller got %s", body)
	}
}
