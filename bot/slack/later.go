package slack

import (
	"context"
	"time"

	"github.com/kraken-ops/kraken/bot/command"
)

// laterTimeout bounds how long the bot waits to update a reply whose work
// goes on (a run); runs are bounded well below it.
const laterTimeout = 15 * time.Minute

// deliverLater shows a reply whose work goes on ("Running…" with a
// Cancel button), then replaces it in place with the reply that ends it.
// The wait happens off the worker, which goes on to the next request: a
// long run must not hold a worker.
func (a *App) deliverLater(ctx context.Context, t target, rep command.Reply) error {
	later := rep.Later
	rep.Later = nil
	rep = a.prepare(ctx, t, rep)
	log := a.logOf(ctx)
	bg, cancel := context.WithTimeout(context.WithoutCancel(ctx), laterTimeout)
	if rep.Private || t.channel == "" {
		if err := a.deliver(ctx, t, rep); err != nil {
			cancel()
			return err
		}
		go func() {
			defer cancel()
			var final command.Reply
			select {
			case final = <-later:
			case <-bg.Done():
				return
			}
			final.Private = true
			if t.responseURL != "" && a.replaceResponse(bg, t.responseURL, final) == nil {
				return
			}
			if err := a.deliver(bg, t, final); err != nil {
				log.Warn("the end of a run not shown", "err", err)
			}
		}()
		return nil
	}
	text, blocks := render(rep, t.asked)
	ts, err := call(ctx, a, "chat.postMessage", func(ctx context.Context) (string, error) {
		_, ts, err := a.api.PostMessageContext(ctx, t.channel, messageOptions(text, blocks, t.thread)...)
		return ts, err
	})
	if err != nil {
		cancel()
		return err
	}
	go func() {
		defer cancel()
		var final command.Reply
		select {
		case final = <-later:
		case <-bg.Done():
			return
		}
		final = a.prepare(bg, t, final)
		if final.Image != nil {
			thread := t.thread
			if thread == "" {
				thread = ts
			}
			if err := a.upload(bg, t.channel, thread, final.Image); err != nil {
				log.Warn("picture not uploaded", "name", final.Image.Name, "err", err)
			}
		}
		if err := a.updateMessage(bg, t.channel, ts, final, t.asked); err != nil {
			log.Warn("the end of a run not shown", "err", err)
		}
	}()
	return nil
}
