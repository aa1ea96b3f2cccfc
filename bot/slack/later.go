package slack

import (
	"cmp"
	"context"
	"time"

	"github.com/kraken-ops/kraken/bot/command"
)

// laterTimeout bounds how long the bot waits to update a reply whose work
// goes on (a run); runs are bounded well below it.
const laterTimeout = 15 * time.Minute

// deliverLater shows a reply whose work goes on ("Running…" with a
// Cancel button), then updates it in place as the work progresses and
// once more with the reply that ends it. The wait happens off the
// worker, which goes on to the next request: a long run must not hold a
// worker.
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
		// A private reply is changed through the response_url, which
		// takes a few uses only: it gets the end alone.
		go func() {
			defer cancel()
			final, ok := last(bg, later)
			if !ok {
				return
			}
			final.Private = true
			final.Text, final.Details = joinDetails(final), ""
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
		a.follow(bg, t, ts, later)
	}()
	return nil
}

// follow updates the message at ts with the progress replies from later,
// no more often than Config.UpdateEvery (the newest one waiting goes out
// when the period is over; those it replaced never do), then with the
// reply that ends the work as soon as it comes.
func (a *App) follow(ctx context.Context, t target, ts string, later <-chan command.Reply) {
	log := a.logOf(ctx)
	updated := time.Now() // the post counts as an update
	var pending *command.Reply
	var due <-chan time.Time
	for {
		select {
		case rep, open := <-later:
			if !open {
				if pending != nil {
					a.finishLater(ctx, t, ts, *pending)
				}
				return
			}
			pending = &rep
			if due == nil {
				due = time.After(time.Until(updated.Add(a.cfg.UpdateEvery)))
			}
		case <-due:
			due = nil
			rep := a.prepare(ctx, t, *pending)
			pending = nil
			updated = time.Now()
			if err := a.updateMessage(ctx, t.channel, ts, rep, t.asked); err != nil {
				log.Info("the progress of a run not shown", "err", err)
			}
		case <-ctx.Done():
			return
		}
	}
}

// finishLater shows the end of the work: its picture and details in the
// message's thread, then the message itself, updated. The thread comes
// first, so that whoever reads the end finds them there.
func (a *App) finishLater(ctx context.Context, t target, ts string, final command.Reply) {
	log := a.logOf(ctx)
	final = a.prepare(ctx, t, final)
	thread := cmp.Or(t.thread, ts)
	if final.Image != nil {
		if err := a.upload(ctx, t.channel, thread, final.Image); err != nil {
			log.Warn("picture not uploaded", "name", final.Image.Name, "err", err)
		}
	}
	if final.Details != "" {
		text, blocks := render(command.Reply{Text: final.Details}, "")
		if _, err := call(ctx, a, "chat.postMessage", func(ctx context.Context) (string, error) {
			_, ts, err := a.api.PostMessageContext(ctx, t.channel, messageOptions(text, blocks, thread)...)
			return ts, err
		}); err != nil {
			// The message must still say how the run ended: with its
			// details, then.
			log.Info("the details of a run not posted in its thread", "err", err)
			final.Text = joinDetails(final)
		} else {
			a.rememberThread(ctx, t.channel, thread)
		}
		final.Details = ""
	}
	if err := a.updateMessage(ctx, t.channel, ts, final, t.asked); err != nil {
		log.Warn("the end of a run not shown", "err", err)
	}
}

// last is the last reply from later, once it closes; false when ctx
// ends first or no reply came.
func last(ctx context.Context, later <-chan command.Reply) (command.Reply, bool) {
	var final command.Reply
	got := false
	for {
		select {
		case rep, open := <-later:
			if !open {
				return final, got
			}
			final, got = rep, true
		case <-ctx.Done():
			return command.Reply{}, false
		}
	}
}

// joinDetails is a reply's text and details as one text.
func joinDetails(rep command.Reply) string {
	if rep.Details == "" {
		return rep.Text
	}
	return rep.Text + "\n" + rep.Details
}
