// Package llmtest runs a scripted OpenAI-compatible chat completions server
// on loopback for tests.
//
// A test scripts the answers in order (a reply, tool calls, a server error, a
// rate limit, a hang, malformed tool arguments, an unreadable body) and the
// code under test talks to it over HTTP exactly as it would to the real API,
// with whatever client it uses, streaming or not: nothing in the client is
// mocked. Every request is recorded, parsed, so a test can check what was
// sent: the messages, the tools offered, the model, the limits, the headers.
//
// The server also refuses, with a 400 and a failed test, the requests the real
// API refuses that a conversation loop can get wrong by accident: a tool
// result that answers no tool call, a tool call left unanswered, a tool name
// the API does not accept.
//
// Only POST /v1/chat/completions (and /chat/completions) is served.
package llmtest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// Call is a tool call a scripted answer makes. Its id is generated:
// "call_1", "call_2", … in the order the server hands them out.
type Call struct {
	Name      string
	Arguments string
}

// Response is one scripted answer, for Handle. The zero value is an empty
// assistant message.
type Response struct {
	// Content is the assistant's text.
	Content string
	// ToolCalls are tool calls the assistant makes.
	ToolCalls []Call
	// Status, when not zero or 200, answers with this HTTP status and an
	// OpenAI-shaped error body carrying Error (or the status text).
	Status int
	Error  string
	// Header is added to the answer's headers (Retry-After, …).
	Header http.Header
	// Body, when not nil, is sent as it is, with Status (default 200),
	// instead of anything built from the other fields.
	Body []byte
	// Hang answers nothing until the request's context ends.
	Hang bool
	// Usage replaces the token counts the server would compute.
	Usage *Usage
}

// Usage is token counts as the server reports them.
type Usage struct {
	PromptTokens     int
	CompletionTokens int
}

// Server is a scripted chat completions server listening on loopback. It is
// safe for concurrent use.
type Server struct {
	t       testing.TB
	srv     *httptest.Server
	closing chan struct{}

	mu       sync.Mutex
	script   []func(Request) Response
	answered int // scripted answers handed out
	requests []Request
	calls    int // tool call ids handed out
	chunks   int // completion ids handed out
	usage    Usage
}

// New starts a server with an empty script; it is shut down when the test
// ends.
func New(t testing.TB) *Server {
	t.Helper()
	s := &Server{t: t, closing: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/chat/completions", s.serve)
	mux.HandleFunc("POST /chat/completions", s.serve)
	s.srv = httptest.NewServer(mux)
	t.Cleanup(func() {
		// Release hanging handlers first: Close waits for every handler,
		// and a client that never gives up would keep it waiting forever.
		close(s.closing)
		s.srv.Close()
	})
	return s
}

// BaseURL is the server's base URL with the /v1 prefix, as OpenAI clients
// expect it (go-openai's ClientConfig.BaseURL, for one).
func (s *Server) BaseURL() string { return s.srv.URL + "/v1" }

// URL is the server's root URL, without /v1.
func (s *Server) URL() string { return s.srv.URL }

// Client is an HTTP client for the server.
func (s *Server) Client() *http.Client { return s.srv.Client() }

// Reply scripts an assistant message with this text.
func (s *Server) Reply(text string) {
	s.Handle(func(Request) Response { return Response{Content: text} })
}

// CallTools scripts an assistant message calling these tools.
func (s *Server) CallTools(calls ...Call) {
	calls = append([]Call(nil), calls...)
	s.Handle(func(Request) Response { return Response{ToolCalls: calls} })
}

// Fail scripts an error answer with this HTTP status and an OpenAI-shaped
// error body. For a 429 with Retry-After, see RateLimit.
func (s *Server) Fail(status int) {
	s.Handle(func(Request) Response { return Response{Status: status} })
}

// RateLimit scripts a 429 that asks the client to wait: Retry-After in whole
// seconds (rounded up, as the header has no finer unit) and retry-after-ms,
// which the OpenAI API also sends, in milliseconds.
func (s *Server) RateLimit(after time.Duration) {
	h := http.Header{}
	h.Set("Retry-After", fmt.Sprint(int((after+time.Second-1)/time.Second)))
	h.Set("Retry-After-Ms", fmt.Sprint(after.Milliseconds()))
	s.Handle(func(Request) Response {
		return Response{
			Status: http.StatusTooManyRequests,
			Error:  "Rate limit reached for requests",
			Header: h.Clone(),
		}
	})
}

// Hang scripts an answer that never comes: the server holds the request
// until the client gives up (or the test ends).
func (s *Server) Hang() {
	s.Handle(func(Request) Response { return Response{Hang: true} })
}

// Malformed scripts a tool call whose arguments are not valid JSON, as
// models do write now and then. The tool called is the first one the
// request offers ("tool" if it offers none).
func (s *Server) Malformed() {
	s.Handle(func(r Request) Response {
		name := "tool"
		if len(r.Tools) > 0 {
			name = r.Tools[0].Name
		}
		return Response{ToolCalls: []Call{{Name: name, Arguments: MalformedArguments}}}
	})
}

// MalformedArguments are the tool arguments Malformed sends: JSON cut off
// mid-object.
const MalformedArguments = `{"name": "web", "replicas": `

// GarbageBody is what Garbage answers with, a 200 that is not JSON: the
// error page a misconfigured proxy serves is a common one.
const GarbageBody = "<html><body>upstream connect error</body></html>"

// Garbage scripts a 200 whose body is not valid JSON (in a stream: an event
// whose data is not JSON).
func (s *Server) Garbage() {
	s.Handle(func(r Request) Response {
		if r.Stream {
			return Response{
				Header: http.Header{"Content-Type": {"text/event-stream"}},
				Body:   []byte("data: " + GarbageBody + "\n\n"),
			}
		}
		return Response{
			Header: http.Header{"Content-Type": {"text/html"}},
			Body:   []byte(GarbageBody),
		}
	})
}

// Handle scripts the next answer as whatever f returns for the request, for
// answers that depend on what was asked (the last tool result, say). f runs
// on the server's goroutine: it must not call t.FailNow (so no t.Fatal).
func (s *Server) Handle(f func(Request) Response) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.script = append(s.script, f)
}

// Pending is how many scripted answers have not been asked for yet.
func (s *Server) Pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.script) - s.answered
}

// Requests are every request received so far, in order, the refused ones
// included.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// LastRequest is the latest request received; it fails the test if there
// was none.
func (s *Server) LastRequest() Request {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.requests) == 0 {
		s.t.Errorf("llmtest: no request received")
		return Request{}
	}
	return s.requests[len(s.requests)-1]
}

// Usage is the sum of the token counts the server has reported.
func (s *Server) Usage() Usage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.usage
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	req, err := parseRequest(r)
	s.mu.Lock()
	s.requests = append(s.requests, req)
	s.mu.Unlock()
	if err != nil {
		s.t.Errorf("llmtest: unreadable request: %v", err)
		writeError(w, http.StatusBadRequest, "invalid_request_error", "llmtest: "+err.Error())
		return
	}
	if err := validate(req); err != nil {
		// The real API refuses these before any model sees them, so they
		// use up no scripted answer.
		s.t.Errorf("llmtest: the API would refuse this request: %v", err)
		writeError(w, http.StatusBadRequest, "invalid_request_error", err.Error())
		return
	}

	s.mu.Lock()
	var step func(Request) Response
	if s.answered < len(s.script) {
		step = s.script[s.answered]
		s.answered++
	}
	n := s.answered
	s.mu.Unlock()
	if step == nil {
		s.t.Errorf("llmtest: unscripted request #%d (the script has %d answers); last user message %q",
			len(s.Requests()), n, req.LastUserMessage())
		writeError(w, http.StatusInternalServerError, "server_error", "llmtest: unscripted request: the test scripted no answer for it")
		return
	}
	s.answer(w, r, req, step(req))
}

func (s *Server) answer(w http.ResponseWriter, r *http.Request, req Request, resp Response) {
	for k, vs := range resp.Header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	switch {
	case resp.Hang:
		select {
		case <-r.Context().Done():
		case <-s.closing:
		}
		return
	case resp.Body != nil:
		status := resp.Status
		if status == 0 {
			status = http.StatusOK
		}
		w.WriteHeader(status)
		w.Write(resp.Body)
		return
	case resp.Status != 0 && resp.Status != http.StatusOK:
		msg := resp.Error
		if msg == "" {
			msg = http.StatusText(resp.Status)
		}
		typ := "server_error"
		switch {
		case resp.Status == http.StatusTooManyRequests:
			typ = "rate_limit_exceeded"
		case resp.Status < 500:
			typ = "invalid_request_error"
		}
		writeError(w, resp.Status, typ, msg)
		return
	}

	s.mu.Lock()
	calls := make([]ToolCall, len(resp.ToolCalls))
	for i, c := range resp.ToolCalls {
		s.calls++
		calls[i] = ToolCall{ID: fmt.Sprintf("call_%d", s.calls), Name: c.Name, Arguments: c.Arguments}
	}
	s.chunks++
	id := fmt.Sprintf("chatcmpl-llmtest-%d", s.chunks)
	usage := Usage{PromptTokens: promptTokens(req), CompletionTokens: completionTokens(resp.Content, calls)}
	if resp.Usage != nil {
		usage = *resp.Usage
	}
	s.usage.PromptTokens += usage.PromptTokens
	s.usage.CompletionTokens += usage.CompletionTokens
	s.mu.Unlock()

	a := answer{id: id, model: req.Model, content: resp.Content, calls: calls, usage: usage}
	if req.Stream {
		a.stream(w, req.IncludeUsage)
		return
	}
	a.write(w)
}

// Tokens is the server's rough token count of a text: about four bytes a
// token, as OpenAI's rule of thumb for English goes. It is no tokenizer;
// it only makes counts grow with what is sent and said.
func Tokens(s string) int { return (len(s) + 3) / 4 }

// promptTokens counts what the model would read: every message with a small
// overhead each, as the real API charges, and the tool definitions.
func promptTokens(r Request) int {
	n := 3 // the reply's priming
	for _, m := range r.Messages {
		n += 4 + Tokens(m.Content)
		for _, c := range m.ToolCalls {
			n += Tokens(c.Name) + Tokens(c.Arguments)
		}
	}
	for _, t := range r.Tools {
		n += Tokens(t.Name) + Tokens(t.Description) + Tokens(string(t.Parameters))
	}
	return n
}

func completionTokens(content string, calls []ToolCall) int {
	n := Tokens(content)
	for _, c := range calls {
		n += Tokens(c.Name) + Tokens(c.Arguments)
	}
	return n
}

func writeError(w http.ResponseWriter, status int, typ, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{
		"message": msg,
		"type":    typ,
		"param":   nil,
		"code":    strings.ToLower(strings.ReplaceAll(http.StatusText(status), " ", "_")),
	}})
}
