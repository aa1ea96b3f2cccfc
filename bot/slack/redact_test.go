package slack_test

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/kraken-ops/kraken/bot/command"
)

// A token pasted in a mention reaches the registry from memory, but the
// copy the store keeps until the request is done has it blanked: it is
// nowhere in the store's file, not even in freed pages.
func TestPastedSecretNotStored(t *testing.T) {
	const token = theSecret
	w := newWorkspace(t)
	db, path := tempStore(t)
	cmds := &fakeCommands{do: func(_ context.Context, req command.Request) command.Reply {
		return command.Reply{Text: "noted"}
	}}
	cfg := newConfig(t, w.srv, db, cmds)
	cfg.Redact = func(s string) string { return strings.ReplaceAll(s, token, "[redacted]") }
	b := startBot(t, w.srv, cfg)
	m := w.srv.UserMessage(w.ops.ID, w.alice.ID, "", w.srv.BotMention()+" my token is "+token)
	b.event("", w.srv.AppMentionEvent(m))
	w.srv.WaitFor(t, "chat.postMessage", nil, wait)
	eventually(t, "the mention handled", func() bool { return b.pending() == 0 })
	if reqs := cmds.Requests(); len(reqs) != 1 || !strings.Contains(reqs[0].Text, token) {
		t.Fatalf("the registry did not get the message as written: %+v", reqs)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if containsSecret(data) {
		t.Error("the store's file holds the token")
	}
}
