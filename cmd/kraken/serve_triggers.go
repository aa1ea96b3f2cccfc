package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/kraken-ops/kraken/bot/command"
	"github.com/kraken-ops/kraken/bot/hooks"
	"github.com/kraken-ops/kraken/bot/queue"
	"github.com/kraken-ops/kraken/bot/schedule"
	"github.com/kraken-ops/kraken/bot/slack"
	"github.com/kraken-ops/kraken/k8s"
	"github.com/kraken-ops/kraken/store"
	"github.com/nats-io/nats.go"
)

// triggerSettings say which triggers besides people this bot serves.
type triggerSettings struct {
	// webhookKey signs webhook secrets (KRAKEN_WEBHOOK_KEY, at least 32
	// bytes, the same on every replica); empty turns webhooks off.
	webhookKey []byte
	// publicURL is where Slack and webhook senders reach the bot
	// (KRAKEN_PUBLIC_URL), for telling people their webhooks' addresses.
	publicURL string
	// natsURL turns queue triggers on (KRAKEN_NATS_URL).
	natsURL string
	// natsOptions are the bot's credentials when NATS is also an
	// enclave service (operator mode); set by serve, not read.
	natsOptions []nats.Option
}

func triggerSettingsFrom(getenv func(string) string) (triggerSettings, []string) {
	t := triggerSettings{webhookKey: []byte(getenv("KRAKEN_WEBHOOK_KEY")), publicURL: getenv("KRAKEN_PUBLIC_URL"), natsURL: getenv("KRAKEN_NATS_URL")}
	var problems []string
	if n := len(t.webhookKey); n > 0 && n < 32 {
		problems = append(problems, "KRAKEN_WEBHOOK_KEY must be at least 32 bytes (it signs every webhook's secret)")
	}
	if len(t.webhookKey) > 0 && t.publicURL == "" {
		problems = append(problems, "KRAKEN_WEBHOOK_KEY is set, so KRAKEN_PUBLIC_URL must say where webhook senders reach the bot")
	}
	return t, problems
}

// webhookAddresses gives the registry the webhooks' public addresses.
type webhookAddresses struct {
	*hooks.Hooks
	base string
}

func (w webhookAddresses) URL(enclave, name, path string) string {
	return hooks.URL(w.base, enclave, name, path)
}

// triggers are the bot's non-human ways to start runs.
type triggers struct {
	hooks *hooks.Hooks
	queue *queue.Queue
	sched *schedule.Scheduler
}

// newTriggers makes the triggers the settings turn on, wired to the
// registry's runner, and tells the registry about them. The schedules'
// state lives in the cluster, where every replica reads it, not in the
// store (the parameter is left for the caller's sake).
func newTriggers(s triggerSettings, kube *k8s.Client, tents *k8s.Tentacles, _ *store.DB, reg *command.Registry, app *slack.App, log *slog.Logger) (*triggers, error) {
	t := &triggers{}
	var err error
	t.sched, err = schedule.New(schedule.Config{
		Enclaves: kube, Tentacles: tents, Runner: reg.Runner(), Logger: log,
		Shared: kube.ScheduleState(), LastAlive: leaderLastAlive,
		Notify: func(ctx context.Context, n schedule.Notice) {
			// Failed runs are told by the runner's end; a pause is news.
			if n.Kind != schedule.NoticePaused {
				return
			}
			e, err := kube.Get(ctx, n.Enclave)
			if err != nil {
				return
			}
			post := command.Post{Channel: e.Channel, Reply: command.Reply{
				Text:    fmt.Sprintf("The schedule of *%s* is paused: it failed %d times in a row. `/kraken logs %s` shows why.", n.Tentacle, n.Failures, n.Tentacle),
				Failed:  true,
				Buttons: []command.Button{{Label: "Resume", Value: command.RunValue("resume " + n.Tentacle)}},
			}}
			if err := app.Post(ctx, post); err != nil {
				log.Warn("schedule pause not told", "enclave", n.Enclave, "err", err)
			}
		},
	})
	if err != nil {
		return nil, err
	}
	reg.SetSchedules(t.sched)
	if len(s.webhookKey) > 0 {
		t.hooks, err = hooks.New(hooks.Config{Enclaves: kube, Tentacles: tents, Runner: reg.Runner(), Key: s.webhookKey, Logger: log})
		if err != nil {
			return nil, err
		}
		reg.SetWebhooks(webhookAddresses{Hooks: t.hooks, base: s.publicURL})
	}
	if s.natsURL != "" {
		t.queue, err = queue.New(queue.Config{URL: s.natsURL, Options: s.natsOptions, Enclaves: kube, Tentacles: tents, Runner: reg.Runner(), Logger: log})
		if err != nil {
			return nil, err
		}
	}
	return t, nil
}

// handler serves Slack and, when on, the webhooks, on the public port.
func (t *triggers) handler(app *slack.App) http.Handler {
	if t.hooks == nil {
		return app.Handler()
	}
	mux := http.NewServeMux()
	mux.Handle("/slack/", app.Handler())
	mux.Handle("/hooks/", t.hooks.Handler())
	return mux
}

var _ command.Webhooks = webhookAddresses{}
