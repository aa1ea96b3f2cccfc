package chat

import (
	"context"
	"fmt"
	"time"

	"github.com/kraken-ops/kraken/bot/command"
	"github.com/kraken-ops/kraken/store"
)

// thread is what the bot remembers of one conversation: the person's
// messages and its answers, in words. Tool calls and their results are
// not kept: the next turn asks the tools again rather than trusting what
// was true a while ago, and an answer already says what mattered.
type thread struct {
	Messages []Message `json:"messages"`
	Updated  time.Time `json:"updated"`
}

// memory keeps threads in the store, bounded and expiring.
type memory struct {
	threads *store.Bucket[thread]
	turns   int
	ttl     time.Duration
	now     func() time.Time
}

// threadKey names a conversation: its workspace, channel, thread and
// person. The channel keeps enclaves apart (another channel's words never
// reach this one's model); the person keeps people apart, because an
// answer was written from tool results read with that person's rights,
// and some replies were private.
func threadKey(req command.Request) string {
	t := req.Thread
	if t == "" {
		t = "-"
	}
	return req.Channel.TeamID + "/" + req.Channel.ID + "/" + t + "/" + req.Actor.UserID
}

// recall returns the thread's messages, none when it expired.
func (m *memory) recall(ctx context.Context, key string) ([]Message, error) {
	t, ok, err := m.threads.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("recall: %w", err)
	}
	if !ok || m.expired(t) {
		return nil, nil
	}
	return t.Messages, nil
}

// remember appends messages to the thread, keeping the newest turns.
func (m *memory) remember(ctx context.Context, key string, msgs ...Message) error {
	_, err := m.threads.Update(ctx, key, func(t thread, _ bool) (thread, error) {
		if m.expired(t) {
			t.Messages = nil
		}
		t.Messages = bound(append(t.Messages, msgs...), m.turns)
		t.Updated = m.now()
		return t, nil
	})
	if err != nil {
		return fmt.Errorf("remember: %w", err)
	}
	return nil
}

func (m *memory) expired(t thread) bool { return m.now().Sub(t.Updated) > m.ttl }

// prune deletes the expired threads.
func (m *memory) prune(ctx context.Context) (int, error) {
	return m.threads.DeleteFunc(ctx, "", func(_ string, t thread) bool { return m.expired(t) })
}

// bound keeps the last n messages, starting at one of the person's so
// the model never reads an answer without its question.
func bound(msgs []Message, n int) []Message {
	if len(msgs) > n {
		msgs = msgs[len(msgs)-n:]
	}
	for len(msgs) > 0 && msgs[0].Role != RoleUser {
		msgs = msgs[1:]
	}
	return append([]Message(nil), msgs...)
}
