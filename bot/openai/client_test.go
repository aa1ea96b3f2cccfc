package openai

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kraken-ops/kraken/bot/chat"
	"github.com/kraken-ops/kraken/bot/llmtest"
)

const testKey = "sk-test-0123456789abcdef"

// harness is a Client talking to a scripted server, with its log kept and
// its waits between attempts recorded instead of slept through.
type harness struct {
	s     *llmtest.Server
	c     *Client
	log   *bytes.Buffer
	waits []time.Duration
}

func newHarness(t *testing.T, edit func(*Config)) *harness {
	t.Helper()
	h := &harness{s: llmtest.New(t), log: &bytes.Buffer{}}
	cfg := Config{
		BaseURL:    h.s.BaseURL(),
		APIKey:     testKey,
		Model:      "gpt-test",
		HTTPClient: h.s.Client(),
		Logger:     slog.New(slog.NewJSONHandler(h.log, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if edit != nil {
		edit(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.wait = func(ctx context.Context, d time.Duration) error {
		h.waits = append(h.waits, d)
		return ctx.Err()
	}
	h.c = c
	return h
}

func ask(text string) chat.ModelRequest {
	return chat.ModelRequest{Messages: []chat.Message{
		{Role: chat.RoleSystem, Content: "You are the Kraken."},
		{Role: chat.RoleUser, Content: text},
	}}
}

var deploySpec = chat.ToolSpec{
	Name:        "deploy",
	Description: "Deploy a tentacle.",
	Parameters:  json.RawMessage(`{"type":"object","properties":{"name":{"type":"string"}},"required":["name"]}`),
}

func TestTextReply(t *testing.T) {
	h := newHarness(t, nil)
	h.s.Reply("Hello, Ada.")
	req := ask("hi there")
	req.Tools = []chat.ToolSpec{deploySpec}
	req.MaxTokens = 300

	resp, err := h.c.Complete(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Content != "Hello, Ada." || len(resp.ToolCalls) != 0 {
		t.Errorf("response = %+v", resp)
	}
	if u := h.s.Usage(); resp.Usage.PromptTokens != u.PromptTokens || resp.Usage.CompletionTokens != u.CompletionTokens || u.PromptTokens == 0 || u.CompletionTokens == 0 {
		t.Errorf("usage = %+v, server answered %+v", resp.Usage, u)
	}

	r := h.s.LastRequest()
	if got := r.Header.Get("Authorization"); got != "Bearer "+testKey {
		t.Errorf("Authorization = %q", got)
	}
	if r.Model != "gpt-test" || r.MaxTokens != 300 || r.MaxCompletionTokens != 0 || r.Stream || r.Temperature != nil {
		t.Errorf("sent model %q max_tokens %d max_completion_tokens %d stream %v temperature %v",
			r.Model, r.MaxTokens, r.MaxCompletionTokens, r.Stream, r.Temperature)
	}
	if r.System() != "You are the Kraken." || r.LastUserMessage() != "hi there" || len(r.Messages) != 2 {
		t.Errorf("messages = %+v", r.Messages)
	}
	if !reflect.DeepEqual(r.ToolNames(), []string{"deploy"}) || r.Tools[0].Description != "Deploy a tentacle." {
		t.Errorf("tools = %+v", r.Tools)
	}
	if !jsonEqual(r.Tools[0].Parameters, deploySpec.Parameters) {
		t.Errorf("parameters = %s", r.Tools[0].Parameters)
	}
}

func TestToolCallRoundTrip(t *testing.T) {
	h := newHarness(t, nil)
	h.s.CallTools(
		llmtest.Call{Name: "deploy", Arguments: `{"name":"web"}`},
		llmtest.Call{Name: "status", Arguments: `{}`},
	)
	h.s.Handle(func(r llmtest.Request) llmtest.Response {
		return llmtest.Response{Content: "last said: " + r.LastToolResult()}
	})
	req := ask("deploy web and tell me how it is")
	req.Tools = []chat.ToolSpec{deploySpec, {Name: "status", Description: "Status."}}

	resp, err := h.c.Complete(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	want := []chat.ToolCall{
		{ID: "call_1", Name: "deploy", Arguments: `{"name":"web"}`},
		{ID: "call_2", Name: "status", Arguments: `{}`},
	}
	if resp.Content != "" || !reflect.DeepEqual(resp.ToolCalls, want) {
		t.Fatalf("response = %+v", resp)
	}
	// A tool without parameters is offered with an empty object schema:
	// the API refuses a null one.
	if got := h.s.LastRequest().Tools[1].Parameters; !jsonEqual(got, json.RawMessage(`{"type":"object","properties":{}}`)) {
		t.Errorf("empty parameters sent as %s", got)
	}

	req.Messages = append(req.Messages,
		chat.Message{Role: chat.RoleAssistant, ToolCalls: resp.ToolCalls},
		chat.Message{Role: chat.RoleTool, ToolCallID: "call_1", Content: "deployed web r3"},
		chat.Message{Role: chat.RoleTool, ToolCallID: "call_2", Content: ""},
	)
	resp, err = h.c.Complete(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Content != "last said: "+noOutput {
		t.Errorf("content = %q", resp.Content)
	}
	sent := h.s.LastRequest().Messages
	wantSent := []llmtest.Message{
		{Role: "assistant", ToolCalls: []llmtest.ToolCall{{ID: "call_1", Name: "deploy", Arguments: `{"name":"web"}`}, {ID: "call_2", Name: "status", Arguments: `{}`}}},
		{Role: "tool", ToolCallID: "call_1", Content: "deployed web r3"},
		{Role: "tool", ToolCallID: "call_2", Content: noOutput},
	}
	if !reflect.DeepEqual(sent[2:], wantSent) {
		t.Errorf("history sent = %+v\nwant %+v", sent[2:], wantSent)
	}
}

func TestMalformedArgumentsPassedThrough(t *testing.T) {
	h := newHarness(t, nil)
	h.s.Malformed()
	req := ask("deploy")
	req.Tools = []chat.ToolSpec{deploySpec}
	resp, err := h.c.Complete(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.ToolCalls) != 1 || resp.ToolCalls[0].Name != "deploy" || resp.ToolCalls[0].Arguments != llmtest.MalformedArguments {
		t.Errorf("tool calls = %+v, want the arguments as written", resp.ToolCalls)
	}
}

func TestRetries(t *testing.T) {
	rateLimited := func(header string) func(*llmtest.Server) {
		return func(s *llmtest.Server) {
			s.Handle(func(llmtest.Request) llmtest.Response {
				return llmtest.Response{Status: 429, Header: http.Header{"Retry-After": {header}}}
			})
		}
	}
	tests := []struct {
		name     string
		retries  int
		script   []func(*llmtest.Server)
		wantErr  error  // nil: the answer is "ok"
		errHas   string // in the error's text
		requests int
		waits    []time.Duration // exact; nil with backoff set checks bounds
		backoff  bool
	}{
		{
			name:     "500 then success",
			script:   []func(*llmtest.Server){fail(500), reply("ok")},
			requests: 2, backoff: true,
		},
		{
			name:     "429 with retry-after-ms then success",
			script:   []func(*llmtest.Server){func(s *llmtest.Server) { s.RateLimit(1500 * time.Millisecond) }, reply("ok")},
			requests: 2, waits: []time.Duration{1500 * time.Millisecond},
		},
		{
			name:     "429 with Retry-After seconds then success",
			script:   []func(*llmtest.Server){rateLimited("3"), reply("ok")},
			requests: 2, waits: []time.Duration{3 * time.Second},
		},
		{
			name:     "429 asking for an hour waits the cap",
			script:   []func(*llmtest.Server){rateLimited("3600"), reply("ok")},
			requests: 2, waits: []time.Duration{maxRetryAfter},
		},
		{
			name:     "429 without Retry-After backs off",
			script:   []func(*llmtest.Server){fail(429), reply("ok")},
			requests: 2, backoff: true,
		},
		{
			name:    "persistent 500",
			script:  []func(*llmtest.Server){fail(500), fail(502), fail(503)},
			wantErr: chat.ErrModelUnavailable, errHas: "status 503: Service Unavailable (after 3 attempts)",
			requests: 3, backoff: true,
		},
		{
			name:    "persistent 429",
			script:  []func(*llmtest.Server){fail(429), fail(429), fail(429)},
			wantErr: chat.ErrModelUnavailable, errHas: "status 429",
			requests: 3, backoff: true,
		},
		{
			name:     "more retries",
			retries:  4,
			script:   []func(*llmtest.Server){fail(500), fail(500), fail(500), fail(500), reply("ok")},
			requests: 5, backoff: true,
		},
		{
			name:    "no retries",
			retries: -1,
			script:  []func(*llmtest.Server){fail(500)},
			wantErr: chat.ErrModelUnavailable, errHas: "status 500",
			requests: 1,
		},
		{
			name:    "400 is not retried",
			script:  []func(*llmtest.Server){fail(400)},
			wantErr: chat.ErrModelUnavailable, errHas: "status 400: Bad Request",
			requests: 1,
		},
		{
			name:    "401 is not retried",
			script:  []func(*llmtest.Server){fail(401)},
			wantErr: chat.ErrModelUnavailable, errHas: "status 401",
			requests: 1,
		},
		{
			name:    "404 is not retried",
			script:  []func(*llmtest.Server){fail(404)},
			wantErr: chat.ErrModelUnavailable, errHas: "status 404",
			requests: 1,
		},
		{
			name:    "garbage is not retried",
			script:  []func(*llmtest.Server){func(s *llmtest.Server) { s.Garbage() }},
			wantErr: chat.ErrModelUnavailable, errHas: "unreadable answer",
			requests: 1,
		},
		{
			name: "no choices is unreadable",
			script: []func(*llmtest.Server){func(s *llmtest.Server) {
				s.Handle(func(llmtest.Request) llmtest.Response {
					return llmtest.Response{Body: []byte(`{"id":"x","choices":[],"usage":{}}`)}
				})
			}},
			wantErr: chat.ErrModelUnavailable, errHas: "unreadable answer",
			requests: 1,
		},
		{
			name: "error page from a proxy",
			script: []func(*llmtest.Server){func(s *llmtest.Server) {
				s.Handle(func(llmtest.Request) llmtest.Response {
					return llmtest.Response{Status: 502, Body: []byte("<html>bad gateway</html>")}
				})
			}, reply("ok")},
			requests: 2, backoff: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, func(c *Config) { c.Retries = tt.retries })
			for _, step := range tt.script {
				step(h.s)
			}
			resp, err := h.c.Complete(context.Background(), ask("hi"))
			if tt.wantErr == nil {
				if err != nil || resp.Content != "ok" {
					t.Fatalf("Complete = %+v, %v; want ok", resp, err)
				}
			} else {
				if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.errHas) {
					t.Fatalf("err = %v; want %v mentioning %q", err, tt.wantErr, tt.errHas)
				}
				if errors.Is(err, chat.ErrModelTimeout) {
					t.Errorf("err is both unavailable and a timeout")
				}
			}
			if n := len(h.s.Requests()); n != tt.requests {
				t.Errorf("%d requests, want %d", n, tt.requests)
			}
			if len(h.waits) != tt.requests-1 {
				t.Errorf("waited %d times (%v), want %d", len(h.waits), h.waits, tt.requests-1)
			}
			if tt.waits != nil && !reflect.DeepEqual(h.waits, tt.waits) {
				t.Errorf("waits = %v, want %v", h.waits, tt.waits)
			}
			if tt.backoff {
				for i, d := range h.waits {
					hi := min(baseBackoff<<i, maxBackoff)
					if d < hi/2 || d > hi {
						t.Errorf("wait %d = %v, want in [%v, %v]", i, d, hi/2, hi)
					}
				}
			}
		})
	}
}

func fail(status int) func(*llmtest.Server) { return func(s *llmtest.Server) { s.Fail(status) } }
func reply(text string) func(*llmtest.Server) {
	return func(s *llmtest.Server) { s.Reply(text) }
}

// The real sleep between attempts, once, to see the retry through the
// whole path.
func TestRetryWaitsForReal(t *testing.T) {
	h := newHarness(t, nil)
	h.c.wait = sleep
	h.s.RateLimit(50 * time.Millisecond)
	h.s.Reply("ok")
	start := time.Now()
	if _, err := h.c.Complete(context.Background(), ask("hi")); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Errorf("answered after %v, before the server's 50ms Retry-After", d)
	}
}

func TestHangTimesOut(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Timeout = 200 * time.Millisecond })
	h.s.Hang()
	start := time.Now()
	_, err := h.c.Complete(context.Background(), ask("hi"))
	took := time.Since(start)
	if !errors.Is(err, chat.ErrModelTimeout) || errors.Is(err, chat.ErrModelUnavailable) {
		t.Fatalf("err = %v, want only ErrModelTimeout", err)
	}
	if took < 200*time.Millisecond || took > 2*time.Second {
		t.Errorf("gave up after %v, want about the 200ms timeout", took)
	}
	// A timed-out attempt is not retried: someone is waiting.
	if n := len(h.s.Requests()); n != 1 {
		t.Errorf("%d requests", n)
	}
}

func TestCallerDeadline(t *testing.T) {
	h := newHarness(t, nil) // a 30s attempt timeout: the caller's is shorter
	h.s.Hang()
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	_, err := h.c.Complete(ctx, ask("hi"))
	if !errors.Is(err, chat.ErrModelTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want ErrModelTimeout and the deadline", err)
	}
}

func TestCallerCancels(t *testing.T) {
	h := newHarness(t, nil)
	h.s.Hang()
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	_, err := h.c.Complete(ctx, ask("hi"))
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
	if errors.Is(err, chat.ErrModelTimeout) || errors.Is(err, chat.ErrModelUnavailable) {
		t.Errorf("err = %v: a cancellation is neither the model's timeout nor its failure", err)
	}
}

// A wait the caller's deadline would cut short is not started.
func TestNoTimeLeftToRetry(t *testing.T) {
	h := newHarness(t, nil)
	h.s.RateLimit(5 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err := h.c.Complete(ctx, ask("hi"))
	if !errors.Is(err, chat.ErrModelUnavailable) || !strings.Contains(err.Error(), "no time left to retry in 5s") {
		t.Errorf("err = %v", err)
	}
	if len(h.waits) != 0 || len(h.s.Requests()) != 1 {
		t.Errorf("waits %v, requests %d", h.waits, len(h.s.Requests()))
	}
}

func TestCanceledWhileWaiting(t *testing.T) {
	h := newHarness(t, nil)
	h.s.Fail(503)
	ctx, cancel := context.WithCancel(context.Background())
	h.c.wait = func(context.Context, time.Duration) error { cancel(); return ctx.Err() }
	_, err := h.c.Complete(ctx, ask("hi"))
	if !errors.Is(err, chat.ErrModelUnavailable) || !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want the 503 and the cancellation", err)
	}
}

// flaky fails its first n round trips as a dropped connection would.
type flaky struct {
	n    atomic.Int32
	next http.RoundTripper
}

func (f *flaky) RoundTrip(r *http.Request) (*http.Response, error) {
	if f.n.Add(-1) >= 0 {
		return nil, errors.New("connection reset by peer")
	}
	return f.next.RoundTrip(r)
}

func TestConnectionErrors(t *testing.T) {
	t.Run("retried", func(t *testing.T) {
		tr := &flaky{}
		tr.n.Store(2)
		h := newHarness(t, nil)
		tr.next = h.s.Client().Transport
		h.c = mustNew(t, Config{BaseURL: h.s.BaseURL(), Model: "m", HTTPClient: &http.Client{Transport: tr}}, h)
		h.s.Reply("ok")
		resp, err := h.c.Complete(context.Background(), ask("hi"))
		if err != nil || resp.Content != "ok" {
			t.Fatalf("Complete = %+v, %v", resp, err)
		}
		if len(h.waits) != 2 {
			t.Errorf("waits = %v", h.waits)
		}
	})
	t.Run("nobody listening", func(t *testing.T) {
		h := newHarness(t, nil)
		h.c = mustNew(t, Config{BaseURL: "http://127.0.0.1:1/v1", Model: "m"}, h)
		_, err := h.c.Complete(context.Background(), ask("hi"))
		if !errors.Is(err, chat.ErrModelUnavailable) || !strings.Contains(err.Error(), "after 3 attempts") {
			t.Errorf("err = %v", err)
		}
	})
}

func mustNew(t *testing.T, cfg Config, h *harness) *Client {
	t.Helper()
	cfg.Logger = h.c.log
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.wait = h.c.wait
	return c
}

func TestReasoningModelsGetMaxCompletionTokens(t *testing.T) {
	for _, tt := range []struct {
		model                    string
		maxTokens, maxCompletion int
	}{
		{"gpt-test", 100, 0},
		{"llama3.1:8b", 100, 0},
		{"o3-mini", 0, 100},
		{"gpt-5-mini", 0, 100},
	} {
		t.Run(tt.model, func(t *testing.T) {
			h := newHarness(t, func(c *Config) { c.Model = tt.model })
			h.s.Reply("ok")
			req := ask("hi")
			req.MaxTokens = 100
			if _, err := h.c.Complete(context.Background(), req); err != nil {
				t.Fatal(err)
			}
			r := h.s.LastRequest()
			if r.Model != tt.model || r.MaxTokens != tt.maxTokens || r.MaxCompletionTokens != tt.maxCompletion {
				t.Errorf("sent model %q max_tokens %d max_completion_tokens %d", r.Model, r.MaxTokens, r.MaxCompletionTokens)
			}
		})
	}
}

func TestTemperature(t *testing.T) {
	zero, warm := float32(0), float32(0.7)
	for _, tt := range []struct {
		name string
		set  *float32
		want *float64 // nil: not sent
	}{
		{"unset", nil, nil},
		{"zero is sent", &zero, ptr(0.0)},
		{"warm", &warm, ptr(0.7)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, func(c *Config) { c.Temperature = tt.set })
			h.s.Reply("ok")
			if _, err := h.c.Complete(context.Background(), ask("hi")); err != nil {
				t.Fatal(err)
			}
			got := h.s.LastRequest().Temperature
			switch {
			case tt.want == nil && got != nil:
				t.Errorf("temperature %v sent", *got)
			case tt.want != nil && (got == nil || *got-*tt.want > 1e-6 || *tt.want-*got > 1e-6):
				t.Errorf("temperature = %v, want %v", got, *tt.want)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestBaseURL(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.BaseURL += "/" })
	h.s.Reply("ok")
	if _, err := h.c.Complete(context.Background(), ask("hi")); err != nil {
		t.Fatal(err)
	}
	if p := h.s.LastRequest().Path; p != "/v1/chat/completions" {
		t.Errorf("path = %q", p)
	}
}

func TestNoKeyNoAuthorization(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.APIKey = "" })
	h.s.Reply("ok")
	if _, err := h.c.Complete(context.Background(), ask("hi")); err != nil {
		t.Fatal(err)
	}
	if got, ok := h.s.LastRequest().Header["Authorization"]; ok {
		t.Errorf("Authorization %q sent without a key", got)
	}
}

// The log says how each attempt went and nothing of what was said, nor the
// key; an error the API words with the key in it comes back without it.
func TestLogsAndErrorsKeepSecrets(t *testing.T) {
	h := newHarness(t, nil)
	h.s.Fail(500)
	h.s.CallTools(llmtest.Call{Name: "deploy", Arguments: `{"name":"secret-project-tentacle"}`})
	h.s.Handle(func(llmtest.Request) llmtest.Response {
		return llmtest.Response{Status: 401, Error: "Incorrect API key provided: " + testKey + ". You can find your API key at …"}
	})
	req := ask("my password is hunter2, please deploy")
	req.Tools = []chat.ToolSpec{deploySpec}
	if _, err := h.c.Complete(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	_, err := h.c.Complete(context.Background(), req)
	if !errors.Is(err, chat.ErrModelUnavailable) || strings.Contains(err.Error(), testKey) || !strings.Contains(err.Error(), "[redacted]") {
		t.Errorf("err = %v, want the key redacted", err)
	}

	logged := h.log.String()
	for _, secret := range []string{testKey, "hunter2", "You are the Kraken", "secret-project-tentacle", "Incorrect API key", "Deploy a tentacle"} {
		if strings.Contains(logged, secret) {
			t.Errorf("log holds %q:\n%s", secret, logged)
		}
	}
	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(logged), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		lines = append(lines, m)
	}
	if len(lines) != 3 {
		t.Fatalf("%d log lines, want one per attempt:\n%s", len(lines), logged)
	}
	for i, want := range []map[string]any{
		{"level": "WARN", "attempt": 1.0, "status": 500.0, "reason": "server error", "retry": true},
		{"level": "INFO", "attempt": 2.0, "status": 200.0, "tool_calls": 1.0, "finish_reason": "tool_calls"},
		{"level": "WARN", "attempt": 1.0, "status": 401.0, "reason": "refused", "retry": false},
	} {
		for k, v := range want {
			if lines[i][k] != v {
				t.Errorf("line %d: %s = %v, want %v", i, k, lines[i][k], v)
			}
		}
		if _, ok := lines[i]["duration"]; !ok {
			t.Errorf("line %d has no duration", i)
		}
	}
	if pt, _ := lines[1]["prompt_tokens"].(float64); pt <= 0 {
		t.Errorf("prompt tokens not logged: %v", lines[1])
	}
}

func TestNew(t *testing.T) {
	for _, tt := range []struct {
		name    string
		cfg     Config
		wantErr bool
		timeout time.Duration
		retries int
	}{
		{"no model", Config{}, true, 0, 0},
		{"blank model", Config{Model: " "}, true, 0, 0},
		{"negative timeout", Config{Model: "m", Timeout: -time.Second}, true, 0, 0},
		{"defaults", Config{Model: "m"}, false, DefaultTimeout, DefaultRetries},
		{"set", Config{Model: "m", Timeout: time.Second, Retries: 5}, false, time.Second, 5},
		{"no retries", Config{Model: "m", Retries: -1}, false, DefaultTimeout, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(tt.cfg)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v", err)
			}
			if err != nil {
				return
			}
			if c.timeout != tt.timeout || c.retries != tt.retries {
				t.Errorf("timeout %v retries %d", c.timeout, c.retries)
			}
		})
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		name   string
		header http.Header
		want   time.Duration
	}{
		{"none", http.Header{}, 0},
		{"nil", nil, 0},
		{"seconds", http.Header{"Retry-After": {"7"}}, 7 * time.Second},
		{"fractional seconds", http.Header{"Retry-After": {"0.5"}}, 500 * time.Millisecond},
		{"milliseconds win", http.Header{"Retry-After": {"2"}, "Retry-After-Ms": {"1234"}}, 1234 * time.Millisecond},
		{"date", http.Header{"Retry-After": {now.Add(4 * time.Second).Format(http.TimeFormat)}}, 4 * time.Second},
		{"date past", http.Header{"Retry-After": {now.Add(-time.Hour).Format(http.TimeFormat)}}, 0},
		{"zero", http.Header{"Retry-After": {"0"}}, 0},
		{"negative", http.Header{"Retry-After": {"-3"}}, 0},
		{"nonsense", http.Header{"Retry-After": {"soon"}}, 0},
		{"NaN", http.Header{"Retry-After": {"NaN"}}, 0},
		{"enormous", http.Header{"Retry-After": {"1e300"}}, 24 * time.Hour},
		{"enormous ms", http.Header{"Retry-After-Ms": {"1e300"}}, 24 * time.Hour},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := retryAfter(tt.header, now); got != tt.want {
				t.Errorf("retryAfter = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	for attempt := 1; attempt <= 10; attempt++ {
		hi := min(baseBackoff<<(attempt-1), maxBackoff)
		for range 100 {
			if d := backoff(attempt, 0); d < hi/2 || d > hi {
				t.Fatalf("backoff(%d) = %v, want in [%v, %v]", attempt, d, hi/2, hi)
			}
		}
	}
	if d := backoff(1, time.Minute); d != maxRetryAfter {
		t.Errorf("a minute's Retry-After waits %v, want the cap", d)
	}
	if d := backoff(1, 2*time.Second); d != 2*time.Second {
		t.Errorf("Retry-After 2s waits %v", d)
	}
}

func jsonEqual(a, b json.RawMessage) bool {
	var x, y any
	return json.Unmarshal(a, &x) == nil && json.Unmarshal(b, &y) == nil && reflect.DeepEqual(x, y)
}

func TestRefusalIsTheAnswer(t *testing.T) {
	h := newHarness(t, nil)
	h.s.Handle(func(llmtest.Request) llmtest.Response {
		return llmtest.Response{Body: []byte(`{"id":"x","object":"chat.completion","model":"m","choices":[{"index":0,
			"message":{"role":"assistant","content":null,"refusal":"I can't help with that."},"finish_reason":"stop"}],
			"usage":{"prompt_tokens":9,"completion_tokens":6,"total_tokens":15}}`)}
	})
	resp, err := h.c.Complete(context.Background(), ask("hi"))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Content != "I can't help with that." || resp.Usage != (chat.Usage{PromptTokens: 9, CompletionTokens: 6}) {
		t.Errorf("response = %+v", resp)
	}
}

// A request go-openai refuses before sending (this model takes no tools on
// this API) is not retried: it would be refused again.
func TestRefusedBeforeSending(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Model = "gpt-6-sol" })
	req := ask("hi")
	req.Tools = []chat.ToolSpec{deploySpec}
	_, err := h.c.Complete(context.Background(), req)
	if !errors.Is(err, chat.ErrModelUnavailable) || !strings.Contains(err.Error(), "request not sent") {
		t.Errorf("err = %v", err)
	}
	if len(h.s.Requests()) != 0 || len(h.waits) != 0 {
		t.Errorf("requests %d, waits %v", len(h.s.Requests()), h.waits)
	}
}
