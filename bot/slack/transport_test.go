package slack_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kraken-ops/kraken/bot/command"
	"github.com/kraken-ops/kraken/bot/slack"
	"github.com/kraken-ops/kraken/bot/slacktest"
	"github.com/kraken-ops/kraken/enclave"
)

func TestURLVerification(t *testing.T) {
	w := newWorkspace(t)
	db, _ := tempStore(t)
	b := startBot(t, w.srv, newConfig(t, w.srv, db, &fakeCommands{}))
	code, body := b.send("/slack/events", w.srv.URLVerification("kraken-challenge-42"), time.Now())
	if code != http.StatusOK || body != "kraken-challenge-42" {
		t.Errorf("url_verification: %d %q", code, body)
	}
	// Even the challenge must be signed.
	req := w.srv.SignedRequest(b.url+"/slack/events", w.srv.URLVerification("x"), time.Now())
	req.Header.Set("X-Slack-Signature", "v0=00")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("unsigned challenge: %d", resp.StatusCode)
	}
}

// A request that is not Slack's, or is Slack's but too old or from the
// future, is refused before anything is recorded: its id is not even
// claimed, so the genuine request still runs.
func TestRejectsUnverifiedRequests(t *testing.T) {
	w := newWorkspace(t)
	db, _ := tempStore(t)
	cmds := &fakeCommands{}
	b := startBot(t, w.srv, newConfig(t, w.srv, db, cmds))
	c := w.srv.SlashCommand(slacktest.SlashCommand{Command: "/kraken", Text: "deprovision", UserID: w.alice.ID, ChannelID: w.ops.ID})
	body := c.Body()
	now := time.Now()
	resign := func(secret string, at time.Time, body []byte) func(*http.Request) {
		return func(r *http.Request) {
			r.Header.Set("X-Slack-Request-Timestamp", strconv.FormatInt(at.Unix(), 10))
			r.Header.Set("X-Slack-Signature", slacktest.Signature(secret, at, body))
		}
	}
	cases := []struct {
		name   string
		path   string
		body   []byte
		at     time.Time
		tamper func(*http.Request)
	}{
		{"forged signature", "/slack/commands", body, now, resign("not-the-secret", now, body)},
		{"body changed after signing", "/slack/commands", []byte(strings.Replace(string(body), "deprovision", "deprovisioN", 1)), now, resign(w.srv.SigningSecret(), now, body)},
		{"six minutes old", "/slack/commands", body, now.Add(-6 * time.Minute), nil},
		{"six minutes ahead", "/slack/commands", body, now.Add(6 * time.Minute), nil},
		{"no signature", "/slack/commands", body, now, func(r *http.Request) { r.Header.Del("X-Slack-Signature") }},
		{"no timestamp", "/slack/commands", body, now, func(r *http.Request) { r.Header.Del("X-Slack-Request-Timestamp") }},
		{"timestamp not a number", "/slack/commands", body, now, func(r *http.Request) { r.Header.Set("X-Slack-Request-Timestamp", "soon") }},
		{"stale event", "/slack/events", w.srv.EventCallback(w.srv.TeamID(), "EvStale", w.srv.MemberJoinedChannelEvent(w.ops.ID, w.bob.ID, "")), now.Add(-6 * time.Minute), nil},
		{"stale click", "/slack/interactions", w.srv.BlockAction(slacktest.BlockAction{UserID: w.bob.ID, ChannelID: w.ops.ID, Value: "confirm:x"}).Body(), now.Add(-6 * time.Minute), nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := w.srv.SignedRequest(b.url+tc.path, tc.body, tc.at)
			if tc.tamper != nil {
				tc.tamper(req)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("status %d, want 401", resp.StatusCode)
			}
		})
	}
	if n := b.pending(); n != 0 {
		t.Errorf("%d requests claimed", n)
	}
	if got := b.counts.get("rejected"); got != len(cases) {
		t.Errorf("rejected counted %d times, want %d", got, len(cases))
	}
	// The genuine request is not taken for a duplicate of a refused one.
	if code, _ := b.send("/slack/commands", body, time.Now()); code != http.StatusOK {
		t.Fatalf("genuine request: %d", code)
	}
	w.srv.WaitFor(t, "chat.postMessage", nil, wait)
	if reqs := cmds.Requests(); len(reqs) != 1 || reqs[0].Text != "deprovision" {
		t.Errorf("requests = %+v", reqs)
	}
	if len(cmds.Events()) != 0 || len(cmds.Clicks()) != 0 {
		t.Errorf("refused event or click reached the registry")
	}
}

// Slack retries what it thinks was not acknowledged in time; a retry of
// something already claimed is acknowledged and dropped.
func TestDuplicatesRunOnce(t *testing.T) {
	w := newWorkspace(t)
	db, _ := tempStore(t)
	cmds := &fakeCommands{}
	cfg := newConfig(t, w.srv, db, cmds)
	cfg.Workers = 1 // in order: once the sentinel ran, so would have any duplicate
	b := startBot(t, w.srv, cfg)

	joined := w.srv.EventCallback(w.srv.TeamID(), "Ev0DUP1", w.srv.MemberJoinedChannelEvent(w.ops.ID, w.bob.ID, ""))
	cmd := w.srv.SlashCommand(slacktest.SlashCommand{Command: "/kraken", Text: "status hello", UserID: w.alice.ID, ChannelID: w.ops.ID})
	action := w.srv.BlockAction(slacktest.BlockAction{UserID: w.alice.ID, ChannelID: w.ops.ID, Value: "run:info", Text: "Info"}).Body()
	for i, retry := range []string{"", "1", "2"} {
		hdr := []string{}
		if retry != "" {
			hdr = []string{"X-Slack-Retry-Num", retry, "X-Slack-Retry-Reason", "http_timeout"}
		}
		for _, r := range []struct {
			path string
			body []byte
		}{{"/slack/events", joined}, {"/slack/commands", cmd.Body()}, {"/slack/interactions", action}} {
			if code, body := b.send(r.path, r.body, time.Now(), hdr...); code != http.StatusOK {
				t.Fatalf("delivery %d to %s: %d %s", i, r.path, code, body)
			}
		}
	}
	b.event("Ev0SENTINEL", w.srv.MemberLeftChannelEvent(w.ops.ID, w.bob.ID))
	eventually(t, "the sentinel", func() bool { return len(cmds.Events()) == 2 })
	eventually(t, "every request done", func() bool { return b.pending() == 0 })

	if evs := cmds.Events(); evs[0].Kind != command.MemberJoined || evs[1].Kind != command.MemberLeft {
		t.Errorf("events = %+v", evs)
	}
	if n := len(cmds.Requests()); n != 1 {
		t.Errorf("slash command ran %d times", n)
	}
	if n := len(cmds.Clicks()); n != 1 {
		t.Errorf("click ran %d times", n)
	}
	if got := b.counts.get("duplicate"); got != 6 {
		t.Errorf("duplicates counted %d, want 6", got)
	}
}

// blockingCommands blocks every request until its context ends, as a
// registry cut short by a shutdown would be.
type blockingCommands struct {
	fakeCommands
	started chan struct{}
}

func (b *blockingCommands) Do(ctx context.Context, req command.Request) command.Reply {
	b.fakeCommands.Do(ctx, req)
	b.started <- struct{}{}
	<-ctx.Done()
	return command.Reply{Text: "too late"}
}

// A request acknowledged but not finished when the process stops runs
// again, once, when the next process starts on the same store.
func TestReplayAfterRestart(t *testing.T) {
	w := newWorkspace(t)
	path := t.TempDir() + "/kraken.db"
	db := openStore(t, path)
	blocking := &blockingCommands{started: make(chan struct{}, 1)}
	first := startBot(t, w.srv, newConfig(t, w.srv, db, blocking))
	cmd := first.command(slacktest.SlashCommand{Text: "deploy hello", UserID: w.alice.ID, ChannelID: w.ops.ID})
	select {
	case <-blocking.started:
	case <-time.After(wait):
		t.Fatal("the request never started")
	}
	first.stop()
	pending, err := db.PendingEvents(context.Background())
	if err != nil || len(pending) != 1 {
		t.Fatalf("pending after the stop = %+v, %v; want 1", pending, err)
	}
	if strings.Contains(string(pending[0].Payload), w.srv.VerificationToken()) {
		t.Errorf("the verification token was stored: %s", pending[0].Payload)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if msgs := w.srv.Messages(w.ops.ID); len(msgs) != 0 {
		t.Fatalf("the interrupted request answered: %+v", msgs)
	}

	db = openStore(t, path)
	defer db.Close()
	cmds := &fakeCommands{}
	second := startBot(t, w.srv, newConfig(t, w.srv, db, cmds))
	w.srv.WaitFor(t, "chat.postMessage", nil, wait)
	// Slack's retry of the same command, arriving after the restart, is
	// still a duplicate.
	if code, _ := second.send("/slack/commands", cmd.Body(), time.Now(), "X-Slack-Retry-Num", "1"); code != http.StatusOK {
		t.Fatalf("retry: %d", code)
	}
	eventually(t, "the replay to finish", func() bool { return second.pending() == 0 })
	second.stop()
	if reqs := cmds.Requests(); len(reqs) != 1 || reqs[0].Text != "deploy hello" || reqs[0].Actor.UserID != w.alice.ID {
		t.Errorf("replayed requests = %+v", reqs)
	}
	if got := second.counts.get("replayed"); got != 1 {
		t.Errorf("replayed counted %d", got)
	}
	if msgs := w.srv.Messages(w.ops.ID); len(msgs) != 1 || !strings.Contains(msgs[0].Text, "ok: deploy hello") {
		t.Errorf("messages = %+v", msgs)
	}
}

func TestRateLimitedCallsAreRetried(t *testing.T) {
	w := newWorkspace(t)
	db, _ := tempStore(t)
	b := startBot(t, w.srv, newConfig(t, w.srv, db, &fakeCommands{}))
	w.srv.FailNext("chat.postMessage", 1, slacktest.RateLimited(time.Second))
	start := time.Now()
	b.command(slacktest.SlashCommand{Text: "info", UserID: w.alice.ID, ChannelID: w.ops.ID})
	w.srv.WaitFor(t, "chat.postMessage", func(c slacktest.Call) bool { return c.OK() }, wait)
	if took := time.Since(start); took < time.Second {
		t.Errorf("retried after %s, before Retry-After's 1s", took)
	}
	calls := w.srv.Calls("chat.postMessage")
	if len(calls) != 2 || calls[0].Status != http.StatusTooManyRequests || !calls[1].OK() {
		t.Errorf("calls = %+v", calls)
	}
	if msgs := w.srv.Messages(w.ops.ID); len(msgs) != 1 {
		t.Errorf("messages = %+v", msgs)
	}
	if b.counts.get("rate_limited") != 1 {
		t.Errorf("rate_limited counted %d", b.counts.get("rate_limited"))
	}
}

// Slack asking for patience too often: the bot gives up after four
// attempts rather than hold a worker forever. A slash command still has
// its response_url to answer through; a mention is done without one.
func TestRateLimitGivesUp(t *testing.T) {
	w := newWorkspace(t)
	db, _ := tempStore(t)
	b := startBot(t, w.srv, newConfig(t, w.srv, db, &fakeCommands{}))

	w.srv.FailNext("chat.postMessage", 4, slacktest.RateLimited(time.Second))
	c := b.command(slacktest.SlashCommand{Text: "info", UserID: w.alice.ID, ChannelID: w.ops.ID})
	w.srv.WaitFor(t, "response_url", nil, 2*wait)
	if rs := w.srv.Responses(c.ResponseURL); len(rs) != 1 || rs[0].ResponseType != "in_channel" || rs[0].Text != "ok: info" {
		t.Errorf("responses = %+v", rs)
	}
	if calls := w.srv.Calls("chat.postMessage"); len(calls) != 4 {
		t.Errorf("%d attempts, want 4", len(calls))
	}

	w.srv.FailNext("chat.postMessage", 4, slacktest.RateLimited(time.Second))
	b.event("", w.srv.AppMentionEvent(w.srv.UserMessage(w.ops.ID, w.alice.ID, "", w.srv.BotMention()+" info")))
	eventually(t, "the mention given up", func() bool { return b.pending() == 0 && b.counts.get("failed") == 1 })
	if calls := w.srv.Calls("chat.postMessage"); len(calls) != 8 {
		t.Errorf("%d attempts, want 4 more", len(calls))
	}
	if b.counts.get("rate_limited") != 6 {
		t.Errorf("rate_limited counted %d, want 6", b.counts.get("rate_limited"))
	}
}

// Waiting out a rate limit does not hold up a shutdown; the request
// stays pending for the next start.
func TestRateLimitWaitEndsWithShutdown(t *testing.T) {
	w := newWorkspace(t)
	db, _ := tempStore(t)
	b := startBot(t, w.srv, newConfig(t, w.srv, db, &fakeCommands{}))
	w.srv.FailNext("chat.postMessage", 1, slacktest.RateLimited(time.Minute))
	b.command(slacktest.SlashCommand{Text: "info", UserID: w.alice.ID, ChannelID: w.ops.ID})
	w.srv.WaitFor(t, "chat.postMessage", nil, wait)
	eventually(t, "the wait to begin", func() bool { return b.counts.get("rate_limited") == 1 })
	start := time.Now()
	b.stop()
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("stopping took %s", took)
	}
	if n := b.pending(); n != 1 {
		t.Errorf("%d pending, want the interrupted request", n)
	}
}

func TestSlashCommandReplies(t *testing.T) {
	cases := []struct {
		name  string
		reply command.Reply
		// in: the channel the command is typed in; outside is one the bot
		// is not a member of.
		outside bool
		fault   func(*slacktest.Server)
		check   func(t *testing.T, w workspace, c slacktest.SlashCommand)
	}{
		{"private goes to the response_url", command.Reply{Text: "Only you see this.", Private: true}, false, nil,
			func(t *testing.T, w workspace, c slacktest.SlashCommand) {
				w.srv.WaitFor(t, "response_url", nil, wait)
				rs := w.srv.Responses(c.ResponseURL)
				if len(rs) != 1 || rs[0].ResponseType != "ephemeral" || rs[0].ReplaceOriginal || !strings.Contains(rs[0].AllText(), "Only you see this.") {
					t.Errorf("responses = %+v", rs)
				}
				if len(w.srv.Calls("chat.postMessage")) != 0 {
					t.Error("a private reply was posted in the channel")
				}
			}},
		{"private falls back to an ephemeral message", command.Reply{Text: "Only you see this.", Private: true}, false,
			func(s *slacktest.Server) {
				s.FailNext("response_url", 1, slacktest.HTTPError(http.StatusInternalServerError))
			},
			func(t *testing.T, w workspace, c slacktest.SlashCommand) {
				w.srv.WaitFor(t, "chat.postEphemeral", nil, wait)
				es := w.srv.Ephemerals(w.ops.ID, w.alice.ID)
				if len(es) != 1 || es[0].Via != "chat.postEphemeral" || es[0].Text != "Only you see this." {
					t.Errorf("ephemerals = %+v", es)
				}
			}},
		{"public is posted in the channel", command.Reply{Text: "Deployed *hello*."}, false, nil,
			func(t *testing.T, w workspace, c slacktest.SlashCommand) {
				w.srv.WaitFor(t, "chat.postMessage", nil, wait)
				msgs := w.srv.Messages(w.ops.ID)
				if len(msgs) != 1 || msgs[0].Text != "Deployed *hello*." {
					t.Fatalf("messages = %+v", msgs)
				}
				// Who asked is shown, but not their input.
				all := msgs[0].AllText()
				if !strings.Contains(all, "<@"+w.alice.ID+"> used `/kraken deploy`") || strings.Contains(all, "s3cret") {
					t.Errorf("message = %s", all)
				}
			}},
		{"public where the bot is not goes through the response_url", command.Reply{Text: "Hello from outside."}, true, nil,
			func(t *testing.T, w workspace, c slacktest.SlashCommand) {
				w.srv.WaitFor(t, "response_url", nil, wait)
				rs := w.srv.Responses(c.ResponseURL)
				if len(rs) != 1 || rs[0].ResponseType != "in_channel" || rs[0].Text != "Hello from outside." {
					t.Errorf("responses = %+v", rs)
				}
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorkspace(t)
			db, _ := tempStore(t)
			cmds := &fakeCommands{do: func(context.Context, command.Request) command.Reply { return tc.reply }}
			b := startBot(t, w.srv, newConfig(t, w.srv, db, cmds))
			if tc.fault != nil {
				tc.fault(w.srv)
			}
			ch := w.ops
			if tc.outside {
				ch = w.srv.AddChannel(slacktest.Channel{Name: "elsewhere", Members: []string{w.alice.ID}})
			}
			c := b.command(slacktest.SlashCommand{Text: "deploy hello {\"token\": \"s3cret\"}", UserID: w.alice.ID, ChannelID: ch.ID})
			tc.check(t, w, c)
			reqs := cmds.Requests()
			if len(reqs) != 1 {
				t.Fatalf("requests = %+v", reqs)
			}
			want := command.Request{
				Actor: enclave.Principal{TeamID: w.srv.TeamID(), UserID: w.alice.ID}, ActorEmail: "alice@example.com",
				Via: command.ViaSlack, Channel: enclave.Channel{TeamID: w.srv.TeamID(), ID: ch.ID, Name: ch.Name},
				Text: `deploy hello {"token": "s3cret"}`,
			}
			if got := reqs[0]; got.Actor != want.Actor || got.ActorEmail != want.ActorEmail || got.Via != want.Via || got.Channel != want.Channel || got.Text != want.Text {
				t.Errorf("request = %+v\nwant %+v", got, want)
			}
		})
	}
}

// A slow command tells its asker it is on it.
func TestWorkingNotice(t *testing.T) {
	w := newWorkspace(t)
	db, _ := tempStore(t)
	cmds := &fakeCommands{do: func(ctx context.Context, _ command.Request) command.Reply {
		time.Sleep(300 * time.Millisecond)
		return command.Reply{Text: "Done.", Private: true}
	}}
	cfg := newConfig(t, w.srv, db, cmds)
	cfg.WorkingAfter = 50 * time.Millisecond
	b := startBot(t, w.srv, cfg)
	c := b.command(slacktest.SlashCommand{Text: "deploy", UserID: w.alice.ID, ChannelID: w.ops.ID})
	w.srv.WaitFor(t, "response_url", func(sc slacktest.Call) bool { return strings.Contains(string(sc.Body), "Done.") }, wait)
	rs := w.srv.Responses(c.ResponseURL)
	if len(rs) != 2 || rs[0].Text != "Working on it…" || rs[1].Text != "Done." {
		t.Errorf("responses = %+v", rs)
	}
}

func TestMention(t *testing.T) {
	w := newWorkspace(t)
	db, _ := tempStore(t)
	cmds := &fakeCommands{do: func(_ context.Context, req command.Request) command.Reply {
		return command.Reply{Text: "ran " + req.Text, Private: strings.HasPrefix(req.Text, "whoami")}
	}}
	b := startBot(t, w.srv, newConfig(t, w.srv, db, cmds))
	root := w.srv.UserMessage(w.ops.ID, w.bob.ID, "", "the deploy broke")
	inThread := w.srv.UserMessage(w.ops.ID, w.alice.ID, root.TS, w.srv.BotMention()+"  status   hello <@"+w.bob.ID+">")
	b.event("", w.srv.AppMentionEvent(inThread))
	reply := w.srv.WaitFor(t, "chat.postMessage", nil, wait)
	if reply.Param("thread_ts") != root.TS || reply.Param("text") != "ran status hello <@"+w.bob.ID+">" {
		t.Errorf("reply = %v", reply.Params)
	}
	// A mention outside a thread is answered in a thread under it.
	private := w.srv.UserMessage(w.ops.ID, w.alice.ID, "", w.srv.BotMention()+" whoami")
	b.event("", w.srv.AppMentionEvent(private))
	w.srv.WaitFor(t, "chat.postEphemeral", nil, wait)
	if es := w.srv.Ephemerals(w.ops.ID, w.alice.ID); len(es) != 1 || es[0].Text != "ran whoami" || es[0].ThreadTS != private.TS {
		t.Errorf("ephemerals = %+v", es)
	}
	// The bot's own messages mentioning itself are not commands.
	own := w.srv.MessageEvent(slacktest.Message{Channel: w.ops.ID, User: w.srv.BotUserID(), BotID: w.srv.BotID(), TS: "1.000001", Text: w.srv.BotMention() + " help"})
	own["type"] = "app_mention"
	b.event("", own)
	if n := len(cmds.Requests()); n != 2 {
		t.Errorf("%d requests, want 2", n)
	}
	if got := cmds.Requests()[0]; got.Channel.Name != "ops" || got.ActorEmail != "alice@example.com" || got.Thread != root.TS {
		t.Errorf("request = %+v", got)
	}
	if got := cmds.Requests()[1]; got.Thread != private.TS {
		t.Errorf("thread of a mention outside one = %q, want its own ts %q", got.Thread, private.TS)
	}
}

// blocksOf decodes a message's blocks.
func blocksOf(t *testing.T, raw json.RawMessage) []map[string]any {
	t.Helper()
	var out []map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("blocks %s: %v", raw, err)
	}
	return out
}

func types(blocks []map[string]any) []string {
	var out []string
	for _, b := range blocks {
		out = append(out, b["type"].(string))
	}
	return out
}

func TestRenderedAsBlockKit(t *testing.T) {
	w := newWorkspace(t)
	db, _ := tempStore(t)
	var fields []command.Field
	for i := range 12 {
		fields = append(fields, command.Field{Label: "Label " + strconv.Itoa(i), Value: "value"})
	}
	png := []byte("\x89PNG\r\n\x1a\nnot really")
	rep := command.Reply{
		Text:    "Ready to deploy *hello*.",
		Fields:  fields,
		Buttons: []command.Button{{Label: "Status", Value: "run:status hello", Style: "primary"}},
		Image:   &command.Image{Name: "hello.png", Title: "hello 1.0", Alt: "The steps of hello", PNG: png},
		Confirm: &command.Confirm{
			Title: "Deprovision enclave ops", Prompt: "Everything in ops goes. Type ops to confirm.",
			ConfirmLabel: "Deprovision", CancelLabel: "Cancel", ConfirmValue: "confirm:abc", CancelValue: "cancel:abc",
			TypeName: "ops", Expires: time.Now().Add(10 * time.Minute),
		},
	}
	cmds := &fakeCommands{do: func(context.Context, command.Request) command.Reply { return rep }}
	b := startBot(t, w.srv, newConfig(t, w.srv, db, cmds))
	b.command(slacktest.SlashCommand{Text: "deploy", UserID: w.alice.ID, ChannelID: w.ops.ID})
	w.srv.WaitFor(t, "chat.postMessage", nil, wait)

	msgs := w.srv.Messages(w.ops.ID)
	if len(msgs) != 2 {
		t.Fatalf("messages = %+v", msgs)
	}
	// The picture first, then the card under it.
	pic, card := msgs[0], msgs[1]
	files := w.srv.Files()
	if len(files) != 1 || len(pic.Files) != 1 || pic.Files[0] != files[0].ID {
		t.Fatalf("files = %+v, picture message = %+v", files, pic)
	}
	if f := files[0]; string(f.Content) != string(png) || f.AltText != "The steps of hello" || f.Title != "hello 1.0" || f.Name != "hello.png" || !slices.Equal(f.Channels, []string{w.ops.ID}) {
		t.Errorf("file = %+v", f)
	}
	if !strings.HasPrefix(card.Text, "Deprovision enclave ops: Ready to deploy *hello*.") || !strings.Contains(card.Text, "Label 11: value") {
		t.Errorf("fallback text = %q", card.Text)
	}
	blocks := blocksOf(t, card.Blocks)
	want := []string{"header", "section", "section", "section", "section", "input", "context", "actions", "context"}
	if got := types(blocks); !slices.Equal(got, want) {
		t.Fatalf("block types = %v, want %v", got, want)
	}
	if n := len(blocks[2]["fields"].([]any)); n != 10 {
		t.Errorf("first fields section has %d fields", n)
	}
	if n := len(blocks[3]["fields"].([]any)); n != 2 {
		t.Errorf("second fields section has %d fields", n)
	}
	input := blocks[5]
	if el := input["element"].(map[string]any); el["type"] != "plain_text_input" {
		t.Errorf("input = %v", input)
	}
	var got []string
	for _, el := range blocks[7]["elements"].([]any) {
		e := el.(map[string]any)
		style, _ := e["style"].(string)
		got = append(got, e["value"].(string)+"/"+style)
	}
	if want := []string{"run:status hello/primary", "confirm:abc/danger", "cancel:abc/"}; !slices.Equal(got, want) {
		t.Errorf("buttons = %v, want %v", got, want)
	}
	if !strings.Contains(card.AllText(), "Expires <!date^") {
		t.Errorf("no expiry: %s", card.AllText())
	}
}

// Clicks: someone else's refusal leaves the card alone; an outcome
// replaces the card's buttons.
func TestClicks(t *testing.T) {
	w := newWorkspace(t)
	db, _ := tempStore(t)
	cmds := &fakeCommands{
		do: func(context.Context, command.Request) command.Reply {
			return command.Reply{Text: "Deprovision ops?", Confirm: &command.Confirm{
				Title: "Deprovision enclave ops", Prompt: "Type ops to confirm.", ConfirmValue: "confirm:1", CancelValue: "cancel:1", TypeName: "ops",
			}}
		},
		click: func(_ context.Context, k command.Click) command.Reply {
			if k.Actor.UserID != "" && k.Typed != "ops" {
				return command.Reply{Text: "Only the asker can confirm this.", Private: true, Failed: true}
			}
			return command.Reply{Text: "Enclave ops is gone."}
		},
	}
	b := startBot(t, w.srv, newConfig(t, w.srv, db, cmds))
	b.command(slacktest.SlashCommand{Text: "deprovision", UserID: w.alice.ID, ChannelID: w.ops.ID})
	posted := w.srv.WaitFor(t, "chat.postMessage", nil, wait)
	ts := posted.Response["ts"].(string)

	b.click(slacktest.BlockAction{UserID: w.bob.ID, ChannelID: w.ops.ID, MessageTS: ts, Value: "confirm:1", Text: "Deprovision"})
	w.srv.WaitFor(t, "response_url", nil, wait)
	if es := w.srv.Ephemerals(w.ops.ID, w.bob.ID); len(es) != 1 || !strings.Contains(es[0].Text, "Only the asker") {
		t.Errorf("bob's ephemerals = %+v", es)
	}
	if m, _ := w.srv.Message(w.ops.ID, ts); len(m.Versions) != 0 {
		t.Errorf("the card changed on a refusal: %+v", m)
	}

	b.click(slacktest.BlockAction{UserID: w.alice.ID, ChannelID: w.ops.ID, MessageTS: ts, Value: "confirm:1", Text: "Deprovision",
		State: map[string]map[string]any{"kraken_type_name": {"name": "ops"}}})
	w.srv.WaitFor(t, "chat.update", nil, wait)
	clicks := cmds.Clicks()
	if len(clicks) != 2 || clicks[1].Typed != "ops" || clicks[1].Value != "confirm:1" || clicks[1].Channel.Name != "ops" ||
		clicks[1].Actor != (enclave.Principal{TeamID: w.srv.TeamID(), UserID: w.alice.ID}) || clicks[1].Via != command.ViaSlack {
		t.Errorf("clicks = %+v", clicks)
	}
	m, _ := w.srv.Message(w.ops.ID, ts)
	if len(m.Versions) != 1 || m.Text != "Enclave ops is gone." {
		t.Fatalf("card = %+v", m)
	}
	got := types(blocksOf(t, m.Blocks))
	if slices.Contains(got, "actions") || slices.Contains(got, "input") {
		t.Errorf("the card kept its buttons: %v", got)
	}
	all := m.AllText()
	for _, want := range []string{"Deprovision enclave ops", "Deprovision ops?", "<@" + w.alice.ID + "> chose *Deprovision*", "Enclave ops is gone."} {
		if !strings.Contains(all, want) {
			t.Errorf("card lacks %q:\n%s", want, all)
		}
	}

	// A card that cannot change (here: not the bot's) gets the outcome
	// posted under it instead.
	other := w.srv.UserMessage(w.ops.ID, w.bob.ID, "", "a message with a button from elsewhere")
	b.click(slacktest.BlockAction{UserID: w.alice.ID, ChannelID: w.ops.ID, MessageTS: other.TS, Value: "confirm:1", Text: "Go",
		State: map[string]map[string]any{"kraken_type_name": {"name": "ops"}}})
	w.srv.WaitFor(t, "chat.postMessage", func(c slacktest.Call) bool { return c.Param("text") == "Enclave ops is gone." }, wait)
	if m, _ := w.srv.Message(w.ops.ID, other.TS); len(m.Versions) != 0 {
		t.Errorf("someone else's message changed: %+v", m)
	}
}

func TestChannelEvents(t *testing.T) {
	w := newWorkspace(t)
	secret := w.srv.AddChannel(slacktest.Channel{Name: "secret", IsPrivate: true, Members: []string{w.srv.BotUserID(), w.alice.ID}})
	db, _ := tempStore(t)
	cmds := &fakeCommands{event: func(_ context.Context, ev command.ChannelEvent) []command.Post {
		if ev.Kind == command.BotJoined {
			return []command.Post{
				{Channel: ev.Channel, Reply: command.Reply{Text: "Hi, I can make this an enclave.", Buttons: []command.Button{{Label: "Provision", Value: "run:provision"}}}},
				{User: ev.User, Reply: command.Reply{Text: "Thanks for inviting me."}},
			}
		}
		return nil
	}}
	b := startBot(t, w.srv, newConfig(t, w.srv, db, cmds))
	team := w.srv.TeamID()
	cases := []struct {
		name  string
		event map[string]any
		want  command.ChannelEvent
	}{
		{"bot invited", w.srv.MemberJoinedChannelEvent(w.ops.ID, w.srv.BotUserID(), w.alice.ID),
			command.ChannelEvent{Kind: command.BotJoined, User: w.alice.ID, Channel: enclave.Channel{TeamID: team, ID: w.ops.ID, Name: "ops"}}},
		{"member joined", w.srv.MemberJoinedChannelEvent(w.ops.ID, w.bob.ID, ""),
			command.ChannelEvent{Kind: command.MemberJoined, User: w.bob.ID, Channel: enclave.Channel{TeamID: team, ID: w.ops.ID, Name: "ops"}}},
		{"member left", w.srv.MemberLeftChannelEvent(w.ops.ID, w.bob.ID),
			command.ChannelEvent{Kind: command.MemberLeft, User: w.bob.ID, Channel: enclave.Channel{TeamID: team, ID: w.ops.ID, Name: "ops"}}},
		{"archived", w.srv.ChannelArchiveEvent(w.ops.ID, w.alice.ID),
			command.ChannelEvent{Kind: command.Archived, User: w.alice.ID, Channel: enclave.Channel{TeamID: team, ID: w.ops.ID, Name: "ops"}}},
		{"unarchived", w.srv.ChannelUnarchiveEvent(w.ops.ID, w.alice.ID),
			command.ChannelEvent{Kind: command.Unarchived, User: w.alice.ID, Channel: enclave.Channel{TeamID: team, ID: w.ops.ID, Name: "ops"}}},
		{"private archived", w.srv.ChannelArchiveEvent(secret.ID, w.alice.ID),
			command.ChannelEvent{Kind: command.Archived, User: w.alice.ID, Channel: enclave.Channel{TeamID: team, ID: secret.ID, Name: "secret"}}},
		{"renamed", w.srv.ChannelRenameEvent(w.ops.ID, "ops-eu"),
			command.ChannelEvent{Kind: command.Renamed, Channel: enclave.Channel{TeamID: team, ID: w.ops.ID, Name: "ops-eu"}}},
		{"deleted", w.srv.ChannelDeletedEvent(w.ops.ID),
			command.ChannelEvent{Kind: command.Deleted, Channel: enclave.Channel{TeamID: team, ID: w.ops.ID, Name: "ops-eu"}}},
	}
	for i, tc := range cases {
		b.event("", tc.event)
		eventually(t, tc.name, func() bool { return len(cmds.Events()) == i+1 })
		got := cmds.Events()[i]
		tc.want.Via = command.ViaSlack
		if got != tc.want {
			t.Errorf("%s: event = %+v\nwant %+v", tc.name, got, tc.want)
		}
		if i == 0 {
			// The bot's welcome goes in the channel, its thanks to the
			// inviter directly.
			w.srv.WaitFor(t, "chat.postMessage", func(c slacktest.Call) bool { return c.Param("channel") == w.alice.ID }, wait)
			if msgs := w.srv.Messages(w.ops.ID); len(msgs) != 1 || !strings.Contains(string(msgs[0].Blocks), `"value":"run:provision"`) {
				t.Errorf("welcome = %+v", msgs)
			}
			if msgs := w.srv.Messages(w.srv.DMChannel(w.alice.ID)); len(msgs) != 1 || msgs[0].Text != "Thanks for inviting me." {
				t.Errorf("direct message = %+v", msgs)
			}
		}
		// The rename is applied to the fake too, as in Slack.
		if tc.want.Kind == command.Renamed {
			w.srv.RenameChannel(w.ops.ID, "ops-eu")
		}
	}
	// The bot leaving a channel is not a member leaving it.
	b.event("", w.srv.MemberLeftChannelEvent(secret.ID, w.srv.BotUserID()))
	b.event("Ev0LAST", w.srv.MemberLeftChannelEvent(secret.ID, w.alice.ID))
	eventually(t, "the last event", func() bool { return len(cmds.Events()) == len(cases)+1 })
	if last := cmds.Events()[len(cases)]; last.User != w.alice.ID {
		t.Errorf("last event = %+v", last)
	}
}

func TestAppHome(t *testing.T) {
	w := newWorkspace(t)
	db, _ := tempStore(t)
	cmds := &fakeCommands{home: func(_ context.Context, who enclave.Principal) (command.Home, error) {
		return command.Home{
			Enclaves: []command.HomeEnclave{{Name: "ops", ChannelID: w.ops.ID, ChannelName: "ops", Role: "owner", State: "active", Tentacles: 2}},
			Runs:     []command.RunSummary{{Enclave: "ops", Tentacle: "hello-fanout", Actor: who.UserID, At: time.Now(), Duration: 1500 * time.Millisecond, OK: true, Summary: "succeeded: 3 steps"}},
		}, nil
	}}
	b := startBot(t, w.srv, newConfig(t, w.srv, db, cmds))
	b.event("", w.srv.AppHomeOpenedEvent(w.alice.ID, "messages")) // not the home tab: nothing to do
	b.event("", w.srv.AppHomeOpenedEvent(w.alice.ID, "home"))
	w.srv.WaitFor(t, "views.publish", nil, wait)
	v, ok := w.srv.HomeView(w.alice.ID)
	if !ok {
		t.Fatal("no home view")
	}
	all := v.AllText()
	for _, want := range []string{"Your enclaves", "*ops* in <#" + w.ops.ID + ">", "You are an owner · active · 2 tentacles", "hello-fanout", "succeeded: 3 steps", "Recent runs"} {
		if !strings.Contains(all, want) {
			t.Errorf("home lacks %q:\n%s", want, all)
		}
	}
	if homes := cmds.Homes(); len(homes) != 1 || homes[0] != (enclave.Principal{TeamID: w.srv.TeamID(), UserID: w.alice.ID}) {
		t.Errorf("homes = %+v", homes)
	}
}

// Files shared in a channel come with the next request there, newest
// first, and open with the bot token.
func TestSharedFiles(t *testing.T) {
	w := newWorkspace(t)
	db, _ := tempStore(t)
	cmds := &fakeCommands{}
	b := startBot(t, w.srv, newConfig(t, w.srv, db, cmds))
	// One through a message event, one through file_shared, more than the
	// bot keeps.
	f1, m1 := w.srv.UploadFile(w.ops.ID, w.alice.ID, "first.tar.gz", []byte("first bundle"))
	b.event("", w.srv.MessageEvent(m1))
	f2, _ := w.srv.UploadFile(w.ops.ID, w.bob.ID, "second.zip", []byte("second bundle, longer"))
	b.event("", w.srv.FileSharedEvent(f2, w.ops.ID))
	b.event("", w.srv.FileSharedEvent(f2, w.ops.ID)) // Slack sends both for one share
	// The bot's own pictures are not worth remembering, nor a files.info.
	own, _ := w.srv.UploadFile(w.ops.ID, w.srv.BotUserID(), "dag.png", []byte("png"))
	b.event("", w.srv.FileSharedEvent(own, w.ops.ID))
	eventually(t, "the files", func() bool { return b.pending() == 0 && len(w.srv.Calls("files.info")) >= 2 })
	for _, c := range w.srv.Calls("files.info") {
		if c.Param("file") == own.ID {
			t.Error("the bot looked up its own picture")
		}
	}

	b.command(slacktest.SlashCommand{Text: "deploy", UserID: w.alice.ID, ChannelID: w.ops.ID})
	w.srv.WaitFor(t, "chat.postMessage", nil, wait)
	files := cmds.Requests()[0].Files
	if len(files) != 2 || files[0].ID != f2.ID || files[1].ID != f1.ID || files[0].Name != "second.zip" || files[0].SharedBy != w.bob.ID || files[1].Size != len("first bundle") {
		t.Fatalf("files = %+v", files)
	}
	rc, err := files[1].Open(context.Background(), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	content, _ := io.ReadAll(rc)
	rc.Close()
	if string(content) != "first bundle" {
		t.Errorf("content = %q", content)
	}
	if _, err := files[0].Open(context.Background(), 5); err == nil {
		t.Error("a file larger than asked for opened")
	}
	if calls := w.srv.Calls("files.download"); len(calls) != 1 || calls[0].Status != http.StatusOK {
		t.Errorf("downloads = %+v", calls)
	}
	// Other channels have their own files.
	b.command(slacktest.SlashCommand{Text: "deploy", UserID: w.alice.ID, ChannelID: w.srv.AddChannel(slacktest.Channel{Name: "other", Members: []string{w.srv.BotUserID(), w.alice.ID}}).ID})
	eventually(t, "the second command", func() bool { return len(cmds.Requests()) == 2 })
	if files := cmds.Requests()[1].Files; len(files) != 0 {
		t.Errorf("files from another channel: %+v", files)
	}
}

func TestSharedFilesKeepsTheNewest(t *testing.T) {
	w := newWorkspace(t)
	db, _ := tempStore(t)
	cmds := &fakeCommands{}
	b := startBot(t, w.srv, newConfig(t, w.srv, db, cmds))
	var ids []string
	for i := range 23 {
		f, m := w.srv.UploadFile(w.ops.ID, w.alice.ID, "f"+strconv.Itoa(i)+".zip", []byte("x"))
		m.TS = "" // keep the event's own timestamp
		ev := w.srv.MessageEvent(m)
		ev["files"].([]any)[0].(map[string]any)["created"] = time.Now().Add(time.Duration(i) * time.Second).Unix()
		b.event("", ev)
		ids = append(ids, f.ID)
	}
	eventually(t, "the files", func() bool { return b.pending() == 0 })
	b.command(slacktest.SlashCommand{Text: "deploy", UserID: w.alice.ID, ChannelID: w.ops.ID})
	eventually(t, "the command", func() bool { return len(cmds.Requests()) == 1 })
	files := cmds.Requests()[0].Files
	if len(files) != 20 || files[0].ID != ids[22] || files[19].ID != ids[3] {
		var got []string
		for _, f := range files {
			got = append(got, f.ID)
		}
		t.Errorf("files = %v, want the newest 20 of %v", got, ids)
	}
}

func TestChannels(t *testing.T) {
	ctx := context.Background()
	w := newWorkspace(t)
	db, _ := tempStore(t)
	app, err := slack.New(newConfig(t, w.srv, db, &fakeCommands{}))
	if err != nil {
		t.Fatal(err)
	}
	team := w.srv.TeamID()
	ops := enclave.Channel{TeamID: team, ID: w.ops.ID, Name: "ops"}
	carol := w.srv.AddUser(slacktest.User{Name: "carol"})

	if members, err := app.Members(ctx, ops); err != nil || !slices.Equal(members, []string{w.alice.ID, w.bob.ID}) {
		t.Errorf("members = %v, %v (the bot is not one)", members, err)
	}
	if err := app.Invite(ctx, ops, carol.ID); err != nil {
		t.Errorf("invite: %v", err)
	}
	if err := app.Invite(ctx, ops, carol.ID); err != nil {
		t.Errorf("invite someone already there: %v", err)
	}
	if err := app.Kick(ctx, ops, w.bob.ID); err != nil {
		t.Errorf("kick: %v", err)
	}
	if err := app.Kick(ctx, ops, w.bob.ID); err != nil {
		t.Errorf("kick someone not there: %v", err)
	}
	if c, _ := w.srv.Channel(w.ops.ID); !slices.Equal(c.Members, []string{w.srv.BotUserID(), w.alice.ID, carol.ID}) {
		t.Errorf("ops members = %v", c.Members)
	}
	// The bot cannot remove people from a channel it is not in.
	off := w.srv.AddChannel(slacktest.Channel{Name: "off", Members: []string{w.bob.ID}})
	if err := app.Kick(ctx, enclave.Channel{TeamID: team, ID: off.ID}, w.bob.ID); err == nil {
		t.Error("kick from a channel the bot is not in succeeded")
	}
	w.srv.FailNext("conversations.kick", 1, slacktest.Error("restricted_action"))
	if err := app.Kick(ctx, ops, carol.ID); err == nil || !strings.Contains(err.Error(), "restricted_action") {
		t.Errorf("restricted kick: %v", err)
	}
	w.srv.FailNext("conversations.invite", 2, slacktest.RateLimited(time.Second))
	if err := app.Invite(ctx, ops, w.bob.ID); err != nil {
		t.Errorf("invite through two 429s: %v", err)
	}

	w.srv.ArchiveChannel(w.ops.ID)
	if info, err := app.Info(ctx, ops); err != nil || info != (command.ChannelInfo{Name: "ops", Archived: true}) {
		t.Errorf("archived info = %+v, %v", info, err)
	}
	w.srv.DeleteChannel(w.ops.ID)
	if info, err := app.Info(ctx, ops); err != nil || info != (command.ChannelInfo{Name: "ops", Deleted: true}) {
		t.Errorf("deleted info = %+v, %v", info, err)
	}
	w.srv.FailNext("conversations.info", 1, slacktest.Error("internal_error"))
	if _, err := app.Info(ctx, enclave.Channel{TeamID: team, ID: off.ID}); err == nil {
		t.Error("an error read as an answer")
	}
	// A readiness probe asks Slack every time, even once the bot knows
	// who it is.
	before := len(w.srv.Calls("auth.test"))
	for range 2 {
		if err := app.AuthTest(ctx); err != nil {
			t.Errorf("auth.test: %v", err)
		}
	}
	if n := len(w.srv.Calls("auth.test")) - before; n != 2 {
		t.Errorf("%d auth.test calls for 2 probes", n)
	}
}

func TestAuthTestFails(t *testing.T) {
	w := newWorkspace(t)
	db, _ := tempStore(t)
	cfg := newConfig(t, w.srv, db, &fakeCommands{})
	cfg.BotToken = "xoxb-wrong"
	app, err := slack.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := app.AuthTest(context.Background()); err == nil || !strings.Contains(err.Error(), "invalid_auth") {
		t.Errorf("auth.test with a wrong token: %v", err)
	}
}

func TestSocketMode(t *testing.T) {
	w := newWorkspace(t)
	db, _ := tempStore(t)
	cmds := &fakeCommands{do: func(_ context.Context, req command.Request) command.Reply {
		return command.Reply{Text: "ran " + req.Text, Private: req.Text == "whoami"}
	}}
	cfg := newConfig(t, w.srv, db, cmds)
	b := startBot(t, w.srv, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.app.RunSocketMode(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("RunSocketMode: %v", err)
		}
	}()
	w.srv.WaitConnected(1)

	c := w.srv.SlashCommand(slacktest.SlashCommand{Command: "/kraken", Text: "whoami", UserID: w.alice.ID, ChannelID: w.ops.ID})
	env := w.srv.SendSlashCommand(c)
	w.srv.WaitAck(env)
	w.srv.WaitFor(t, "response_url", nil, wait)
	if rs := w.srv.Responses(c.ResponseURL); len(rs) != 1 || rs[0].Text != "ran whoami" {
		t.Errorf("responses = %+v", rs)
	}

	mention := w.srv.UserMessage(w.ops.ID, w.bob.ID, "", w.srv.BotMention()+" status")
	envelope := w.srv.EventCallback(w.srv.TeamID(), "Ev0SOCKET", w.srv.AppMentionEvent(mention))
	w.srv.WaitAck(w.srv.SendEvent(envelope))
	// Slack sends it again when it thinks the ack was lost.
	w.srv.WaitAck(w.srv.SendEnvelope(slacktest.Envelope{Type: "events_api", Payload: envelope, RetryAttempt: 1, RetryReason: "timeout"}))
	w.srv.WaitFor(t, "chat.postMessage", nil, wait)
	// An event slack-go does not know still arrives whole.
	w.srv.WaitAck(w.srv.SendEvent(w.srv.EventCallback(w.srv.TeamID(), "", map[string]any{"type": "group_deleted", "channel": "G0GONE", "event_ts": "1.2"})))

	// A button pressed on the bot's answer.
	answer := w.srv.Messages(w.ops.ID)[1]
	w.srv.WaitAck(w.srv.SendInteractive(w.srv.BlockAction(slacktest.BlockAction{UserID: w.bob.ID, ChannelID: w.ops.ID, MessageTS: answer.TS, Value: "run:info", Text: "Info"})))
	w.srv.WaitFor(t, "chat.update", nil, wait)

	eventually(t, "every request done", func() bool { return b.pending() == 0 && len(cmds.Events()) == 1 })
	if clicks := cmds.Clicks(); len(clicks) != 1 || clicks[0].Value != "run:info" || clicks[0].Actor.UserID != w.bob.ID {
		t.Errorf("clicks = %+v", clicks)
	}
	if reqs := cmds.Requests(); len(reqs) != 2 || reqs[1].Text != "status" || reqs[1].Actor.UserID != w.bob.ID {
		t.Errorf("requests = %+v", reqs)
	}
	if ev := cmds.Events()[0]; ev.Kind != command.Deleted || ev.Channel.ID != "G0GONE" {
		t.Errorf("event = %+v", ev)
	}
	if msgs := w.srv.Messages(w.ops.ID); len(msgs) != 2 || len(msgs[1].Versions) != 1 || msgs[1].Versions[0].Text != "ran status" || msgs[1].Text != "clicked run:info" {
		t.Errorf("messages = %+v", msgs)
	}
}

// When the workers fall behind, requests wait in the store and are
// handled, once each, as soon as there is room.
func TestQueueOverflow(t *testing.T) {
	w := newWorkspace(t)
	db, _ := tempStore(t)
	release := make(chan struct{})
	cmds := &fakeCommands{do: func(ctx context.Context, req command.Request) command.Reply {
		select {
		case <-release:
		case <-ctx.Done():
		}
		return command.Reply{Text: "ok", Private: true}
	}}
	cfg := newConfig(t, w.srv, db, cmds)
	cfg.Workers = 1 // a queue of 64
	b := startBot(t, w.srv, cfg)
	const n = 80
	for i := range n {
		b.command(slacktest.SlashCommand{Text: "run " + strconv.Itoa(i), UserID: w.alice.ID, ChannelID: w.ops.ID})
	}
	if b.counts.get("queue_full") == 0 {
		t.Fatal("the queue never filled")
	}
	close(release)
	eventually(t, "every request handled", func() bool { return b.pending() == 0 })
	seen := map[string]int{}
	for _, r := range cmds.Requests() {
		seen[r.Text]++
	}
	if len(seen) != n {
		t.Errorf("%d distinct requests handled, want %d", len(seen), n)
	}
	for text, k := range seen {
		if k != 1 {
			t.Errorf("%q handled %d times", text, k)
		}
	}
}

// A request whose handling panics is dropped, not replayed forever.
func TestPanicIsContained(t *testing.T) {
	w := newWorkspace(t)
	db, _ := tempStore(t)
	cmds := &fakeCommands{do: func(_ context.Context, req command.Request) command.Reply {
		if req.Text == "boom" {
			panic("boom")
		}
		return command.Reply{Text: "fine"}
	}}
	b := startBot(t, w.srv, newConfig(t, w.srv, db, cmds))
	b.command(slacktest.SlashCommand{Text: "boom", UserID: w.alice.ID, ChannelID: w.ops.ID})
	b.command(slacktest.SlashCommand{Text: "after", UserID: w.alice.ID, ChannelID: w.ops.ID})
	w.srv.WaitFor(t, "chat.postMessage", nil, wait)
	eventually(t, "both done", func() bool { return b.pending() == 0 && b.counts.get("failed") == 1 })
}

// Post sends what the bot says on its own, to channels and people.
func TestPost(t *testing.T) {
	w := newWorkspace(t)
	db, _ := tempStore(t)
	app, err := slack.New(newConfig(t, w.srv, db, &fakeCommands{}))
	if err != nil {
		t.Fatal(err)
	}
	err = app.Post(context.Background(),
		command.Post{Channel: enclave.Channel{TeamID: w.srv.TeamID(), ID: w.ops.ID}, Reply: command.Reply{Text: "Enclave ops is frozen: its channel was archived."}},
		command.Post{User: w.alice.ID, Reply: command.Reply{Text: "Your enclave needs you."}},
		command.Post{Channel: enclave.Channel{TeamID: w.srv.TeamID(), ID: "C0GONE"}, Reply: command.Reply{Text: "lost"}},
	)
	if err == nil || !strings.Contains(err.Error(), "channel_not_found") {
		t.Errorf("error = %v, want the lost post's", err)
	}
	if msgs := w.srv.Messages(w.ops.ID); len(msgs) != 1 || msgs[0].Text != "Enclave ops is frozen: its channel was archived." {
		t.Errorf("channel = %+v", msgs)
	}
	if msgs := w.srv.Messages(w.srv.DMChannel(w.alice.ID)); len(msgs) != 1 || msgs[0].Text != "Your enclave needs you." {
		t.Errorf("direct = %+v", msgs)
	}
}
