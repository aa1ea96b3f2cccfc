package slack

import (
	"context"

	"github.com/kraken-ops/kraken/bot/command"
)

// Post sends messages the bot writes on its own, not in answer to a
// request: what a reconcile found, say.
func (a *App) Post(ctx context.Context, posts ...command.Post) error { return a.posts(ctx, posts) }
