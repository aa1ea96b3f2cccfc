package slack_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kraken-ops/kraken/bot/command"
	"github.com/kraken-ops/kraken/bot/slacktest"
)

// theSecret is the value typed into the forms: it must turn up nowhere
// but in the submission itself and the registry's hands.
const theSecret = "s3cr3t-7f1c9a-do-not-leak"

// logBuffer is everything the bot logged, at every level.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func capturedLogger(t *testing.T) (*slog.Logger, *logBuffer) {
	lb := &logBuffer{}
	h := slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the bot's log:\n%s", lb)
		}
	})
	return slog.New(h), lb
}

// secretCommands asks for a secret form on "secret ..." and on plain
// words mentioning a key, as the registry and the conversation loop do.
func secretCommands() *fakeCommands {
	return &fakeCommands{
		isCommand: verbs,
		do: func(_ context.Context, req command.Request) command.Reply {
			if !strings.HasPrefix(req.Text, "secret ") && !strings.Contains(req.Text, "key") {
				return command.Reply{Text: "ran " + req.Text}
			}
			return command.Reply{
				Text:    "Set secret api_key of *hello* in the private form; only you see it, and the value is never shown or kept in the chat.",
				Private: true,
				Secret:  &command.SecretForm{Tentacle: "hello", Key: "api_key", Token: "tok-" + req.Actor.UserID, Expires: time.Now().Add(10 * time.Minute)},
			}
		},
	}
}

// modalOf is the form the bot opened for a user, checked for its shape.
func modalOf(t *testing.T, w workspace, user string) slacktest.View {
	t.Helper()
	var modal slacktest.View
	for _, v := range w.srv.Views(user) {
		if v.Type == "modal" {
			modal = v
		}
	}
	if modal.ID == "" {
		t.Fatalf("no modal opened for %s", user)
	}
	if modal.Title != "Secret api_key of hello" || modal.CallbackID != "kraken_secret" {
		t.Errorf("modal = %+v", modal)
	}
	var inputs []map[string]any
	for _, b := range blocksOf(t, modal.Blocks) {
		if b["type"] == "input" {
			inputs = append(inputs, b["element"].(map[string]any))
		}
	}
	if len(inputs) != 1 || inputs[0]["type"] != "plain_text_input" || inputs[0]["multiline"] == true {
		t.Errorf("inputs = %+v", inputs)
	}
	var meta map[string]any
	if err := json.Unmarshal([]byte(modal.PrivateMetadata), &meta); err != nil || meta["token"] != "tok-"+user || meta["channel"] == "" {
		t.Errorf("private_metadata = %s (%v)", modal.PrivateMetadata, err)
	}
	return modal
}

func submission(modal slacktest.View, user, value string) slacktest.ViewSubmission {
	return slacktest.ViewSubmission{UserID: user, ViewID: modal.ID, Values: map[string]map[string]any{"kraken_secret_value": {"value": value}}}
}

// containsSecret says whether data holds the secret as it is, or as any
// base64 encoding of it would show (a []byte in JSON is base64), at any
// of the three alignments.
func containsSecret(data []byte) bool {
	if bytes.Contains(data, []byte(theSecret)) {
		return true
	}
	for i := range 3 {
		enc := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("x", i) + theSecret))
		// Leave out the groups shared with what comes before and after.
		if i > 0 {
			enc = enc[4:]
		}
		if bytes.Contains(data, []byte(enc[:len(enc)-4])) {
			return true
		}
	}
	return false
}

// leaks fails the test where the secret turned up: in a call the bot
// made to Slack, an ack, a log line or the store's file.
func leaks(t *testing.T, w workspace, logs *logBuffer, storePath string) {
	t.Helper()
	for _, c := range w.srv.Calls("") {
		params, _ := json.Marshal(c.Params)
		if containsSecret(c.Body) || containsSecret(params) {
			t.Errorf("the secret is in a %s call: %s", c.Method, c.Body)
		}
	}
	for _, a := range w.srv.Acks() {
		if containsSecret(a.Raw) {
			t.Errorf("the secret is in an ack: %s", a.Raw)
		}
	}
	if containsSecret([]byte(logs.String())) {
		t.Errorf("the secret is in the log")
	}
	data, err := os.ReadFile(storePath)
	if err != nil {
		t.Fatal(err)
	}
	if containsSecret(data) {
		t.Errorf("the secret is in the store file")
	}
}

// /kraken secret: the form opens with the command's trigger_id, the
// submission waits for the registry and closes the form, the person is
// told privately, and the value goes nowhere but to the registry.
func TestSecretForm(t *testing.T) {
	w := newWorkspace(t)
	db, path := tempStore(t)
	cmds := secretCommands()
	release := make(chan command.Reply)
	cmds.submit = func(ctx context.Context, s command.SecretSubmission) command.Reply {
		select {
		case rep := <-release:
			return rep
		case <-ctx.Done():
			return command.Reply{Text: "interrupted", Failed: true, Private: true}
		}
	}
	cfg := newConfig(t, w.srv, db, cmds)
	logger, logs := capturedLogger(t)
	cfg.Logger = logger
	b := startBot(t, w.srv, cfg)

	c := b.command(slacktest.SlashCommand{Text: "secret hello api_key", UserID: w.alice.ID, ChannelID: w.ops.ID})
	opened := w.srv.WaitFor(t, "views.open", nil, wait)
	if opened.Param("trigger_id") != c.TriggerID || !opened.OK() {
		t.Errorf("views.open = %v %s, want the command's trigger %s", opened.Params, opened.Error, c.TriggerID)
	}
	modal := modalOf(t, w, w.alice.ID)
	w.srv.WaitFor(t, "response_url", nil, wait)
	if rs := w.srv.Responses(c.ResponseURL); len(rs) != 1 || rs[0].ResponseType != "ephemeral" || !strings.Contains(rs[0].AllText(), "Enter the secret") {
		t.Errorf("responses = %+v", rs)
	}

	type answer struct {
		code int
		body string
	}
	// The command that opened the form is done (marked so right after
	// its answer went out), so what waits below is the submission alone.
	eventually(t, "the command done", func() bool {
		p, err := db.PendingEvents(context.Background())
		return err == nil && len(p) == 0
	})
	answered := make(chan answer, 1)
	go func() {
		code, body := b.send("/slack/interactions", w.srv.ViewSubmission(submission(modal, w.alice.ID, theSecret)).Body(), time.Now())
		answered <- answer{code, body}
	}()
	eventually(t, "the registry asked", func() bool { return len(cmds.Secrets()) == 1 })
	// While the secret is being set, the request waits in the store: with
	// the form, without what was typed in it.
	pending, err := db.PendingEvents(context.Background())
	if err != nil || len(pending) != 1 {
		t.Fatalf("pending = %+v, %v", pending, err)
	}
	var stored struct{ Body []byte }
	if err := json.Unmarshal(pending[0].Payload, &stored); err != nil {
		t.Fatal(err)
	}
	if p := string(stored.Body); containsSecret(pending[0].Payload) || containsSecret(stored.Body) || !strings.Contains(p, modal.ID) || strings.Contains(p, w.srv.VerificationToken()) {
		t.Errorf("stored submission = %s", p)
	}
	release <- command.Reply{Text: "Secret api_key of *hello* is set; the tentacle restarted to use it.", Private: true}
	a := <-answered
	if a.code != http.StatusOK || a.body != `{"response_action":"clear"}` {
		t.Errorf("answer = %d %s", a.code, a.body)
	}
	s := cmds.Secrets()[0]
	if s.Value != theSecret || s.Token != "tok-"+w.alice.ID || s.Actor.UserID != w.alice.ID || s.Actor.TeamID != w.srv.TeamID() || s.ActorEmail != "alice@example.com" || s.Via != command.ViaSlack {
		t.Errorf("submission = %+v", s)
	}
	w.srv.WaitFor(t, "chat.postEphemeral", nil, wait)
	if es := w.srv.Ephemerals(w.ops.ID, w.alice.ID); len(es) != 2 || !strings.Contains(es[1].Text, "is set") {
		t.Errorf("ephemerals = %+v", es)
	}

	// A refusal keeps the form open, saying why under the input.
	go func() {
		code, body := b.send("/slack/interactions", w.srv.ViewSubmission(submission(modal, w.alice.ID, theSecret)).Body(), time.Now())
		answered <- answer{code, body}
	}()
	release <- command.Reply{Text: "This form was already used.", Private: true, Failed: true}
	a = <-answered
	var got struct {
		Action string            `json:"response_action"`
		Errors map[string]string `json:"errors"`
	}
	if err := json.Unmarshal([]byte(a.body), &got); err != nil || got.Action != "errors" || got.Errors["kraken_secret_value"] != "This form was already used." {
		t.Errorf("answer to a refusal = %d %s", a.code, a.body)
	}
	eventually(t, "both submissions done", func() bool { return b.pending() == 0 && len(w.srv.Ephemerals(w.ops.ID, w.alice.ID)) == 3 })
	leaks(t, w, logs, path)
}

// A mention has no trigger_id: the answer is a private button that opens
// the form; and over Socket Mode the answer to the submission rides on
// the ack.
func TestSecretFormFromAMention(t *testing.T) {
	w := newWorkspace(t)
	db, path := tempStore(t)
	cmds := secretCommands()
	cfg := newConfig(t, w.srv, db, cmds)
	logger, logs := capturedLogger(t)
	cfg.Logger = logger
	b := startBot(t, w.srv, cfg)
	startSocket(t, b)

	mention := w.srv.UserMessage(w.ops.ID, w.alice.ID, "", w.srv.BotMention()+" I need to set the api key of hello")
	w.srv.WaitAck(w.srv.SendEvent(w.srv.EventCallback(w.srv.TeamID(), "", w.srv.AppMentionEvent(mention))))
	w.srv.WaitFor(t, "chat.delete", nil, wait) // the placeholder
	es := w.srv.Ephemerals(w.ops.ID, w.alice.ID)
	if len(es) != 1 || es[0].ThreadTS != mention.TS {
		t.Fatalf("ephemerals = %+v", es)
	}
	if n := len(w.srv.Calls("views.open")); n != 0 {
		t.Errorf("views.open called %d times without a trigger", n)
	}
	value := buttonOn(t, es[0].Blocks, "Enter the secret")

	click := w.srv.BlockAction(slacktest.BlockAction{UserID: w.alice.ID, ChannelID: w.ops.ID, MessageTS: es[0].TS, Ephemeral: true, Value: value, Text: "Enter the secret"})
	w.srv.WaitAck(w.srv.SendInteractive(click))
	opened := w.srv.WaitFor(t, "views.open", nil, wait)
	if opened.Param("trigger_id") != click.TriggerID || !opened.OK() {
		t.Errorf("views.open = %v %s, want the click's trigger", opened.Params, opened.Error)
	}
	if len(cmds.Clicks()) != 0 {
		t.Errorf("the form's button reached the registry: %+v", cmds.Clicks())
	}
	modal := modalOf(t, w, w.alice.ID)

	ack := w.srv.WaitAck(w.srv.SendInteractive(w.srv.ViewSubmission(submission(modal, w.alice.ID, theSecret))))
	if string(ack.Payload) != `{"response_action":"clear"}` {
		t.Errorf("ack = %s", ack.Raw)
	}
	if s := cmds.Secrets(); len(s) != 1 || s[0].Value != theSecret || s[0].Actor.UserID != w.alice.ID {
		t.Errorf("submissions = %+v", s)
	}
	eventually(t, "the outcome told", func() bool { return len(w.srv.Ephemerals(w.ops.ID, w.alice.ID)) == 2 && b.pending() == 0 })
	if e := w.srv.Ephemerals(w.ops.ID, w.alice.ID)[1]; e.Text != "Secret set." || e.ThreadTS != mention.TS {
		t.Errorf("outcome = %+v", e)
	}
	// The channel sees no answer: the form and its outcome were private.
	for _, m := range w.srv.Messages(w.ops.ID) {
		if m.BotID != "" {
			t.Errorf("public answer: %+v", m)
		}
	}
	leaks(t, w, logs, path)
}

// A slow answer outlives the command's trigger_id: the button still
// opens the form.
func TestSecretFormTriggerExpired(t *testing.T) {
	w := newWorkspace(t)
	db, _ := tempStore(t)
	b := startBot(t, w.srv, newConfig(t, w.srv, db, secretCommands()))
	w.srv.FailNext("views.open", 1, slacktest.Error("expired_trigger_id"))
	c := b.command(slacktest.SlashCommand{Text: "secret hello api_key", UserID: w.alice.ID, ChannelID: w.ops.ID})
	w.srv.WaitFor(t, "response_url", nil, wait)
	rs := w.srv.Responses(c.ResponseURL)
	if len(rs) != 1 {
		t.Fatalf("responses = %+v", rs)
	}
	value := buttonOn(t, rs[0].Blocks, "Enter the secret")
	es := w.srv.Ephemerals(w.ops.ID, w.alice.ID)
	b.click(slacktest.BlockAction{UserID: w.alice.ID, ChannelID: w.ops.ID, MessageTS: es[0].TS, Ephemeral: true, Value: value, Text: "Enter the secret"})
	w.srv.WaitFor(t, "views.open", func(c slacktest.Call) bool { return c.OK() }, wait)
	modalOf(t, w, w.alice.ID)
}

// The process dies while a secret is being set: the request replays from
// the store without the value (it was never written), and the person is
// told to set it again.
func TestSecretFormReplayedWithoutTheValue(t *testing.T) {
	w := newWorkspace(t)
	path := t.TempDir() + "/kraken.db"
	db := openStore(t, path)
	cmds := secretCommands()
	started := make(chan struct{}, 1)
	cmds.submit = func(ctx context.Context, s command.SecretSubmission) command.Reply {
		started <- struct{}{}
		<-ctx.Done()
		return command.Reply{Text: "interrupted", Failed: true, Private: true}
	}
	cfg := newConfig(t, w.srv, db, cmds)
	logger, logs := capturedLogger(t)
	cfg.Logger = logger
	first := startBot(t, w.srv, cfg)
	first.command(slacktest.SlashCommand{Text: "secret hello api_key", UserID: w.alice.ID, ChannelID: w.ops.ID})
	w.srv.WaitFor(t, "views.open", nil, wait)
	modal := modalOf(t, w, w.alice.ID)
	go first.send("/slack/interactions", w.srv.ViewSubmission(submission(modal, w.alice.ID, theSecret)).Body(), time.Now())
	<-started
	first.stop()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db = openStore(t, path)
	defer db.Close()
	again := secretCommands()
	cfg = newConfig(t, w.srv, db, again)
	cfg.Logger = logger
	second := startBot(t, w.srv, cfg)
	eventually(t, "the replay told", func() bool {
		for _, e := range w.srv.Ephemerals(w.ops.ID, w.alice.ID) {
			if strings.Contains(e.Text, "set it again") {
				return second.pending() == 0
			}
		}
		return false
	})
	if s := again.Secrets(); len(s) != 0 {
		t.Errorf("the replay reached the registry: %+v", s)
	}
	second.stop()
	leaks(t, w, logs, path)
}
