package chat_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kraken-ops/kraken/bot/chat"
	"github.com/kraken-ops/kraken/bot/command"
	"github.com/kraken-ops/kraken/bot/llmtest"
	"github.com/kraken-ops/kraken/bot/openai"
	"github.com/kraken-ops/kraken/enclave"
	"github.com/kraken-ops/kraken/engine"
	"github.com/kraken-ops/kraken/engine/dev"
	"github.com/kraken-ops/kraken/store"
)

// The scenarios run through the registry, as every transport does, with
// the real registry over engine/dev, the real OpenAI client, and a
// scripted OpenAI-compatible server standing in for the model.

const team = "T1"

var (
	payments = enclave.Channel{TeamID: team, ID: "C1", Name: "payments"}
	billing  = enclave.Channel{TeamID: team, ID: "C2", Name: "billing"}
	owner    = enclave.Principal{TeamID: team, UserID: "UOWNER"}
	member   = enclave.Principal{TeamID: team, UserID: "UMEMBER"}
)

// channels is the workspace in memory: who is in which channel.
type channels struct {
	mu      sync.Mutex
	members map[string][]string
}

func (c *channels) Members(_ context.Context, ch enclave.Channel) ([]string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.members[ch.ID]), nil
}

func (c *channels) Info(_ context.Context, ch enclave.Channel) (command.ChannelInfo, error) {
	return command.ChannelInfo{Name: ch.Name}, nil
}

func (c *channels) Invite(_ context.Context, ch enclave.Channel, user string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.members[ch.ID] = append(c.members[ch.ID], user)
	return nil
}

func (c *channels) Kick(_ context.Context, ch enclave.Channel, user string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.members[ch.ID] = slices.DeleteFunc(c.members[ch.ID], func(m string) bool { return m == user })
	return nil
}

type fixture struct {
	t    *testing.T
	reg  *command.Registry
	db   *store.DB
	llm  *llmtest.Server
	chat *chat.Chat

	mu       sync.Mutex
	now      time.Time
	observed map[string]int
}

type options struct {
	maxSteps int
	timeout  time.Duration
}

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// newFixture is two provisioned channels, payments and billing, both
// owned by UOWNER, with UMEMBER in payments only, and a conversation
// loop answering plain words in both.
func newFixture(t *testing.T, opts options) *fixture {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	rt, err := dev.Open(ctx, dev.Options{Dir: filepath.Join(dir, "cluster")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close() })
	db, err := store.Open(filepath.Join(dir, "kraken.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	f := &fixture{t: t, db: db, llm: llmtest.New(t), now: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC), observed: map[string]int{}}
	ch := &channels{members: map[string][]string{
		payments.ID: {owner.UserID, member.UserID},
		billing.ID:  {owner.UserID},
	}}
	f.reg, err = command.New(command.Config{
		Enclaves: rt.Enclaves(), Tentacles: rt.Tentacles(), Store: db, Channels: ch,
		Examples: os.DirFS(filepath.Join(repoRoot(), "examples")), Now: f.clock,
	})
	if err != nil {
		t.Fatal(err)
	}
	if opts.timeout == 0 {
		opts.timeout = 10 * time.Second
	}
	model, err := openai.New(openai.Config{BaseURL: f.llm.BaseURL(), Model: "test-model", HTTPClient: f.llm.Client(), Timeout: opts.timeout, Retries: -1})
	if err != nil {
		t.Fatal(err)
	}
	f.chat, err = chat.New(chat.Config{
		Model: model, Registry: f.reg, Store: db, MaxSteps: opts.maxSteps,
		Checker: chat.EngineChecker(engine.CheckOptions{}),
		Now:     f.clock,
		Logger:  slog.New(slog.DiscardHandler),
		Observe: func(enc string, n int) {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.observed[enc] += n
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	f.reg.SetChat(f.chat)
	f.ok(owner, payments, "provision")
	f.ok(owner, billing, "provision")
	return f
}

func (f *fixture) clock() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fixture) advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(d)
}

// say is a person writing plain words (or a command) in a channel's
// thread, as the Slack transport hands it to the registry.
func (f *fixture) say(who enclave.Principal, ch enclave.Channel, thread, text string) command.Reply {
	f.t.Helper()
	return f.reg.Do(context.Background(), command.Request{Actor: who, Via: command.ViaSlack, Channel: ch, Thread: thread, Text: text}).Wait(context.Background())
}

func (f *fixture) ok(who enclave.Principal, ch enclave.Channel, text string) command.Reply {
	f.t.Helper()
	r := f.say(who, ch, "", text)
	if r.Failed {
		f.t.Fatalf("%s in %s: /kraken %s failed: %s", who.UserID, ch.Name, text, r.Text)
	}
	return r
}

// deployed deploys an example with a slash command, confirming the card.
func (f *fixture) deployed(example string) {
	f.t.Helper()
	r := f.ok(owner, payments, "deploy "+example)
	if r.Confirm == nil {
		f.t.Fatalf("deploy %s asked no confirmation: %+v", example, r)
	}
	if c := f.reg.Click(context.Background(), command.Click{Actor: owner, Via: command.ViaSlack, Channel: payments, Value: r.Confirm.ConfirmValue}); c.Failed {
		f.t.Fatalf("deploy %s: %+v", example, c)
	}
}

// echo scripts an answer that repeats the latest tool result, the way a
// model answers from what a tool said.
func (f *fixture) echo() {
	f.llm.Handle(func(r llmtest.Request) llmtest.Response {
		return llmtest.Response{Content: "From what I see: " + r.LastToolResult()}
	})
}

// call scripts a tool call with JSON arguments.
func call(name, args string) llmtest.Call { return llmtest.Call{Name: name, Arguments: args} }

// llmAudit is what the loop asked of the registry, from the audit log.
func (f *fixture) llmAudit() []store.AuditEntry {
	f.t.Helper()
	all, err := f.db.ListAudit(context.Background(), store.AuditQuery{Limit: 1000})
	if err != nil {
		f.t.Fatal(err)
	}
	return slices.DeleteFunc(all, func(e store.AuditEntry) bool { return e.Via != command.ViaLLM })
}

// sent is everything the model was sent, raw, for checks that something
// never reached it.
func (f *fixture) sent() string {
	var b strings.Builder
	for _, r := range f.llm.Requests() {
		b.Write(r.Body)
		b.WriteByte('\n')
	}
	return b.String()
}

func toolResults(r llmtest.Request) []string {
	var out []string
	for _, m := range r.Messages {
		if m.Role == "tool" {
			out = append(out, m.Content)
		}
	}
	return out
}
