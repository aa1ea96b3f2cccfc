package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/kraken-ops/kraken/bot/admin"
	"github.com/kraken-ops/kraken/bot/chat"
	"github.com/kraken-ops/kraken/bot/command"
	"github.com/kraken-ops/kraken/bot/metrics"
	"github.com/kraken-ops/kraken/bot/oidcauth"
	"github.com/kraken-ops/kraken/bot/openai"
	"github.com/kraken-ops/kraken/bot/runs"
	"github.com/kraken-ops/kraken/bot/slack"
	"github.com/kraken-ops/kraken/enclave"
	"github.com/kraken-ops/kraken/k8s"
	"github.com/kraken-ops/kraken/store"
)

// serveSettings are the bot's settings, read from the environment the
// Helm chart sets (see deploy/README.md).
type serveSettings struct {
	kube       k8s.Config
	kubeconfig string
	data       string
	httpAddr   string
	adminAddr  string
	slack      slack.Config
	oidc       oidcauth.Config
	examples   string
	reconcile  time.Duration
	llm        openai.Config
	llmOn      bool
	ha         haSettings
	triggers   triggerSettings
	// runRetention is how long run records are kept
	// (KRAKEN_RUN_RETENTION, default 30 days).
	runRetention time.Duration
	// storeKeys seal the secrets in the store (KRAKEN_STORE_KEY...,
	// see storekey.go).
	storeKeys *store.Keyring
	// exo is the services enclaves get (see exoskeleton.go).
	exo exoSettings
}

// serveSettingsFrom reads the settings, and says every one that is
// missing or wrong at once.
func serveSettingsFrom(getenv func(string) string) (serveSettings, error) {
	s := serveSettings{
		kube: k8s.Config{
			Image:             getenv("KRAKEN_IMAGE"),
			BotNamespace:      getenv("KRAKEN_NAMESPACE"),
			BotServiceAccount: getenv("KRAKEN_SERVICE_ACCOUNT"),
			EnclaveRole:       getenv("KRAKEN_ENCLAVE_ROLE"),
			IdentitiesSecret:  identitiesSecret(getenv),
			RuntimeClass:      getenv("KRAKEN_RUNTIME_CLASS"),
		},
		kubeconfig: getenv("KUBECONFIG"),
		data:       or(getenv("KRAKEN_DATA"), "kraken.db"),
		httpAddr:   or(getenv("KRAKEN_HTTP_ADDR"), ":8080"),
		adminAddr:  or(getenv("KRAKEN_ADMIN_ADDR"), ":9090"),
		slack: slack.Config{
			BotToken:      getenv("SLACK_BOT_TOKEN"),
			AppToken:      getenv("SLACK_APP_TOKEN"),
			SigningSecret: getenv("SLACK_SIGNING_SECRET"),
			APIURL:        getenv("SLACK_API_URL"),
		},
		oidc: oidcauth.Config{
			Issuer:      getenv("KRAKEN_OIDC_ISSUER"),
			Audience:    getenv("KRAKEN_OIDC_AUDIENCE"),
			AdminGroup:  getenv("KRAKEN_OIDC_ADMIN_GROUP"),
			GroupsClaim: getenv("KRAKEN_OIDC_GROUPS_CLAIM"),
		},
		examples:  getenv("KRAKEN_EXAMPLES"),
		reconcile: 5 * time.Minute,
	}
	s.llm, s.llmOn = llmSettings(getenv)
	var problems, haProblems, triggerProblems []string
	s.ha, haProblems = haSettingsFrom(getenv)
	problems = append(problems, haProblems...)
	s.triggers, triggerProblems = triggerSettingsFrom(getenv)
	problems = append(problems, triggerProblems...)
	var exoProblems []string
	s.exo, exoProblems = exoSettingsFrom(getenv)
	problems = append(problems, exoProblems...)
	if ring, err := serveKeyring(getenv); err != nil {
		problems = append(problems, err.Error())
	} else {
		s.storeKeys = ring
	}
	if s.slack.BotToken == "" {
		problems = append(problems, "SLACK_BOT_TOKEN is not set (the bot's xoxb- token)")
	}
	if s.slack.SigningSecret == "" && s.slack.AppToken == "" {
		problems = append(problems, "neither SLACK_SIGNING_SECRET (for the Events API over HTTP) nor SLACK_APP_TOKEN (for Socket Mode) is set")
	}
	if s.kube.Image == "" {
		problems = append(problems, "KRAKEN_IMAGE is not set (the image tentacle pods run `kraken engine` from)")
	}
	if s.kube.BotNamespace == "" || s.kube.EnclaveRole == "" {
		problems = append(problems, "KRAKEN_NAMESPACE and KRAKEN_ENCLAVE_ROLE must be set (the chart sets them)")
	}
	if v := getenv("KRAKEN_POD_LABELS"); v != "" {
		labels, err := parseLabels(v)
		if err != nil {
			problems = append(problems, "KRAKEN_POD_LABELS: "+err.Error())
		}
		s.kube.BotPodLabels = labels
	}
	if v := getenv("KRAKEN_TENTACLE_NODE_SELECTOR"); v != "" && v != "null" {
		if err := json.Unmarshal([]byte(v), &s.kube.NodeSelector); err != nil {
			problems = append(problems, "KRAKEN_TENTACLE_NODE_SELECTOR is not a JSON object of labels: "+err.Error())
		}
	}
	s.runRetention = 30 * 24 * time.Hour
	if v := getenv("KRAKEN_RUN_RETENTION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < time.Hour {
			problems = append(problems, "KRAKEN_RUN_RETENTION must be a duration of at least 1h, like 720h")
		}
		s.runRetention = d
	}
	if v := getenv("KRAKEN_RECONCILE_INTERVAL"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 10*time.Second {
			problems = append(problems, "KRAKEN_RECONCILE_INTERVAL must be a duration of at least 10s, like 5m")
		}
		s.reconcile = d
	}
	if s.oidc.Issuer != "" && (s.oidc.Audience == "" || s.oidc.AdminGroup == "") {
		problems = append(problems, "KRAKEN_OIDC_ISSUER is set, so KRAKEN_OIDC_AUDIENCE and KRAKEN_OIDC_ADMIN_GROUP must be too")
	}
	if len(problems) > 0 {
		return s, fmt.Errorf("serve: the bot's settings are incomplete:\n  - %s", strings.Join(problems, "\n  - "))
	}
	return s, nil
}

// parseLabels reads labels as the chart writes them (k=v,k=v) or as a
// JSON object.
func parseLabels(v string) (map[string]string, error) {
	labels := map[string]string{}
	if strings.HasPrefix(strings.TrimSpace(v), "{") {
		if err := json.Unmarshal([]byte(v), &labels); err != nil {
			return nil, fmt.Errorf("not a JSON object of labels: %w", err)
		}
		return labels, nil
	}
	for _, pair := range strings.Split(v, ",") {
		k, val, ok := strings.Cut(strings.TrimSpace(pair), "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%q is not key=value", pair)
		}
		labels[k] = val
	}
	return labels, nil
}

func or(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

func runServe(ctx context.Context, e env, args []string) error {
	if len(args) > 0 {
		return fmt.Errorf("%w: serve takes its settings from the environment, not arguments", errUsage)
	}
	s, err := serveSettingsFrom(e.getenv)
	if err != nil {
		return err
	}
	return serve(ctx, e, s, serveHooks{})
}

// serveHooks let the end-to-end tests reach what a cluster gives a real
// pod: a route to tentacle Services, and the ports picked.
type serveHooks struct {
	kube      func(*k8s.Config)
	listening func(httpAddr, adminAddr string)
	ha        haHooks
}

// serve runs the bot until ctx ends: Slack over HTTP (and Socket Mode
// when an app token is set), the admin surface, and, while this replica
// is the leader, the reconcile loop.
func serve(ctx context.Context, e env, s serveSettings, h serveHooks) error {
	log := slog.New(slog.NewJSONHandler(e.stderr, nil))
	if s.storeKeys == nil {
		return fmt.Errorf("serve: %w", errNoStoreKey)
	}
	db, err := openStore(ctx, s.data, s.storeKeys, log)
	if err != nil {
		return fmt.Errorf("serve: open the store: %w", err)
	}
	defer db.Close()

	kc := s.kube
	if kc.Rest, err = k8s.RestConfig(s.kubeconfig, e.getenv); err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	kc.Logger = log
	if h.kube != nil {
		h.kube(&kc)
	}
	kube, err := k8s.New(kc)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	// The bot may only run confined to its own enclaves.
	if err := kube.CheckGuard(ctx); err != nil {
		return fmt.Errorf("serve: refusing to start: %w", err)
	}
	tentacles, err := k8s.NewTentacles(kube)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}

	m := metrics.NewRegistry()
	acks := m.Histogram("kraken_ack_seconds", "Time to acknowledge a request from Slack, by kind.", metrics.DefaultBuckets, "kind")
	events := m.Counter("kraken_slack_events_total", "Things that happened to requests from Slack (handled, duplicate, rejected, ...).", "event")
	commands := m.Counter("kraken_commands_total", "Commands, by verb and outcome.", "verb", "outcome")
	runsTotal := m.Counter("kraken_runs_total", "Tentacle runs, by how they ended.", "state")
	llmTokens := m.Counter("kraken_llm_tokens_total", "Language-model tokens used by conversations.")

	sc := s.slack
	sc.Store, sc.Logger = db, log
	sc.Observe = func(kind string, d time.Duration) { acks.With(kind).ObserveDuration(d) }
	sc.Counted = func(ev string) { events.With(ev).Inc() }
	sc.Redact = chat.Redact
	app, err := slack.New(sc)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	var examples fs.FS
	if s.examples != "" {
		examples = os.DirFS(s.examples)
	}
	// Runs end after the request that started them; their end is told
	// to the metrics and, for runs nobody waits for, to the channel.
	var reg *command.Registry
	runner, err := runs.New(runs.Config{Tentacles: tentacles, Store: db, Logger: log, Ended: func(rec runs.Record) {
		runsTotal.With(string(rec.State)).Inc()
		if reg == nil {
			return
		}
		// A run may end during the drain, after ctx: still tell its channel.
		bg := context.WithoutCancel(ctx)
		if err := app.Post(bg, reg.RunEnded(bg, rec)...); err != nil {
			log.Warn("a failed run not told to its channel", "enclave", rec.Enclave, "err", err)
		}
	}})
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	// Every replica serves Slack: sign-ins live in the cluster.
	signIns, err := kube.Identities(s.storeKeys)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	ids, stopLogin, err := startLogin(ctx, e.getenv, db, signIns, log)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	defer stopLogin()
	exo, err := openExoskeleton(ctx, s.exo, log)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	defer exo.close()
	reg, err = command.New(command.Config{
		Enclaves: kube, Tentacles: tentacles, Store: db, Channels: app, Examples: examples, Logger: log, Runner: runner,
		Observe:     func(verb, outcome string, _ time.Duration) { commands.With(verb, outcome).Inc() },
		Identities:  ids,
		Exoskeleton: exo.Exoskeleton,
	})
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	app.SetCommands(reg)
	s.triggers.natsOptions = exo.natsOptions
	trig, err := newTriggers(s.triggers, kube, tentacles, db, reg, app, log)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	if s.llmOn {
		c, err := attachChat(reg, db, s.llm, "", log, func(_ string, n int) { llmTokens.With().Add(float64(n)) })
		if err != nil {
			return fmt.Errorf("serve: %w", err)
		}
		go pruneMemory(ctx, c, log)
	}

	var auth func(http.Handler) http.Handler
	if s.oidc.Issuer != "" {
		s.oidc.Logger = log
		v, err := oidcauth.New(ctx, s.oidc)
		if err != nil {
			return fmt.Errorf("serve: admin API: %w", err)
		}
		auth = v.Middleware
	}
	probe := store.NewBucket[struct{}](db, "readyz")
	adminHandler := admin.Handler(admin.Config{
		Commands: reg, Auth: auth, Metrics: m.Handler(), Logger: log,
		Checks: []admin.Check{
			{Name: "store", Run: func(ctx context.Context) error { _, _, err := probe.Get(ctx, "probe"); return err }},
			{Name: "cluster", Run: func(ctx context.Context) error {
				if _, err := kube.Get(ctx, "kraken-readyz"); err != nil && !errors.Is(err, enclave.ErrNotFound) {
					return err
				}
				return nil
			}},
			{Name: "slack", Run: app.AuthTest},
		},
	})

	httpLn, err := net.Listen("tcp", s.httpAddr)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	adminLn, err := net.Listen("tcp", s.adminAddr)
	if err != nil {
		httpLn.Close()
		return fmt.Errorf("serve: %w", err)
	}
	if h.listening != nil {
		h.listening(httpLn.Addr().String(), adminLn.Addr().String())
	}
	servers := []*http.Server{
		{Handler: trig.handler(app), ReadHeaderTimeout: 10 * time.Second},
		{Handler: adminHandler, ReadHeaderTimeout: 10 * time.Second},
	}

	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	wg.Go(func() {
		if err := app.Run(runCtx); err != nil {
			errs <- err
		}
	})
	if sc.AppToken != "" {
		wg.Go(func() {
			<-app.Ready()
			if err := app.RunSocketMode(runCtx); err != nil && runCtx.Err() == nil {
				errs <- fmt.Errorf("socket mode: %w", err)
			}
		})
	}
	// The work that must happen once runs on the leader only.
	leaderCfg := s.ha.leader
	if h.ha.leader != nil {
		h.ha.leader(&leaderCfg)
	}
	wg.Go(func() {
		err := leaderLoops(runCtx, kube, leaderCfg, log,
			func(ctx context.Context) error {
				if h.ha.reconciling != nil {
					h.ha.reconciling()
				}
				reconcileLoop(ctx, s.reconcile, reg, app, log)
				return nil
			},
			trig.sched.Run)
		if err != nil {
			errs <- err
		}
	})
	wg.Go(func() { pruneRuns(runCtx, runner, s.runRetention, log) })
	if trig.queue != nil {
		// Queue triggers run on every replica: the queue group hands each
		// message to one of them.
		wg.Go(func() {
			if err := trig.queue.Run(runCtx); err != nil && runCtx.Err() == nil {
				errs <- fmt.Errorf("queue triggers: %w", err)
			}
		})
	}
	wg.Go(func() {
		// Runs a stopped bot left "running" are marked interrupted, with
		// a Retry button in their channel.
		select {
		case <-app.Ready():
		case <-runCtx.Done():
			return
		}
		posts, err := reg.Interrupted(runCtx)
		if err != nil {
			log.Warn("interrupted runs not marked", "err", err)
		}
		if err := app.Post(runCtx, posts...); err != nil {
			log.Warn("interrupted runs not told", "err", err)
		}
	})
	for i, ln := range []net.Listener{httpLn, adminLn} {
		srv := servers[i]
		wg.Go(func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errs <- err
			}
		})
	}
	log.Info("kraken serving", "slack", httpLn.Addr().String(), "admin", adminLn.Addr().String(), "socket_mode", sc.AppToken != "", "admin_api", auth != nil)

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errs:
		log.Error("kraken stopping", "err", runErr)
	}
	// Stop taking new work: once app.Run ends Slack's requests get 503,
	// and Slack retries them on another replica; what is still queued
	// stays pending in the store for the next start. The leader's loops
	// end and the lease is released, so another replica takes over.
	stop()
	// Runs in flight may finish within the grace; the rest are recorded
	// as interrupted.
	drain := runner.Drain
	if h.ha.drain != nil {
		drain = h.ha.drain
	}
	grace, cancelGrace := context.WithTimeout(context.WithoutCancel(ctx), s.ha.shutdownGrace())
	drain(grace)
	cancelGrace()
	// Finish the requests in flight.
	shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	for _, srv := range servers {
		_ = srv.Shutdown(shutdown)
	}
	wg.Wait()
	log.Info("kraken stopped")
	return runErr
}

// reconcileLoop repairs drift between Slack and the cluster at start and
// then every interval, and tells people what it changed.
func reconcileLoop(ctx context.Context, every time.Duration, reg *command.Registry, app *slack.App, log *slog.Logger) {
	select {
	case <-app.Ready():
	case <-ctx.Done():
		return
	}
	for {
		posts, err := reg.Reconcile(ctx)
		if err != nil && ctx.Err() == nil {
			log.Warn("reconcile left drift it could not repair", "err", err)
		}
		for _, p := range posts {
			if err := app.Post(ctx, p); err != nil {
				log.Warn("reconcile notice not posted", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
		}
	}
}

// pruneMemory frees the space of conversations past their time, hourly.
func pruneMemory(ctx context.Context, c *chat.Chat, log *slog.Logger) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Hour):
		}
		if _, err := c.PruneMemory(ctx); err != nil && ctx.Err() == nil {
			log.Warn("conversation memory not pruned", "err", err)
		}
	}
}

// pruneRuns forgets run records past their retention, at start and then
// every six hours.
func pruneRuns(ctx context.Context, runner *runs.Runner, keep time.Duration, log *slog.Logger) {
	if keep <= 0 {
		keep = 30 * 24 * time.Hour
	}
	for {
		if n, err := runner.Prune(ctx, time.Now().Add(-keep)); err != nil && ctx.Err() == nil {
			log.Warn("old run records not pruned", "err", err)
		} else if n > 0 {
			log.Info("old run records pruned", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(6 * time.Hour):
		}
	}
}
