package chat

import (
	"context"
	"errors"
	"strings"

	"github.com/kraken-ops/kraken/bot/command"
	"github.com/kraken-ops/kraken/enclave"
)

// Converse answers a person's plain words: the model reads them with the
// thread's memory and may call the verbs this person may use in this
// channel's enclave, through the registry, until it answers, proposes
// something the person must confirm, or runs out of steps.
func (c *Chat) Converse(ctx context.Context, req command.Request) command.Reply {
	if req.Admin != nil {
		// The loop's tools are a person's rights in a channel; an
		// administrator has neither here.
		return command.Reply{Text: "The AI assistant talks with people in Slack. The admin API takes commands, like `info` or `list`.", Failed: true}
	}
	text := strings.TrimSpace(req.Text)
	if text == "" {
		return command.Reply{Text: "Ask me about this channel's tentacles in plain words, or see `/kraken help` for the commands.", Private: true}
	}
	if HasSecret(text) {
		// Checked before anything is stored or sent: the value goes
		// nowhere, not even to the log.
		c.log.Info("a message with a secret in it was not kept", "team", req.Channel.TeamID, "channel", req.Channel.ID, "user", req.Actor.UserID)
		return pastedSecret
	}
	t := &turn{c: c, req: req}
	defer t.meter(ctx)
	out := t.answer(ctx, text)
	if out.note != "" {
		if err := c.mem.remember(context.WithoutCancel(ctx), threadKey(req),
			Message{Role: RoleUser, Content: text}, Message{Role: RoleAssistant, Content: out.note}); err != nil {
			c.log.Warn("conversation not remembered", "channel", req.Channel.ID, "err", err)
		}
	}
	return out.reply
}

// pastedSecret answers a message with a secret in it.
var pastedSecret = command.Reply{
	Text: "That message looks like it has a secret in it (a token, key or password), so I didn't keep it, pass it on or repeat it. " +
		"To give a tentacle a secret, use `/kraken secret <tentacle> <name>`: it opens a private form only you see. " +
		"The value was posted in this channel, so treat it as seen: make a new one where it was issued and revoke the old one.",
	Private: true,
	Failed:  true,
}

// unavailable answers when the model does not. It says nothing of why:
// the reason is in the log, and the person can do nothing about it but
// use the commands.
var unavailable = command.Reply{
	Text:   "The AI assistant isn't answering right now. Slash commands still work: `/kraken help`.",
	Failed: true,
}

// outcome is how a turn ended: the reply for the person, and what the
// thread remembers the bot said ("" remembers nothing of the turn).
type outcome struct {
	reply command.Reply
	note  string
}

// turn is one answer being worked out.
type turn struct {
	c       *Chat
	req     command.Request
	enclave string
	tokens  int
	// private: a tool's answer was for the person's eyes only (the audit
	// log, say), so the answer built from it is too.
	private bool
}

func (t *turn) answer(ctx context.Context, text string) outcome {
	c := t.c
	history, err := c.mem.recall(ctx, threadKey(t.req))
	if err != nil {
		c.log.Warn("conversation memory not read", "channel", t.req.Channel.ID, "err", err)
	}
	cmds, err := c.cfg.Registry.Tools(ctx, t.req)
	if err != nil {
		c.log.Warn("tools not listed", "channel", t.req.Channel.ID, "err", err)
		return outcome{reply: command.Reply{Text: "I couldn't look at this channel's enclave just now. Try again in a minute, or use `/kraken help`.", Failed: true}}
	}
	t.enclave, err = c.cfg.Registry.EnclaveName(ctx, t.req)
	if err != nil && !errors.Is(err, enclave.ErrNotFound) {
		c.log.Warn("enclave not named", "channel", t.req.Channel.ID, "err", err)
	}
	system, err := c.systemPrompt(ctx, t.req, t.enclave)
	if err != nil {
		c.log.Error("system prompt", "err", err)
		return outcome{reply: unavailable}
	}
	tools := ToolSpecs(cmds, c.cfg.Checker != nil)
	offered := make(map[string]bool, len(tools))
	for _, s := range tools {
		offered[s.Name] = true
	}
	msgs := make([]Message, 0, len(history)+2+2*c.cfg.MaxSteps)
	msgs = append(msgs, Message{Role: RoleSystem, Content: system})
	msgs = append(msgs, history...)
	msgs = append(msgs, Message{Role: RoleUser, Content: text})

	for range c.cfg.MaxSteps {
		resp, err := t.complete(ctx, ModelRequest{Messages: msgs, Tools: tools, MaxTokens: c.cfg.MaxTokens})
		if err != nil {
			c.log.Warn("the model did not answer", "channel", t.req.Channel.ID, "err", err)
			return outcome{reply: unavailable}
		}
		if len(resp.ToolCalls) == 0 {
			answer := plain(resp.Content)
			if answer == "" {
				answer = "I don't have an answer to that. Could you say it another way? `/kraken help` lists the commands."
			}
			return outcome{reply: command.Reply{Text: answer, Private: t.private}, note: answer}
		}
		msgs = append(msgs, Message{Role: RoleAssistant, Content: resp.Content, ToolCalls: resp.ToolCalls})
		for _, call := range resp.ToolCalls {
			result, done := t.call(ctx, call, offered)
			if done != nil {
				// The person acts next (a card, a form) or the turn
				// ended in the call (a tentacle written): the model is
				// told nothing more.
				return *done
			}
			msgs = append(msgs, Message{Role: RoleTool, ToolCallID: call.ID, Content: result})
		}
	}
	const gaveUp = "I couldn't finish that in a few steps; try a more specific request or `/kraken help`."
	return outcome{reply: command.Reply{Text: gaveUp, Failed: true}, note: gaveUp}
}

// complete asks the model, with everything it reads redacted, and counts
// the tokens.
func (t *turn) complete(ctx context.Context, req ModelRequest) (ModelResponse, error) {
	req.Messages = redactMessages(req.Messages)
	resp, err := t.c.cfg.Model.Complete(ctx, req)
	t.tokens += resp.Usage.Total()
	return resp, err
}

// redactMessages hides secret-looking values in what people, tools and
// checks said. The model's own messages are left as written: it only ever
// read redacted text, so they hold no secret, and redacting them would
// change code it wrote (a "token:" in a node) under its feet.
func redactMessages(msgs []Message) []Message {
	out := make([]Message, len(msgs))
	for i, m := range msgs {
		if m.Role != RoleAssistant {
			m.Content = Redact(m.Content)
		}
		out[i] = m
	}
	return out
}

// meter records what the conversation cost, for /kraken info and metrics.
func (t *turn) meter(ctx context.Context) {
	if t.tokens == 0 {
		return
	}
	if t.enclave != "" {
		if err := t.c.cfg.Registry.RecordUsage(context.WithoutCancel(ctx), t.enclave, t.req.Actor.UserID, t.tokens); err != nil {
			t.c.log.Warn("token usage not recorded", "enclave", t.enclave, "err", err)
		}
	}
	t.c.cfg.Observe(t.enclave, t.tokens)
}

// toolRequest is a registry request made for the person by the loop: the
// same person and channel, so the same rights and the same enclave, and
// never an administrator's powers or a typed confirmation.
func (t *turn) toolRequest(line string) command.Request {
	return command.Request{
		Actor:      t.req.Actor,
		ActorEmail: t.req.ActorEmail,
		Via:        command.ViaLLM,
		Channel:    t.req.Channel,
		Thread:     t.req.Thread,
		Text:       line,
		Files:      t.req.Files,
	}
}
