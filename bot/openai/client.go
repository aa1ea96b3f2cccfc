// Package openai is the conversation loop's language model over any
// OpenAI-compatible chat completions API (OpenAI itself, vLLM, Ollama,
// LiteLLM, …), through github.com/sashabaranov/go-openai.
//
// It adds what the loop needs and the library leaves to its callers: a
// deadline per attempt, bounded retries of what is worth retrying, and errors
// the loop can tell people about (chat.ErrModelUnavailable,
// chat.ErrModelTimeout). It logs how each attempt went, never what was said:
// messages carry people's words, and the API key is a secret.
package openai

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strings"
	"time"

	oai "github.com/sashabaranov/go-openai"

	"github.com/kraken-ops/kraken/bot/chat"
)

// Defaults for Config.
const (
	DefaultTimeout = 30 * time.Second
	DefaultRetries = 2
)

// Config configures a Client.
type Config struct {
	// BaseURL is the API's base URL with its version prefix
	// ("http://localhost:11434/v1"); empty means OpenAI's.
	BaseURL string
	// APIKey is sent as a bearer token; empty sends none, for local servers
	// that want none.
	APIKey string
	// Model is the model's name; required.
	Model string
	// Timeout bounds each attempt; zero means DefaultTimeout.
	Timeout time.Duration
	// Retries is how many times a failed attempt is retried, when retrying
	// can help; zero means DefaultRetries, negative means never.
	Retries int
	// HTTPClient sends the requests; nil means a new http.Client.
	HTTPClient *http.Client
	// Logger receives a line per attempt; nil discards them.
	Logger *slog.Logger
	// Temperature is sent when not nil; nil leaves it to the model.
	Temperature *float32
}

// Client is a chat.Model. It is safe for concurrent use.
type Client struct {
	api         *oai.Client
	model       string
	key         string
	timeout     time.Duration
	retries     int
	temperature *float32
	log         *slog.Logger

	// wait sleeps between attempts; tests replace it to see the waits
	// without sitting through them.
	wait func(ctx context.Context, d time.Duration) error
}

var _ chat.Model = (*Client)(nil)

// New returns a Client for cfg.
func New(cfg Config) (*Client, error) {
	if strings.TrimSpace(cfg.Model) == "" {
		return nil, errors.New("openai: no model named")
	}
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("openai: negative timeout %s", cfg.Timeout)
	}
	c := &Client{
		model:       cfg.Model,
		key:         cfg.APIKey,
		timeout:     cfg.Timeout,
		retries:     cfg.Retries,
		temperature: cfg.Temperature,
		log:         cfg.Logger,
		wait:        sleep,
	}
	if c.timeout == 0 {
		c.timeout = DefaultTimeout
	}
	switch {
	case c.retries == 0:
		c.retries = DefaultRetries
	case c.retries < 0:
		c.retries = 0
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{}
	}
	oc := oai.DefaultConfig(cfg.APIKey)
	if cfg.BaseURL != "" {
		oc.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	}
	oc.HTTPClient = watcher{hc}
	c.api = oai.NewClientWithConfig(oc)
	return c, nil
}

// Complete asks the model for the next turn of the conversation.
//
// The error wraps chat.ErrModelTimeout when no answer came in time (an
// attempt's Timeout, or ctx's deadline), and chat.ErrModelUnavailable when
// the service failed, refused the request, or answered something unreadable.
// When ctx is canceled, it wraps ctx.Err() and neither: nobody is waiting
// to be told.
func (c *Client) Complete(ctx context.Context, req chat.ModelRequest) (chat.ModelResponse, error) {
	creq := c.request(req)
	for attempt := 1; ; attempt++ {
		resp, f, err := c.attempt(ctx, creq, attempt)
		if err == nil {
			return resp, nil
		}
		if !f.retry || attempt > c.retries {
			if attempt > 1 {
				err = fmt.Errorf("%w (after %d attempts)", err, attempt)
			}
			return chat.ModelResponse{}, err
		}
		d := backoff(attempt, f.retryAfter)
		if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < d {
			// Waiting would end past the caller's deadline: say what went
			// wrong now rather than time out later.
			return chat.ModelResponse{}, fmt.Errorf("%w (no time left to retry in %s)", err, d.Round(time.Millisecond))
		}
		if werr := c.wait(ctx, d); werr != nil {
			return chat.ModelResponse{}, fmt.Errorf("%w (gave up waiting to retry: %w)", err, werr)
		}
	}
}

// failure is what an attempt's failure says about the next one.
type failure struct {
	retry      bool
	retryAfter time.Duration // what the server asked for; zero if nothing
}

// attempt makes one request, bounded by the per-attempt timeout.
func (c *Client) attempt(ctx context.Context, req oai.ChatCompletionRequest, n int) (chat.ModelResponse, failure, error) {
	actx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var ex exchange
	actx = context.WithValue(actx, exchangeKey{}, &ex)

	start := time.Now()
	resp, err := c.api.CreateChatCompletion(actx, req)
	took := time.Since(start)

	if err == nil && len(resp.Choices) == 0 {
		err = errNoChoices
	}
	if err != nil {
		f, err := c.classify(ctx, actx, &ex, err)
		c.log.LogAttrs(ctx, slog.LevelWarn, "language model request failed",
			slog.String("model", c.model),
			slog.Int("attempt", n),
			slog.Int("status", ex.status),
			slog.Duration("duration", took),
			slog.Bool("retry", f.retry && n <= c.retries),
			slog.String("reason", reason(err, ex)),
		)
		return chat.ModelResponse{}, f, err
	}

	out := response(resp)
	c.log.LogAttrs(ctx, slog.LevelInfo, "language model answered",
		slog.String("model", c.model),
		slog.Int("attempt", n),
		slog.Int("status", ex.status),
		slog.Duration("duration", took),
		slog.Int("prompt_tokens", out.Usage.PromptTokens),
		slog.Int("completion_tokens", out.Usage.CompletionTokens),
		slog.Int("tool_calls", len(out.ToolCalls)),
		slog.String("finish_reason", string(resp.Choices[0].FinishReason)),
	)
	return out, failure{}, nil
}

var errNoChoices = errors.New("no choices in the answer")

// classify turns an attempt's error into one the loop understands, and says
// whether another attempt could do better.
func (c *Client) classify(ctx, actx context.Context, ex *exchange, err error) (failure, error) {
	var (
		apiErr *oai.APIError
		reqErr *oai.RequestError
	)
	switch {
	case ctx.Err() != nil:
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return failure{}, fmt.Errorf("openai: %w: %w", chat.ErrModelTimeout, ctx.Err())
		}
		return failure{}, fmt.Errorf("openai: %w", ctx.Err())

	case errors.Is(actx.Err(), context.DeadlineExceeded) || isTimeout(err):
		// Not retried: a model that said nothing for a whole attempt is
		// unlikely to be quicker on the next, and someone is waiting.
		return failure{}, fmt.Errorf("openai: no answer within %s: %w", c.timeout, chat.ErrModelTimeout)

	case !ex.sent:
		// go-openai refused the request before sending it (a parameter the
		// model does not take, say): it will refuse it again.
		return failure{}, fmt.Errorf("openai: %w: request not sent: %w", chat.ErrModelUnavailable, err)

	case errors.As(err, &apiErr):
		return c.statusFailure(ex, apiErr.HTTPStatusCode, apiErr.Message)

	case errors.As(err, &reqErr):
		// An error status without the API's error body (a proxy's page):
		// the body says nothing worth repeating.
		return c.statusFailure(ex, reqErr.HTTPStatusCode, "")

	case ex.status/100 == 2 && (isDecodeError(err) || errors.Is(err, errNoChoices)):
		// The server said it answered, but not anything we can read: a
		// proxy or a half-compatible server. Asking again would get the same.
		return failure{}, fmt.Errorf("openai: %w: unreadable answer (status %d): %w", chat.ErrModelUnavailable, ex.status, err)

	default:
		// The connection failed, before the answer or in the middle of it.
		return failure{retry: true}, fmt.Errorf("openai: %w: %w", chat.ErrModelUnavailable, err)
	}
}

// statusFailure is an error status: 429 and 5xx (and 408) are worth another
// try, the rest of 4xx is a refusal that will not change.
func (c *Client) statusFailure(ex *exchange, status int, message string) (failure, error) {
	f := failure{retry: status == http.StatusTooManyRequests || status == http.StatusRequestTimeout || status >= 500}
	if f.retry {
		f.retryAfter = retryAfter(ex.header, time.Now())
	}
	detail := ""
	if message = c.scrub(message); message != "" {
		detail = ": " + message
	}
	return f, fmt.Errorf("openai: %w: status %d%s", chat.ErrModelUnavailable, status, detail)
}

// scrub makes the API's error message fit to go into an error: without the
// key, should the API echo it, and short.
func (c *Client) scrub(msg string) string {
	if c.key != "" {
		msg = strings.ReplaceAll(msg, c.key, "[redacted]")
	}
	const limit = 200
	if len(msg) > limit {
		msg = strings.ToValidUTF8(msg[:limit], "") + "…"
	}
	return msg
}

// reason is the short, content-free why of a failure, for the log: the
// status already says most; the error's text could quote the API's
// message, which may quote the request.
func reason(err error, ex exchange) string {
	switch {
	case errors.Is(err, chat.ErrModelTimeout):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	case !ex.sent:
		return "not sent"
	case ex.status == http.StatusTooManyRequests:
		return "rate limited"
	case ex.status >= 500:
		return "server error"
	case ex.status >= 400:
		return "refused"
	case isDecodeError(err) || errors.Is(err, errNoChoices):
		return "unreadable answer"
	default:
		return "connection failed"
	}
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

// request maps the loop's request to the API's.
func (c *Client) request(req chat.ModelRequest) oai.ChatCompletionRequest {
	out := oai.ChatCompletionRequest{Model: c.model, MaxTokens: req.MaxTokens}
	if c.temperature != nil {
		out.Temperature = *c.temperature
		if out.Temperature == 0 {
			// go-openai omits a zero temperature, which would leave the
			// model's default (1), the opposite of what zero asks for.
			out.Temperature = math.SmallestNonzeroFloat32
		}
	}
	// Reasoning models refuse max_tokens and want max_completion_tokens,
	// which some OpenAI-compatible servers do not know: go-openai knows
	// which models are which.
	if errors.Is(oai.NewReasoningValidator().Validate(out), oai.ErrReasoningModelMaxTokensDeprecated) {
		out.MaxTokens, out.MaxCompletionTokens = 0, req.MaxTokens
	}
	for _, m := range req.Messages {
		out.Messages = append(out.Messages, message(m))
	}
	for _, t := range req.Tools {
		var params any = t.Parameters
		if len(t.Parameters) == 0 {
			// go-openai sends a missing schema as null, which the API
			// refuses; a tool without arguments takes an empty object.
			params = emptyObject
		}
		out.Tools = append(out.Tools, oai.Tool{
			Type: oai.ToolTypeFunction,
			Function: &oai.FunctionDefinition{
				Name:        t.Name,
				Description: t.Description,
				Parameters:  params,
			},
		})
	}
	return out
}

var emptyObject = map[string]any{"type": "object", "properties": map[string]any{}}

// noOutput stands for an empty tool result: go-openai drops empty content,
// and the API refuses a tool message without any.
const noOutput = "(no output)"

func message(m chat.Message) oai.ChatCompletionMessage {
	out := oai.ChatCompletionMessage{Role: string(m.Role), Content: m.Content, ToolCallID: m.ToolCallID}
	if m.Role == chat.RoleTool && m.Content == "" {
		out.Content = noOutput
	}
	for _, tc := range m.ToolCalls {
		out.ToolCalls = append(out.ToolCalls, oai.ToolCall{
			ID:       tc.ID,
			Type:     oai.ToolTypeFunction,
			Function: oai.FunctionCall{Name: tc.Name, Arguments: tc.Arguments},
		})
	}
	return out
}

// response maps the API's first choice back. Tool call arguments are passed
// on as the model wrote them, valid JSON or not: the loop validates them
// against the tool's schema and tells the model what was wrong.
func response(resp oai.ChatCompletionResponse) chat.ModelResponse {
	msg := resp.Choices[0].Message
	out := chat.ModelResponse{
		Content: msg.Content,
		Usage: chat.Usage{
			PromptTokens:     resp.Usage.PromptTokens,
			CompletionTokens: resp.Usage.CompletionTokens,
		},
	}
	if out.Content == "" {
		// A refusal is the model's answer too, in its own field.
		out.Content = msg.Refusal
	}
	for _, tc := range msg.ToolCalls {
		out.ToolCalls = append(out.ToolCalls, chat.ToolCall{ID: tc.ID, Name: tc.Function.Name, Arguments: tc.Function.Arguments})
	}
	return out
}
