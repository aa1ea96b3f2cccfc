package slack_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kraken-ops/kraken/bot/command"
	"github.com/kraken-ops/kraken/bot/slack"
	"github.com/kraken-ops/kraken/bot/slacktest"
	"github.com/kraken-ops/kraken/enclave"
	"github.com/kraken-ops/kraken/engine/dev"
)

// examples is the repository's examples folder.
const examples = "../../examples"

// kraken is the whole bot: the real registry over the in-process
// cluster, behind the Slack transport, against a fake Slack.
type kraken struct {
	*bot
	alice, bob slacktest.User
	ops        slacktest.Channel
	rt         *dev.Runtime
}

func newKraken(t *testing.T) *kraken {
	t.Helper()
	return newKrakenLogging(t, testLogger(t))
}

// newKrakenLogging is newKraken with every part logging to log.
func newKrakenLogging(t *testing.T, log *slog.Logger) *kraken {
	t.Helper()
	return newKrakenWith(t, log, nil)
}

// newKrakenWith is newKrakenLogging with a chance to change the App's
// configuration.
func newKrakenWith(t *testing.T, log *slog.Logger, change func(*slack.Config)) *kraken {
	t.Helper()
	w := newWorkspace(t)
	db, _ := tempStore(t)
	rt, err := dev.Open(context.Background(), dev.Options{Dir: t.TempDir(), Logger: log})
	if err != nil {
		t.Fatalf("the in-process cluster did not open (run `make deno` if Deno is missing): %v", err)
	}
	t.Cleanup(func() { rt.Close() })
	// The registry needs the App for its channels.
	cfg := newConfig(t, w.srv, db, nil)
	cfg.Logger = log
	if change != nil {
		change(&cfg)
	}
	b := wireBot(t, w.srv, cfg, func(app *slack.App) {
		reg, err := command.New(command.Config{
			Enclaves: rt.Enclaves(), Tentacles: rt.Tentacles(), Store: db,
			Channels: app, Examples: os.DirFS(examples), Logger: log,
		})
		if err != nil {
			t.Fatal(err)
		}
		app.SetCommands(reg)
	})
	return &kraken{bot: b, alice: w.alice, bob: w.bob, ops: w.ops, rt: rt}
}

// enclave reads an enclave from the cluster.
func (k *kraken) enclave(t *testing.T, name string) enclave.Enclave {
	t.Helper()
	e, err := k.rt.Enclaves().Get(context.Background(), name)
	if err != nil {
		t.Fatalf("enclave %s: %v", name, err)
	}
	return e
}

// lastMessage waits for the bot's newest message in a channel that
// satisfies ok.
func (k *kraken) lastMessage(t *testing.T, channel string, ok func(slacktest.Message) bool) slacktest.Message {
	t.Helper()
	var found slacktest.Message
	eventually(t, "a message in "+channel, func() bool {
		msgs := k.srv.Messages(channel)
		for i := len(msgs) - 1; i >= 0; i-- {
			if msgs[i].BotID != "" && ok(msgs[i]) {
				found = msgs[i]
				return true
			}
		}
		return false
	})
	return found
}

// buttonValue finds a button's value on a message by its label.
func buttonValue(t *testing.T, m slacktest.Message, label string) string {
	t.Helper()
	for _, b := range blocksOf(t, m.Blocks) {
		if b["type"] != "actions" {
			continue
		}
		for _, el := range b["elements"].([]any) {
			e := el.(map[string]any)
			if e["text"].(map[string]any)["text"] == label {
				return e["value"].(string)
			}
		}
	}
	t.Fatalf("no %q button on %s", label, m.AllText())
	return ""
}

func contains(sub string) func(slacktest.Message) bool {
	return func(m slacktest.Message) bool { return strings.Contains(m.AllText(), sub) }
}

// provision invites the bot to #ops and has alice press the card's
// button, as a person would.
func (k *kraken) provision(t *testing.T) slacktest.Message {
	t.Helper()
	k.event("", k.srv.MemberJoinedChannelEvent(k.ops.ID, k.srv.BotUserID(), k.alice.ID))
	offer := k.lastMessage(t, k.ops.ID, contains("thanks for inviting me"))
	value := buttonValue(t, offer, "Provision enclave ops")
	k.click(slacktest.BlockAction{UserID: k.alice.ID, ChannelID: k.ops.ID, MessageTS: offer.TS, Value: value, Text: "Provision enclave ops"})
	return k.lastMessage(t, k.ops.ID, func(m slacktest.Message) bool { return m.TS == offer.TS && len(m.Versions) > 0 })
}

func TestInviteProvisionArchive(t *testing.T) {
	k := newKraken(t)
	card := k.provision(t)

	e := k.enclave(t, "ops")
	if e.Owner != k.alice.ID || e.Channel.ID != k.ops.ID || e.Channel.TeamID != k.srv.TeamID() || !e.Ready {
		t.Errorf("enclave = %+v", e)
	}
	if !slices.Equal(e.Members, []string{k.alice.ID, k.bob.ID}) {
		t.Errorf("members = %v", e.Members)
	}
	// The offer card now says what happened, and offers nothing more.
	if all := card.AllText(); !strings.Contains(all, "Enclave *ops* is ready, owned by <@"+k.alice.ID+">") || strings.Contains(string(card.Blocks), `"actions"`) {
		t.Errorf("card after the click:\n%s\n%s", all, card.Blocks)
	}

	k.srv.ArchiveChannel(k.ops.ID)
	k.event("", k.srv.ChannelArchiveEvent(k.ops.ID, k.alice.ID))
	eventually(t, "the enclave frozen", func() bool { e := k.enclave(t, "ops"); return e.Frozen && e.Archived })

	k.srv.UnarchiveChannel(k.ops.ID)
	k.event("", k.srv.ChannelUnarchiveEvent(k.ops.ID, k.alice.ID))
	eventually(t, "the enclave active again", func() bool { return !k.enclave(t, "ops").Frozen })
	k.lastMessage(t, k.ops.ID, contains("This channel is back"))
}

func TestConfirmationCards(t *testing.T) {
	k := newKraken(t)
	k.provision(t)

	k.command(slacktest.SlashCommand{Text: "deprovision", UserID: k.alice.ID, ChannelID: k.ops.ID})
	card := k.lastMessage(t, k.ops.ID, contains("Deprovision enclave ops"))
	if !strings.Contains(string(card.Blocks), `"plain_text_input"`) {
		t.Fatalf("no name to type on the card: %s", card.Blocks)
	}
	// The header says what is asked; the card does not say it twice.
	if n := strings.Count(string(card.Blocks), "Deprovision enclave ops"); n != 1 {
		t.Errorf("the title is on the card %d times: %s", n, card.Blocks)
	}
	confirm := buttonValue(t, card, "Deprovision")
	typed := func(name string) map[string]map[string]any {
		return map[string]map[string]any{"kraken_type_name": {"name": name}}
	}
	steps := []struct {
		name  string
		user  string
		typed string
		// want is in the ephemeral message the clicker gets.
		want string
	}{
		{"another member", k.bob.ID, "ops", "Only <@" + k.alice.ID + ">, who asked for this, can confirm it."},
		{"the asker, with the wrong name", k.alice.ID, "opz", "To confirm, type the enclave's name exactly: ops."},
		{"the asker, with no name", k.alice.ID, "", "To confirm, type the enclave's name exactly: ops."},
	}
	for i, s := range steps {
		k.click(slacktest.BlockAction{UserID: s.user, ChannelID: k.ops.ID, MessageTS: card.TS, Value: confirm, Text: "Deprovision", State: typed(s.typed)})
		k.srv.WaitFor(t, "response_url", func(c slacktest.Call) bool { return len(k.srv.Responses("")) == i+1 }, wait)
		rs := k.srv.Responses("")
		if r := rs[len(rs)-1]; r.ResponseType != "ephemeral" || r.ReplaceOriginal || !strings.Contains(r.AllText(), s.want) {
			t.Errorf("%s: response = %+v", s.name, r)
		}
		if m, _ := k.srv.Message(k.ops.ID, card.TS); len(m.Versions) != 0 {
			t.Fatalf("%s changed the card: %s", s.name, m.AllText())
		}
		if k.enclave(t, "ops").Terminating {
			t.Fatalf("%s deprovisioned", s.name)
		}
	}

	k.click(slacktest.BlockAction{UserID: k.alice.ID, ChannelID: k.ops.ID, MessageTS: card.TS, Value: confirm, Text: "Deprovision", State: typed("ops")})
	done := k.lastMessage(t, k.ops.ID, func(m slacktest.Message) bool { return m.TS == card.TS && len(m.Versions) == 1 })
	if all := done.AllText(); !strings.Contains(all, "Enclave ops and everything in it has been removed.") || strings.Contains(string(done.Blocks), `"actions"`) || strings.Contains(string(done.Blocks), `"input"`) {
		t.Errorf("card after confirming:\n%s", all)
	}
	eventually(t, "the enclave gone", func() bool {
		_, err := k.rt.Enclaves().Get(context.Background(), "ops")
		return errors.Is(err, enclave.ErrNotFound)
	})
}

func TestCancelledConfirmation(t *testing.T) {
	k := newKraken(t)
	k.provision(t)
	k.command(slacktest.SlashCommand{Text: "transfer <@" + k.bob.ID + ">", UserID: k.alice.ID, ChannelID: k.ops.ID})
	card := k.lastMessage(t, k.ops.ID, contains("Give enclave ops to"))
	k.click(slacktest.BlockAction{UserID: k.alice.ID, ChannelID: k.ops.ID, MessageTS: card.TS, Value: buttonValue(t, card, "Cancel"), Text: "Cancel"})
	done := k.lastMessage(t, k.ops.ID, func(m slacktest.Message) bool { return m.TS == card.TS && len(m.Versions) == 1 })
	if !strings.Contains(done.AllText(), "Cancelled") {
		t.Errorf("card = %s", done.AllText())
	}
	if e := k.enclave(t, "ops"); e.Owner != k.alice.ID {
		t.Errorf("owner = %s", e.Owner)
	}
}

func TestHomeTab(t *testing.T) {
	k := newKraken(t)
	k.provision(t)
	for _, u := range []slacktest.User{k.alice, k.bob} {
		k.event("", k.srv.AppHomeOpenedEvent(u.ID, "home"))
	}
	carol := k.srv.AddUser(slacktest.User{Name: "carol"})
	k.event("", k.srv.AppHomeOpenedEvent(carol.ID, "home"))
	eventually(t, "three home tabs", func() bool { return len(k.srv.Calls("views.publish")) == 3 })
	cases := []struct {
		user string
		want string
	}{
		{k.alice.ID, "You are an owner · active · 0 tentacles"},
		{k.bob.ID, "You are a member · active · 0 tentacles"},
		{carol.ID, "You are not in any enclave yet."},
	}
	for _, tc := range cases {
		v, ok := k.srv.HomeView(tc.user)
		if !ok || !strings.Contains(v.AllText(), tc.want) {
			t.Errorf("home of %s lacks %q:\n%s", tc.user, tc.want, v.AllText())
		}
	}
}

// tarball packs a folder as people upload a tentacle: name/... in a
// .tar.gz.
func tarball(t *testing.T, dir, name string) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Name: name + "/" + filepath.ToSlash(rel), Mode: 0o644, Size: int64(len(data))}); err != nil {
			return err
		}
		_, err = tw.Write(data)
		return err
	})
	if err == nil {
		err = tw.Close()
	}
	if err == nil {
		err = gz.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// deployUploaded has bob share hello-fanout's folder and alice deploy it.
func (k *kraken) deployUploaded(t *testing.T) (card slacktest.Message) {
	t.Helper()
	_, share := k.srv.UploadFile(k.ops.ID, k.bob.ID, "hello-fanout.tar.gz", tarball(t, filepath.Join(examples, "hello-fanout"), "hello-fanout"))
	k.event("", k.srv.MessageEvent(share))
	eventually(t, "the upload seen", func() bool { return k.pending() == 0 })
	k.command(slacktest.SlashCommand{Text: "deploy", UserID: k.alice.ID, ChannelID: k.ops.ID})
	card = k.lastMessage(t, k.ops.ID, contains("Ready to deploy *hello-fanout*"))
	k.click(slacktest.BlockAction{UserID: k.alice.ID, ChannelID: k.ops.ID, MessageTS: card.TS, Value: buttonValue(t, card, "Deploy"), Text: "Deploy"})
	k.lastMessage(t, k.ops.ID, func(m slacktest.Message) bool { return m.TS == card.TS && len(m.Versions) == 1 })
	return card
}

// A secret set through the form, with the real registry and cluster:
// the tentacle gets it; no log line, Slack call or store record has it.
func TestSetSecretThroughTheForm(t *testing.T) {
	logger, logs := capturedLogger(t)
	k := newKrakenLogging(t, logger)
	k.provision(t)
	k.deployUploaded(t)

	c := k.command(slacktest.SlashCommand{Text: "secret hello-fanout api_key", UserID: k.alice.ID, ChannelID: k.ops.ID})
	opened := k.srv.WaitFor(t, "views.open", nil, wait)
	if opened.Param("trigger_id") != c.TriggerID || !opened.OK() {
		t.Fatalf("views.open = %v %s", opened.Params, opened.Error)
	}
	var modal slacktest.View
	for _, v := range k.srv.Views(k.alice.ID) {
		if v.Type == "modal" {
			modal = v
		}
	}
	if modal.Title != "Secret api_key of hel…" || !strings.Contains(modal.AllText(), "`api_key` of *hello-fanout*") {
		t.Errorf("modal = %q: %s (Slack allows a 24 character title)", modal.Title, modal.AllText())
	}
	w := workspace{srv: k.srv, alice: k.alice, bob: k.bob, ops: k.ops}
	code, body := k.send("/slack/interactions", k.srv.ViewSubmission(submission(modal, k.alice.ID, theSecret)).Body(), time.Now())
	if code != 200 || body != `{"response_action":"clear"}` {
		t.Errorf("answer = %d %s", code, body)
	}
	eventually(t, "the outcome told", func() bool {
		for _, e := range k.srv.Ephemerals(k.ops.ID, k.alice.ID) {
			if strings.Contains(e.Text, "Secret api_key of *hello-fanout* is set") {
				return k.pending() == 0
			}
		}
		return false
	})
	evs, err := k.rt.Tentacles().Events(context.Background(), "ops", "hello-fanout")
	if err != nil {
		t.Fatal(err)
	}
	set := false
	for _, ev := range evs {
		set = set || strings.Contains(ev.Message, "secret api_key set by "+k.alice.ID)
	}
	if !set {
		t.Errorf("events = %+v", evs)
	}
	// The same form again is refused on the form itself.
	code, body = k.send("/slack/interactions", k.srv.ViewSubmission(submission(modal, k.alice.ID, theSecret)).Body(), time.Now())
	if code != 200 || !strings.Contains(body, `"response_action":"errors"`) || !strings.Contains(body, "already used") {
		t.Errorf("second answer = %d %s", code, body)
	}
	eventually(t, "all done", func() bool { return k.pending() == 0 })
	leaks(t, w, logs, k.db.Path())
}

// Someone uploads a tentacle's folder and asks to deploy it: the bot
// shows its picture and what changes, and deploys once confirmed.
func TestDeployUploadedTentacle(t *testing.T) {
	k := newKraken(t)
	k.provision(t)
	_, share := k.srv.UploadFile(k.ops.ID, k.bob.ID, "hello-fanout.tar.gz", tarball(t, filepath.Join(examples, "hello-fanout"), "hello-fanout"))
	k.event("", k.srv.MessageEvent(share))
	eventually(t, "the upload seen", func() bool { return k.pending() == 0 })

	k.command(slacktest.SlashCommand{Text: "deploy", UserID: k.alice.ID, ChannelID: k.ops.ID})
	card := k.lastMessage(t, k.ops.ID, contains("Ready to deploy *hello-fanout*"))
	if !strings.Contains(card.AllText(), "from hello-fanout.tar.gz") {
		t.Errorf("card = %s", card.AllText())
	}
	var picture slacktest.File
	for _, f := range k.srv.Files() {
		if f.User == k.srv.BotUserID() {
			picture = f
		}
	}
	if picture.ID == "" || !bytes.HasPrefix(picture.Content, []byte("\x89PNG\r\n\x1a\n")) || picture.Name != "hello-fanout.png" ||
		!strings.HasPrefix(picture.AltText, "The steps of hello-fanout") || !slices.Equal(picture.Channels, []string{k.ops.ID}) {
		t.Fatalf("picture = %+v (%d bytes)", picture.Name, len(picture.Content))
	}
	if dl := k.srv.Calls("files.download"); len(dl) != 1 || dl[0].Status != 200 {
		t.Errorf("downloads = %+v", dl)
	}

	k.click(slacktest.BlockAction{UserID: k.alice.ID, ChannelID: k.ops.ID, MessageTS: card.TS, Value: buttonValue(t, card, "Deploy"), Text: "Deploy"})
	done := k.lastMessage(t, k.ops.ID, func(m slacktest.Message) bool { return m.TS == card.TS && len(m.Versions) == 1 })
	if !strings.Contains(done.AllText(), "Deployed *hello-fanout*") {
		t.Errorf("card after confirming: %s", done.AllText())
	}
	st, err := k.rt.Tentacles().Status(context.Background(), "ops", "hello-fanout")
	if err != nil || st.Revision != 1 {
		t.Errorf("status = %+v, %v", st, err)
	}
}
