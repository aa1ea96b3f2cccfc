package slacktest_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/slack-go/slack"

	"github.com/kraken-ops/kraken/bot/slacktest"
)

// workspace is the state most tests start from.
type workspace struct {
	srv              *slacktest.Server
	api              *slack.Client
	alice, bob, eve  slacktest.User
	ops, secret, off slacktest.Channel // bot in ops and secret, not in off
}

func newWorkspace(t *testing.T, opts ...slacktest.Option) workspace {
	t.Helper()
	srv := slacktest.New(t, opts...)
	w := workspace{srv: srv}
	w.alice = srv.AddUser(slacktest.User{Name: "alice", RealName: "Alice Ahl", Email: "alice@example.com", IsAdmin: true})
	w.bob = srv.AddUser(slacktest.User{Name: "bob", RealName: "Bob Berg", Email: "bob@example.com"})
	w.eve = srv.AddUser(slacktest.User{Name: "eve", Email: "eve@example.com", IsRestricted: true})
	w.ops = srv.AddChannel(slacktest.Channel{Name: "ops", Members: []string{srv.BotUserID(), w.alice.ID, w.bob.ID}, Topic: "deploys"})
	w.secret = srv.AddChannel(slacktest.Channel{Name: "secret", IsPrivate: true, Members: []string{srv.BotUserID(), w.alice.ID}})
	w.off = srv.AddChannel(slacktest.Channel{Name: "off-topic", Members: []string{w.bob.ID}})
	w.api = slack.New(srv.BotToken(), slack.OptionAPIURL(srv.APIURL()))
	return w
}

func slackErr(err error) string {
	var e slack.SlackErrorResponse
	if errors.As(err, &e) {
		return e.Err
	}
	if err != nil {
		return "other: " + err.Error()
	}
	return ""
}

func TestWebAPIRoundTrip(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name string
		opts []slacktest.Option
		run  func(t *testing.T, w workspace)
	}{
		{"auth.test", nil, func(t *testing.T, w workspace) {
			r, err := w.api.AuthTestContext(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if r.UserID != w.srv.BotUserID() || r.BotID != w.srv.BotID() || r.TeamID != w.srv.TeamID() ||
				r.Team != slacktest.DefaultTeamName || r.URL != "https://kraken-test.slack.com/" {
				t.Errorf("auth.test = %+v", r)
			}
		}},
		{"chat.postMessage with blocks in a thread", nil, func(t *testing.T, w workspace) {
			parentCh, parentTS, err := w.api.PostMessageContext(ctx, w.ops.ID, slack.MsgOptionText("deploying api", false))
			if err != nil {
				t.Fatal(err)
			}
			blocks := slack.MsgOptionBlocks(slack.NewSectionBlock(slack.NewTextBlockObject("mrkdwn", "*api* is live", false, false), nil, nil))
			ch, ts, err := w.api.PostMessageContext(ctx, w.ops.ID, slack.MsgOptionText("api is live", false), blocks, slack.MsgOptionTS(parentTS))
			if err != nil {
				t.Fatal(err)
			}
			if parentCh != w.ops.ID || ch != w.ops.ID || ts <= parentTS || !strings.Contains(ts, ".") {
				t.Fatalf("posted to %s at %s after %s", ch, ts, parentTS)
			}
			msgs := w.srv.Messages(w.ops.ID)
			if len(msgs) != 2 {
				t.Fatalf("messages = %+v", msgs)
			}
			reply := msgs[1]
			if reply.ThreadTS != parentTS || reply.User != w.srv.BotUserID() || reply.BotID != w.srv.BotID() ||
				!strings.Contains(reply.AllText(), "*api* is live") {
				t.Errorf("reply = %+v", reply)
			}
			if msgs[0].ThreadTS != parentTS {
				t.Errorf("parent's thread_ts = %q, want its own ts", msgs[0].ThreadTS)
			}
			call := w.srv.Calls("chat.postMessage")[1]
			if call.Param("thread_ts") != parentTS || call.Token != w.srv.BotToken() || !call.OK() {
				t.Errorf("recorded call = %+v", call)
			}
		}},
		{"chat.postMessage to a user opens the IM", nil, func(t *testing.T, w workspace) {
			ch, _, err := w.api.PostMessageContext(ctx, w.alice.ID, slack.MsgOptionText("hi", false))
			if err != nil {
				t.Fatal(err)
			}
			if ch != w.srv.DMChannel(w.alice.ID) || !strings.HasPrefix(ch, "D") || len(w.srv.Messages(ch)) != 1 {
				t.Errorf("IM %s, messages %v", ch, w.srv.Messages(ch))
			}
		}},
		{"chat.update keeps versions", nil, func(t *testing.T, w workspace) {
			_, ts, err := w.api.PostMessageContext(ctx, w.ops.ID, slack.MsgOptionText("run 1: 0/3", false))
			if err != nil {
				t.Fatal(err)
			}
			for _, text := range []string{"run 1: 1/3", "run 1: 3/3 done"} {
				if _, _, _, err := w.api.UpdateMessageContext(ctx, w.ops.ID, ts, slack.MsgOptionText(text, false)); err != nil {
					t.Fatal(err)
				}
			}
			m, ok := w.srv.Message(w.ops.ID, ts)
			if !ok || m.Text != "run 1: 3/3 done" || len(m.Versions) != 2 || m.Versions[0].Text != "run 1: 0/3" {
				t.Errorf("message = %+v", m)
			}
		}},
		{"chat.postEphemeral", nil, func(t *testing.T, w workspace) {
			ts, err := w.api.PostEphemeralContext(ctx, w.ops.ID, w.bob.ID, slack.MsgOptionText("only you", false))
			if err != nil || ts == "" {
				t.Fatalf("ts %q err %v", ts, err)
			}
			es := w.srv.Ephemerals(w.ops.ID, w.bob.ID)
			if len(es) != 1 || es[0].Text != "only you" || es[0].Via != "chat.postEphemeral" || es[0].TS != ts {
				t.Errorf("ephemerals = %+v", es)
			}
			if len(w.srv.Messages(w.ops.ID)) != 0 {
				t.Error("an ephemeral message landed in the channel")
			}
		}},
		{"chat.delete", nil, func(t *testing.T, w workspace) {
			_, ts, _ := w.api.PostMessageContext(ctx, w.ops.ID, slack.MsgOptionText("oops", false))
			ch, dts, err := w.api.DeleteMessageContext(ctx, w.ops.ID, ts)
			if err != nil || ch != w.ops.ID || dts != ts {
				t.Fatalf("delete: %s %s %v", ch, dts, err)
			}
			if len(w.srv.Messages(w.ops.ID)) != 0 {
				t.Error("deleted message still listed")
			}
			if _, _, err := w.api.DeleteMessageContext(ctx, w.ops.ID, ts); slackErr(err) != "message_not_found" {
				t.Errorf("second delete: %v", err)
			}
		}},
		{"conversations.info", nil, func(t *testing.T, w workspace) {
			w.srv.ArchiveChannel(w.secret.ID)
			c, err := w.api.GetConversationInfoContext(ctx, &slack.GetConversationInfoInput{ChannelID: w.secret.ID, IncludeNumMembers: true})
			if err != nil {
				t.Fatal(err)
			}
			if c.ID != w.secret.ID || c.Name != "secret" || !c.IsPrivate || !c.IsArchived || !c.IsMember || c.NumMembers != 2 || !c.IsChannel {
				t.Errorf("channel = %+v", c)
			}
			c, err = w.api.GetConversationInfoContext(ctx, &slack.GetConversationInfoInput{ChannelID: w.off.ID})
			if err != nil || c.IsMember || c.Name != "off-topic" || c.IsArchived {
				t.Errorf("off-topic = %+v, %v", c, err)
			}
		}},
		{"conversations.list", nil, func(t *testing.T, w workspace) {
			hidden := w.srv.AddChannel(slacktest.Channel{Name: "hidden", IsPrivate: true, Members: []string{w.bob.ID}})
			w.srv.ArchiveChannel(w.off.ID)
			chans, _, err := w.api.GetConversationsContext(ctx, &slack.GetConversationsParameters{
				Types: []string{"public_channel", "private_channel"}, ExcludeArchived: true,
			})
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, c := range chans {
				names = append(names, c.Name)
			}
			if !slices.Equal(names, []string{"ops", "secret"}) {
				t.Errorf("channels = %v (hidden %s must not show)", names, hidden.ID)
			}
		}},
		{"users.info", nil, func(t *testing.T, w workspace) {
			u, err := w.api.GetUserInfoContext(ctx, w.alice.ID)
			if err != nil {
				t.Fatal(err)
			}
			if u.ID != w.alice.ID || u.Name != "alice" || u.RealName != "Alice Ahl" || u.Profile.Email != "alice@example.com" ||
				!u.IsAdmin || u.IsBot || u.TeamID != w.srv.TeamID() {
				t.Errorf("user = %+v", u)
			}
			bot, err := w.api.GetUserInfoContext(ctx, w.srv.BotUserID())
			if err != nil || !bot.IsBot || bot.Profile.BotID != w.srv.BotID() {
				t.Errorf("bot = %+v, %v", bot, err)
			}
			guest, _ := w.api.GetUserInfoContext(ctx, w.eve.ID)
			if !guest.IsRestricted {
				t.Errorf("eve is a guest: %+v", guest)
			}
			w.srv.DeleteUser(w.bob.ID)
			if gone, _ := w.api.GetUserInfoContext(ctx, w.bob.ID); !gone.Deleted {
				t.Error("deactivated user not deleted")
			}
			if _, err := w.api.GetUserInfoContext(ctx, "U404"); slackErr(err) != "user_not_found" {
				t.Errorf("unknown user: %v", err)
			}
			if u, err := w.api.GetUserByEmailContext(ctx, "BOB@example.com"); err != nil || u.ID != w.bob.ID {
				t.Errorf("lookupByEmail: %+v %v", u, err)
			}
		}},
		{"views.publish", nil, func(t *testing.T, w workspace) {
			home := slack.HomeTabViewRequest{Type: slack.VTHomeTab, Blocks: slack.Blocks{BlockSet: []slack.Block{
				slack.NewSectionBlock(slack.NewTextBlockObject("mrkdwn", "Your enclaves: *ops*", false, false), nil, nil),
			}}, CallbackID: "home"}
			r, err := w.api.PublishViewContext(ctx, slack.PublishViewContextRequest{UserID: w.alice.ID, View: home})
			if err != nil {
				t.Fatal(err)
			}
			if r.ID == "" || r.Type != slack.VTHomeTab || r.Hash == "" || r.TeamID != w.srv.TeamID() || len(r.Blocks.BlockSet) != 1 {
				t.Errorf("view = %+v", r.View)
			}
			stale := "stale-hash"
			if _, err := w.api.PublishViewContext(ctx, slack.PublishViewContextRequest{UserID: w.alice.ID, View: home, Hash: &stale}); slackErr(err) != "hash_conflict" {
				t.Errorf("stale hash: %v", err)
			}
			if _, err := w.api.PublishViewContext(ctx, slack.PublishViewContextRequest{UserID: w.alice.ID, View: home, Hash: &r.Hash}); err != nil {
				t.Errorf("current hash: %v", err)
			}
			v, ok := w.srv.HomeView(w.alice.ID)
			if !ok || v.ID != r.ID || !strings.Contains(v.AllText(), "Your enclaves") || len(v.Versions) != 1 {
				t.Errorf("home = %+v", v)
			}
		}},
		{"views.open, push and update", nil, func(t *testing.T, w workspace) {
			modal := slack.ModalViewRequest{
				Type: slack.VTModal, Title: slack.NewTextBlockObject("plain_text", "Deprovision ops?", false, false),
				Submit: slack.NewTextBlockObject("plain_text", "Deprovision", false, false), CallbackID: "confirm",
				PrivateMetadata: "enclave=ops", ExternalID: "confirm-ops",
				Blocks: slack.Blocks{BlockSet: []slack.Block{slack.NewInputBlock("name", slack.NewTextBlockObject("plain_text", "Type the name", false, false), nil,
					slack.NewPlainTextInputBlockElement(nil, "name"))}},
			}
			if _, err := w.api.OpenViewContext(ctx, "made-up", modal); slackErr(err) != "invalid_trigger_id" {
				t.Errorf("made-up trigger: %v", err)
			}
			trigger := w.srv.NewTriggerID(w.alice.ID)
			r, err := w.api.OpenViewContext(ctx, trigger, modal)
			if err != nil {
				t.Fatal(err)
			}
			if r.ID == "" || r.CallbackID != "confirm" || r.PrivateMetadata != "enclave=ops" || r.RootViewID != r.ID || r.ExternalID != "confirm-ops" {
				t.Errorf("opened = %+v", r.View)
			}
			if _, err := w.api.OpenViewContext(ctx, trigger, modal); slackErr(err) != "exchanged_trigger_id" {
				t.Errorf("reused trigger: %v", err)
			}
			pushed, err := w.api.PushViewContext(ctx, w.srv.NewTriggerID(w.alice.ID), modal)
			if err != nil || pushed.PreviousViewID != r.ID || pushed.RootViewID != r.ID {
				t.Fatalf("push: %+v %v", pushed, err)
			}
			modal.Title = slack.NewTextBlockObject("plain_text", "Deprovisioning…", false, false)
			if _, err := w.api.UpdateViewContext(ctx, modal, "", "wrong", r.ID); slackErr(err) != "hash_conflict" {
				t.Errorf("stale update: %v", err)
			}
			u, err := w.api.UpdateViewContext(ctx, modal, "", r.Hash, r.ID)
			if err != nil || u.ID != r.ID || u.Title.Text != "Deprovisioning…" {
				t.Fatalf("update: %+v %v", u, err)
			}
			if _, err := w.api.UpdateViewContext(ctx, modal, "", "", "V404"); slackErr(err) != "not_found" {
				t.Errorf("unknown view: %v", err)
			}
			views := w.srv.Views(w.alice.ID)
			if len(views) != 2 || views[0].Title != "Deprovisioning…" || views[0].User != w.alice.ID || len(views[0].Versions) != 1 {
				t.Errorf("views = %+v", views)
			}
		}},
		{"views.open after the trigger expired", []slacktest.Option{slacktest.WithTriggerTTL(time.Nanosecond)}, func(t *testing.T, w workspace) {
			trigger := w.srv.NewTriggerID(w.alice.ID)
			modal := slack.ModalViewRequest{Type: slack.VTModal, Title: slack.NewTextBlockObject("plain_text", "x", false, false)}
			if _, err := w.api.OpenViewContext(ctx, trigger, modal); slackErr(err) != "expired_trigger_id" {
				t.Errorf("expired trigger: %v", err)
			}
		}},
		{"reactions.add and remove", nil, func(t *testing.T, w workspace) {
			_, ts, _ := w.api.PostMessageContext(ctx, w.ops.ID, slack.MsgOptionText("deploy?", false))
			ref := slack.NewRefToMessage(w.ops.ID, ts)
			if err := w.api.AddReactionContext(ctx, "eyes", ref); err != nil {
				t.Fatal(err)
			}
			if err := w.api.AddReactionContext(ctx, "eyes", ref); slackErr(err) != "already_reacted" {
				t.Errorf("twice: %v", err)
			}
			if m, _ := w.srv.Message(w.ops.ID, ts); !slices.Equal(m.Reactions["eyes"], []string{w.srv.BotUserID()}) {
				t.Errorf("reactions = %v", m.Reactions)
			}
			if err := w.api.RemoveReactionContext(ctx, "eyes", ref); err != nil {
				t.Fatal(err)
			}
			if err := w.api.RemoveReactionContext(ctx, "eyes", ref); slackErr(err) != "no_reaction" {
				t.Errorf("remove twice: %v", err)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.run(t, newWorkspace(t, tc.opts...))
		})
	}
}

func TestWebAPIErrors(t *testing.T) {
	ctx := context.Background()
	w := newWorkspace(t)
	_, botTS, _ := w.api.PostMessageContext(ctx, w.ops.ID, slack.MsgOptionText("mine", false))
	human := w.srv.UserMessage(w.ops.ID, w.alice.ID, "", "hers")
	hidden := w.srv.AddChannel(slacktest.Channel{Name: "hidden", IsPrivate: true, Members: []string{w.alice.ID}})
	archived := w.srv.AddChannel(slacktest.Channel{Name: "old", Members: []string{w.srv.BotUserID()}})
	w.srv.ArchiveChannel(archived.ID)

	cases := []struct {
		name string
		call func() error
		want string
	}{
		{"unknown channel", func() error {
			_, _, err := w.api.PostMessageContext(ctx, "C404", slack.MsgOptionText("x", false))
			return err
		}, "channel_not_found"},
		{"private channel without the bot", func() error {
			_, err := w.api.GetConversationInfoContext(ctx, &slack.GetConversationInfoInput{ChannelID: hidden.ID})
			return err
		}, "channel_not_found"},
		{"public channel without the bot", func() error {
			_, _, err := w.api.PostMessageContext(ctx, w.off.ID, slack.MsgOptionText("x", false))
			return err
		}, "not_in_channel"},
		{"archived channel", func() error {
			_, _, err := w.api.PostMessageContext(ctx, archived.ID, slack.MsgOptionText("x", false))
			return err
		}, "is_archived"},
		{"no text", func() error {
			_, _, err := w.api.PostMessageContext(ctx, w.ops.ID)
			return err
		}, "no_text"},
		{"update someone else's message", func() error {
			_, _, _, err := w.api.UpdateMessageContext(ctx, w.ops.ID, human.TS, slack.MsgOptionText("x", false))
			return err
		}, "cant_update_message"},
		{"update a missing message", func() error {
			_, _, _, err := w.api.UpdateMessageContext(ctx, w.ops.ID, "1.000001", slack.MsgOptionText("x", false))
			return err
		}, "message_not_found"},
		{"ephemeral to a user not in the channel", func() error {
			_, err := w.api.PostEphemeralContext(ctx, w.ops.ID, w.eve.ID, slack.MsgOptionText("x", false))
			return err
		}, "user_not_in_channel"},
		{"members of an unknown channel", func() error {
			_, _, err := w.api.GetUsersInConversationContext(ctx, &slack.GetUsersInConversationParameters{ChannelID: "C404"})
			return err
		}, "channel_not_found"},
		{"publish a modal as home", func() error {
			_, err := w.api.PublishViewContext(ctx, slack.PublishViewContextRequest{UserID: w.alice.ID,
				View: slack.HomeTabViewRequest{Type: slack.VTModal}})
			return err
		}, "invalid_arguments"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := slackErr(tc.call()); got != tc.want {
				t.Errorf("error = %q, want %q", got, tc.want)
			}
		})
	}
	if m, _ := w.srv.Message(w.ops.ID, botTS); m.Text != "mine" {
		t.Errorf("bot message changed: %+v", m)
	}

	t.Run("chat:write.public", func(t *testing.T) {
		w := newWorkspace(t, slacktest.WithChatWritePublic())
		if _, _, err := w.api.PostMessageContext(ctx, w.off.ID, slack.MsgOptionText("x", false)); err != nil {
			t.Error(err)
		}
	})

	t.Run("unknown method", func(t *testing.T) {
		resp, err := http.PostForm(w.srv.APIURL()+"kraken.summon", url.Values{"token": {w.srv.BotToken()}})
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body struct {
			OK    bool   `json:"ok"`
			Error string `json:"error"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.OK || body.Error != "unknown_method" || resp.StatusCode != 200 {
			t.Errorf("unknown method: %d %+v %v", resp.StatusCode, body, err)
		}
	})
}

func TestTokens(t *testing.T) {
	ctx := context.Background()
	srv := slacktest.New(t)
	ch := srv.AddChannel(slacktest.Channel{Name: "ops", Members: []string{srv.BotUserID()}})
	cases := []struct {
		name  string
		token string
		call  func(api *slack.Client) error
		want  string
	}{
		{"wrong bot token", "xoxb-wrong", func(api *slack.Client) error {
			_, err := api.AuthTestContext(ctx)
			return err
		}, "invalid_auth"},
		{"wrong token on a JSON method", "xoxb-wrong", func(api *slack.Client) error {
			_, err := api.PublishViewContext(ctx, slack.PublishViewContextRequest{UserID: srv.BotUserID(), View: slack.HomeTabViewRequest{Type: slack.VTHomeTab}})
			return err
		}, "invalid_auth"},
		{"missing token", "", func(api *slack.Client) error {
			_, _, err := api.PostMessageContext(ctx, ch.ID, slack.MsgOptionText("x", false))
			return err
		}, "not_authed"},
		{"app token on a bot method", srv.AppToken(), func(api *slack.Client) error {
			_, _, err := api.PostMessageContext(ctx, ch.ID, slack.MsgOptionText("x", false))
			return err
		}, "not_allowed_token_type"},
		{"bot token on apps.connections.open", srv.BotToken(), func(_ *slack.Client) error {
			api := slack.New(srv.BotToken(), slack.OptionAPIURL(srv.APIURL()), slack.OptionAppLevelToken(srv.BotToken()))
			_, _, err := api.StartSocketModeContext(ctx)
			return err
		}, "not_allowed_token_type"},
		{"right token", srv.BotToken(), func(api *slack.Client) error {
			_, _, err := api.PostMessageContext(ctx, ch.ID, slack.MsgOptionText("x", false))
			return err
		}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			api := slack.New(tc.token, slack.OptionAPIURL(srv.APIURL()))
			if got := slackErr(tc.call(api)); got != tc.want {
				t.Errorf("error = %q, want %q", got, tc.want)
			}
		})
	}
	if n := len(srv.Messages(ch.ID)); n != 1 {
		t.Errorf("%d messages posted, want only the one with the right token", n)
	}
}

func TestMembersPagination(t *testing.T) {
	ctx := context.Background()
	srv := slacktest.New(t)
	want := []string{srv.BotUserID()}
	for range 249 {
		want = append(want, srv.AddUser(slacktest.User{}).ID)
	}
	ch := srv.AddChannel(slacktest.Channel{Name: "big", Members: want})
	api := slack.New(srv.BotToken(), slack.OptionAPIURL(srv.APIURL()))

	cases := []struct {
		limit, pages int
	}{{100, 3}, {250, 1}, {1, 250}, {0, 3}}
	for _, tc := range cases {
		var got []string
		cursor, pages := "", 0
		for {
			members, next, err := api.GetUsersInConversationContext(ctx, &slack.GetUsersInConversationParameters{ChannelID: ch.ID, Cursor: cursor, Limit: tc.limit})
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, members...)
			pages++
			if next == "" {
				break
			}
			cursor = next
		}
		if !slices.Equal(got, want) || pages != tc.pages {
			t.Errorf("limit %d: %d members in %d pages, want %d in %d", tc.limit, len(got), pages, len(want), tc.pages)
		}
	}
	if _, _, err := api.GetUsersInConversationContext(ctx, &slack.GetUsersInConversationParameters{ChannelID: ch.ID, Cursor: "bogus"}); slackErr(err) != "invalid_cursor" {
		t.Errorf("bad cursor: %v", err)
	}

	for i := range 5 {
		srv.AddChannel(slacktest.Channel{Name: "c" + string(rune('a'+i))})
	}
	var names []string
	cursor := ""
	for {
		chans, next, err := api.GetConversationsContext(ctx, &slack.GetConversationsParameters{Cursor: cursor, Limit: 2})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range chans {
			names = append(names, c.Name)
		}
		if next == "" {
			break
		}
		cursor = next
	}
	if !slices.Equal(names, []string{"big", "ca", "cb", "cc", "cd", "ce"}) {
		t.Errorf("conversations.list pages: %v", names)
	}
}

func TestConversationsInviteKick(t *testing.T) {
	ctx := context.Background()
	w := newWorkspace(t)
	srv := w.srv
	general := srv.AddChannel(slacktest.Channel{Name: "general", IsGeneral: true, Members: []string{srv.BotUserID(), w.alice.ID, w.bob.ID}})
	archived := srv.AddChannel(slacktest.Channel{Name: "old", IsArchived: true, Members: []string{srv.BotUserID()}})
	single := srv.AddUser(slacktest.User{Name: "sam", IsUltraRestricted: true})
	srv.AddMembers(general.ID, single.ID)
	gone := srv.AddUser(slacktest.User{Name: "gone"})
	srv.DeleteUser(gone.ID)

	invite := []struct {
		name, channel string
		users         []string
		want          string
	}{
		{"bob to secret", w.secret.ID, []string{w.bob.ID}, ""},
		{"bob again", w.secret.ID, []string{w.bob.ID}, "already_in_channel"},
		{"one bad user adds no one", w.ops.ID, []string{w.eve.ID, "U0NOBODY"}, "user_not_found"},
		{"the bot itself", w.ops.ID, []string{srv.BotUserID()}, "cant_invite_self"},
		{"a deactivated user", w.ops.ID, []string{gone.ID}, "cant_invite"},
		{"a single-channel guest already in one", w.ops.ID, []string{single.ID}, "ura_max_channels"},
		{"bot not in the channel", w.off.ID, []string{w.alice.ID}, "not_in_channel"},
		{"archived", archived.ID, []string{w.alice.ID}, "is_archived"},
		{"no such channel", "C0NOWHERE", []string{w.alice.ID}, "channel_not_found"},
		{"no users", w.ops.ID, nil, "no_user"},
		{"an IM", srv.DMChannel(w.alice.ID), []string{w.bob.ID}, "method_not_supported_for_channel_type"},
	}
	for _, tc := range invite {
		_, err := w.api.InviteUsersToConversationContext(ctx, tc.channel, tc.users...)
		if got := slackErr(err); got != tc.want {
			t.Errorf("invite %s: error %q, want %q", tc.name, got, tc.want)
		}
	}
	if c, _ := srv.Channel(w.secret.ID); !slices.Equal(c.Members, []string{srv.BotUserID(), w.alice.ID, w.bob.ID}) {
		t.Errorf("secret members = %v", c.Members)
	}
	if c, _ := srv.Channel(w.ops.ID); slices.Contains(c.Members, w.eve.ID) {
		t.Errorf("a failed invite added eve: %v", c.Members)
	}

	kick := []struct {
		name, channel, user, want string
	}{
		{"bob from ops", w.ops.ID, w.bob.ID, ""},
		{"bob again", w.ops.ID, w.bob.ID, "not_in_channel"},
		{"the bot itself", w.ops.ID, srv.BotUserID(), "cant_kick_self"},
		{"from general", general.ID, w.bob.ID, "cant_kick_from_general"},
		{"unknown user", w.ops.ID, "U0NOBODY", "user_not_found"},
		{"bot not in the channel", w.off.ID, w.bob.ID, "not_in_channel"},
		{"no such channel", "C0NOWHERE", w.bob.ID, "channel_not_found"},
	}
	for _, tc := range kick {
		err := w.api.KickUserFromConversationContext(ctx, tc.channel, tc.user)
		if got := slackErr(err); got != tc.want {
			t.Errorf("kick %s: error %q, want %q", tc.name, got, tc.want)
		}
	}
	srv.FailNext("conversations.kick", 1, slacktest.Error("restricted_action"))
	if err := w.api.KickUserFromConversationContext(ctx, w.ops.ID, w.alice.ID); slackErr(err) != "restricted_action" {
		t.Errorf("restricted kick: %v", err)
	}
	if c, _ := srv.Channel(w.ops.ID); !slices.Equal(c.Members, []string{srv.BotUserID(), w.alice.ID}) {
		t.Errorf("ops members = %v", c.Members)
	}
	if calls := srv.Calls("conversations.invite"); len(calls) != len(invite) || calls[0].Param("users") != w.bob.ID || !calls[0].OK() {
		t.Errorf("invite calls = %+v", calls)
	}
}
