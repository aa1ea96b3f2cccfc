package chat

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"text/template"
	"time"

	"github.com/kraken-ops/kraken/bot/command"
	"github.com/kraken-ops/kraken/prompts"
	"github.com/kraken-ops/kraken/store"
)

// Registry is what the loop needs of the command registry: the verbs this
// person may use here, a tool call checked into a command line, the call
// itself, proposing a tentacle it wrote, and metering.
type Registry interface {
	Do(ctx context.Context, req command.Request) command.Reply
	Tools(ctx context.Context, req command.Request) ([]command.Command, error)
	CommandLine(name string, args map[string]any) (string, error)
	ProposeDeploy(ctx context.Context, req command.Request, files map[string][]byte) command.Reply
	RecordUsage(ctx context.Context, enclave, user string, tokens int) error
	EnclaveName(ctx context.Context, req command.Request) (string, error)
}

// Config wires a Chat.
type Config struct {
	Model    Model
	Registry Registry
	// Store keeps thread memory.
	Store *store.DB
	// Checker tests a tentacle the model wrote; without one the model is
	// not offered to write tentacles.
	Checker Checker
	// MaxSteps bounds the model calls of one answer; default 6.
	MaxSteps int
	// MaxTokens bounds each of the model's answers; default 1024.
	MaxTokens int
	// AuthorMaxTokens bounds an answer while writing a tentacle, which
	// carries whole files; default 8192.
	AuthorMaxTokens int
	// MaxRepairs is how many times a written tentacle that fails its
	// check goes back to the model; default 3.
	MaxRepairs int
	// MemoryTurns is how many messages a thread keeps; default 20.
	MemoryTurns int
	// MemoryTTL is how long a quiet thread is remembered; default 24h.
	MemoryTTL time.Duration
	Now       func() time.Time
	Logger    *slog.Logger
	// Observe, when set, is told the tokens each conversation used, by
	// enclave ("" for a channel without one), for metrics.
	Observe func(enclave string, tokens int)
}

// Chat is the conversation loop: it implements command.Chat.
type Chat struct {
	cfg    Config
	mem    *memory
	system *template.Template
	log    *slog.Logger
}

var _ command.Chat = (*Chat)(nil)

// New makes a Chat.
func New(cfg Config) (*Chat, error) {
	if cfg.Model == nil || cfg.Registry == nil || cfg.Store == nil {
		return nil, errors.New("chat: a conversation loop needs a model, a registry and a store")
	}
	setDefault(&cfg.MaxSteps, 6)
	setDefault(&cfg.MaxTokens, 1024)
	setDefault(&cfg.AuthorMaxTokens, 8192)
	setDefault(&cfg.MaxRepairs, 3)
	setDefault(&cfg.MemoryTurns, 20)
	setDefault(&cfg.MemoryTTL, 24*time.Hour)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Observe == nil {
		cfg.Observe = func(string, int) {}
	}
	system, err := parseSystem()
	if err != nil {
		return nil, err
	}
	return &Chat{
		cfg:    cfg,
		system: system,
		log:    cfg.Logger,
		mem: &memory{
			threads: store.NewBucket[thread](cfg.Store, "conversations"),
			turns:   cfg.MemoryTurns,
			ttl:     cfg.MemoryTTL,
			now:     cfg.Now,
		},
	}, nil
}

func setDefault[T int | time.Duration](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

func parseSystem() (*template.Template, error) {
	t, err := template.New("system").Option("missingkey=error").Parse(prompts.System())
	if err != nil {
		return nil, fmt.Errorf("chat: system prompt: %w", err)
	}
	return t, nil
}

// PruneMemory forgets the threads quiet for longer than MemoryTTL and
// says how many. Expired threads are never read back in any case; this
// only frees their space, so call it now and then (say, hourly).
func (c *Chat) PruneMemory(ctx context.Context) (int, error) {
	n, err := c.mem.prune(ctx)
	if err != nil {
		return n, fmt.Errorf("chat: prune memory: %w", err)
	}
	return n, nil
}
