package slack

import (
	"cmp"
	"context"
	"slices"
	"strings"
	"time"
)

// The threads the bot takes part in: a reply there is said to the bot
// even without a mention. Slack has no event for "replies in threads I am
// in", only every message of the channel, so the bot keeps the threads
// itself: those it was mentioned in and those under its own posts. The
// list is bounded per channel and forgotten after a while, so it costs a
// few kilobytes however long the bot runs.
const (
	keepThreads = 200
	threadTTL   = 14 * 24 * time.Hour
)

// thread is a thread the bot is in, as the store keeps it.
type thread struct {
	TS   string    `json:"ts"`
	Seen time.Time `json:"seen"`
}

func threadKey(channel, ts string) string { return channel + "/" + ts }

// hasThreads says whether a conversation has threads worth remembering:
// channels do; a direct message needs none (everything said there is said
// to the bot), and a user id stands for one.
func hasThreads(channel string) bool {
	return channel != "" && !strings.HasPrefix(channel, "D") && !strings.HasPrefix(channel, "U") && !strings.HasPrefix(channel, "W")
}

// rememberThread records that the bot is in a thread, and forgets the
// channel's stalest beyond keepThreads.
func (a *App) rememberThread(ctx context.Context, channel, ts string) {
	if ts == "" || !hasThreads(channel) {
		return
	}
	now := time.Now()
	if err := a.threads.Put(ctx, threadKey(channel, ts), thread{TS: ts, Seen: now}); err != nil {
		a.logOf(ctx).Warn("thread not remembered", "err", err)
		return
	}
	all, err := a.threads.List(ctx, channel+"/", 0)
	if err != nil || len(all) <= keepThreads {
		return
	}
	slices.SortFunc(all, func(x, y thread) int { return cmp.Or(y.Seen.Compare(x.Seen), cmp.Compare(y.TS, x.TS)) })
	cut := all[keepThreads-1].Seen
	keep := map[string]bool{}
	for _, t := range all[:keepThreads] {
		keep[t.TS] = true
	}
	_, _ = a.threads.DeleteFunc(ctx, channel+"/", func(_ string, t thread) bool { return !keep[t.TS] && !t.Seen.After(cut) })
}

// inThread says whether the bot is in a thread: one read, cheap enough
// to decide at the door whether a message is worth writing down.
func (a *App) inThread(ctx context.Context, channel, ts string) bool {
	if ts == "" || !hasThreads(channel) {
		return false
	}
	t, ok, err := a.threads.Get(ctx, threadKey(channel, ts))
	if err != nil {
		a.logOf(ctx).Warn("threads not read", "err", err)
		return false
	}
	return ok && time.Since(t.Seen) < threadTTL
}

// pruneThreads forgets threads nobody spoke to the bot in for threadTTL.
func (a *App) pruneThreads(ctx context.Context, now time.Time) {
	n, err := a.threads.DeleteFunc(ctx, "", func(_ string, t thread) bool { return now.Sub(t.Seen) >= threadTTL })
	if err != nil && ctx.Err() == nil {
		a.log.Warn("old threads not pruned", "err", err)
	}
	if n > 0 {
		a.log.Debug("old threads pruned", "count", n)
	}
}
