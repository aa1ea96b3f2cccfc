package slacktest_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/slack-go/slack"
	"github.com/slack-go/slack/slackevents"
	"github.com/slack-go/slack/socketmode"

	"github.com/kraken-ops/kraken/bot/slacktest"
)

// socketBot runs slack-go's socketmode client against the fake the way a
// bot would: it acks every request (a slash command with a reply, a
// view_submission with response_action "clear"), opens a modal for
// "/kraken deprovision", and hands what it saw to the test.
func socketBot(t *testing.T, srv *slacktest.Server) <-chan socketmode.Event {
	api := slack.New(srv.BotToken(), slack.OptionAPIURL(srv.APIURL()), slack.OptionAppLevelToken(srv.AppToken()))
	sm := socketmode.New(api, socketmode.OptionPingInterval(5*time.Second))
	ctx, cancel := context.WithCancel(context.Background())
	seen := make(chan socketmode.Event, 20)
	var wg sync.WaitGroup
	wg.Go(func() { _ = sm.RunContext(ctx) })
	wg.Go(func() {
		for {
			var ev socketmode.Event
			select {
			case <-ctx.Done():
				return
			case ev = <-sm.Events:
			}
			switch ev.Type {
			case socketmode.EventTypeEventsAPI:
				sm.Ack(*ev.Request)
			case socketmode.EventTypeSlashCommand:
				cmd := ev.Data.(slack.SlashCommand)
				sm.Ack(*ev.Request, map[string]any{"text": "on it: " + cmd.Text})
				if cmd.Text == "deprovision" {
					_, err := api.OpenViewContext(ctx, cmd.TriggerID, slack.ModalViewRequest{
						Type: slack.VTModal, CallbackID: "deprovision", Title: slack.NewTextBlockObject("plain_text", "Sure?", false, false),
					})
					if err != nil {
						t.Errorf("views.open: %v", err)
					}
				}
			case socketmode.EventTypeInteractive:
				cb := ev.Data.(slack.InteractionCallback)
				if cb.Type == slack.InteractionTypeViewSubmission {
					sm.Ack(*ev.Request, slack.NewClearViewSubmissionResponse())
				} else {
					sm.Ack(*ev.Request)
				}
			case socketmode.EventTypeHello, socketmode.EventTypeDisconnect:
			default:
				continue
			}
			seen <- ev
		}
	})
	t.Cleanup(func() { cancel(); wg.Wait() })
	return seen
}

func next(t *testing.T, seen <-chan socketmode.Event, typ socketmode.EventType) socketmode.Event {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev := <-seen:
			if ev.Type == typ {
				return ev
			}
		case <-timeout:
			t.Fatalf("no %s event", typ)
		}
	}
}

func TestSocketMode(t *testing.T) {
	w := newWorkspace(t, slacktest.WithPingInterval(100*time.Millisecond))
	srv := w.srv
	seen := socketBot(t, srv)

	hello := next(t, seen, socketmode.EventTypeHello)
	if hello.Request.ConnectionInfo.AppID != srv.AppID() || hello.Request.NumConnections != 1 {
		t.Errorf("hello = %+v", hello.Request)
	}
	srv.WaitConnected(1)
	if c := srv.Calls("apps.connections.open")[0]; c.Token != srv.AppToken() {
		t.Errorf("apps.connections.open token = %q", c.Token)
	}

	t.Run("events_api", func(t *testing.T) {
		m := srv.UserMessage(w.ops.ID, w.alice.ID, "", srv.BotMention()+" status")
		id := srv.SendEvent(srv.EventCallback(srv.TeamID(), "Ev42", srv.AppMentionEvent(m)))
		ack := srv.WaitAck(id)
		if ack.Payload != nil {
			t.Errorf("ack payload = %s", ack.Payload)
		}
		ev := next(t, seen, socketmode.EventTypeEventsAPI)
		api := ev.Data.(slackevents.EventsAPIEvent)
		mention, ok := api.InnerEvent.Data.(*slackevents.AppMentionEvent)
		if ev.Request.EnvelopeID != id || !ok || mention.User != w.alice.ID || mention.Text != m.Text ||
			api.Data.(*slackevents.EventsAPICallbackEvent).EventID != "Ev42" {
			t.Errorf("event = %+v %+v", ev.Request, api.InnerEvent.Data)
		}
	})

	t.Run("slash_commands and views.open", func(t *testing.T) {
		cmd := srv.SlashCommand(slacktest.SlashCommand{Command: "/kraken", Text: "deprovision", UserID: w.alice.ID, ChannelID: w.ops.ID})
		id := srv.SendSlashCommand(cmd)
		ack := srv.WaitAck(id)
		var reply struct{ Text string }
		if err := json.Unmarshal(ack.Payload, &reply); err != nil || reply.Text != "on it: deprovision" {
			t.Errorf("ack = %s (%v)", ack.Raw, err)
		}
		ev := next(t, seen, socketmode.EventTypeSlashCommand)
		got := ev.Data.(slack.SlashCommand)
		if got.Command != "/kraken" || got.UserID != w.alice.ID || got.ChannelName != "ops" || got.ResponseURL != cmd.ResponseURL ||
			got.TriggerID != cmd.TriggerID || !ev.Request.AcceptsResponsePayload {
			t.Errorf("command = %+v", got)
		}
		open := srv.WaitFor(t, "views.open", nil, 10*time.Second)
		if !open.OK() || open.Param("trigger_id") != cmd.TriggerID {
			t.Fatalf("views.open = %+v", open)
		}
		views := srv.Views(w.alice.ID)
		if len(views) != 1 || views[0].CallbackID != "deprovision" {
			t.Fatalf("views = %+v", views)
		}

		sub := srv.ViewSubmission(slacktest.ViewSubmission{UserID: w.alice.ID, ViewID: views[0].ID,
			Values: map[string]map[string]any{"name": {"name": "ops"}}})
		id = srv.SendInteractive(sub)
		ack = srv.WaitAck(id)
		if !strings.Contains(string(ack.Payload), `"response_action":"clear"`) {
			t.Errorf("view_submission ack = %s", ack.Raw)
		}
		cb := next(t, seen, socketmode.EventTypeInteractive).Data.(slack.InteractionCallback)
		if cb.Type != slack.InteractionTypeViewSubmission || cb.View.ID != views[0].ID || cb.View.CallbackID != "deprovision" ||
			cb.View.State.Values["name"]["name"].Value != "ops" {
			t.Errorf("submission = %+v", cb.View)
		}
	})

	t.Run("interactive block_actions", func(t *testing.T) {
		id := srv.SendInteractive(srv.BlockAction(slacktest.BlockAction{UserID: w.bob.ID, ChannelID: w.ops.ID, MessageTS: "1.000001", ActionID: "run", Value: "hello-fanout"}))
		srv.WaitAck(id)
		cb := next(t, seen, socketmode.EventTypeInteractive).Data.(slack.InteractionCallback)
		if cb.Type != slack.InteractionTypeBlockActions || cb.ActionCallback.BlockActions[0].Value != "hello-fanout" || cb.User.ID != w.bob.ID {
			t.Errorf("callback = %+v", cb)
		}
	})

	t.Run("disconnect and reconnect", func(t *testing.T) {
		before := time.Now()
		srv.SendDisconnect("refresh_requested")
		srv.WaitFor(t, "apps.connections.open", func(c slacktest.Call) bool { return c.At.After(before) }, 10*time.Second)
		srv.WaitConnected(1)
		id := srv.SendEvent(srv.EventCallback(srv.TeamID(), "", srv.ChannelArchiveEvent(w.ops.ID, w.alice.ID)))
		srv.WaitAck(id)
		if ev := next(t, seen, socketmode.EventTypeEventsAPI); ev.Request.EnvelopeID != id {
			t.Errorf("after reconnect got %s", ev.Request.EnvelopeID)
		}
	})

	if acks := srv.Acks(); len(acks) != 5 {
		t.Errorf("%d acks, want 5", len(acks))
	}
}

func TestSocketEndpoint(t *testing.T) {
	srv := slacktest.New(t, slacktest.WithPingInterval(20*time.Millisecond))
	api := slack.New(srv.BotToken(), slack.OptionAPIURL(srv.APIURL()), slack.OptionAppLevelToken(srv.AppToken()))
	_, wsURL, err := api.StartSocketModeContext(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(wsURL, "ws://127.0.0.1:") || !strings.Contains(wsURL, "/socket?ticket=") {
		t.Errorf("url = %s", wsURL)
	}
	conn, _, err := websocket.DefaultDialer.Dial(wsURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var hello map[string]any
	if err := conn.ReadJSON(&hello); err != nil || hello["type"] != "hello" {
		t.Fatalf("first message = %v (%v)", hello, err)
	}
	// The fake pings; a client that answers stays connected.
	pinged := make(chan struct{}, 1)
	conn.SetPingHandler(func(data string) error {
		select {
		case pinged <- struct{}{}:
		default:
		}
		return conn.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
	})
	go func() {
		for {
			if _, _, err := conn.ReadMessage(); err != nil {
				return
			}
		}
	}()
	select {
	case <-pinged:
	case <-time.After(5 * time.Second):
		t.Fatal("no PING from the fake")
	}
	// A ticket is good for one connection.
	if _, resp, err := websocket.DefaultDialer.Dial(wsURL, nil); err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("second dial with the same ticket: %v", err)
	}
	// Anything the client writes is recorded as an ack.
	if err := conn.WriteJSON(map[string]any{"envelope_id": "env-x", "payload": map[string]any{"text": "hi"}}); err != nil {
		t.Fatal(err)
	}
	if a := srv.WaitAck("env-x"); string(a.Payload) != `{"text":"hi"}` {
		t.Errorf("ack = %s", a.Raw)
	}
}
