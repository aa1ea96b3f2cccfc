package slack_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kraken-ops/kraken/bot/command"
	"github.com/kraken-ops/kraken/bot/slack"
	"github.com/kraken-ops/kraken/bot/slacktest"
)

// startRun answers every command with a run whose later replies the
// test sends.
func startRun(t *testing.T, every time.Duration, private bool) (workspace, *bot, chan command.Reply) {
	t.Helper()
	w := newWorkspace(t)
	later := make(chan command.Reply, 1)
	cmds := &fakeCommands{do: func(ctx context.Context, req command.Request) command.Reply {
		return command.Reply{Text: "Running *etl*…", Private: private, Later: later,
			Buttons: []command.Button{{Label: "Cancel", Value: "run:cancel r1", Style: "danger"}}}
	}}
	db, _ := tempStore(t)
	cfg := newConfig(t, w.srv, db, cmds)
	cfg.UpdateEvery = every
	return w, startBot(t, w.srv, cfg), later
}

var png = []byte("\x89PNG\r\n\x1a\n")

// TestRunUpdatedInPlace: the status message is updated in place with
// the run's progress, no more than once a period, then at once with its
// end; the output goes in its thread.
func TestRunUpdatedInPlace(t *testing.T) {
	const every = 400 * time.Millisecond
	w, b, later := startRun(t, every, false)
	b.command(slacktest.SlashCommand{Text: "run etl", UserID: w.alice.ID, ChannelID: w.ops.ID})
	post := w.srv.WaitFor(t, "chat.postMessage", nil, wait)
	msgs := w.srv.Messages(w.ops.ID)
	if len(msgs) != 1 || msgs[0].Text != "Running *etl*…" || !strings.Contains(string(msgs[0].Blocks), "run:cancel r1") {
		t.Fatalf("the status message: %+v", msgs)
	}
	ts := msgs[0].TS

	// Three steps end right after the start: one update, with the newest,
	// a period after the post.
	for i := 1; i <= 3; i++ {
		later <- command.Reply{Text: fmt.Sprintf("Running *etl*… %d of 5 steps done", i),
			Buttons: []command.Button{{Label: "Cancel", Value: "run:cancel r1", Style: "danger"}}}
		if i < 3 {
			time.Sleep(20 * time.Millisecond) // taken by the transport, then replaced
		}
	}
	first := w.srv.WaitFor(t, "chat.update", nil, wait)
	if first.Param("ts") != ts || !strings.Contains(first.Param("text"), "3 of 5 steps done") || !strings.Contains(first.Param("blocks"), "run:cancel r1") {
		t.Fatalf("the first update: %v", first.Params)
	}
	if gap := first.At.Sub(post.At); gap < every-50*time.Millisecond {
		t.Errorf("the first update came %s after the post, before the period of %s", gap, every)
	}

	// A fourth step, then the end at once: the end replaces the step and
	// goes out without waiting for the period.
	later <- command.Reply{Text: "Running *etl*… 4 of 5 steps done"}
	later <- command.Reply{Text: "*etl* succeeded in 1.2s (5 steps).", Details: "• load: 42 rows", Image: &command.Image{Name: "etl-run.png", PNG: png}}
	close(later)
	final := w.srv.WaitFor(t, "chat.update", func(c slacktest.Call) bool { return strings.Contains(c.Param("text"), "succeeded") }, wait)
	if gap := final.At.Sub(first.At); gap >= every {
		t.Errorf("the end waited %s: it must go out at once", gap)
	}
	updates := w.srv.Calls("chat.update")
	if len(updates) != 2 {
		t.Errorf("%d updates, want 2 (the steps coalesced, then the end)", len(updates))
	}
	m, _ := w.srv.Message(w.ops.ID, ts)
	if m.Text != "*etl* succeeded in 1.2s (5 steps)." || strings.Contains(string(m.Blocks), "42 rows") || strings.Contains(string(m.Blocks), "run:cancel") {
		t.Errorf("the message at the end: %q %s", m.Text, m.Blocks)
	}
	if len(m.Versions) != 2 || !strings.Contains(m.Versions[1].Text, "3 of 5") {
		t.Errorf("versions %+v", m.Versions)
	}
	// The output and the picture are in the thread, before the end.
	var details slacktest.Call
	for _, c := range w.srv.Calls("chat.postMessage") {
		if c.Param("thread_ts") == ts {
			details = c
		}
	}
	if !strings.Contains(details.Param("text"), "• load: 42 rows") || !details.At.Before(final.At) {
		t.Errorf("the details in the thread: %v at %s (end at %s)", details.Params, details.At, final.At)
	}
	up := w.srv.WaitFor(t, "files.completeUploadExternal", nil, wait)
	if up.Param("thread_ts") != ts {
		t.Errorf("the picture went to thread %q, want %q", up.Param("thread_ts"), ts)
	}
}

// TestRunUpdatesAreBounded: a run whose steps end faster than Slack
// takes updates gets at most one update a period.
func TestRunUpdatesAreBounded(t *testing.T) {
	const every = 100 * time.Millisecond
	w, b, later := startRun(t, every, false)
	b.command(slacktest.SlashCommand{Text: "run etl", UserID: w.alice.ID, ChannelID: w.ops.ID})
	post := w.srv.WaitFor(t, "chat.postMessage", nil, wait)
	start := time.Now()
	for i := 1; i <= 100; i++ {
		later <- command.Reply{Text: fmt.Sprintf("Running *etl*… %d of 100 steps done", i)}
		time.Sleep(5 * time.Millisecond)
	}
	took := time.Since(start)
	later <- command.Reply{Text: "*etl* failed after 1s at step s100.", Failed: true, Details: "• step s100: boom"}
	close(later)
	w.srv.WaitFor(t, "chat.update", func(c slacktest.Call) bool { return strings.Contains(c.Param("text"), "failed") }, wait)
	updates := w.srv.Calls("chat.update")
	if max := int(took/every) + 2; len(updates) > max || len(updates) < 2 {
		t.Errorf("%d updates in %s, want 2 to %d", len(updates), took, max)
	}
	prev := post.At
	for i, u := range updates[:len(updates)-1] {
		if gap := u.At.Sub(prev); gap < every-30*time.Millisecond {
			t.Errorf("update %d came %s after the one before", i, gap)
		}
		prev = u.At
	}
	if last := updates[len(updates)-1]; !strings.Contains(last.Param("blocks"), ":warning: *etl* failed") || strings.Contains(last.Param("blocks"), "boom") {
		t.Errorf("the last update: %q", last.Param("text"))
	}
}

// TestPrivateRunGetsItsEnd: a private status is not updated with
// progress (a response_url takes few uses); its end comes with the
// details in it.
func TestPrivateRunGetsItsEnd(t *testing.T) {
	w, b, later := startRun(t, 50*time.Millisecond, true)
	c := b.command(slacktest.SlashCommand{Text: "run etl", UserID: w.alice.ID, ChannelID: w.ops.ID})
	w.srv.WaitFor(t, "response_url", nil, wait)
	later <- command.Reply{Text: "Running *etl*… 1 of 2 steps done"}
	time.Sleep(100 * time.Millisecond)
	later <- command.Reply{Text: "*etl* succeeded in 1s (2 steps).", Details: "• load: 42 rows"}
	close(later)
	w.srv.WaitFor(t, "response_url", func(c slacktest.Call) bool { return strings.Contains(string(c.Body), "succeeded") }, wait)
	rs := w.srv.Responses(c.ResponseURL)
	if len(rs) != 2 || !rs[1].ReplaceOriginal || !strings.Contains(rs[1].AllText(), "succeeded") || !strings.Contains(rs[1].AllText(), "42 rows") {
		t.Errorf("responses %+v", rs)
	}
	if n := len(w.srv.Calls("chat.postMessage")) + len(w.srv.Calls("chat.update")); n != 0 {
		t.Errorf("%d channel messages for a private run", n)
	}
}

// TestRunOfARealTentacle: the whole bot runs a tentacle that retries;
// its status message shows the steps as they end, then the result, with
// the output in its thread.
func TestRunOfARealTentacle(t *testing.T) {
	k := newKrakenWith(t, testLogger(t), func(c *slack.Config) { c.UpdateEvery = 50 * time.Millisecond })
	k.provision(t)
	k.command(slacktest.SlashCommand{Text: "deploy flaky-retry", UserID: k.alice.ID, ChannelID: k.ops.ID})
	card := k.lastMessage(t, k.ops.ID, contains("Ready to deploy *flaky-retry*"))
	k.click(slacktest.BlockAction{UserID: k.alice.ID, ChannelID: k.ops.ID, MessageTS: card.TS, Value: buttonValue(t, card, "Deploy"), Text: "Deploy"})
	k.lastMessage(t, k.ops.ID, func(m slacktest.Message) bool { return m.TS == card.TS && len(m.Versions) == 1 })

	k.command(slacktest.SlashCommand{Text: "run flaky-retry", UserID: k.bob.ID, ChannelID: k.ops.ID})
	status := k.lastMessage(t, k.ops.ID, contains("Running *flaky-retry*…"))
	end := k.lastMessage(t, k.ops.ID, func(m slacktest.Message) bool { return m.TS == status.TS && strings.Contains(m.Text, "succeeded") })
	if !strings.HasPrefix(end.Text, "*flaky-retry* succeeded in ") || strings.Contains(end.AllText(), "• report") || strings.Contains(string(end.Blocks), "Cancel") {
		t.Errorf("the end: %s", end.AllText())
	}
	// The retries took 300 ms: with an update every 50 ms, some showed.
	retried := false
	for _, v := range end.Versions[1:] {
		if !strings.HasPrefix(v.Text, "Running *flaky-retry*… ") || !strings.Contains(string(v.Blocks), "Cancel") {
			t.Errorf("a progress update: %q", v.Text)
		}
		retried = retried || strings.Contains(v.Text, "flaky … (try ")
	}
	if len(end.Versions) < 2 || !retried {
		t.Errorf("the progress shown: %q", versionTexts(end))
	}
	thread := ""
	for _, m := range k.srv.Messages(k.ops.ID) {
		if m.ThreadTS == status.TS && m.TS != status.TS {
			thread += m.AllText()
		}
	}
	if !strings.Contains(thread, "• report: ") || !strings.Contains(thread, "after 2 retries") {
		t.Errorf("the thread: %q", thread)
	}
}

func versionTexts(m slacktest.Message) []string {
	out := make([]string, len(m.Versions))
	for i, v := range m.Versions {
		out[i] = v.Text
	}
	return out
}
