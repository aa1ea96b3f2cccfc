package slack_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/kraken-ops/kraken/bot/command"
	"github.com/kraken-ops/kraken/bot/slacktest"
)

// verbs is what the fake registry takes for commands in these tests;
// anything else is plain words for the conversation loop.
func verbs(text string) bool {
	first, _, _ := strings.Cut(text, " ")
	switch first {
	case "", "help", "status", "run", "deploy", "info", "whoami", "secret":
		return true
	}
	return false
}

// startSocket runs the bot's Socket Mode until the test ends.
func startSocket(t *testing.T, b *bot) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.app.RunSocketMode(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("RunSocketMode: %v", err)
		}
	})
	b.srv.WaitConnected(1)
}

// Where plain words reach the registry: a mention (answered in a thread
// under it), a reply in a thread the bot is in, in an enclave's channel,
// and a direct message. Nothing else a channel says is even written down.
func TestWordsToTheBot(t *testing.T) {
	w := newWorkspace(t)
	db, _ := tempStore(t)
	cmds := &fakeCommands{
		isCommand: verbs,
		do: func(_ context.Context, req command.Request) command.Reply {
			return command.Reply{Text: "you said: " + req.Text, Private: strings.Contains(req.Text, "quietly")}
		},
	}
	// #ops has an enclave; #lounge has none.
	lounge := w.srv.AddChannel(slacktest.Channel{Name: "lounge", Members: []string{w.srv.BotUserID(), w.alice.ID, w.bob.ID}})
	cmds.enclaves = map[string]string{w.ops.ID: "ops"}
	b := startBot(t, w.srv, newConfig(t, w.srv, db, cmds))
	startSocket(t, b)
	requests := func(n int) []command.Request {
		t.Helper()
		eventually(t, "request "+string(rune('0'+n)), func() bool { return len(cmds.Requests()) >= n && b.pending() == 0 })
		return cmds.Requests()
	}

	// A mention: answered in a thread under it.
	mention := w.srv.UserMessage(w.ops.ID, w.alice.ID, "", w.srv.BotMention()+" what runs here?")
	b.event("", w.srv.AppMentionEvent(mention))
	reqs := requests(1)
	if r := reqs[0]; r.Text != "what runs here?" || r.Thread != mention.TS || r.Channel.ID != w.ops.ID || r.Actor.UserID != w.alice.ID {
		t.Errorf("mention request = %+v", r)
	}
	eventually(t, "the answer", func() bool {
		msgs := w.srv.Messages(w.ops.ID)
		return len(msgs) == 2 && msgs[1].Text == "you said: what runs here?"
	})
	if answer := w.srv.Messages(w.ops.ID)[1]; answer.ThreadTS != mention.TS {
		t.Errorf("answer = %+v, want in the mention's thread", answer)
	}

	// A reply in that thread, without a mention, over Socket Mode.
	reply := w.srv.UserMessage(w.ops.ID, w.bob.ID, mention.TS, "and how healthy is hello?")
	w.srv.WaitAck(w.srv.SendEvent(w.srv.EventCallback(w.srv.TeamID(), "", w.srv.MessageEvent(reply))))
	reqs = requests(2)
	if r := reqs[1]; r.Text != "and how healthy is hello?" || r.Thread != mention.TS || r.Actor.UserID != w.bob.ID {
		t.Errorf("thread reply request = %+v", r)
	}

	// A reply in a thread under the bot's own post is said to it too.
	b.command(slacktest.SlashCommand{Text: "status hello", UserID: w.alice.ID, ChannelID: w.ops.ID})
	reqs = requests(3)
	var post slacktest.Message
	for _, m := range w.srv.Messages(w.ops.ID) {
		if m.Text == "you said: status hello" {
			post = m
		}
	}
	if post.TS == "" {
		t.Fatalf("no public answer to the slash command: %+v", w.srv.Messages(w.ops.ID))
	}
	underPost := w.srv.UserMessage(w.ops.ID, w.bob.ID, post.TS, "why is it slow?")
	b.event("", w.srv.MessageEvent(underPost))
	reqs = requests(4)
	if r := reqs[3]; r.Text != "why is it slow?" || r.Thread != post.TS {
		t.Errorf("reply under the bot's post = %+v", r)
	}

	// None of these is said to the bot, and none is written down.
	handled := b.counts.get("handled")
	other := w.srv.UserMessage(w.ops.ID, w.bob.ID, "", "lunch?")
	otherReply := w.srv.UserMessage(w.ops.ID, w.alice.ID, other.TS, "yes")
	own := w.srv.MessageEvent(slacktest.Message{Channel: w.ops.ID, User: w.srv.BotUserID(), BotID: w.srv.BotID(), TS: "1.000001", ThreadTS: mention.TS, Text: "you said: what runs here?"})
	otherBot := w.srv.MessageEvent(slacktest.Message{Channel: w.ops.ID, BotID: "B0OTHER", Subtype: "bot_message", TS: "1.000002", ThreadTS: mention.TS, Text: "I answer everything"})
	edit := w.srv.MessageEvent(reply)
	edit["subtype"] = "message_changed"
	deleted := w.srv.MessageEvent(reply)
	deleted["subtype"] = "message_deleted"
	mentionInThread := w.srv.MessageEvent(w.srv.UserMessage(w.ops.ID, w.bob.ID, mention.TS, w.srv.BotMention()+" again"))
	loungeMention := w.srv.UserMessage(lounge.ID, w.alice.ID, "", w.srv.BotMention()+" hi")
	loungeReply := w.srv.UserMessage(lounge.ID, w.bob.ID, loungeMention.TS, "we are chatting among ourselves")
	ignored := map[string]map[string]any{
		"a channel message":                     w.srv.MessageEvent(other),
		"a reply in a thread the bot is not in": w.srv.MessageEvent(otherReply),
		"the bot's own message":                 own,
		"another bot's message":                 otherBot,
		"an edit":                               edit,
		"a deletion":                            deleted,
		"a message that mentions the bot (its app_mention counts)": mentionInThread,
	}
	for name, ev := range ignored {
		b.event("", ev)
		if b.pending() != 0 {
			t.Errorf("%s was written down", name)
			eventually(t, "the queue empty", func() bool { return b.pending() == 0 })
		}
	}
	// Outside an enclave, a mention is answered but the thread it starts
	// stays the people's: the reply is written down (the bot is in the
	// thread) but not answered.
	b.event("", w.srv.AppMentionEvent(loungeMention))
	requests(5)
	b.event("", w.srv.MessageEvent(loungeReply))
	eventually(t, "the lounge reply handled", func() bool { return b.pending() == 0 && b.counts.get("handled") >= handled+2 })
	if n := b.counts.get("handled"); n != handled+2 {
		t.Errorf("%d requests handled since, want the lounge mention and reply only", n-handled)
	}

	// A direct message, over Socket Mode: answered there, and a private
	// answer needs no hiding.
	dm := w.srv.DMChannel(w.alice.ID)
	direct := w.srv.UserMessage(dm, w.alice.ID, "", "quietly: what can you do?")
	w.srv.WaitAck(w.srv.SendEvent(w.srv.EventCallback(w.srv.TeamID(), "", w.srv.MessageEvent(direct))))
	reqs = requests(6)
	if r := reqs[5]; r.Text != "quietly: what can you do?" || r.Channel.ID != dm || r.Thread != "" || r.Channel.Name != "" {
		t.Errorf("direct request = %+v", r)
	}
	eventually(t, "the direct answer", func() bool { return len(w.srv.Messages(dm)) == 2 })
	if m := w.srv.Messages(dm)[1]; m.Text != "you said: quietly: what can you do?" || m.ThreadTS != "" {
		t.Errorf("direct answer = %+v", m)
	}
	if n := len(cmds.Requests()); n != 6 {
		t.Errorf("%d requests, want 6: %+v", n, cmds.Requests())
	}
}

// slowCommands answers plain words only when released, and says when it
// was asked.
type slowCommands struct {
	*fakeCommands
	asked   chan time.Time
	release chan command.Reply
}

func newSlowCommands() *slowCommands {
	s := &slowCommands{asked: make(chan time.Time, 10), release: make(chan command.Reply)}
	s.fakeCommands = &fakeCommands{
		isCommand: verbs,
		do: func(ctx context.Context, req command.Request) command.Reply {
			if verbs(req.Text) {
				return command.Reply{Text: "ran " + req.Text}
			}
			s.asked <- time.Now()
			select {
			case rep := <-s.release:
				return rep
			case <-ctx.Done():
				return command.Reply{Text: "too late"}
			}
		},
	}
	return s
}

// Plain words are slow: a placeholder is in the thread before the
// registry answers, and the answer takes its place.
func TestPlaceholder(t *testing.T) {
	w := newWorkspace(t)
	db, _ := tempStore(t)
	slow := newSlowCommands()
	b := startBot(t, w.srv, newConfig(t, w.srv, db, slow))

	mention := w.srv.UserMessage(w.ops.ID, w.alice.ID, "", w.srv.BotMention()+" is hello healthy?")
	sent := time.Now()
	b.event("", w.srv.AppMentionEvent(mention))
	placed := w.srv.WaitFor(t, "chat.postMessage", nil, wait)
	latency := placed.At.Sub(sent)
	t.Logf("placeholder posted %s after the mention was sent", latency)
	if latency > time.Second {
		t.Errorf("placeholder took %s, want under 1s", latency)
	}
	if placed.Param("text") != "Thinking…" || placed.Param("thread_ts") != mention.TS {
		t.Errorf("placeholder = %v", placed.Params)
	}
	select {
	case <-slow.asked:
	case <-time.After(wait):
		t.Fatal("the registry was never asked")
	}
	ts := placed.Response["ts"].(string)
	slow.release <- command.Reply{Text: "Yes: *hello* answered its last 12 runs."}
	updated := w.srv.WaitFor(t, "chat.update", nil, wait)
	if updated.Param("ts") != ts {
		t.Errorf("updated %s, want the placeholder %s", updated.Param("ts"), ts)
	}
	msgs := w.srv.Messages(w.ops.ID)
	if len(msgs) != 2 || msgs[1].TS != ts || msgs[1].Text != "Yes: *hello* answered its last 12 runs." || msgs[1].ThreadTS != mention.TS || len(msgs[1].Versions) != 1 {
		t.Errorf("messages = %+v", msgs)
	}

	// A private answer: only the asker sees it, and the placeholder goes.
	second := w.srv.UserMessage(w.ops.ID, w.bob.ID, mention.TS, "what is my role?")
	b.event("", w.srv.MessageEvent(second))
	placed = w.srv.WaitFor(t, "chat.postMessage", func(c slacktest.Call) bool { return c.Response["ts"] != ts }, wait)
	<-slow.asked
	slow.release <- command.Reply{Text: "You are a member.", Private: true}
	w.srv.WaitFor(t, "chat.delete", nil, wait)
	if es := w.srv.Ephemerals(w.ops.ID, w.bob.ID); len(es) != 1 || es[0].Text != "You are a member." || es[0].ThreadTS != mention.TS {
		t.Errorf("bob's ephemerals = %+v", es)
	}
	if m, _ := w.srv.Message(w.ops.ID, placed.Response["ts"].(string)); !m.Deleted {
		t.Errorf("placeholder left: %+v", m)
	}
	ephemeral := w.srv.Calls("chat.postEphemeral")[0]
	if deleted := w.srv.Calls("chat.delete")[0]; deleted.At.Before(ephemeral.At) {
		t.Error("the placeholder went before the answer came")
	}

	// A command needs no placeholder.
	before := len(w.srv.Calls("chat.postMessage"))
	b.event("", w.srv.AppMentionEvent(w.srv.UserMessage(w.ops.ID, w.alice.ID, "", w.srv.BotMention()+" status hello")))
	eventually(t, "the command's answer", func() bool { return len(w.srv.Calls("chat.postMessage")) == before+1 && b.pending() == 0 })
	if c := w.srv.Calls("chat.postMessage")[before]; c.Param("text") != "ran status hello" {
		t.Errorf("command answer = %v", c.Params)
	}
}

// /kraken with plain words: an ephemeral placeholder, replaced by a
// private answer or removed once a public one is posted.
func TestSlashPlaceholder(t *testing.T) {
	w := newWorkspace(t)
	db, _ := tempStore(t)
	slow := newSlowCommands()
	cfg := newConfig(t, w.srv, db, slow)
	cfg.WorkingAfter = time.Millisecond // for commands only
	b := startBot(t, w.srv, cfg)

	sent := time.Now()
	c := b.command(slacktest.SlashCommand{Text: "which tentacles failed today? my token is xoxp-1", UserID: w.alice.ID, ChannelID: w.ops.ID})
	placed := w.srv.WaitFor(t, "response_url", nil, wait)
	t.Logf("slash placeholder shown %s after the command was sent", placed.At.Sub(sent))
	<-slow.asked
	if es := w.srv.Ephemerals(w.ops.ID, w.alice.ID); len(es) != 1 || es[0].Text != "Thinking…" {
		t.Fatalf("ephemerals while thinking = %+v", es)
	}
	slow.release <- command.Reply{Text: "None failed today.", Private: true}
	w.srv.WaitFor(t, "response_url", func(c slacktest.Call) bool { return c.Param("replace_original") == "true" }, wait)
	es := w.srv.Ephemerals(w.ops.ID, w.alice.ID)
	if len(es) != 1 || es[0].Text != "None failed today." || len(es[0].Versions) != 1 || es[0].Versions[0].Text != "Thinking…" {
		t.Errorf("ephemerals = %+v", es)
	}
	if rs := w.srv.Responses(c.ResponseURL); len(rs) != 2 {
		t.Errorf("responses = %+v (no working notice for plain words)", rs)
	}

	// A public answer is posted in the channel, without the words asked,
	// and the placeholder goes.
	c = b.command(slacktest.SlashCommand{Text: "summarise today's runs", UserID: w.alice.ID, ChannelID: w.ops.ID})
	<-slow.asked
	slow.release <- command.Reply{Text: "Three runs, all fine."}
	w.srv.WaitFor(t, "response_url", func(call slacktest.Call) bool { return call.Param("delete_original") == "true" }, wait)
	msgs := w.srv.Messages(w.ops.ID)
	if len(msgs) != 1 || msgs[0].Text != "Three runs, all fine." {
		t.Fatalf("messages = %+v", msgs)
	}
	if all := msgs[0].AllText(); !strings.Contains(all, "<@"+w.alice.ID+"> asked me with `/kraken`") || strings.Contains(all, "summarise") {
		t.Errorf("who asked = %s", all)
	}
	if es := w.srv.Ephemerals(w.ops.ID, w.alice.ID); len(es) != 1 {
		t.Errorf("placeholder left: %+v", es)
	}
	post := w.srv.Calls("chat.postMessage")[0]
	if del := w.srv.Calls("response_url"); del[len(del)-1].At.Before(post.At) {
		t.Error("the placeholder went before the answer came")
	}
}

// buttonOn finds a button's value in blocks by its label.
func buttonOn(t *testing.T, blocks json.RawMessage, label string) string {
	t.Helper()
	for _, b := range blocksOf(t, blocks) {
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
	t.Fatalf("no %q button in %s", label, blocks)
	return ""
}
