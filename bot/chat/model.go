// Package chat is the conversation loop: a person's plain words become
// the same registry calls a slash command makes, through a language model
// that may only answer or call the verbs this person may use in this
// channel's enclave.
package chat

import (
	"context"
	"encoding/json"
	"errors"
)

// Model is a chat-completion language model with tool calling.
type Model interface {
	Complete(ctx context.Context, req ModelRequest) (ModelResponse, error)
}

// ModelRequest is one completion request.
type ModelRequest struct {
	Messages []Message
	Tools    []ToolSpec
	// MaxTokens bounds the answer; zero leaves it to the model.
	MaxTokens int
}

// Role is who said a message.
type Role string

const (
	RoleSystem    Role = "system"
	RoleUser      Role = "user"
	RoleAssistant Role = "assistant"
	RoleTool      Role = "tool"
)

// Message is one turn of a conversation.
type Message struct {
	Role    Role   `json:"role"`
	Content string `json:"content,omitempty"`
	// ToolCalls are what an assistant message asks to run.
	ToolCalls []ToolCall `json:"tool_calls,omitempty"`
	// ToolCallID answers a tool call, in a tool message.
	ToolCallID string `json:"tool_call_id,omitempty"`
}

// ToolCall is the model asking to run a tool. Arguments is the JSON the
// model wrote, which may be anything: it is validated before use.
type ToolCall struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	Arguments string `json:"arguments"`
}

// ToolSpec describes a tool to the model: a name, what it does, and its
// parameters as a JSON Schema object.
type ToolSpec struct {
	Name        string          `json:"name"`
	Description string          `json:"description"`
	Parameters  json.RawMessage `json:"parameters"`
}

// ModelResponse is the model's answer: text, tool calls, or both.
type ModelResponse struct {
	Content   string
	ToolCalls []ToolCall
	Usage     Usage
}

// Usage is what a request cost, in tokens.
type Usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
}

// Total is prompt and completion tokens together.
func (u Usage) Total() int { return u.PromptTokens + u.CompletionTokens }

// Errors a Model returns that the loop tells people about in their own
// words.
var (
	// ErrModelUnavailable: the model's service did not answer, answered
	// with a server error, or kept rate-limiting after the retries.
	ErrModelUnavailable = errors.New("the language model is unavailable")
	// ErrModelTimeout: no answer in time.
	ErrModelTimeout = errors.New("the language model took too long")
)
