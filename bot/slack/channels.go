package slack

import (
	"context"
	"fmt"
	"slices"

	slackapi "github.com/slack-go/slack"

	"github.com/kraken-ops/kraken/bot/command"
	"github.com/kraken-ops/kraken/enclave"
)

// The App is the registry's view of the workspace's channels.
var _ command.Channels = (*App)(nil)

// Members lists the people in a channel: every member but the bot itself.
func (a *App) Members(ctx context.Context, ch enclave.Channel) ([]string, error) {
	bot, err := a.botUser(ctx)
	if err != nil {
		return nil, fmt.Errorf("slack: members of %s: %w", ch.ID, err)
	}
	var out []string
	cursor := ""
	for {
		type page struct {
			ids  []string
			next string
		}
		p, err := call(ctx, a, "conversations.members", func(ctx context.Context) (page, error) {
			ids, next, err := a.api.GetUsersInConversationContext(ctx, &slackapi.GetUsersInConversationParameters{
				ChannelID: ch.ID, Cursor: cursor, Limit: 1000,
			})
			return page{ids, next}, err
		})
		if err != nil {
			return nil, fmt.Errorf("slack: members of %s: %w", ch.ID, err)
		}
		for _, id := range p.ids {
			if id != bot {
				out = append(out, id)
			}
		}
		if p.next == "" {
			return out, nil
		}
		cursor = p.next
	}
}

// Info says what Slack knows of a channel now. A channel Slack does not
// know is Deleted. (Slack says the same of a private channel the bot was
// removed from: it can no longer see it.)
func (a *App) Info(ctx context.Context, ch enclave.Channel) (command.ChannelInfo, error) {
	c, err := a.conversationInfo(ctx, ch.ID)
	if slackError(err) == "channel_not_found" {
		return command.ChannelInfo{Name: a.cachedChannelName(ch.ID), Deleted: true}, nil
	}
	if err != nil {
		return command.ChannelInfo{}, fmt.Errorf("slack: channel %s: %w", ch.ID, err)
	}
	return command.ChannelInfo{Name: c.Name, Archived: c.IsArchived}, nil
}

// Invite adds a person to a channel; one already there is not an error.
func (a *App) Invite(ctx context.Context, ch enclave.Channel, user string) error {
	_, err := call(ctx, a, "conversations.invite", func(ctx context.Context) (*slackapi.Channel, error) {
		return a.api.InviteUsersToConversationContext(ctx, ch.ID, user)
	})
	if err != nil && slackError(err) != "already_in_channel" {
		return fmt.Errorf("slack: invite %s to %s: %w", user, ch.ID, err)
	}
	return nil
}

// Kick removes a person from a channel; one not there is not an error.
func (a *App) Kick(ctx context.Context, ch enclave.Channel, user string) error {
	_, err := call(ctx, a, "conversations.kick", func(ctx context.Context) (struct{}, error) {
		return struct{}{}, a.api.KickUserFromConversationContext(ctx, ch.ID, user)
	})
	if slackError(err) == "not_in_channel" {
		// Slack says this both when the person is not in the channel and
		// when the bot is not: only the first is done.
		members, merr := a.Members(ctx, ch)
		if merr == nil && !slices.Contains(members, user) {
			return nil
		}
	}
	if err != nil {
		return fmt.Errorf("slack: remove %s from %s: %w", user, ch.ID, err)
	}
	return nil
}
