package slack

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	slackapi "github.com/slack-go/slack"

	"github.com/kraken-ops/kraken/bot/command"
)

// maxAttempts bounds how often one Web API call is tried when Slack keeps
// answering 429.
const maxAttempts = 4

// call runs one Web API call, waiting out rate limits: after a 429 it
// waits as long as Slack's Retry-After asks and tries again, up to
// maxAttempts in all, and gives up as soon as ctx ends.
func call[T any](ctx context.Context, a *App, method string, fn func(context.Context) (T, error)) (T, error) {
	for attempt := 1; ; attempt++ {
		v, err := fn(ctx)
		rl, limited := errors.AsType[*slackapi.RateLimitedError](err)
		if !limited || attempt == maxAttempts {
			if err != nil {
				err = fmt.Errorf("%s: %w", method, err)
			}
			return v, err
		}
		a.count("rate_limited")
		wait := max(rl.RetryAfter, time.Second)
		a.logOf(ctx).Info("rate limited by Slack; waiting", "method", method, "wait", wait, "attempt", attempt)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			var zero T
			return zero, fmt.Errorf("%s: %w", method, ctx.Err())
		case <-t.C:
		}
	}
}

// slackError is the error code in a Web API error ("not_in_channel"), or
// "" for other errors.
func slackError(err error) string {
	if e, ok := errors.AsType[slackapi.SlackErrorResponse](err); ok {
		return e.Err
	}
	return ""
}

// How long looked-up names stay fresh. Renames arrive as events and
// update the cache at once; the TTL covers missed ones.
const (
	userTTL    = time.Hour
	channelTTL = 10 * time.Minute
)

// learnBotUser records the bot's own user id when an event names it.
func (a *App) learnBotUser(id string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.botID == "" {
		a.botID = id
	}
}

// botUser is the bot's own user id, from auth.test the first time.
func (a *App) botUser(ctx context.Context) (string, error) {
	a.mu.Lock()
	id := a.botID
	a.mu.Unlock()
	if id != "" {
		return id, nil
	}
	return a.authTest(ctx)
}

// authTest asks Slack who the bot is.
func (a *App) authTest(ctx context.Context) (string, error) {
	r, err := call(ctx, a, "auth.test", func(ctx context.Context) (*slackapi.AuthTestResponse, error) {
		return a.api.AuthTestContext(ctx)
	})
	if err != nil {
		return "", err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.botID = r.UserID
	return r.UserID, nil
}

// userEmail is a person's email for the audit log, "" when Slack does not
// say (no users:read.email scope, a bot, an error).
func (a *App) userEmail(ctx context.Context, user string) string {
	if user == "" {
		return ""
	}
	now := time.Now()
	a.mu.Lock()
	c, ok := a.users[user]
	a.mu.Unlock()
	if ok && now.Before(c.expires) {
		return c.value
	}
	u, err := call(ctx, a, "users.info", func(ctx context.Context) (*slackapi.User, error) {
		return a.api.GetUserInfoContext(ctx, user)
	})
	if err != nil {
		a.logOf(ctx).Debug("user not looked up", "user", user, "err", err)
		return ""
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.users[user] = cached{value: u.Profile.Email, expires: now.Add(userTTL)}
	return u.Profile.Email
}

// channelName is a channel's name, "" when Slack will not say.
func (a *App) channelName(ctx context.Context, id string) string {
	if id == "" {
		return ""
	}
	a.mu.Lock()
	c, ok := a.channels[id]
	a.mu.Unlock()
	if ok && time.Now().Before(c.expires) {
		return c.value
	}
	ch, err := a.conversationInfo(ctx, id)
	if err != nil {
		a.logOf(ctx).Debug("channel not looked up", "err", err)
		return c.value // a stale name beats none
	}
	return ch.Name
}

func (a *App) conversationInfo(ctx context.Context, id string) (*slackapi.Channel, error) {
	ch, err := call(ctx, a, "conversations.info", func(ctx context.Context) (*slackapi.Channel, error) {
		return a.api.GetConversationInfoContext(ctx, &slackapi.GetConversationInfoInput{ChannelID: id})
	})
	if err == nil && !ch.IsIM {
		a.setChannelName(id, ch.Name)
	}
	return ch, err
}

func (a *App) setChannelName(id, name string) {
	if id == "" || name == "" {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.channels[id] = cached{value: name, expires: time.Now().Add(channelTTL)}
}

// cachedChannelName is the last name known for a channel, without asking
// Slack: for a channel that is gone.
func (a *App) cachedChannelName(id string) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.channels[id].value
}

// target is where a reply goes.
type target struct {
	// channel is a channel id, or a user id for a direct message.
	channel string
	thread  string
	// user asked; a private reply is shown to them alone.
	user string
	// responseURL, when the request came with one, reaches the asker
	// wherever they are, even where the bot is not a member.
	responseURL string
	// asked, when set, says under a public reply who asked for it.
	asked string
	// direct: channel is the asker's direct conversation with the bot,
	// where everything is private already.
	direct bool
	// trigger is the request's trigger_id, when it had one: a secret
	// form opens with it.
	trigger string
}

// deliver shows a reply: privately to the asker (through the
// response_url, or as an ephemeral message), or in the channel. A public
// post starts a thread the bot is in (or continues one).
func (a *App) deliver(ctx context.Context, t target, rep command.Reply) error {
	if rep.Later != nil {
		return a.deliverLater(ctx, t, rep)
	}
	rep = a.prepare(ctx, t, rep)
	if rep.Private {
		if rep.Image != nil {
			// Files cannot be ephemeral; the text says what the picture
			// would have shown.
			a.logOf(ctx).Debug("picture of a private reply not shown", "name", rep.Image.Name)
		}
		if t.responseURL != "" {
			err := a.respond(ctx, t.responseURL, rep, false)
			if err == nil {
				return nil
			}
			a.logOf(ctx).Info("response_url failed; trying an ephemeral message", "err", err)
		}
		if t.user == "" {
			return errors.New("private reply with no one to show it to")
		}
		return a.postEphemeral(ctx, t.channel, t.user, t.thread, rep)
	}
	if rep.Image != nil {
		// The picture goes first, so the card with its buttons stays at
		// the bottom, where people look.
		if err := a.upload(ctx, t.channel, t.thread, rep.Image); err != nil {
			a.logOf(ctx).Warn("picture not uploaded", "name", rep.Image.Name, "err", err)
		}
	}
	text, blocks := render(rep, t.asked)
	ts, err := call(ctx, a, "chat.postMessage", func(ctx context.Context) (string, error) {
		_, ts, err := a.api.PostMessageContext(ctx, t.channel, messageOptions(text, blocks, t.thread)...)
		return ts, err
	})
	if err == nil {
		a.rememberThread(ctx, t.channel, cmp.Or(t.thread, ts))
	}
	if err != nil && t.responseURL != "" {
		// Not in the channel, say: the response_url can still post there.
		a.logOf(ctx).Info("chat.postMessage failed; answering through the response_url", "err", err)
		return a.respond(ctx, t.responseURL, rep, true)
	}
	return err
}

func messageOptions(text string, blocks []slackapi.Block, thread string) []slackapi.MsgOption {
	opts := []slackapi.MsgOption{slackapi.MsgOptionText(text, false), slackapi.MsgOptionBlocks(blocks...)}
	if thread != "" {
		opts = append(opts, slackapi.MsgOptionTS(thread))
	}
	return opts
}

// respond posts a reply to a response_url: ephemeral unless inChannel.
// It never replaces the message the request came from.
func (a *App) respond(ctx context.Context, responseURL string, rep command.Reply, inChannel bool) error {
	kind := slackapi.ResponseTypeEphemeral
	if inChannel {
		kind = slackapi.ResponseTypeInChannel
	}
	text, blocks := render(rep, "")
	_, err := call(ctx, a, "response_url", func(ctx context.Context) (string, error) {
		_, _, err := a.api.PostMessageContext(ctx, "", slackapi.MsgOptionResponseURL(responseURL, kind),
			slackapi.MsgOptionText(text, false), slackapi.MsgOptionBlocks(blocks...))
		return "", err
	})
	return err
}

func (a *App) postEphemeral(ctx context.Context, channel, user, thread string, rep command.Reply) error {
	text, blocks := render(rep, "")
	_, err := call(ctx, a, "chat.postEphemeral", func(ctx context.Context) (string, error) {
		return a.api.PostEphemeralContext(ctx, channel, user, messageOptions(text, blocks, thread)...)
	})
	return err
}

// cardUpdate is a card to change in place after a click.
type cardUpdate struct {
	channel, ts string
	ephemeral   bool
	responseURL string
	// original are the card's blocks as Slack sent them with the click.
	original json.RawMessage
	// by says who did what: "<@U1> chose *Confirm*".
	by string
}

// updateCard shows the outcome of a click on the card itself: what the
// card said, without its buttons and inputs, then the outcome.
func (a *App) updateCard(ctx context.Context, c cardUpdate, rep command.Reply) error {
	text, blocks := renderOutcome(c.original, rep, c.by)
	if c.ephemeral || c.ts == "" {
		// Ephemeral messages can only be changed through the response_url.
		if c.responseURL == "" {
			return errors.New("no way to change the card")
		}
		_, err := call(ctx, a, "response_url", func(ctx context.Context) (string, error) {
			_, _, err := a.api.PostMessageContext(ctx, "", slackapi.MsgOptionReplaceOriginal(c.responseURL),
				slackapi.MsgOptionText(text, false), slackapi.MsgOptionBlocks(blocks...))
			return "", err
		})
		return err
	}
	_, err := call(ctx, a, "chat.update", func(ctx context.Context) (string, error) {
		_, _, _, err := a.api.UpdateMessageContext(ctx, c.channel, c.ts,
			slackapi.MsgOptionText(text, false), slackapi.MsgOptionBlocks(blocks...))
		return "", err
	})
	return err
}

// upload puts a picture in a channel (in a thread, when given) with files
// upload v2, each of its three steps retried on rate limits on its own.
func (a *App) upload(ctx context.Context, channel, thread string, img *command.Image) error {
	if len(img.PNG) == 0 {
		return errors.New("empty picture")
	}
	name := img.Name
	if name == "" {
		name = "picture.png"
	}
	u, err := call(ctx, a, "files.getUploadURLExternal", func(ctx context.Context) (*slackapi.GetUploadURLExternalResponse, error) {
		return a.api.GetUploadURLExternalContext(ctx, slackapi.GetUploadURLExternalParameters{
			FileName: name, FileSize: len(img.PNG), AltTxt: truncate(img.Alt, 1000),
		})
	})
	if err != nil {
		return err
	}
	if _, err := call(ctx, a, "files.upload", func(ctx context.Context) (struct{}, error) {
		return struct{}{}, a.api.UploadToURL(ctx, slackapi.UploadToURLParameters{
			UploadURL: u.UploadURL, Reader: bytes.NewReader(img.PNG), Filename: name,
		})
	}); err != nil {
		return err
	}
	title := img.Title
	if title == "" {
		title = name
	}
	_, err = call(ctx, a, "files.completeUploadExternal", func(ctx context.Context) (*slackapi.CompleteUploadExternalResponse, error) {
		return a.api.CompleteUploadExternalContext(ctx, slackapi.CompleteUploadExternalParameters{
			Files: []slackapi.FileSummary{{ID: u.FileID, Title: title}}, Channel: channel, ThreadTimestamp: thread,
		})
	})
	return err
}
