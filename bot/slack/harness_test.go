package slack_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/kraken-ops/kraken/bot/command"
	"github.com/kraken-ops/kraken/bot/slack"
	"github.com/kraken-ops/kraken/bot/slacktest"
	"github.com/kraken-ops/kraken/enclave"
	"github.com/kraken-ops/kraken/store"
)

// wait is how long tests wait for the bot to do something.
const wait = 10 * time.Second

// testLogger writes the bot's log to the test's, when -v asks for it.
func testLogger(t testing.TB) *slog.Logger {
	if !testing.Verbose() {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

// bot is an App running against a fake Slack, served over HTTP.
type bot struct {
	t      testing.TB
	srv    *slacktest.Server
	app    *slack.App
	db     *store.DB
	url    string
	counts *counter
	stop   func() // cancels Run and waits for it
}

// openStore opens (or reopens) the store file at path.
func openStore(t testing.TB, path string) *store.DB {
	t.Helper()
	db, err := store.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// newConfig is an App's configuration against srv.
func newConfig(t testing.TB, srv *slacktest.Server, db *store.DB, cmds slack.Commands) slack.Config {
	return slack.Config{
		BotToken:      srv.BotToken(),
		AppToken:      srv.AppToken(),
		SigningSecret: srv.SigningSecret(),
		APIURL:        srv.APIURL(),
		Commands:      cmds,
		Store:         db,
		Logger:        testLogger(t),
		Workers:       4,
		WorkingAfter:  -1,
	}
}

// startBot starts an App with cfg, serves its handler, runs it until the
// test ends, and waits until it is ready.
func startBot(t testing.TB, srv *slacktest.Server, cfg slack.Config) *bot {
	t.Helper()
	return wireBot(t, srv, cfg, nil)
}

// wireBot is startBot with a chance to wire the App before it runs.
func wireBot(t testing.TB, srv *slacktest.Server, cfg slack.Config, wire func(*slack.App)) *bot {
	t.Helper()
	counts := &counter{n: map[string]int{}}
	cfg.Counted = counts.add
	app, err := slack.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if wire != nil {
		wire(app)
	}
	hs := httptest.NewServer(app.Handler())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
			hs.Close()
		})
	}
	t.Cleanup(stop)
	select {
	case <-app.Ready():
	case err := <-done:
		t.Fatalf("Run ended before it was ready: %v", err)
	case <-time.After(wait):
		t.Fatal("app not ready")
	}
	return &bot{t: t, srv: srv, app: app, db: cfg.Store, url: hs.URL, counts: counts, stop: stop}
}

// send posts a body to one of the bot's endpoints, signed as Slack signs
// it at time at, and returns the status and body of the answer.
func (b *bot) send(path string, body []byte, at time.Time, header ...string) (int, string) {
	b.t.Helper()
	req := b.srv.SignedRequest(b.url+path, body, at)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(out)
}

// event sends an event_callback and expects it acknowledged.
func (b *bot) event(eventID string, inner map[string]any, header ...string) {
	b.t.Helper()
	if code, body := b.send("/slack/events", b.srv.EventCallback(b.srv.TeamID(), eventID, inner), time.Now(), header...); code != http.StatusOK {
		b.t.Fatalf("event %s: %d %s", inner["type"], code, body)
	}
}

// command sends a slash command and expects it acknowledged with an
// empty body.
func (b *bot) command(c slacktest.SlashCommand) slacktest.SlashCommand {
	b.t.Helper()
	c = b.srv.SlashCommand(c)
	if c.Command == "" {
		c.Command = "/kraken"
	}
	if code, body := b.send("/slack/commands", c.Body(), time.Now()); code != http.StatusOK || body != "" {
		b.t.Fatalf("command %q: %d %q", c.Text, code, body)
	}
	return c
}

// click sends a block action and expects it acknowledged.
func (b *bot) click(a slacktest.BlockAction) {
	b.t.Helper()
	if code, body := b.send("/slack/interactions", b.srv.BlockAction(a).Body(), time.Now()); code != http.StatusOK {
		b.t.Fatalf("click: %d %s", code, body)
	}
}

// pending is how many requests the store holds as claimed but not done.
func (b *bot) pending() int {
	b.t.Helper()
	p, err := b.db.PendingEvents(context.Background())
	if err != nil {
		b.t.Fatal(err)
	}
	return len(p)
}

// counter records Config.Counted.
type counter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *counter) add(event string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n[event]++
}

func (c *counter) get(event string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[event]
}

// eventually polls cond until it holds or wait passes.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// fakeCommands is a registry for transport tests: it records what it is
// asked and answers as told.
type fakeCommands struct {
	mu       sync.Mutex
	requests []command.Request
	clicks   []command.Click
	events   []command.ChannelEvent
	homes    []enclave.Principal
	secrets  []command.SecretSubmission

	do    func(ctx context.Context, req command.Request) command.Reply
	click func(ctx context.Context, k command.Click) command.Reply
	event func(ctx context.Context, ev command.ChannelEvent) []command.Post
	home  func(ctx context.Context, who enclave.Principal) (command.Home, error)
	// isCommand says what is a command; everything is when nil.
	isCommand func(text string) bool
	// enclaves names the channels that have an enclave; every channel
	// has one when nil.
	enclaves map[string]string
	submit   func(ctx context.Context, s command.SecretSubmission) command.Reply
}

func (f *fakeCommands) IsCommand(text string) bool {
	f.mu.Lock()
	is := f.isCommand
	f.mu.Unlock()
	return is == nil || is(text)
}

func (f *fakeCommands) EnclaveName(_ context.Context, req command.Request) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.enclaves == nil {
		return "enclave-" + req.Channel.ID, nil
	}
	if name, ok := f.enclaves[req.Channel.ID]; ok {
		return name, nil
	}
	return "", enclave.ErrNotFound
}

func (f *fakeCommands) SubmitSecret(ctx context.Context, s command.SecretSubmission) command.Reply {
	f.mu.Lock()
	f.secrets = append(f.secrets, s)
	submit := f.submit
	f.mu.Unlock()
	if submit != nil {
		return submit(ctx, s)
	}
	return command.Reply{Text: "Secret set.", Private: true}
}

func (f *fakeCommands) Secrets() []command.SecretSubmission {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]command.SecretSubmission(nil), f.secrets...)
}

func (f *fakeCommands) Do(ctx context.Context, req command.Request) command.Reply {
	f.mu.Lock()
	f.requests = append(f.requests, req)
	do := f.do
	f.mu.Unlock()
	if do != nil {
		return do(ctx, req)
	}
	return command.Reply{Text: "ok: " + req.Text}
}

func (f *fakeCommands) Click(ctx context.Context, k command.Click) command.Reply {
	f.mu.Lock()
	f.clicks = append(f.clicks, k)
	click := f.click
	f.mu.Unlock()
	if click != nil {
		return click(ctx, k)
	}
	return command.Reply{Text: "clicked " + k.Value}
}

func (f *fakeCommands) ChannelEvent(ctx context.Context, ev command.ChannelEvent) []command.Post {
	f.mu.Lock()
	f.events = append(f.events, ev)
	event := f.event
	f.mu.Unlock()
	if event != nil {
		return event(ctx, ev)
	}
	return nil
}

func (f *fakeCommands) Home(ctx context.Context, who enclave.Principal) (command.Home, error) {
	f.mu.Lock()
	f.homes = append(f.homes, who)
	home := f.home
	f.mu.Unlock()
	if home != nil {
		return home(ctx, who)
	}
	return command.Home{}, nil
}

func (f *fakeCommands) Requests() []command.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]command.Request(nil), f.requests...)
}

func (f *fakeCommands) Clicks() []command.Click {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]command.Click(nil), f.clicks...)
}

func (f *fakeCommands) Events() []command.ChannelEvent {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]command.ChannelEvent(nil), f.events...)
}

func (f *fakeCommands) Homes() []enclave.Principal {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]enclave.Principal(nil), f.homes...)
}

// workspace is the fake Slack most tests start from: alice and bob in
// #ops with the bot.
type workspace struct {
	srv        *slacktest.Server
	alice, bob slacktest.User
	ops        slacktest.Channel
}

func newWorkspace(t testing.TB, opts ...slacktest.Option) workspace {
	t.Helper()
	srv := slacktest.New(t, opts...)
	w := workspace{srv: srv}
	w.alice = srv.AddUser(slacktest.User{Name: "alice", RealName: "Alice Ahl", Email: "alice@example.com"})
	w.bob = srv.AddUser(slacktest.User{Name: "bob", RealName: "Bob Berg", Email: "bob@example.com"})
	w.ops = srv.AddChannel(slacktest.Channel{Name: "ops", Members: []string{srv.BotUserID(), w.alice.ID, w.bob.ID}})
	return w
}

func tempStore(t testing.TB) (*store.DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kraken.db")
	db := openStore(t, path)
	t.Cleanup(func() { db.Close() })
	return db, path
}

// benchDir is where a benchmark's store goes: on the disk the bot will
// use when KRAKEN_STORE_BENCH_DIR says so.
func benchDir(b *testing.B) string {
	if dir := os.Getenv("KRAKEN_STORE_BENCH_DIR"); dir != "" {
		d, err := os.MkdirTemp(dir, "kraken-slack-bench-")
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { os.RemoveAll(d) })
		return d
	}
	return b.TempDir()
}
