package slack

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/kraken-ops/kraken/bot/command"
	"github.com/kraken-ops/kraken/enclave"
)

// envelope is an Events API request, as far as the bot reads it.
type envelope struct {
	Type      string          `json:"type"`
	Challenge string          `json:"challenge"`
	TeamID    string          `json:"team_id"`
	EventID   string          `json:"event_id"`
	Event     json.RawMessage `json:"event"`
	// Authorizations name the installation the event is for: its
	// user_id is the bot's own.
	Authorizations []struct {
		UserID string `json:"user_id"`
		IsBot  bool   `json:"is_bot"`
	} `json:"authorizations"`
}

// botUser is the bot's user id as the envelope names it, "" if it does
// not.
func (env envelope) botUser() string {
	for _, au := range env.Authorizations {
		if au.IsBot && au.UserID != "" {
			return au.UserID
		}
	}
	return ""
}

// event is an inner event: the fields of every type the bot handles.
type event struct {
	Type    string `json:"type"`
	Subtype string `json:"subtype"`
	User    string `json:"user"`
	BotID   string `json:"bot_id"`
	// Channel is an id, except in channel_rename and group_rename where
	// it is {"id", "name"}.
	Channel  json.RawMessage `json:"channel"`
	Team     string          `json:"team"`
	Inviter  string          `json:"inviter"`
	Text     string          `json:"text"`
	TS       string          `json:"ts"`
	ThreadTS string          `json:"thread_ts"`
	Tab      string          `json:"tab"`
	// ChannelType is "im" for a direct message to the bot.
	ChannelType string `json:"channel_type"`
	// file_shared
	FileID    string `json:"file_id"`
	UserID    string `json:"user_id"`
	ChannelID string `json:"channel_id"`
	// messages that share files
	Files []eventFile `json:"files"`
}

type eventFile struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Size     int    `json:"size"`
	User     string `json:"user"`
	Created  int64  `json:"created"`
	Mode     string `json:"mode"`
	Filetype string `json:"filetype"`
}

// channel returns the event's channel id and, for renames, its new name.
func (e event) channel() (id, name string) {
	if len(e.Channel) == 0 {
		return e.ChannelID, ""
	}
	if e.Channel[0] == '"' {
		_ = json.Unmarshal(e.Channel, &id)
		return id, ""
	}
	var c struct{ ID, Name string }
	_ = json.Unmarshal(e.Channel, &c)
	return c.ID, c.Name
}

// channelEvents maps the channel events the bot follows to the
// registry's kinds; group_* are the same for private channels.
var channelEvents = map[string]command.ChannelEventKind{
	"member_left_channel": command.MemberLeft,
	"channel_archive":     command.Archived,
	"group_archive":       command.Archived,
	"channel_unarchive":   command.Unarchived,
	"group_unarchive":     command.Unarchived,
	"channel_rename":      command.Renamed,
	"group_rename":        command.Renamed,
	"channel_deleted":     command.Deleted,
	"group_deleted":       command.Deleted,
}

// wanted says whether the bot acts on an event at all. Everything else
// (most messages in a busy channel, its own pictures) is acknowledged
// without being written down. bot is the bot's user id, when known;
// inThread says whether the bot takes part in a channel's thread.
func (e event) wanted(bot string, inThread func(channel, ts string) bool) bool {
	switch e.Type {
	case "app_mention":
		return e.BotID == ""
	case "message":
		if e.BotID == "" && len(e.Files) > 0 {
			return true // a file to remember, if nothing more
		}
		ch, _ := e.channel()
		return e.toBot(bot) && (e.direct() || inThread(ch, e.ThreadTS))
	case "file_shared":
		return e.FileID != "" && (bot == "" || e.UserID != bot)
	case "app_home_opened":
		return e.Tab == "home"
	case "member_joined_channel":
		return true
	}
	_, ok := channelEvents[e.Type]
	return ok
}

// direct says whether a message is in a person's direct conversation
// with the bot.
func (e event) direct() bool { return e.ChannelType == "im" }

// toBot says whether a message may be words said to the bot: a person's
// (not the bot's own, nor another bot's: two bots answering each other
// would never stop), new (not an edit or a deletion), with something to
// say, and either direct or a reply in a thread. In a channel, a message
// that mentions the bot is left to its app_mention event, which Slack
// sends as well.
func (e event) toBot(bot string) bool {
	switch {
	case e.Type != "message" || e.BotID != "" || e.User == "" || e.User == bot:
		return false
	case e.Subtype != "" && e.Subtype != "file_share" && e.Subtype != "thread_broadcast":
		return false
	case strings.TrimSpace(e.Text) == "":
		return false
	case e.direct():
		return true
	}
	return e.ThreadTS != "" && e.ThreadTS != e.TS && (bot == "" || !strings.Contains(e.Text, "<@"+bot))
}

// parseEventBody reads an Events API request. A thread reply is written
// down only when the bot is in the thread, which takes one read.
func (a *App) parseEventBody(ctx context.Context, body []byte) (inbound, error) {
	var env envelope
	if err := json.Unmarshal(body, &env); err != nil {
		return inbound{}, fmt.Errorf("events: %w", err)
	}
	switch env.Type {
	case "url_verification":
		if env.Challenge == "" {
			return inbound{}, errors.New("url_verification without a challenge")
		}
		return inbound{kind: kindEvent, challenge: env.Challenge}, nil
	case "event_callback":
	default:
		return inbound{kind: kindEvent}, nil // app_rate_limited and the like
	}
	var ev event
	if err := json.Unmarshal(env.Event, &ev); err != nil {
		return inbound{}, fmt.Errorf("event: %w", err)
	}
	inThread := func(ch, ts string) bool { return a.inThread(ctx, ch, ts) }
	if !ev.wanted(env.botUser(), inThread) {
		return inbound{kind: kindEvent}, nil
	}
	if env.EventID == "" {
		return inbound{}, errors.New("event_callback without an event_id")
	}
	return inbound{kind: kindEvent, id: "event:" + env.EventID, job: job{Kind: kindEvent, Body: withoutToken(body)}}, nil
}

// handleEvent is the second half of an event: it goes to the registry.
func (a *App) handleEvent(ctx context.Context, cmds Commands, body []byte) error {
	var env envelope
	if err := json.Unmarshal(body, &env); err != nil {
		return fmt.Errorf("events: %w", err)
	}
	var ev event
	if err := json.Unmarshal(env.Event, &ev); err != nil {
		return fmt.Errorf("event: %w", err)
	}
	team := env.TeamID
	if team == "" {
		team = ev.Team
	}
	if bot := env.botUser(); bot != "" {
		a.learnBotUser(bot)
	}
	chID, newName := ev.channel()
	log := a.logOf(ctx).With("event", ev.Type, "channel", chID)
	ctx = withLog(ctx, log)

	switch ev.Type {
	case "app_mention":
		return a.mention(ctx, cmds, team, chID, ev)
	case "message":
		for _, f := range ev.Files {
			a.rememberFile(ctx, team, chID, sharedFile{ID: f.ID, Name: f.Name, Size: f.Size, SharedBy: f.User, Shared: unix(f.Created)})
		}
		return a.message(ctx, cmds, team, chID, ev)
	case "file_shared":
		return a.fileShared(ctx, team, ev)
	case "app_home_opened":
		return a.publishHome(ctx, cmds, enclave.Principal{TeamID: team, UserID: ev.User})
	case "member_joined_channel":
		bot, err := a.botUser(ctx)
		if err != nil {
			return fmt.Errorf("who am I: %w", err)
		}
		ce := command.ChannelEvent{Kind: command.MemberJoined, User: ev.User, Via: command.ViaSlack}
		if ev.User == bot {
			ce.Kind, ce.User = command.BotJoined, ev.Inviter
		}
		ce.Channel = enclave.Channel{TeamID: team, ID: chID, Name: a.channelName(ctx, chID)}
		return a.posts(ctx, cmds.ChannelEvent(ctx, ce))
	}
	kind, ok := channelEvents[ev.Type]
	if !ok {
		return nil
	}
	ce := command.ChannelEvent{Kind: kind, User: ev.User, Via: command.ViaSlack}
	switch kind {
	case command.Renamed:
		a.setChannelName(chID, newName)
	case command.Deleted:
		newName = a.cachedChannelName(chID)
	case command.MemberLeft:
		// The bot's own departure is not a member leaving the enclave.
		if bot, err := a.botUser(ctx); err == nil && ev.User == bot {
			return nil
		}
		newName = a.channelName(ctx, chID)
	default:
		newName = a.channelName(ctx, chID)
	}
	ce.Channel = enclave.Channel{TeamID: team, ID: chID, Name: newName}
	return a.posts(ctx, cmds.ChannelEvent(ctx, ce))
}

// mention answers "@kraken <words>" in a thread: the one it was in, or
// one under it, so the conversation that may follow stays together. The
// bot is in that thread from now on.
func (a *App) mention(ctx context.Context, cmds Commands, team, chID string, ev event) error {
	bot, err := a.botUser(ctx)
	if err != nil {
		return fmt.Errorf("who am I: %w", err)
	}
	thread := cmp.Or(ev.ThreadTS, ev.TS)
	a.rememberThread(ctx, chID, thread)
	t := target{channel: chID, thread: thread, user: ev.User, direct: strings.HasPrefix(chID, "D")}
	return a.converse(ctx, cmds, team, t, stripMention(ev.Text, bot))
}

// message answers a message that was not a mention: a direct message,
// or a reply in a thread the bot is in, in an enclave's channel. Other
// messages only brought files.
func (a *App) message(ctx context.Context, cmds Commands, team, chID string, ev event) error {
	bot, err := a.botUser(ctx)
	if err != nil {
		return fmt.Errorf("who am I: %w", err)
	}
	if !ev.toBot(bot) {
		return nil
	}
	t := target{channel: chID, thread: ev.ThreadTS, user: ev.User, direct: ev.direct()}
	if !t.direct {
		if !a.inThread(ctx, chID, ev.ThreadTS) {
			return nil
		}
		// Outside enclaves the bot answers when asked by name, and leaves
		// people's own threads to them.
		_, err := cmds.EnclaveName(ctx, command.Request{Channel: enclave.Channel{TeamID: team, ID: chID}})
		if errors.Is(err, enclave.ErrNotFound) {
			return nil
		}
		if err != nil {
			a.logOf(ctx).Warn("enclave of a thread not known; answering anyway", "err", err)
		}
		a.rememberThread(ctx, chID, ev.ThreadTS)
	}
	return a.converse(ctx, cmds, team, t, stripMention(ev.Text, bot))
}

// converse answers words a person said to the bot in a conversation (a
// mention, a thread reply, a direct message). Plain words go to the
// conversation loop, which takes seconds: a placeholder says the bot is
// on it before anything else is looked up, and the answer replaces it.
func (a *App) converse(ctx context.Context, cmds Commands, team string, t target, text string) error {
	var ph placeholder
	if !cmds.IsCommand(text) {
		ph = a.thinking(ctx, t)
	}
	ch := enclave.Channel{TeamID: team, ID: t.channel}
	if !t.direct {
		ch.Name = a.channelName(ctx, t.channel)
	}
	req := command.Request{
		Actor:      enclave.Principal{TeamID: team, UserID: t.user},
		ActorEmail: a.userEmail(ctx, t.user),
		Via:        command.ViaSlack,
		Channel:    ch,
		Thread:     t.thread,
		Text:       text,
		Files:      a.recentFiles(ctx, team, t.channel),
	}
	rep := cmds.Do(ctx, req)
	return a.finish(ctx, t, ph, rep)
}

var mentionRE = regexp.MustCompile(`<@([A-Z0-9]+)(\|[^>]*)?>`)

// stripMention removes mentions of the bot from a message's text.
func stripMention(text, bot string) string {
	text = mentionRE.ReplaceAllStringFunc(text, func(m string) string {
		if sub := mentionRE.FindStringSubmatch(m); sub[1] == bot {
			return ""
		}
		return m
	})
	return strings.Join(strings.Fields(text), " ")
}

// posts sends what the registry wants said after a channel event.
func (a *App) posts(ctx context.Context, posts []command.Post) error {
	var errs []error
	for _, p := range posts {
		t := target{channel: p.Channel.ID}
		if p.User != "" {
			// Posting to a user id puts the message in the bot's direct
			// conversation with them.
			t = target{channel: p.User}
		}
		if t.channel == "" {
			continue
		}
		if err := a.deliver(ctx, t, p.Reply); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
