package slack

import (
	"context"

	slackapi "github.com/slack-go/slack"

	"github.com/kraken-ops/kraken/bot/command"
)

// thinkingText is what a placeholder says while the conversation loop
// works.
const thinkingText = "Thinking…"

// placeholder is what the bot showed while it worked: a message in the
// conversation (channel and ts), or an ephemeral answer to a slash
// command (responseURL). The zero placeholder is none.
type placeholder struct {
	channel, ts string
	responseURL string
}

// thinking shows a placeholder where the answer will go: the slash
// command's ephemeral answer, or a message in the thread. If Slack will
// not take it, the answer comes without one.
func (a *App) thinking(ctx context.Context, t target) placeholder {
	if t.responseURL != "" {
		if err := a.respond(ctx, t.responseURL, command.Reply{Text: thinkingText, Private: true}, false); err != nil {
			a.logOf(ctx).Info("placeholder not shown", "err", err)
			return placeholder{}
		}
		return placeholder{responseURL: t.responseURL}
	}
	ch, ts, err := a.postText(ctx, t.channel, t.thread, thinkingText)
	if err != nil {
		a.logOf(ctx).Info("placeholder not posted", "err", err)
		return placeholder{}
	}
	return placeholder{channel: ch, ts: ts}
}

// finish shows the answer where the placeholder was: in its place when
// everyone who saw the placeholder may see the answer; otherwise the
// answer goes only to the asker and the placeholder goes away. The answer
// is shown before the placeholder is removed, so there is never nothing.
func (a *App) finish(ctx context.Context, t target, ph placeholder, rep command.Reply) error {
	rep = a.prepare(ctx, t, rep)
	switch {
	case ph.responseURL != "":
		if rep.Private {
			err := a.replaceResponse(ctx, ph.responseURL, rep)
			if err == nil {
				return nil
			}
			a.logOf(ctx).Info("placeholder not replaced; answering anew", "err", err)
			t.responseURL = "" // it failed once already
			return a.deliver(ctx, t, rep)
		}
		err := a.deliver(ctx, t, rep)
		a.deleteResponse(ctx, ph.responseURL)
		return err
	case ph.ts != "":
		// A picture cannot join a message after the fact; it goes first,
		// with the answer under it, as deliver does.
		// Nor can work that goes on be followed there.
		if !rep.Private && rep.Image == nil && rep.Later == nil {
			err := a.updateMessage(ctx, ph.channel, ph.ts, rep, t.asked)
			if err == nil {
				return nil
			}
			a.logOf(ctx).Info("placeholder not updated; answering anew", "err", err)
		}
		err := a.deliver(ctx, t, rep)
		a.deleteMessage(ctx, ph.channel, ph.ts)
		return err
	}
	return a.deliver(ctx, t, rep)
}

// postText posts a line of text and returns where it went.
func (a *App) postText(ctx context.Context, channel, thread, text string) (string, string, error) {
	type posted struct{ channel, ts string }
	p, err := call(ctx, a, "chat.postMessage", func(ctx context.Context) (posted, error) {
		opts := []slackapi.MsgOption{slackapi.MsgOptionText(text, false)}
		if thread != "" {
			opts = append(opts, slackapi.MsgOptionTS(thread))
		}
		ch, ts, err := a.api.PostMessageContext(ctx, channel, opts...)
		return posted{ch, ts}, err
	})
	return p.channel, p.ts, err
}

// updateMessage replaces one of the bot's messages with a reply.
func (a *App) updateMessage(ctx context.Context, channel, ts string, rep command.Reply, asked string) error {
	text, blocks := render(rep, asked)
	_, err := call(ctx, a, "chat.update", func(ctx context.Context) (string, error) {
		_, _, _, err := a.api.UpdateMessageContext(ctx, channel, ts, slackapi.MsgOptionText(text, false), slackapi.MsgOptionBlocks(blocks...))
		return "", err
	})
	return err
}

// deleteMessage removes one of the bot's messages; a failure leaves a
// stale "Thinking…" behind, worth a log line and no more.
func (a *App) deleteMessage(ctx context.Context, channel, ts string) {
	_, err := call(ctx, a, "chat.delete", func(ctx context.Context) (string, error) {
		_, _, err := a.api.DeleteMessageContext(ctx, channel, ts)
		return "", err
	})
	if err != nil {
		a.logOf(ctx).Info("placeholder not deleted", "err", err)
	}
}

// replaceResponse replaces the ephemeral message a response_url showed.
func (a *App) replaceResponse(ctx context.Context, responseURL string, rep command.Reply) error {
	text, blocks := render(rep, "")
	_, err := call(ctx, a, "response_url", func(ctx context.Context) (string, error) {
		_, _, err := a.api.PostMessageContext(ctx, "", slackapi.MsgOptionReplaceOriginal(responseURL),
			slackapi.MsgOptionText(text, false), slackapi.MsgOptionBlocks(blocks...))
		return "", err
	})
	return err
}

// deleteResponse removes the ephemeral message a response_url showed.
func (a *App) deleteResponse(ctx context.Context, responseURL string) {
	_, err := call(ctx, a, "response_url", func(ctx context.Context) (string, error) {
		_, _, err := a.api.PostMessageContext(ctx, "", slackapi.MsgOptionDeleteOriginal(responseURL))
		return "", err
	})
	if err != nil {
		a.logOf(ctx).Info("placeholder not deleted", "err", err)
	}
}
