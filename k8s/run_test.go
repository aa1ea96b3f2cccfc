package k8s

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kraken-ops/kraken/engine"
	"github.com/kraken-ops/kraken/tentacle"
)

// TestRunWatch: a run followed as it goes, through the engine's own
// server (its executor running nodes in process), and the ways a stream
// can go wrong.
func TestRunWatch(t *testing.T) {
	wf := &tentacle.Workflow{Name: "echo", NodeIDs: []string{"fetch", "notify"},
		Nodes: map[string]tentacle.Node{"fetch": {ID: "fetch", Path: "nodes/fetch.ts"}, "notify": {ID: "notify", Path: "nodes/notify.ts"}},
		Edges: []tentacle.Edge{{From: "fetch", To: "notify"}}}
	exec, err := engine.NewExecutor(wf, engine.RunnerFunc(func(ctx context.Context, c engine.NodeCall) (json.RawMessage, error) {
		if c.Node == "notify" && strings.Contains(string(c.Input), "fail") {
			return nil, &engine.NodeError{Kind: engine.KindLoad, Msg: "cannot notify"}
		}
		return c.Input, nil
	}))
	must(t, err)
	real := engine.NewServer(exec, nil, nil).Handler()

	var mu sync.Mutex
	var handler http.Handler
	var accept string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		h := handler
		accept = r.Header.Get("Accept")
		mu.Unlock()
		h.ServeHTTP(w, r)
	}))
	defer srv.Close()
	toEngine := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "tcp", srv.Listener.Addr().String())
	}}
	h := newHarness(t, harnessOptions{transport: toEngine, runTimeout: 300 * time.Millisecond})
	_, err = h.tc.Deploy(h.ctx, h.ns, loadBundle(t, echoFiles("echo", "hello")), prov)
	must(t, err)

	streaming := func(lines ...string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", engine.StreamType)
			for _, l := range lines {
				io.WriteString(w, l+"\n")
				w.(http.Flusher).Flush()
			}
		})
	}
	node := `{"event":"node","node":"fetch","state":"started","attempt":1,"durationMs":0}`
	tests := []struct {
		name     string
		handler  http.Handler
		input    string
		progress []string
		result   string // a substring
		wantErr  error
		wantMsg  string
		timeout  time.Duration // the run's, when not 300ms
	}{
		{name: "streamed", handler: real, input: `{"a":1}`,
			progress: []string{"fetch started 1", "fetch succeeded 1", "notify started 1", "notify succeeded 1"},
			result:   `"success":true`},
		{name: "streamed failure is a result", handler: real, input: `"fail"`,
			progress: []string{"fetch started 1", "fetch succeeded 1", "notify started 1", "notify failed 1 cannot notify"},
			result:   `"errors":{"notify":"cannot notify"}`},
		{name: "an engine that does not stream", handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(500)
			io.WriteString(w, `{"success":false,"errors":{"n":"boom"}}`)
		}), result: `{"success":false,"errors":{"n":"boom"}}`},
		{name: "cut before the result", handler: streaming(node), progress: []string{"fetch started 1"},
			wantErr: ErrNotAnswering, wantMsg: "stopped answering before the run ended"},
		{name: "not a stream", handler: streaming(node, "<html>"), progress: []string{"fetch started 1"},
			wantErr: engine.ErrNotAStream, wantMsg: "<html>"},
		{name: "too large", handler: streaming(`{"event":"log","line":"` + strings.Repeat("x", maxRunResult) + `"}`),
			wantMsg: "the result is larger than 16 MiB", timeout: time.Minute},
		{name: "no result in time", handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", engine.StreamType)
			io.WriteString(w, node+"\n")
			w.(http.Flusher).Flush()
			<-r.Context().Done()
		}), progress: []string{"fetch started 1"}, wantErr: ErrNotAnswering, wantMsg: "no result within 300ms"},
		{name: "redirect", handler: http.RedirectHandler("http://other.other-enclave.svc:8080/run", http.StatusTemporaryRedirect),
			wantMsg: "which is refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mu.Lock()
			handler = tt.handler
			mu.Unlock()
			h.tc.c.cfg.RunTimeout = cmp.Or(tt.timeout, 300*time.Millisecond)
			var got []string
			out, err := h.tc.RunWatch(h.ctx, h.ns, "echo", json.RawMessage(tt.input), func(p tentacle.NodeProgress) {
				s := fmt.Sprintf("%s %s %d", p.Node, p.State, p.Attempt)
				if p.Error != "" {
					s += " " + p.Error
				}
				got = append(got, s)
			})
			if !reflect.DeepEqual(got, tt.progress) {
				t.Errorf("progress %q, want %q", got, tt.progress)
			}
			if tt.result != "" {
				if err != nil || !strings.Contains(string(out), tt.result) || strings.Contains(string(out), `"event"`) {
					t.Fatalf("RunWatch = %s, %v; want %s", out, err, tt.result)
				}
				return
			}
			if err == nil || tt.wantErr != nil && !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Fatalf("err = %v, want %v containing %q", err, tt.wantErr, tt.wantMsg)
			}
		})
	}
	mu.Lock()
	if !strings.HasPrefix(accept, engine.StreamType) {
		t.Errorf("RunWatch asked with Accept %q", accept)
	}
	handler = real
	mu.Unlock()
	// Run asks for the plain answer, which the seeds' engines give.
	out, err := h.tc.Run(h.ctx, h.ns, "echo", nil)
	mu.Lock()
	defer mu.Unlock()
	if err != nil || !strings.Contains(string(out), `"success":true`) || accept != "" {
		t.Errorf("Run = %s, %v with Accept %q", out, err, accept)
	}
}

// TestRunWatchOnTheCluster follows a run of a real engine in its pod.
func TestRunWatchOnTheCluster(t *testing.T) {
	h := newHarness(t, harnessOptions{kubelet: true})
	_, err := h.tc.Deploy(h.ctx, h.ns, loadBundle(t, echoFiles("echo", "hello")), prov)
	must(t, err)
	if st, err := h.tc.WaitReady(h.ctx, h.ns, "echo"); err != nil {
		t.Fatalf("WaitReady: %v (status %+v)", err, st)
	}
	var got []tentacle.NodeProgress
	out, err := h.tc.RunWatch(h.ctx, h.ns, "echo", json.RawMessage(`{"name":"octopus"}`), func(p tentacle.NodeProgress) { got = append(got, p) })
	if err != nil {
		t.Fatalf("RunWatch: %v", err)
	}
	var res engine.Result
	if err := json.Unmarshal(out, &res); err != nil || !res.Success || !strings.Contains(string(res.Outputs["greet"]), "hello, octopus") {
		t.Fatalf("result %s (%v)", out, err)
	}
	if len(got) != 2 || got[0].Node != "greet" || got[0].State != tentacle.NodeStarted || got[1].State != tentacle.NodeSucceeded || got[1].Attempt != 1 {
		t.Fatalf("progress %+v", got)
	}
}
