// Package slack is the Slack transport: it takes Events API requests,
// slash commands and interactivity over HTTP or Socket Mode, hands them to
// the command registry, and shows the registry's replies as Block Kit.
//
// Every inbound request is handled in two halves. The first, on the
// request's own goroutine, checks the signature, claims the request's id
// in the store (so a retry from Slack is recognised, even after a
// restart), queues it and acknowledges it: Slack wants an answer within 3
// seconds, and this half takes a few milliseconds. The second half runs on
// a bounded pool of workers: it asks the registry and posts the reply
// through the Web API, then marks the request done in the store. A request
// claimed but never marked done (the process died in between) is run
// again by the next Run.
//
// People talk to the bot by mentioning it, by replying in a thread it is
// in (one it was mentioned in, or under one of its posts, in an
// enclave's channel), in a direct message, and with /kraken. Words that
// are not a command go to the registry's conversation loop, which takes
// seconds: the bot shows "Thinking…" first and puts the answer in its
// place. A reply asking for a secret becomes a private form (secret.go);
// the value never reaches a log, a reply or the store.
//
// The wiring, when the registry needs the App as its channels:
//
//	app, err := slack.New(slack.Config{BotToken: ..., SigningSecret: ..., Store: db})
//	reg, err := command.New(command.Config{Channels: app, Store: db, ...})
//	app.SetCommands(reg)
//	go app.Run(ctx)                       // replays, then works the queue
//	http.Handle("/slack/", app.Handler()) // and/or app.RunSocketMode(ctx)
package slack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	slackapi "github.com/slack-go/slack"

	"github.com/kraken-ops/kraken/bot/command"
	"github.com/kraken-ops/kraken/enclave"
	"github.com/kraken-ops/kraken/store"
)

// Commands is what the transport needs from the command registry.
type Commands interface {
	Do(ctx context.Context, req command.Request) command.Reply
	Click(ctx context.Context, k command.Click) command.Reply
	ChannelEvent(ctx context.Context, ev command.ChannelEvent) []command.Post
	Home(ctx context.Context, who enclave.Principal) (command.Home, error)
	// IsCommand says whether text starts with a verb; anything else goes
	// to the conversation loop, which is slow, so the transport shows a
	// placeholder at once.
	IsCommand(text string) bool
	// EnclaveName is the enclave of req's channel, enclave.ErrNotFound
	// when it has none: a thread reply is only taken as words to the bot
	// in an enclave's channel.
	EnclaveName(ctx context.Context, req command.Request) (string, error)
	// SubmitSecret sets the secret a private form asked for.
	SubmitSecret(ctx context.Context, s command.SecretSubmission) command.Reply
}

// Config configures an App.
type Config struct {
	// BotToken (xoxb-) is used for every Web API call.
	BotToken string
	// AppToken (xapp-) is needed only for Socket Mode.
	AppToken string
	// SigningSecret checks requests Slack sends over HTTP.
	SigningSecret string
	// APIURL is the Web API's base URL, "https://slack.com/api/" when
	// empty; tests point it at a fake.
	APIURL string
	// Commands is the registry. It may be set later with SetCommands,
	// for a registry that needs the App as its command.Channels.
	Commands Commands
	// Store de-duplicates requests and keeps the files shared per channel.
	Store  *store.DB
	Logger *slog.Logger
	// Workers is how many requests are handled at once; default 8.
	Workers int
	// WorkingAfter is how long a slash command may run before its asker
	// is told "Working on it…"; default 2s, negative for never.
	WorkingAfter time.Duration
	// UpdateEvery is how often at most a message whose work goes on (a
	// run's) is updated with its progress; default 1s, as Slack's
	// chat.update allows about one update a second. The end always goes
	// out at once.
	UpdateEvery time.Duration
	// HTTPClient makes the Web API calls; default one with a 30s timeout.
	HTTPClient *http.Client
	// Redact, when set, blanks secrets in the copy of a request the
	// store keeps until it is handled (the conversation loop's redactor):
	// a token pasted in a message must not reach the disk.
	Redact func(string) string

	// Observe, when set, is told how long each request Slack sent took
	// to acknowledge, by kind: "events", "commands", "interactions", or
	// "submissions" for a secret form, whose answer waits for the
	// secret to be set (up to submitBudget).
	Observe func(kind string, ack time.Duration)
	// Counted, when set, is told of things worth counting: "duplicate"
	// (a retry dropped), "rejected" (bad signature or timestamp),
	// "queue_full", "replayed", "rate_limited", "handled", "failed".
	Counted func(event string)
}

// App is the Slack transport. Its methods are safe for concurrent use.
type App struct {
	cfg      Config
	log      *slog.Logger
	api      *slackapi.Client
	apiURL   string
	mux      *http.ServeMux
	files    *store.Bucket[sharedFile]
	threads  *store.Bucket[thread]
	queue    chan work
	ready    chan struct{} // closed once Run has replayed what was pending
	stopped  chan struct{} // closed when Run returns
	overflow chan struct{} // told when a request could not be queued

	mu       sync.Mutex
	commands Commands
	running  bool
	inflight map[string]bool // ids claimed and queued or being handled
	botID    string          // the bot's own user id, from auth.test
	users    map[string]cached
	channels map[string]cached
}

// cached is a looked-up value and when it goes stale.
type cached struct {
	value   string
	expires time.Time
}

// Defaults.
const (
	defaultWorkers      = 8
	defaultWorkingAfter = 2 * time.Second
	defaultUpdateEvery  = time.Second
	// queuePerWorker sizes the queue: enough to ride out a burst while
	// the workers catch up, small enough that a backlog shows.
	queuePerWorker = 64
)

// New makes an App. It checks the configuration but talks to no one.
func New(cfg Config) (*App, error) {
	switch {
	case cfg.BotToken == "":
		return nil, errors.New("slack: no bot token")
	case cfg.Store == nil:
		return nil, errors.New("slack: no store")
	}
	if cfg.Workers <= 0 {
		cfg.Workers = defaultWorkers
	}
	if cfg.WorkingAfter == 0 {
		cfg.WorkingAfter = defaultWorkingAfter
	}
	if cfg.UpdateEvery <= 0 {
		cfg.UpdateEvery = defaultUpdateEvery
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	a := &App{
		cfg:      cfg,
		log:      cfg.Logger,
		apiURL:   cfg.APIURL,
		files:    store.NewBucket[sharedFile](cfg.Store, "slack_files"),
		threads:  store.NewBucket[thread](cfg.Store, "slack_threads"),
		queue:    make(chan work, cfg.Workers*queuePerWorker),
		ready:    make(chan struct{}),
		stopped:  make(chan struct{}),
		overflow: make(chan struct{}, 1),
		commands: cfg.Commands,
		inflight: map[string]bool{},
		users:    map[string]cached{},
		channels: map[string]cached{},
	}
	if a.apiURL == "" {
		a.apiURL = slackapi.APIURL
	}
	a.api = slackapi.New(cfg.BotToken, slackapi.OptionAPIURL(a.apiURL), slackapi.OptionHTTPClient(cfg.HTTPClient))
	a.mux = http.NewServeMux()
	a.mux.HandleFunc("POST /slack/events", a.serveEvents)
	a.mux.HandleFunc("POST /slack/commands", a.serveCommands)
	a.mux.HandleFunc("POST /slack/interactions", a.serveInteractions)
	return a, nil
}

// SetCommands sets the registry requests go to. Call it before Run.
func (a *App) SetCommands(c Commands) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.commands = c
}

// Ready is closed once Run has replayed the requests left pending by the
// last process and the App takes new ones. Until then, and after Run
// returns, the HTTP handler answers 503 and Slack retries.
func (a *App) Ready() <-chan struct{} { return a.ready }

// AuthTest checks the bot token with Slack (auth.test) every time it is
// called, for a readiness probe, and learns the bot's own user id.
func (a *App) AuthTest(ctx context.Context) error {
	_, err := a.authTest(ctx)
	return err
}

// Run handles requests until ctx ends: first those a previous process
// claimed but never finished, then what the HTTP handler and
// RunSocketMode receive. Requests still queued or cut short when ctx
// ends stay pending in the store for the next Run. Run returns nil once
// every worker has stopped.
func (a *App) Run(ctx context.Context) error {
	a.mu.Lock()
	cmds, already := a.commands, a.running
	a.running = true
	a.mu.Unlock()
	switch {
	case already:
		return errors.New("slack: Run called twice")
	case cmds == nil:
		return errors.New("slack: no commands: set Config.Commands or call SetCommands before Run")
	}
	defer close(a.stopped)

	var wg sync.WaitGroup
	for range a.cfg.Workers {
		wg.Go(func() { a.worker(ctx, cmds) })
	}
	defer wg.Wait()

	n, _, err := a.requeuePending(ctx, true)
	if err != nil {
		return fmt.Errorf("slack: replay: %w", err)
	}
	if n > 0 {
		a.log.Info("replaying requests a previous run left unfinished", "count", n)
	}
	close(a.ready)
	a.prune(ctx)

	sweep := time.NewTicker(sweepEvery)
	defer sweep.Stop()
	prune := time.NewTicker(pruneEvery)
	defer prune.Stop()
	// retry fires soon after the queue was full, and again until every
	// request that waits in the store is queued.
	retry := time.NewTimer(overflowRetry)
	retry.Stop()
	defer retry.Stop()
	requeue := func() {
		_, full, err := a.requeuePending(ctx, false)
		if err != nil && ctx.Err() == nil {
			a.log.Warn("pending requests not read", "err", err)
		}
		if full || err != nil {
			retry.Reset(overflowRetry)
		}
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-a.overflow:
			retry.Reset(overflowRetry)
		case <-retry.C:
			requeue()
		case <-sweep.C:
			requeue()
		case <-prune.C:
			a.prune(ctx)
		}
	}
}

// accepting reports whether Run is up and taking requests.
func (a *App) accepting() bool {
	select {
	case <-a.stopped:
		return false
	case <-a.ready:
		return true
	default:
		return false
	}
}

func (a *App) count(event string) {
	if a.cfg.Counted != nil {
		a.cfg.Counted(event)
	}
}

func (a *App) observe(kind string, d time.Duration) {
	if a.cfg.Observe != nil {
		a.cfg.Observe(kind, d)
	}
}
