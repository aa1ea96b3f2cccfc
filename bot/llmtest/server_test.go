package llmtest_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	openai "github.com/sashabaranov/go-openai"

	"github.com/kraken-ops/kraken/bot/llmtest"
)

// recordingT stands in for the test a Server reports to, so the failures it
// reports can be checked instead of failing this test.
type recordingT struct {
	testing.TB
	mu   sync.Mutex
	errs []string
}

func (r *recordingT) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

func (r *recordingT) errors() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.errs...)
}

func client(s *llmtest.Server) *openai.Client {
	cfg := openai.DefaultConfig("sk-test-key")
	cfg.BaseURL = s.BaseURL()
	cfg.HTTPClient = s.Client()
	return openai.NewClientWithConfig(cfg)
}

var deployTool = openai.Tool{Type: openai.ToolTypeFunction, Function: &openai.FunctionDefinition{
	Name:        "deploy",
	Description: "Deploy a tentacle.",
	Parameters:  json.RawMessage(`{"type":"object","properties":{"name":{"type":"string"}},"required":["name"]}`),
}}

func TestReply(t *testing.T) {
	s := llmtest.New(t)
	s.Reply("Hello, Ada.")

	resp, err := client(s).CreateChatCompletion(context.Background(), openai.ChatCompletionRequest{
		Model: "gpt-test",
		Messages: []openai.ChatCompletionMessage{
			{Role: "system", Content: "You are the Kraken."},
			{Role: "user", Content: "hi there"},
		},
		Tools:     []openai.Tool{deployTool},
		MaxTokens: 200,
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.Choices[0].Message.Content; got != "Hello, Ada." {
		t.Errorf("content = %q", got)
	}
	if got := resp.Choices[0].FinishReason; got != openai.FinishReasonStop {
		t.Errorf("finish reason = %q", got)
	}
	if resp.Usage.PromptTokens <= 0 || resp.Usage.CompletionTokens != llmtest.Tokens("Hello, Ada.") {
		t.Errorf("usage = %+v", resp.Usage)
	}
	if resp.Usage.TotalTokens != resp.Usage.PromptTokens+resp.Usage.CompletionTokens {
		t.Errorf("total tokens = %d, want the sum", resp.Usage.TotalTokens)
	}
	if got := s.Usage(); got.PromptTokens != resp.Usage.PromptTokens || got.CompletionTokens != resp.Usage.CompletionTokens {
		t.Errorf("server usage = %+v, answered %+v", got, resp.Usage)
	}

	r := s.LastRequest()
	if r.Path != "/v1/chat/completions" || r.Model != "gpt-test" || r.MaxTokens != 200 || r.Stream {
		t.Errorf("request = path %q model %q max_tokens %d stream %v", r.Path, r.Model, r.MaxTokens, r.Stream)
	}
	if got := r.Header.Get("Authorization"); got != "Bearer sk-test-key" {
		t.Errorf("Authorization = %q", got)
	}
	if r.LastUserMessage() != "hi there" || r.System() != "You are the Kraken." {
		t.Errorf("user %q, system %q", r.LastUserMessage(), r.System())
	}
	if !reflect.DeepEqual(r.ToolNames(), []string{"deploy"}) {
		t.Errorf("tools = %v", r.ToolNames())
	}
	if !strings.Contains(string(r.Tools[0].Parameters), `"required":["name"]`) {
		t.Errorf("parameters = %s", r.Tools[0].Parameters)
	}
	if !json.Valid(r.Body) {
		t.Errorf("raw body not kept: %q", r.Body)
	}
	if s.Pending() != 0 {
		t.Errorf("pending = %d", s.Pending())
	}
}

func TestToolCallRoundTrip(t *testing.T) {
	s := llmtest.New(t)
	s.CallTools(llmtest.Call{Name: "deploy", Arguments: `{"name":"web"}`}, llmtest.Call{Name: "status", Arguments: `{}`})
	s.Handle(func(r llmtest.Request) llmtest.Response {
		return llmtest.Response{Content: "Done: " + r.LastToolResult()}
	})
	c := client(s)
	msgs := []openai.ChatCompletionMessage{{Role: "user", Content: "deploy web"}}

	resp, err := c.CreateChatCompletion(context.Background(), openai.ChatCompletionRequest{Model: "m", Messages: msgs, Tools: []openai.Tool{deployTool}})
	if err != nil {
		t.Fatal(err)
	}
	msg := resp.Choices[0].Message
	if resp.Choices[0].FinishReason != openai.FinishReasonToolCalls || len(msg.ToolCalls) != 2 {
		t.Fatalf("answer = %+v", resp.Choices[0])
	}
	for i, want := range []struct{ id, name, args string }{{"call_1", "deploy", `{"name":"web"}`}, {"call_2", "status", `{}`}} {
		got := msg.ToolCalls[i]
		if got.ID != want.id || got.Type != openai.ToolTypeFunction || got.Function.Name != want.name || got.Function.Arguments != want.args {
			t.Errorf("tool call %d = %+v, want %+v", i, got, want)
		}
	}

	msgs = append(msgs, msg,
		openai.ChatCompletionMessage{Role: "tool", ToolCallID: "call_1", Content: "deployed web r3"},
		openai.ChatCompletionMessage{Role: "tool", ToolCallID: "call_2", Content: "all healthy"},
	)
	resp, err = c.CreateChatCompletion(context.Background(), openai.ChatCompletionRequest{Model: "m", Messages: msgs})
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.Choices[0].Message.Content; got != "Done: all healthy" {
		t.Errorf("content = %q", got)
	}
	sent := s.LastRequest().Messages[1]
	if sent.Role != "assistant" || len(sent.ToolCalls) != 2 || sent.ToolCalls[0] != (llmtest.ToolCall{ID: "call_1", Name: "deploy", Arguments: `{"name":"web"}`}) {
		t.Errorf("assistant message sent back = %+v", sent)
	}
}

func TestStreaming(t *testing.T) {
	s := llmtest.New(t)
	s.Reply("Deploying web now, hold on.")
	s.CallTools(llmtest.Call{Name: "deploy", Arguments: `{"name":"web","note":"héllo wörld ✓"}`}, llmtest.Call{Name: "status", Arguments: `{}`})
	c := client(s)

	// collect reads a stream to its end, putting the deltas back together
	// the way a streaming client must.
	collect := func(t *testing.T) (content string, calls []openai.ToolCall, finish openai.FinishReason, usage *openai.Usage, chunks int) {
		t.Helper()
		stream, err := c.CreateChatCompletionStream(context.Background(), openai.ChatCompletionRequest{
			Model:         "m",
			Messages:      []openai.ChatCompletionMessage{{Role: "user", Content: "deploy web"}},
			Stream:        true,
			StreamOptions: &openai.StreamOptions{IncludeUsage: true},
		})
		if err != nil {
			t.Fatal(err)
		}
		defer stream.Close()
		var b strings.Builder
		for {
			chunk, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				return b.String(), calls, finish, usage, chunks
			}
			if err != nil {
				t.Fatal(err)
			}
			chunks++
			if chunk.Usage != nil {
				usage = chunk.Usage
			}
			for _, ch := range chunk.Choices {
				b.WriteString(ch.Delta.Content)
				if ch.FinishReason != "" {
					finish = ch.FinishReason
				}
				for _, d := range ch.Delta.ToolCalls {
					i := *d.Index
					if i == len(calls) {
						calls = append(calls, openai.ToolCall{ID: d.ID, Type: d.Type, Function: openai.FunctionCall{Name: d.Function.Name}})
					}
					calls[i].Function.Arguments += d.Function.Arguments
				}
			}
		}
	}

	content, calls, finish, usage, chunks := collect(t)
	if content != "Deploying web now, hold on." || finish != openai.FinishReasonStop || len(calls) != 0 {
		t.Errorf("text stream = %q %q %v", content, finish, calls)
	}
	if chunks < 4 {
		t.Errorf("text came in %d chunks, want it cut up", chunks)
	}
	if usage == nil || usage.CompletionTokens != llmtest.Tokens("Deploying web now, hold on.") || usage.PromptTokens <= 0 {
		t.Errorf("usage = %+v", usage)
	}
	if !s.LastRequest().Stream || !s.LastRequest().IncludeUsage {
		t.Errorf("stream flags not recorded")
	}

	content, calls, finish, _, _ = collect(t)
	if content != "" || finish != openai.FinishReasonToolCalls || len(calls) != 2 {
		t.Fatalf("tool stream = %q %q %+v", content, finish, calls)
	}
	if calls[0].ID != "call_1" || calls[0].Function.Name != "deploy" || calls[0].Function.Arguments != `{"name":"web","note":"héllo wörld ✓"}` {
		t.Errorf("call 0 = %+v", calls[0])
	}
	if calls[1].ID != "call_2" || calls[1].Function.Name != "status" || calls[1].Function.Arguments != `{}` {
		t.Errorf("call 1 = %+v", calls[1])
	}
}

func TestStreamWithoutUsage(t *testing.T) {
	s := llmtest.New(t)
	s.Reply("ok")
	stream, err := client(s).CreateChatCompletionStream(context.Background(), openai.ChatCompletionRequest{
		Model: "m", Messages: []openai.ChatCompletionMessage{{Role: "user", Content: "hi"}}, Stream: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	for {
		chunk, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if chunk.Usage != nil {
			t.Errorf("usage chunk %+v not asked for", chunk.Usage)
		}
	}
}

func TestErrorAnswers(t *testing.T) {
	tests := []struct {
		name       string
		script     func(*llmtest.Server)
		status     int
		retryAfter string
		retryMs    string
	}{
		{"server error", func(s *llmtest.Server) { s.Fail(500) }, 500, "", ""},
		{"bad gateway", func(s *llmtest.Server) { s.Fail(502) }, 502, "", ""},
		{"plain 429", func(s *llmtest.Server) { s.Fail(429) }, 429, "", ""},
		{"rate limit", func(s *llmtest.Server) { s.RateLimit(1500 * time.Millisecond) }, 429, "2", "1500"},
		{"unauthorized", func(s *llmtest.Server) { s.Fail(401) }, 401, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := llmtest.New(t)
			tt.script(s) // for the plain request
			tt.script(s) // for the stream: errors come before any event
			for _, stream := range []bool{false, true} {
				var resp openai.ChatCompletionResponse
				var err error
				req := openai.ChatCompletionRequest{Model: "m", Messages: []openai.ChatCompletionMessage{{Role: "user", Content: "hi"}}, Stream: stream}
				if stream {
					_, err = client(s).CreateChatCompletionStream(context.Background(), req)
				} else {
					resp, err = client(s).CreateChatCompletion(context.Background(), req)
				}
				var apiErr *openai.APIError
				if !errors.As(err, &apiErr) || apiErr.HTTPStatusCode != tt.status || apiErr.Message == "" {
					t.Fatalf("stream %v: err = %v, want an API error with status %d", stream, err, tt.status)
				}
				if !stream {
					// go-openai keeps the headers of a failed answer.
					if got := resp.Header().Get("Retry-After"); got != tt.retryAfter {
						t.Errorf("Retry-After = %q, want %q", got, tt.retryAfter)
					}
					if got := resp.Header().Get("Retry-After-Ms"); got != tt.retryMs {
						t.Errorf("retry-after-ms = %q, want %q", got, tt.retryMs)
					}
				}
			}
		})
	}
}

func TestHang(t *testing.T) {
	s := llmtest.New(t)
	s.Hang()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := client(s).CreateChatCompletion(ctx, openai.ChatCompletionRequest{Model: "m", Messages: []openai.ChatCompletionMessage{{Role: "user", Content: "hi"}}})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want the deadline", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("hang ended after %v, want when the client gave up", d)
	}
}

// A hanging request whose client never gives up must not keep the test from
// ending.
func TestHangReleasedAtCleanup(t *testing.T) {
	done := make(chan error, 1)
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		t.Run("hang", func(t *testing.T) {
			s := llmtest.New(t)
			s.Hang()
			c := client(s)
			go func() {
				_, err := c.CreateChatCompletion(context.Background(), openai.ChatCompletionRequest{Model: "m", Messages: []openai.ChatCompletionMessage{{Role: "user", Content: "hi"}}})
				done <- err
			}()
			for len(s.Requests()) == 0 {
				time.Sleep(time.Millisecond)
			}
		})
	}()
	select {
	case <-ended:
	case <-time.After(10 * time.Second):
		t.Fatal("the server's cleanup waited on a hanging request")
	}
	if err := <-done; err == nil {
		t.Errorf("a released hang answered successfully")
	}
}

func TestMalformed(t *testing.T) {
	s := llmtest.New(t)
	s.Malformed()
	resp, err := client(s).CreateChatCompletion(context.Background(), openai.ChatCompletionRequest{
		Model: "m", Messages: []openai.ChatCompletionMessage{{Role: "user", Content: "deploy"}}, Tools: []openai.Tool{deployTool},
	})
	if err != nil {
		t.Fatal(err)
	}
	calls := resp.Choices[0].Message.ToolCalls
	if len(calls) != 1 || calls[0].Function.Name != "deploy" || calls[0].Function.Arguments != llmtest.MalformedArguments {
		t.Fatalf("calls = %+v", calls)
	}
	if json.Valid([]byte(calls[0].Function.Arguments)) {
		t.Errorf("malformed arguments are valid JSON")
	}
}

func TestGarbage(t *testing.T) {
	s := llmtest.New(t)
	s.Garbage()
	s.Garbage()
	c := client(s)
	req := openai.ChatCompletionRequest{Model: "m", Messages: []openai.ChatCompletionMessage{{Role: "user", Content: "hi"}}}

	_, err := c.CreateChatCompletion(context.Background(), req)
	var syntax *json.SyntaxError
	if !errors.As(err, &syntax) {
		t.Errorf("err = %v, want a JSON syntax error", err)
	}

	req.Stream = true
	stream, err := c.CreateChatCompletionStream(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	if _, err := stream.Recv(); err == nil || errors.Is(err, io.EOF) {
		t.Errorf("stream err = %v, want an unreadable chunk", err)
	}
}

func TestUnscripted(t *testing.T) {
	rt := &recordingT{TB: t}
	s := llmtest.New(rt)
	s.Reply("only one")
	c := client(s)
	req := openai.ChatCompletionRequest{Model: "m", Messages: []openai.ChatCompletionMessage{{Role: "user", Content: "and again"}}}
	if _, err := c.CreateChatCompletion(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	_, err := c.CreateChatCompletion(context.Background(), req)
	var apiErr *openai.APIError
	if !errors.As(err, &apiErr) || apiErr.HTTPStatusCode != 500 || !strings.Contains(apiErr.Message, "unscripted") {
		t.Errorf("err = %v, want a 500 saying unscripted", err)
	}
	errs := rt.errors()
	if len(errs) != 1 || !strings.HasPrefix(errs[0], "llmtest: unscripted request") || !strings.Contains(errs[0], "and again") {
		t.Errorf("test failures = %q", errs)
	}
}

func TestBothPaths(t *testing.T) {
	s := llmtest.New(t)
	s.Reply("a")
	s.Reply("b")
	for _, path := range []string{"/v1/chat/completions", "/chat/completions"} {
		resp, err := http.Post(s.URL()+path, "application/json", strings.NewReader(`{"model":"m","messages":[{"role":"user","content":"hi"}]}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("%s: status %d", path, resp.StatusCode)
		}
	}
}

// The server refuses what the real API refuses, and fails the test: these
// are bugs in the caller that would only show in production.
func TestRefusesInvalidRequests(t *testing.T) {
	tests := []struct {
		name, body, want string
	}{
		{"no model", `{"messages":[{"role":"user","content":"hi"}]}`, "model"},
		{"no messages", `{"model":"m","messages":[]}`, "messages: empty"},
		{"not json", `{"model":`, "not a chat completion request"},
		{"unknown role", `{"model":"m","messages":[{"role":"robot","content":"hi"}]}`, "unknown role"},
		{"empty user message", `{"model":"m","messages":[{"role":"user","content":""}]}`, "needs content"},
		{"tool result without a call", `{"model":"m","messages":[{"role":"user","content":"hi"},{"role":"tool","tool_call_id":"call_9","content":"x"}]}`, "not a tool call"},
		{"tool call left unanswered", `{"model":"m","messages":[{"role":"user","content":"hi"},{"role":"assistant","tool_calls":[{"id":"call_1","type":"function","function":{"name":"a","arguments":"{}"}}]},{"role":"user","content":"well?"}]}`, "not answered"},
		{"tool call unanswered at the end", `{"model":"m","messages":[{"role":"user","content":"hi"},{"role":"assistant","tool_calls":[{"id":"call_1","type":"function","function":{"name":"a","arguments":"{}"}}]}]}`, "not answered"},
		{"empty tool result", `{"model":"m","messages":[{"role":"user","content":"hi"},{"role":"assistant","tool_calls":[{"id":"call_1","type":"function","function":{"name":"a","arguments":"{}"}}]},{"role":"tool","tool_call_id":"call_1"}]}`, "needs content"},
		{"tool name with a space", `{"model":"m","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"deploy now","parameters":{}}}]}`, "does not match"},
		{"tool offered twice", `{"model":"m","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"a"}},{"type":"function","function":{"name":"a"}}]}`, "twice"},
		{"parameters not an object", `{"model":"m","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"a","parameters":[1]}}]}`, "not a JSON object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rt := &recordingT{TB: t}
			s := llmtest.New(rt)
			s.Reply("never sent")
			resp, err := http.Post(s.BaseURL()+"/chat/completions", "application/json", strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 400 || !strings.Contains(string(body), tt.want) {
				t.Errorf("answer = %d %s, want 400 mentioning %q", resp.StatusCode, body, tt.want)
			}
			if errs := rt.errors(); len(errs) != 1 || !strings.Contains(errs[0], tt.want) {
				t.Errorf("test failures = %q", errs)
			}
			if s.Pending() != 1 {
				t.Errorf("a refused request used up a scripted answer")
			}
			if len(s.Requests()) != 1 || string(s.Requests()[0].Body) != tt.body {
				t.Errorf("refused request not recorded")
			}
		})
	}
}

func TestValidConversations(t *testing.T) {
	// Parallel tool calls answered in any order, then the conversation goes
	// on; content as an array of parts.
	body := `{"model":"m","messages":[
		{"role":"system","content":"sys"},
		{"role":"user","content":[{"type":"text","text":"deploy "},{"type":"text","text":"web"}]},
		{"role":"assistant","tool_calls":[
			{"id":"a","type":"function","function":{"name":"x","arguments":"{}"}},
			{"id":"b","type":"function","function":{"name":"y","arguments":"{}"}}]},
		{"role":"tool","tool_call_id":"b","content":"B"},
		{"role":"tool","tool_call_id":"a","content":"A"},
		{"role":"assistant","content":"done"},
		{"role":"user","content":"thanks"}],
		"max_completion_tokens":50,"temperature":0}`
	s := llmtest.New(t)
	s.Reply("you're welcome")
	resp, err := http.Post(s.BaseURL()+"/chat/completions", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	r := s.LastRequest()
	if r.Messages[1].Content != "deploy web" || r.LastToolResult() != "A" || r.LastUserMessage() != "thanks" {
		t.Errorf("messages = %+v", r.Messages)
	}
	if r.MaxCompletionTokens != 50 || r.MaxTokens != 0 || r.Temperature == nil || *r.Temperature != 0 {
		t.Errorf("limits = max_tokens %d, max_completion_tokens %d, temperature %v", r.MaxTokens, r.MaxCompletionTokens, r.Temperature)
	}
}

func TestScriptedUsage(t *testing.T) {
	s := llmtest.New(t)
	s.Handle(func(llmtest.Request) llmtest.Response {
		return llmtest.Response{Content: "x", Usage: &llmtest.Usage{PromptTokens: 1000, CompletionTokens: 7}}
	})
	s.Reply("y")
	c := client(s)
	req := openai.ChatCompletionRequest{Model: "m", Messages: []openai.ChatCompletionMessage{{Role: "user", Content: "hi"}}}
	first, err := c.CreateChatCompletion(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if first.Usage.PromptTokens != 1000 || first.Usage.CompletionTokens != 7 {
		t.Errorf("usage = %+v", first.Usage)
	}
	second, err := c.CreateChatCompletion(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Usage(); got.PromptTokens != 1000+second.Usage.PromptTokens || got.CompletionTokens != 7+second.Usage.CompletionTokens {
		t.Errorf("total = %+v", got)
	}
}

func TestPromptTokensGrowWithTheRequest(t *testing.T) {
	s := llmtest.New(t)
	s.Reply("a")
	s.Reply("a")
	c := client(s)
	short, err := c.CreateChatCompletion(context.Background(), openai.ChatCompletionRequest{Model: "m", Messages: []openai.ChatCompletionMessage{{Role: "user", Content: "hi"}}})
	if err != nil {
		t.Fatal(err)
	}
	long, err := c.CreateChatCompletion(context.Background(), openai.ChatCompletionRequest{Model: "m", Messages: []openai.ChatCompletionMessage{{Role: "user", Content: strings.Repeat("word ", 100)}}, Tools: []openai.Tool{deployTool}})
	if err != nil {
		t.Fatal(err)
	}
	if long.Usage.PromptTokens <= short.Usage.PromptTokens+100 {
		t.Errorf("prompt tokens: short %d, long %d", short.Usage.PromptTokens, long.Usage.PromptTokens)
	}
}
