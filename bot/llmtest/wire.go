package llmtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"
)

// Request is a chat completion request as the server received it.
type Request struct {
	Path   string
	Header http.Header
	// Body is the raw request body.
	Body []byte

	Model    string
	Messages []Message
	Tools    []Tool
	// MaxTokens and MaxCompletionTokens are the two limits the API knows
	// (max_tokens, and max_completion_tokens which reasoning models need);
	// zero when not sent.
	MaxTokens           int
	MaxCompletionTokens int
	// Temperature is nil when not sent.
	Temperature *float64
	Stream      bool
	// IncludeUsage is stream_options.include_usage: whether a stream ends
	// with a usage chunk.
	IncludeUsage bool
}

// Message is one message of a request.
type Message struct {
	Role       string
	Content    string // text parts joined, when sent as an array of parts
	Name       string
	ToolCalls  []ToolCall
	ToolCallID string
}

// ToolCall is a tool call in an assistant message.
type ToolCall struct {
	ID        string
	Name      string
	Arguments string
}

// Tool is a function tool offered to the model.
type Tool struct {
	Name        string
	Description string
	Parameters  json.RawMessage
}

// ToolNames are the names of the tools offered, in order.
func (r Request) ToolNames() []string {
	names := make([]string, len(r.Tools))
	for i, t := range r.Tools {
		names[i] = t.Name
	}
	return names
}

// LastUserMessage is the content of the latest user message, "" if none.
func (r Request) LastUserMessage() string { return r.last("user") }

// LastToolResult is the content of the latest tool message, "" if none.
func (r Request) LastToolResult() string { return r.last("tool") }

// System is the system messages' content, joined by blank lines.
func (r Request) System() string {
	var parts []string
	for _, m := range r.Messages {
		if m.Role == "system" || m.Role == "developer" {
			parts = append(parts, m.Content)
		}
	}
	return strings.Join(parts, "\n\n")
}

func (r Request) last(role string) string {
	for i := len(r.Messages) - 1; i >= 0; i-- {
		if r.Messages[i].Role == role {
			return r.Messages[i].Content
		}
	}
	return ""
}

// wireRequest is the part of the API's request body the server reads.
type wireRequest struct {
	Model    string `json:"model"`
	Messages []struct {
		Role       string          `json:"role"`
		Content    json.RawMessage `json:"content"`
		Name       string          `json:"name"`
		ToolCallID string          `json:"tool_call_id"`
		ToolCalls  []wireToolCall  `json:"tool_calls"`
	} `json:"messages"`
	Tools []struct {
		Type     string `json:"type"`
		Function struct {
			Name        string          `json:"name"`
			Description string          `json:"description"`
			Parameters  json.RawMessage `json:"parameters"`
		} `json:"function"`
	} `json:"tools"`
	MaxTokens           int      `json:"max_tokens"`
	MaxCompletionTokens int      `json:"max_completion_tokens"`
	Temperature         *float64 `json:"temperature"`
	Stream              bool     `json:"stream"`
	StreamOptions       *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
}

type wireToolCall struct {
	Index    *int   `json:"index,omitempty"`
	ID       string `json:"id,omitempty"`
	Type     string `json:"type,omitempty"`
	Function struct {
		Name      string `json:"name,omitempty"`
		Arguments string `json:"arguments"`
	} `json:"function"`
}

// parseRequest reads r into a Request. On error the Request still holds
// what could be read (the path, headers and body).
func parseRequest(r *http.Request) (Request, error) {
	body, err := io.ReadAll(r.Body)
	req := Request{Path: r.URL.Path, Header: r.Header.Clone(), Body: body}
	if err != nil {
		return req, fmt.Errorf("reading the body: %w", err)
	}
	var w wireRequest
	if err := json.Unmarshal(body, &w); err != nil {
		return req, fmt.Errorf("the body is not a chat completion request: %w", err)
	}
	req.Model = w.Model
	req.MaxTokens = w.MaxTokens
	req.MaxCompletionTokens = w.MaxCompletionTokens
	req.Temperature = w.Temperature
	req.Stream = w.Stream
	req.IncludeUsage = w.StreamOptions != nil && w.StreamOptions.IncludeUsage
	for i, m := range w.Messages {
		content, err := contentText(m.Content)
		if err != nil {
			return req, fmt.Errorf("messages[%d].content: %w", i, err)
		}
		msg := Message{Role: m.Role, Content: content, Name: m.Name, ToolCallID: m.ToolCallID}
		for _, c := range m.ToolCalls {
			msg.ToolCalls = append(msg.ToolCalls, ToolCall{ID: c.ID, Name: c.Function.Name, Arguments: c.Function.Arguments})
		}
		req.Messages = append(req.Messages, msg)
	}
	for _, t := range w.Tools {
		req.Tools = append(req.Tools, Tool{Name: t.Function.Name, Description: t.Function.Description, Parameters: t.Function.Parameters})
	}
	return req, nil
}

// contentText reads a message's content, which the API takes as a string
// or as an array of parts.
func contentText(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, nil
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal(raw, &parts); err != nil {
		return "", errors.New("neither a string nor an array of parts")
	}
	var b strings.Builder
	for _, p := range parts {
		if p.Type == "text" {
			b.WriteString(p.Text)
		}
	}
	return b.String(), nil
}

// toolName is what the API accepts as a function name.
var toolName = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,64}$`)

// validate refuses what the real API refuses with a 400 and a conversation
// loop can get wrong: the conversation's shape and the tools' names.
func validate(r Request) error {
	if r.Model == "" {
		return errors.New("model: missing")
	}
	if len(r.Messages) == 0 {
		return errors.New("messages: empty")
	}
	var open []string // tool call ids the latest assistant message left unanswered
	for i, m := range r.Messages {
		switch m.Role {
		case "system", "developer", "user":
			if len(open) > 0 {
				return fmt.Errorf("messages[%d]: tool calls %v were not answered by tool messages", i, open)
			}
			if m.Content == "" {
				return fmt.Errorf("messages[%d]: a %s message needs content", i, m.Role)
			}
		case "assistant":
			if len(open) > 0 {
				return fmt.Errorf("messages[%d]: tool calls %v were not answered by tool messages", i, open)
			}
			for _, c := range m.ToolCalls {
				if c.ID == "" {
					return fmt.Errorf("messages[%d]: a tool call without an id", i)
				}
				open = append(open, c.ID)
			}
		case "tool":
			if m.Content == "" {
				return fmt.Errorf("messages[%d]: a tool message needs content", i)
			}
			j := indexOf(open, m.ToolCallID)
			if j < 0 {
				return fmt.Errorf("messages[%d]: tool message answers %q, which is not a tool call of the preceding assistant message", i, m.ToolCallID)
			}
			open = append(open[:j], open[j+1:]...)
		default:
			return fmt.Errorf("messages[%d]: unknown role %q", i, m.Role)
		}
	}
	if len(open) > 0 {
		return fmt.Errorf("tool calls %v were not answered by tool messages", open)
	}
	seen := map[string]bool{}
	for i, t := range r.Tools {
		if !toolName.MatchString(t.Name) {
			return fmt.Errorf("tools[%d].function.name: %q does not match %s", i, t.Name, toolName)
		}
		if seen[t.Name] {
			return fmt.Errorf("tools[%d].function.name: %q offered twice", i, t.Name)
		}
		seen[t.Name] = true
		if len(t.Parameters) > 0 && string(t.Parameters) != "null" {
			var obj map[string]any
			if err := json.Unmarshal(t.Parameters, &obj); err != nil {
				return fmt.Errorf("tools[%d].function.parameters: not a JSON object", i)
			}
		}
	}
	return nil
}

func indexOf(xs []string, x string) int {
	for i, y := range xs {
		if y == x {
			return i
		}
	}
	return -1
}

// answer is a successful completion, to write whole or as a stream.
type answer struct {
	id, model, content string
	calls              []ToolCall
	usage              Usage
}

func (a answer) finishReason() string {
	if len(a.calls) > 0 {
		return "tool_calls"
	}
	return "stop"
}

func (a answer) wireUsage() map[string]int {
	return map[string]int{
		"prompt_tokens":     a.usage.PromptTokens,
		"completion_tokens": a.usage.CompletionTokens,
		"total_tokens":      a.usage.PromptTokens + a.usage.CompletionTokens,
	}
}

func (a answer) write(w http.ResponseWriter) {
	msg := map[string]any{"role": "assistant", "content": nil, "refusal": nil}
	if a.content != "" || len(a.calls) == 0 {
		msg["content"] = a.content
	}
	if len(a.calls) > 0 {
		calls := make([]wireToolCall, len(a.calls))
		for i, c := range a.calls {
			calls[i].ID, calls[i].Type = c.ID, "function"
			calls[i].Function.Name, calls[i].Function.Arguments = c.Name, c.Arguments
		}
		msg["tool_calls"] = calls
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{
		"id":      a.id,
		"object":  "chat.completion",
		"created": time.Now().Unix(),
		"model":   a.model,
		"choices": []any{map[string]any{
			"index":         0,
			"message":       msg,
			"logprobs":      nil,
			"finish_reason": a.finishReason(),
		}},
		"usage": a.wireUsage(),
	})
}

// stream writes the answer as server-sent events the way the API does: a
// first chunk with the role, the content a few words a chunk, each tool call
// as a chunk with its id and name then its arguments in pieces, a chunk with
// the finish reason, the usage chunk when asked for, and [DONE].
func (a answer) stream(w http.ResponseWriter, includeUsage bool) {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	flusher, _ := w.(http.Flusher)
	created := time.Now().Unix()
	send := func(choices []any, usage any) {
		chunk := map[string]any{
			"id":      a.id,
			"object":  "chat.completion.chunk",
			"created": created,
			"model":   a.model,
			"choices": choices,
		}
		if includeUsage {
			chunk["usage"] = usage
		}
		var b bytes.Buffer
		b.WriteString("data: ")
		json.NewEncoder(&b).Encode(chunk) // ends with the line's \n
		b.WriteString("\n")
		w.Write(b.Bytes())
		if flusher != nil {
			flusher.Flush()
		}
	}
	delta := func(d map[string]any, finish any) []any {
		return []any{map[string]any{"index": 0, "delta": d, "logprobs": nil, "finish_reason": finish}}
	}

	send(delta(map[string]any{"role": "assistant", "content": ""}, nil), nil)
	for _, piece := range strings.SplitAfter(a.content, " ") {
		if piece != "" {
			send(delta(map[string]any{"content": piece}, nil), nil)
		}
	}
	for i, c := range a.calls {
		first := map[string]any{
			"index": i, "id": c.ID, "type": "function",
			"function": map[string]any{"name": c.Name, "arguments": ""},
		}
		send(delta(map[string]any{"tool_calls": []any{first}}, nil), nil)
		for _, piece := range pieces(c.Arguments, 8) {
			more := map[string]any{"index": i, "function": map[string]any{"arguments": piece}}
			send(delta(map[string]any{"tool_calls": []any{more}}, nil), nil)
		}
	}
	send(delta(map[string]any{}, a.finishReason()), nil)
	if includeUsage {
		send([]any{}, a.wireUsage())
	}
	w.Write([]byte("data: [DONE]\n\n"))
	if flusher != nil {
		flusher.Flush()
	}
}

// pieces cuts s into pieces of at most n bytes, without splitting a UTF-8
// sequence.
func pieces(s string, n int) []string {
	var out []string
	for len(s) > 0 {
		end := min(n, len(s))
		for end < len(s) && !utf8.RuneStart(s[end]) {
			end++
		}
		out = append(out, s[:end])
		s = s[end:]
	}
	return out
}
