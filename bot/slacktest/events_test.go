package slacktest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/slackevents"

	"github.com/kraken-ops/kraken/bot/slacktest"
)

// receiver is a minimal bot front door written only with slack-go: it
// checks the signature with slack.NewSecretsVerifier and parses the body the
// way slack-go's users do.
func receiver(t *testing.T, srv *slacktest.Server) (string, chan any) {
	got := make(chan any, 10)
	h := http.NewServeMux()
	verify := func(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
		body, _ := io.ReadAll(r.Body)
		sv, err := slack.NewSecretsVerifier(r.Header, srv.SigningSecret())
		if err == nil {
			_, _ = sv.Write(body)
			err = sv.Ensure()
		}
		if err != nil {
			got <- err
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return nil, false
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		return body, true
	}
	h.HandleFunc("POST /slack/events", func(w http.ResponseWriter, r *http.Request) {
		body, ok := verify(w, r)
		if !ok {
			return
		}
		ev, err := slackevents.ParseEvent(body, slackevents.OptionVerifyToken(&slackevents.TokenComparator{VerificationToken: srv.VerificationToken()}))
		if err != nil {
			got <- err
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if ev.Type == slackevents.URLVerification {
			var c slackevents.ChallengeResponse
			_ = json.Unmarshal(body, &c)
			_, _ = io.WriteString(w, c.Challenge)
			return
		}
		got <- ev
	})
	h.HandleFunc("POST /slack/commands", func(w http.ResponseWriter, r *http.Request) {
		if _, ok := verify(w, r); !ok {
			return
		}
		cmd, err := slack.SlashCommandParse(r)
		if err != nil {
			got <- err
			return
		}
		got <- cmd
	})
	h.HandleFunc("POST /slack/interactive", func(w http.ResponseWriter, r *http.Request) {
		if _, ok := verify(w, r); !ok {
			return
		}
		var cb slack.InteractionCallback
		if err := json.Unmarshal([]byte(r.FormValue("payload")), &cb); err != nil {
			got <- err
			return
		}
		got <- cb
	})
	bot := httptest.NewServer(h)
	t.Cleanup(bot.Close)
	return bot.URL, got
}

func TestSignedRequests(t *testing.T) {
	w := newWorkspace(t)
	srv := w.srv
	botURL, got := receiver(t, srv)
	now := time.Now()
	mention := srv.UserMessage(w.ops.ID, w.alice.ID, "", srv.BotMention()+" deploy hello-fanout")
	_, botTS, _ := w.api.PostMessageContext(context.Background(), w.ops.ID, slack.MsgOptionText("deploy hello-fanout?", false),
		slack.MsgOptionBlocks(slack.NewActionBlock("confirm", slack.NewButtonBlockElement("yes", "go", slack.NewTextBlockObject("plain_text", "Deploy", false, false)))))
	cmd := srv.SlashCommand(slacktest.SlashCommand{Command: "/kraken", Text: "status", UserID: w.alice.ID, ChannelID: w.ops.ID})

	cases := []struct {
		name   string
		path   string
		body   []byte
		at     time.Time
		tamper func(*http.Request)
		status int
		check  func(t *testing.T, v any)
	}{
		{"app_mention", "/slack/events", srv.EventCallback(srv.TeamID(), "Ev1", srv.AppMentionEvent(mention)), now, nil, 200,
			func(t *testing.T, v any) {
				ev := v.(slackevents.EventsAPIEvent)
				cb := ev.Data.(*slackevents.EventsAPICallbackEvent)
				m, ok := ev.InnerEvent.Data.(*slackevents.AppMentionEvent)
				if !ok || cb.EventID != "Ev1" || ev.TeamID != srv.TeamID() || ev.APIAppID != srv.AppID() ||
					m.User != w.alice.ID || m.Channel != w.ops.ID || m.TimeStamp != mention.TS || !strings.HasPrefix(m.Text, "<@"+srv.BotUserID()+">") {
					t.Errorf("event = %+v / %+v", ev, ev.InnerEvent.Data)
				}
			}},
		{"member_joined_channel", "/slack/events", srv.EventCallback(srv.TeamID(), "", srv.MemberJoinedChannelEvent(w.ops.ID, srv.BotUserID(), w.alice.ID)), now, nil, 200,
			func(t *testing.T, v any) {
				m, ok := v.(slackevents.EventsAPIEvent).InnerEvent.Data.(*slackevents.MemberJoinedChannelEvent)
				if !ok || m.User != srv.BotUserID() || m.Channel != w.ops.ID || m.Inviter != w.alice.ID || m.ChannelType != "C" {
					t.Errorf("event = %+v", m)
				}
			}},
		{"channel_archive", "/slack/events", srv.EventCallback(srv.TeamID(), "", srv.ChannelArchiveEvent(w.ops.ID, w.alice.ID)), now, nil, 200,
			func(t *testing.T, v any) {
				if m, ok := v.(slackevents.EventsAPIEvent).InnerEvent.Data.(*slackevents.ChannelArchiveEvent); !ok || m.Channel != w.ops.ID {
					t.Errorf("event = %+v", v)
				}
			}},
		{"message in a thread", "/slack/events", srv.EventCallback(srv.TeamID(), "", srv.MessageEvent(srv.UserMessage(w.ops.ID, w.bob.ID, mention.TS, "and staging?"))), now, nil, 200,
			func(t *testing.T, v any) {
				m, ok := v.(slackevents.EventsAPIEvent).InnerEvent.Data.(*slackevents.MessageEvent)
				if !ok || m.ThreadTimeStamp != mention.TS || m.Text != "and staging?" || m.ChannelType != "channel" {
					t.Errorf("event = %+v", m)
				}
			}},
		{"app_home_opened", "/slack/events", srv.EventCallback(srv.TeamID(), "", srv.AppHomeOpenedEvent(w.bob.ID, "home")), now, nil, 200,
			func(t *testing.T, v any) {
				m, ok := v.(slackevents.EventsAPIEvent).InnerEvent.Data.(*slackevents.AppHomeOpenedEvent)
				if !ok || m.User != w.bob.ID || m.Tab != "home" || !strings.HasPrefix(m.Channel, "D") {
					t.Errorf("event = %+v", m)
				}
			}},
		{"slash command", "/slack/commands", cmd.Body(), now, nil, 200,
			func(t *testing.T, v any) {
				c := v.(slack.SlashCommand)
				if c.Command != "/kraken" || c.Text != "status" || c.UserID != w.alice.ID || c.UserName != "alice" ||
					c.ChannelID != w.ops.ID || c.ChannelName != "ops" || c.TeamID != srv.TeamID() ||
					c.ResponseURL != cmd.ResponseURL || c.TriggerID != cmd.TriggerID || c.APIAppID != srv.AppID() {
					t.Errorf("command = %+v", c)
				}
			}},
		{"block action", "/slack/interactive",
			srv.BlockAction(slacktest.BlockAction{UserID: w.bob.ID, ChannelID: w.ops.ID, MessageTS: botTS, ActionID: "yes", BlockID: "confirm", Value: "go", Text: "Deploy"}).Body(),
			now, nil, 200,
			func(t *testing.T, v any) {
				cb := v.(slack.InteractionCallback)
				if cb.Type != slack.InteractionTypeBlockActions || len(cb.ActionCallback.BlockActions) != 1 {
					t.Fatalf("callback = %+v", cb)
				}
				a := cb.ActionCallback.BlockActions[0]
				if a.ActionID != "yes" || a.BlockID != "confirm" || a.Value != "go" || cb.User.ID != w.bob.ID ||
					cb.Container.MessageTs != botTS || cb.Channel.ID != w.ops.ID || cb.Message.Timestamp != botTS ||
					cb.Message.Text != "deploy hello-fanout?" || cb.TriggerID == "" || !strings.HasPrefix(cb.ResponseURL, srv.URL()) {
					t.Errorf("callback = %+v", cb)
				}
			}},
		{"url_verification", "/slack/events", srv.URLVerification("kraken-challenge"), now, nil, 200, nil},
		{"tampered body", "/slack/events", srv.EventCallback(srv.TeamID(), "", srv.AppMentionEvent(mention)), now,
			func(r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				r.Body = io.NopCloser(bytes.NewReader(bytes.Replace(b, []byte("deploy"), []byte("delete"), 1)))
			}, 401,
			func(t *testing.T, v any) {
				if !errors.Is(v.(error), slack.ErrInvalidSignature) {
					t.Errorf("error = %v", v)
				}
			}},
		{"timestamp six minutes old", "/slack/events", srv.EventCallback(srv.TeamID(), "", srv.AppMentionEvent(mention)), now.Add(-6 * time.Minute), nil, 401,
			func(t *testing.T, v any) {
				if !errors.Is(v.(error), slack.ErrExpiredTimestamp) {
					t.Errorf("error = %v", v)
				}
			}},
		{"timestamp four minutes old", "/slack/commands", cmd.Body(), now.Add(-4 * time.Minute), nil, 200, nil},
		{"wrong secret", "/slack/commands", cmd.Body(), now,
			func(r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				r.Body = io.NopCloser(bytes.NewReader(b))
				r.Header.Set("X-Slack-Signature", slacktest.Signature("not-the-secret", now, b))
			}, 401, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := srv.SignedRequest(botURL+tc.path, tc.body, tc.at)
			if tc.tamper != nil {
				tc.tamper(req)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d (%s), want %d", resp.StatusCode, body, tc.status)
			}
			if tc.name == "url_verification" && string(body) != "kraken-challenge" {
				t.Errorf("challenge answer = %q", body)
			}
			if tc.check == nil {
				drain(got)
				return
			}
			select {
			case v := <-got:
				tc.check(t, v)
			case <-time.After(5 * time.Second):
				t.Fatal("the receiver got nothing")
			}
		})
	}
}

func drain(ch chan any) {
	for {
		select {
		case <-ch:
		default:
			return
		}
	}
}

func TestSignatureIsSlacksScheme(t *testing.T) {
	// The example from Slack's "Verifying requests from Slack" page.
	body := []byte("token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c")
	got := slacktest.Signature("8f742231b10e8888abcd99yyyzzz85a5", time.Unix(1531420618, 0), body)
	if want := "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"; got != want {
		t.Errorf("signature = %s, want %s", got, want)
	}
}

func TestResponseURL(t *testing.T) {
	ctx := context.Background()
	w := newWorkspace(t)
	srv := w.srv
	_, ts, _ := w.api.PostMessageContext(ctx, w.ops.ID, slack.MsgOptionText("Deprovision ops?", false))
	cmd := srv.SlashCommand(slacktest.SlashCommand{Command: "/kraken", Text: "help", UserID: w.alice.ID, ChannelID: w.ops.ID})
	action := srv.BlockAction(slacktest.BlockAction{UserID: w.alice.ID, ChannelID: w.ops.ID, MessageTS: ts, ActionID: "confirm",
		State: map[string]map[string]any{"name": {"typed": "ops"}}})
	var cb slack.InteractionCallback
	if err := json.Unmarshal(action.Payload, &cb); err != nil {
		t.Fatal(err)
	}
	if cb.BlockActionState == nil || cb.BlockActionState.Values["name"]["typed"].Value != "ops" {
		t.Errorf("state = %s", action.Payload)
	}
	// slack-go posts to a response_url with the client's token-less JSON.
	anon := slack.New("")
	send := func(opts ...slack.MsgOption) {
		t.Helper()
		if _, _, err := anon.PostMessageContext(ctx, "", opts...); err != nil {
			t.Fatalf("response_url post: %v", err)
		}
	}

	send(slack.MsgOptionResponseURL(cmd.ResponseURL, slack.ResponseTypeEphemeral), slack.MsgOptionText("usage: /kraken …", false))
	send(slack.MsgOptionResponseURL(cmd.ResponseURL, slack.ResponseTypeInChannel), slack.MsgOptionText("alice asked for help", false))
	send(slack.MsgOptionReplaceOriginal(action.ResponseURL), slack.MsgOptionText("Deprovisioning ops…", false))

	if rs := srv.Responses(cmd.ResponseURL); len(rs) != 2 || rs[0].ResponseType != "ephemeral" || rs[1].ResponseType != "in_channel" {
		t.Errorf("responses = %+v", rs)
	}
	if es := srv.Ephemerals(w.ops.ID, w.alice.ID); len(es) != 1 || es[0].Via != "response_url" || es[0].Text != "usage: /kraken …" {
		t.Errorf("ephemerals = %+v", es)
	}
	msgs := srv.Messages(w.ops.ID)
	if len(msgs) != 2 || msgs[0].Text != "Deprovisioning ops…" || len(msgs[0].Versions) != 1 || msgs[1].Text != "alice asked for help" {
		t.Errorf("messages = %+v", msgs)
	}
	if rs := srv.Responses(action.ResponseURL); len(rs) != 1 || !rs[0].ReplaceOriginal {
		t.Errorf("action responses = %+v", rs)
	}
	send(slack.MsgOptionDeleteOriginal(action.ResponseURL))
	if _, ok := srv.Message(w.ops.ID, ts); !ok || len(srv.Messages(w.ops.ID)) != 1 {
		t.Errorf("delete_original left %+v", srv.Messages(w.ops.ID))
	}
	// A response_url takes five posts.
	for range 3 {
		send(slack.MsgOptionResponseURL(action.ResponseURL, slack.ResponseTypeEphemeral), slack.MsgOptionText("x", false))
	}
	if _, _, err := anon.PostMessageContext(ctx, "", slack.MsgOptionResponseURL(action.ResponseURL, slack.ResponseTypeEphemeral), slack.MsgOptionText("x", false)); err == nil {
		t.Error("a sixth post to a response_url was taken")
	}
	srv.WaitFor(t, "response_url", func(c slacktest.Call) bool { return c.Status == http.StatusNotFound }, time.Second)
}

// A slash command's "working on it" answer is replaced or removed through
// its response_url, as is an ephemeral message a button was pressed on.
func TestResponseURLActsOnItsEphemeral(t *testing.T) {
	ctx := context.Background()
	w := newWorkspace(t)
	srv := w.srv
	anon := slack.New("")
	send := func(opts ...slack.MsgOption) {
		t.Helper()
		if _, _, err := anon.PostMessageContext(ctx, "", opts...); err != nil {
			t.Fatalf("response_url post: %v", err)
		}
	}
	replaced := srv.SlashCommand(slacktest.SlashCommand{Command: "/kraken", Text: "what runs here?", UserID: w.alice.ID, ChannelID: w.ops.ID})
	send(slack.MsgOptionResponseURL(replaced.ResponseURL, slack.ResponseTypeEphemeral), slack.MsgOptionText("Thinking…", false))
	send(slack.MsgOptionReplaceOriginal(replaced.ResponseURL), slack.MsgOptionText("Two tentacles run here.", false))
	es := srv.Ephemerals(w.ops.ID, w.alice.ID)
	if len(es) != 1 || es[0].Text != "Two tentacles run here." || len(es[0].Versions) != 1 || es[0].Versions[0].Text != "Thinking…" {
		t.Fatalf("ephemerals = %+v", es)
	}

	deleted := srv.SlashCommand(slacktest.SlashCommand{Command: "/kraken", Text: "hello?", UserID: w.alice.ID, ChannelID: w.ops.ID})
	send(slack.MsgOptionResponseURL(deleted.ResponseURL, slack.ResponseTypeEphemeral), slack.MsgOptionText("Thinking…", false))
	send(slack.MsgOptionDeleteOriginal(deleted.ResponseURL))
	if es := srv.Ephemerals(w.ops.ID, w.alice.ID); len(es) != 1 || es[0].Text != "Two tentacles run here." {
		t.Fatalf("after delete_original: %+v", es)
	}
	// With nothing shown yet, replace_original has nothing to act on and
	// changes no one's messages.
	fresh := srv.SlashCommand(slacktest.SlashCommand{Command: "/kraken", Text: "x", UserID: w.bob.ID, ChannelID: w.ops.ID})
	send(slack.MsgOptionDeleteOriginal(fresh.ResponseURL))
	if es := srv.Ephemerals(w.ops.ID, ""); len(es) != 1 {
		t.Fatalf("a delete with nothing shown removed %+v", es)
	}

	// A button on an ephemeral message: its response_url replaces that
	// message, not a channel message with the same ts.
	ts, err := w.api.PostEphemeralContext(ctx, w.ops.ID, w.bob.ID, slack.MsgOptionText("Enter the secret", false))
	if err != nil {
		t.Fatal(err)
	}
	click := srv.BlockAction(slacktest.BlockAction{UserID: w.bob.ID, ChannelID: w.ops.ID, MessageTS: ts, Ephemeral: true, Value: "x"})
	send(slack.MsgOptionReplaceOriginal(click.ResponseURL), slack.MsgOptionText("Form opened.", false))
	if es := srv.Ephemerals(w.ops.ID, w.bob.ID); len(es) != 1 || es[0].Text != "Form opened." || len(es[0].Versions) != 1 {
		t.Errorf("bob's ephemerals = %+v", es)
	}
}
