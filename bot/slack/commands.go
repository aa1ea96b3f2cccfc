package slack

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/kraken-ops/kraken/bot/command"
	"github.com/kraken-ops/kraken/enclave"
)

// slash is a slash command, as far as the bot reads it.
type slash struct {
	Command, Text          string
	TeamID, UserID         string
	ChannelID, ChannelName string
	TriggerID, ResponseURL string
}

func slashOf(v url.Values) slash {
	return slash{
		Command: v.Get("command"), Text: v.Get("text"),
		TeamID: v.Get("team_id"), UserID: v.Get("user_id"),
		ChannelID: v.Get("channel_id"), ChannelName: v.Get("channel_name"),
		TriggerID: v.Get("trigger_id"), ResponseURL: v.Get("response_url"),
	}
}

// parseCommandBody reads a slash command's form.
func parseCommandBody(body []byte) (inbound, error) {
	v, err := url.ParseQuery(string(body))
	if err != nil {
		return inbound{}, fmt.Errorf("slash command: %w", err)
	}
	c := slashOf(v)
	if c.UserID == "" || c.ChannelID == "" {
		return inbound{}, errors.New("slash command without a user or channel")
	}
	// Each invocation has its own trigger id; Slack's retries repeat it.
	id := "command:" + c.TriggerID
	if c.TriggerID == "" {
		id = hashID("command", body)
	}
	// The deprecated verification token is not kept: the signature
	// stands in for it, and a credential has no business on disk.
	v.Del("token")
	return inbound{kind: kindCommand, id: id, job: job{Kind: kindCommand, Body: []byte(v.Encode())}}, nil
}

// handleCommand is the second half of a slash command: the registry's
// answer goes back through the response_url when only the asker should
// see it, and into the channel otherwise. Plain words (not a verb) go to
// the conversation loop: the asker sees "Thinking…" at once, replaced by
// the answer.
func (a *App) handleCommand(ctx context.Context, cmds Commands, body []byte) error {
	v, err := url.ParseQuery(string(body))
	if err != nil {
		return fmt.Errorf("slash command: %w", err)
	}
	c := slashOf(v)
	ctx = withLog(ctx, a.logOf(ctx).With("channel", c.ChannelID, "user", c.UserID))
	text := strings.TrimSpace(c.Text)
	// Never direct, even in a D… channel: a slash command also works in
	// people's direct messages with each other, where the bot is not.
	t := target{channel: c.ChannelID, user: c.UserID, responseURL: c.ResponseURL, trigger: c.TriggerID}
	verb, _, _ := strings.Cut(text, " ")
	if verb == "" {
		verb = "help"
	}
	// Only the verb: the rest of a command line may carry input nobody
	// else should read.
	t.asked = fmt.Sprintf("<@%s> used `%s %s`", c.UserID, commandName(c.Command), verb)

	var ph placeholder
	var notice sync.Mutex
	answered := false
	if !cmds.IsCommand(text) {
		// Not even the first word: plain words may hold anything.
		t.asked = fmt.Sprintf("<@%s> asked me with `%s`", c.UserID, commandName(c.Command))
		ph = a.thinking(ctx, t)
	} else if a.cfg.WorkingAfter > 0 && c.ResponseURL != "" {
		// Tell the asker something is happening if the work is slow; the
		// acknowledgement itself said nothing. The lock keeps the notice
		// from arriving after the answer.
		timer := time.AfterFunc(a.cfg.WorkingAfter, func() {
			notice.Lock()
			defer notice.Unlock()
			if answered {
				return
			}
			if err := a.respond(ctx, c.ResponseURL, command.Reply{Text: "Working on it…", Private: true}, false); err != nil {
				a.logOf(ctx).Debug("working notice not sent", "err", err)
			}
		})
		defer timer.Stop()
	}

	name := c.ChannelName
	if name == "" || name == "privategroup" || name == "directmessage" {
		// Slack hides a private channel's name from a command when the
		// bot is not in it; ask, in case it is by now.
		name = a.channelName(ctx, c.ChannelID)
	}
	req := command.Request{
		Actor:      enclave.Principal{TeamID: c.TeamID, UserID: c.UserID},
		ActorEmail: a.userEmail(ctx, c.UserID),
		Via:        command.ViaSlack,
		Channel:    enclave.Channel{TeamID: c.TeamID, ID: c.ChannelID, Name: name},
		Text:       text,
		Files:      a.recentFiles(ctx, c.TeamID, c.ChannelID),
	}
	rep := cmds.Do(ctx, req)
	notice.Lock()
	answered = true
	notice.Unlock()
	return a.finish(ctx, t, ph, rep)
}

func commandName(c string) string {
	if c == "" {
		return "/kraken"
	}
	return c
}
