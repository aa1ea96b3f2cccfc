package slacktest

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// --- signing ---

// Signature returns Slack's request signature for a body sent at a time:
// "v0=" + hex(HMAC-SHA256(secret, "v0:" + unix seconds + ":" + body)).
func Signature(secret string, at time.Time, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	fmt.Fprintf(mac, "v0:%d:", at.Unix())
	mac.Write(body)
	return "v0=" + hex.EncodeToString(mac.Sum(nil))
}

// SignedRequest builds the POST Slack would send to the bot's url at time at:
// the body with X-Slack-Request-Timestamp and X-Slack-Signature signed with
// SigningSecret, and a Content-Type of application/json for a JSON body
// (Events API) or application/x-www-form-urlencoded otherwise (slash
// commands, interactivity).
func (s *Server) SignedRequest(url string, body []byte, at time.Time) *http.Request {
	s.t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		s.t.Fatalf("slacktest: SignedRequest: %v", err)
	}
	if b := bytes.TrimSpace(body); len(b) > 0 && b[0] == '{' {
		req.Header.Set("Content-Type", "application/json")
	} else {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	req.Header.Set("User-Agent", "Slackbot 1.0 (+https://api.slack.com/robots)")
	req.Header.Set("X-Slack-Request-Timestamp", strconv.FormatInt(at.Unix(), 10))
	req.Header.Set("X-Slack-Signature", Signature(s.cfg.signingSecret, at, body))
	return req
}

// --- Events API ---

// EventCallback builds an Events API event_callback envelope around an inner
// event, as Slack posts it (and as Socket Mode carries it in an events_api
// envelope's payload). An empty eventID gets a fresh one.
func (s *Server) EventCallback(teamID, eventID string, inner map[string]any) []byte {
	s.mu.Lock()
	if eventID == "" {
		eventID = s.newIDLocked("Ev")
	}
	s.mu.Unlock()
	eventTime := time.Now().Unix()
	if ts, ok := inner["event_ts"].(string); ok {
		if f, err := strconv.ParseFloat(ts, 64); err == nil {
			eventTime = int64(f)
		}
	}
	return mustJSON(map[string]any{
		"token":      s.cfg.verificationToken,
		"team_id":    teamID,
		"api_app_id": s.cfg.appID,
		"event":      inner,
		"type":       "event_callback",
		"event_id":   eventID,
		"event_time": eventTime,
		"authorizations": []any{map[string]any{
			"enterprise_id": nil, "team_id": teamID, "user_id": s.cfg.botUserID,
			"is_bot": true, "is_enterprise_install": false,
		}},
		"is_ext_shared_channel": false,
		"event_context":         "4-" + eventID,
	})
}

// URLVerification builds the url_verification request Slack sends when the
// events URL is set.
func (s *Server) URLVerification(challenge string) []byte {
	return mustJSON(map[string]any{"token": s.cfg.verificationToken, "challenge": challenge, "type": "url_verification"})
}

// BotMention is how a message mentions the bot: "<@" + BotUserID() + ">".
func (s *Server) BotMention() string { return "<@" + s.cfg.botUserID + ">" }

func (s *Server) eventTS() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.newTSLocked()
}

func (s *Server) channelType(id string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.channels[id]
	switch {
	case !ok:
		return "channel"
	case c.IsIM:
		return "im"
	case c.IsPrivate:
		return "group"
	}
	return "channel"
}

// MessageEvent is the "message" event for a stored message (UserMessage,
// UploadFile, or one the bot posted).
func (s *Server) MessageEvent(m Message) map[string]any {
	ev := s.messageFields(m)
	ev["type"] = "message"
	ev["channel_type"] = s.channelType(m.Channel)
	return ev
}

// AppMentionEvent is the "app_mention" event for a stored message.
func (s *Server) AppMentionEvent(m Message) map[string]any {
	ev := s.messageFields(m)
	ev["type"] = "app_mention"
	return ev
}

func (s *Server) messageFields(m Message) map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	ev := s.messageJSONLocked(&m)
	ev["channel"] = m.Channel
	ev["event_ts"] = m.TS
	return ev
}

// MemberJoinedChannelEvent is "member_joined_channel" (the bot's own user
// joining is how Slack tells an app it was added to a channel).
func (s *Server) MemberJoinedChannelEvent(channel, user, inviter string) map[string]any {
	ev := map[string]any{
		"type": "member_joined_channel", "user": user, "channel": channel,
		"channel_type": channelTypeLetter(s.channelType(channel)), "team": s.cfg.teamID,
		"event_ts": s.eventTS(),
	}
	if inviter != "" {
		ev["inviter"] = inviter
	}
	return ev
}

// MemberLeftChannelEvent is "member_left_channel".
func (s *Server) MemberLeftChannelEvent(channel, user string) map[string]any {
	return map[string]any{
		"type": "member_left_channel", "user": user, "channel": channel,
		"channel_type": channelTypeLetter(s.channelType(channel)), "team": s.cfg.teamID,
		"event_ts": s.eventTS(),
	}
}

func channelTypeLetter(t string) string {
	switch t {
	case "group":
		return "G"
	case "im":
		return "D"
	}
	return "C"
}

// ChannelArchiveEvent is "channel_archive" (for a private channel Slack sends
// "group_archive"; the helper picks by the channel).
func (s *Server) ChannelArchiveEvent(channel, user string) map[string]any {
	t := "channel_archive"
	if s.channelType(channel) == "group" {
		t = "group_archive"
	}
	return map[string]any{"type": t, "channel": channel, "user": user, "is_moved": 0, "event_ts": s.eventTS()}
}

// ChannelUnarchiveEvent is "channel_unarchive" (or "group_unarchive").
func (s *Server) ChannelUnarchiveEvent(channel, user string) map[string]any {
	t := "channel_unarchive"
	if s.channelType(channel) == "group" {
		t = "group_unarchive"
	}
	return map[string]any{"type": t, "channel": channel, "user": user, "event_ts": s.eventTS()}
}

// ChannelDeletedEvent is "channel_deleted".
func (s *Server) ChannelDeletedEvent(channel string) map[string]any {
	return map[string]any{"type": "channel_deleted", "channel": channel, "event_ts": s.eventTS()}
}

// ChannelRenameEvent is "channel_rename".
func (s *Server) ChannelRenameEvent(channel, name string) map[string]any {
	return map[string]any{
		"type":     "channel_rename",
		"channel":  map[string]any{"id": channel, "name": name, "created": time.Now().Unix()},
		"event_ts": s.eventTS(),
	}
}

// AppHomeOpenedEvent is "app_home_opened" for a tab ("home" or "messages").
func (s *Server) AppHomeOpenedEvent(user, tab string) map[string]any {
	ev := map[string]any{
		"type": "app_home_opened", "user": user, "channel": s.DMChannel(user),
		"tab": tab, "event_ts": s.eventTS(),
	}
	if v, ok := s.HomeView(user); ok {
		ev["view"] = v.JSON
	}
	return ev
}

// FileSharedEvent is "file_shared" for a file shared in a channel.
func (s *Server) FileSharedEvent(f File, channel string) map[string]any {
	return map[string]any{
		"type": "file_shared", "file_id": f.ID, "user_id": f.User,
		"file": map[string]any{"id": f.ID}, "channel_id": channel, "event_ts": s.eventTS(),
	}
}

// --- slash commands ---

// SlashCommand is a slash command invocation. Server.SlashCommand fills what
// is left empty the way Slack would.
type SlashCommand struct {
	Command     string
	Text        string
	UserID      string
	ChannelID   string
	TeamID      string
	TriggerID   string
	ResponseURL string
	UserName    string
	ChannelName string
	TeamDomain  string
	APIAppID    string
	Token       string // the deprecated verification token
}

// SlashCommand fills a command's empty fields: team, names, app id, a fresh
// trigger_id (valid for views.open) and a fresh response_url on the fake.
func (s *Server) SlashCommand(c SlashCommand) SlashCommand {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.TeamID == "" {
		c.TeamID = s.cfg.teamID
	}
	if c.TeamDomain == "" {
		c.TeamDomain = s.cfg.teamDomain
	}
	if c.APIAppID == "" {
		c.APIAppID = s.cfg.appID
	}
	if c.Token == "" {
		c.Token = s.cfg.verificationToken
	}
	if c.UserName == "" {
		if u, ok := s.users[c.UserID]; ok {
			c.UserName = u.Name
		}
	}
	if c.ChannelName == "" {
		c.ChannelName = s.channelNameLocked(c.ChannelID)
	}
	if c.TriggerID == "" {
		c.TriggerID = s.newTriggerLocked(c.UserID)
	} else {
		s.registerTriggerLocked(c.TriggerID, c.UserID)
	}
	if c.ResponseURL == "" {
		c.ResponseURL = s.newResponseURLLocked(c.ChannelID, c.UserID, "", false)
	}
	return c
}

func (s *Server) channelNameLocked(id string) string {
	c, ok := s.channels[id]
	switch {
	case !ok:
		return ""
	case c.IsIM:
		return "directmessage"
	case c.IsPrivate && !contains(c.Members, s.cfg.botUserID):
		return "privategroup"
	}
	return c.Name
}

// Values encodes the command as Slack's form fields.
func (c SlashCommand) Values() url.Values {
	return url.Values{
		"token":                 {c.Token},
		"team_id":               {c.TeamID},
		"team_domain":           {c.TeamDomain},
		"channel_id":            {c.ChannelID},
		"channel_name":          {c.ChannelName},
		"user_id":               {c.UserID},
		"user_name":             {c.UserName},
		"command":               {c.Command},
		"text":                  {c.Text},
		"api_app_id":            {c.APIAppID},
		"is_enterprise_install": {"false"},
		"response_url":          {c.ResponseURL},
		"trigger_id":            {c.TriggerID},
	}
}

// Body is the form-encoded request body Slack posts for the command.
func (c SlashCommand) Body() []byte { return []byte(c.Values().Encode()) }

// socketPayload is the command as Socket Mode carries it: the same fields
// as a JSON object of strings.
func (c SlashCommand) socketPayload() json.RawMessage {
	m := map[string]string{}
	for k, v := range c.Values() {
		m[k] = v[0]
	}
	return mustJSON(m)
}

// --- interactivity ---

// Interaction is an interactivity payload (block_actions, view_submission).
type Interaction struct {
	Type        string
	Payload     json.RawMessage
	TriggerID   string
	ResponseURL string // empty for interactions in views
}

// Values is the form Slack posts: payload=<JSON>.
func (i Interaction) Values() url.Values { return url.Values{"payload": {string(i.Payload)}} }

// Body is the form-encoded request body Slack posts.
func (i Interaction) Body() []byte { return []byte(i.Values().Encode()) }

// BlockAction is a click on (or a choice in) an interactive element, in a
// message (ChannelID + MessageTS) or in a view (ViewID).
type BlockAction struct {
	UserID    string
	ChannelID string
	MessageTS string
	Ephemeral bool   // the message was ephemeral (not stored by the fake)
	ViewID    string // the action is in a view (App Home or modal)
	ActionID  string
	BlockID   string
	Value     string // a button's value
	// Type is the element type, "button" when empty. For a select,
	// SelectedValue is the chosen option's value.
	Type          string
	SelectedValue string
	Text          string // the button's label
	TeamID        string
	TriggerID     string
	ResponseURL   string
	// State is what the person had entered in the message's or view's
	// input blocks when they clicked: block_id → action_id → the element's
	// state, a string standing for a plain_text_input's value (as in
	// ViewSubmission.Values).
	State map[string]map[string]any
}

// BlockAction builds a block_actions payload, with the message or view it
// happened in taken from the fake's state, a fresh trigger_id and (for
// messages) a fresh response_url whose replace_original/delete_original act
// on that message.
func (s *Server) BlockAction(a BlockAction) Interaction {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a.TeamID == "" {
		a.TeamID = s.cfg.teamID
	}
	if a.Type == "" {
		a.Type = "button"
	}
	if a.TriggerID == "" {
		a.TriggerID = s.newTriggerLocked(a.UserID)
	} else {
		s.registerTriggerLocked(a.TriggerID, a.UserID)
	}
	action := map[string]any{
		"action_id": a.ActionID, "block_id": a.BlockID, "type": a.Type,
		"action_ts": s.newTSLocked(),
	}
	if a.Type == "button" {
		action["value"] = a.Value
		action["text"] = map[string]any{"type": "plain_text", "text": a.Text, "emoji": true}
	} else if a.SelectedValue != "" {
		action["selected_option"] = map[string]any{
			"text":  map[string]any{"type": "plain_text", "text": a.SelectedValue, "emoji": true},
			"value": a.SelectedValue,
		}
	}
	p := map[string]any{
		"type":                  "block_actions",
		"user":                  s.userRefLocked(a.UserID, a.TeamID),
		"api_app_id":            s.cfg.appID,
		"token":                 s.cfg.verificationToken,
		"trigger_id":            a.TriggerID,
		"team":                  map[string]any{"id": a.TeamID, "domain": s.cfg.teamDomain},
		"enterprise":            nil,
		"is_enterprise_install": false,
		"state":                 map[string]any{"values": stateValues(a.State)},
		"actions":               []any{action},
	}
	if a.ViewID != "" {
		p["container"] = map[string]any{"type": "view", "view_id": a.ViewID}
		if v, ok := s.views[a.ViewID]; ok {
			p["view"] = v.JSON
		}
	} else {
		if a.ResponseURL == "" {
			a.ResponseURL = s.newResponseURLLocked(a.ChannelID, a.UserID, a.MessageTS, a.Ephemeral)
		}
		p["container"] = map[string]any{
			"type": "message", "message_ts": a.MessageTS, "channel_id": a.ChannelID, "is_ephemeral": a.Ephemeral,
		}
		p["channel"] = map[string]any{"id": a.ChannelID, "name": s.channelNameLocked(a.ChannelID)}
		p["response_url"] = a.ResponseURL
		if m := s.findMessageLocked(a.ChannelID, a.MessageTS); m != nil && !a.Ephemeral {
			p["message"] = s.messageJSONLocked(m)
		}
	}
	return Interaction{Type: "block_actions", Payload: mustJSON(p), TriggerID: a.TriggerID, ResponseURL: a.ResponseURL}
}

func (s *Server) userRefLocked(id, teamID string) map[string]any {
	name := ""
	if u, ok := s.users[id]; ok {
		name = u.Name
	}
	return map[string]any{"id": id, "username": name, "name": name, "team_id": teamID}
}

// ViewSubmission is a person submitting a modal the bot opened.
type ViewSubmission struct {
	UserID string
	ViewID string
	// Values maps block_id → action_id → the element's state. A string is
	// taken as a plain_text_input's value; anything else is used as is
	// (e.g. map[string]any{"type": "static_select", "selected_option": …}).
	Values    map[string]map[string]any
	TeamID    string
	TriggerID string
}

// stateValues is the "values" of an interaction's state: a string stands
// for a plain_text_input's value, anything else is used as is.
func stateValues(in map[string]map[string]any) map[string]any {
	values := map[string]any{}
	for block, actions := range in {
		inner := map[string]any{}
		for action, val := range actions {
			if str, ok := val.(string); ok {
				inner[action] = map[string]any{"type": "plain_text_input", "value": str}
			} else {
				inner[action] = val
			}
		}
		values[block] = inner
	}
	return values
}

// ViewSubmission builds a view_submission payload for a view the bot opened.
func (s *Server) ViewSubmission(v ViewSubmission) Interaction {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v.TeamID == "" {
		v.TeamID = s.cfg.teamID
	}
	if v.TriggerID == "" {
		v.TriggerID = s.newTriggerLocked(v.UserID)
	} else {
		s.registerTriggerLocked(v.TriggerID, v.UserID)
	}
	values := stateValues(v.Values)
	view := map[string]any{"id": v.ViewID, "type": "modal"}
	if stored, ok := s.views[v.ViewID]; ok {
		_ = json.Unmarshal(stored.JSON, &view)
	} else {
		s.t.Errorf("slacktest: ViewSubmission: no view %q was opened", v.ViewID)
	}
	view["state"] = map[string]any{"values": values}
	p := map[string]any{
		"type":                  "view_submission",
		"team":                  map[string]any{"id": v.TeamID, "domain": s.cfg.teamDomain},
		"user":                  s.userRefLocked(v.UserID, v.TeamID),
		"api_app_id":            s.cfg.appID,
		"token":                 s.cfg.verificationToken,
		"trigger_id":            v.TriggerID,
		"view":                  view,
		"response_urls":         []any{},
		"is_enterprise_install": false,
		"enterprise":            nil,
	}
	return Interaction{Type: "view_submission", Payload: mustJSON(p), TriggerID: v.TriggerID}
}

// --- response_url ---

type responseURL struct {
	url       string
	channel   string
	user      string
	messageTS string
	ephemeral bool
	uses      int
	created   time.Time
	// shown is the ts of the ephemeral message this URL last posted (a
	// slash command's answer) or came from (a click on an ephemeral
	// message): the "original" that replace_original and
	// delete_original act on when there is no channel message.
	shown string
}

// NewResponseURL issues a response_url on the fake for a command or action
// by user in channel (on the message messageTS, if any).
func (s *Server) NewResponseURL(channel, user, messageTS string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.newResponseURLLocked(channel, user, messageTS, false)
}

func (s *Server) newResponseURLLocked(channel, user, messageTS string, ephemeral bool) string {
	id := s.newIDLocked("R")
	u := s.ts.URL + "/hooks/" + id
	ru := &responseURL{url: u, channel: channel, user: user, messageTS: messageTS, ephemeral: ephemeral, created: time.Now()}
	if ephemeral {
		ru.shown = messageTS
	}
	s.responses[id] = ru
	return u
}

// Response is one post the bot made to a response_url.
type Response struct {
	URL             string
	Text            string
	ResponseType    string // "ephemeral" (the default) or "in_channel"
	ReplaceOriginal bool
	DeleteOriginal  bool
	ThreadTS        string
	Blocks          json.RawMessage
	Attachments     json.RawMessage
	JSON            map[string]any
	At              time.Time
}

// AllText is Message.AllText for a response.
func (r Response) AllText() string {
	return Message{Text: r.Text, Blocks: r.Blocks, Attachments: r.Attachments}.AllText()
}

// Responses returns what the bot posted to a response_url (all response URLs
// when url is ""), oldest first.
func (s *Server) Responses(url string) []Response {
	var out []Response
	for _, c := range s.Calls("response_url") {
		u := s.ts.URL + c.Path
		if c.Status != http.StatusOK || (url != "" && u != url) {
			continue
		}
		out = append(out, responseFromJSON(u, c.JSON, c.At))
	}
	return out
}

func responseFromJSON(u string, m map[string]any, at time.Time) Response {
	str := func(k string) string { x, _ := m[k].(string); return x }
	raw := func(k string) json.RawMessage {
		if v, ok := m[k]; ok && v != nil {
			return mustJSON(v)
		}
		return nil
	}
	r := Response{
		URL: u, Text: str("text"), ResponseType: str("response_type"), ThreadTS: str("thread_ts"),
		ReplaceOriginal: truthy(m["replace_original"]), DeleteOriginal: truthy(m["delete_original"]),
		Blocks: raw("blocks"), Attachments: raw("attachments"), JSON: m, At: at,
	}
	if r.ResponseType == "" {
		r.ResponseType = "ephemeral"
	}
	return r
}

func truthy(v any) bool {
	switch x := v.(type) {
	case bool:
		return x
	case string:
		return x == "true"
	}
	return false
}

// handleResponseURL takes the bot's posts to a response_url and applies them
// as Slack does: replace_original/delete_original act on the message the
// action came from, or, when that was ephemeral or there was none (a slash
// command), on the ephemeral message the URL last showed; in_channel posts
// to the channel; anything else is shown ephemerally to the user. Each URL
// takes 5 posts within 30 minutes.
func (s *Server) handleResponseURL(w http.ResponseWriter, r *http.Request) {
	s.serve(w, r, "response_url", func(q *request) reply {
		s.mu.Lock()
		defer s.mu.Unlock()
		ru, ok := s.responses[r.PathValue("id")]
		if !ok || time.Since(ru.created) > 30*time.Minute {
			return textReply(http.StatusNotFound, "expired_url")
		}
		if ru.uses >= 5 {
			return textReply(http.StatusNotFound, "used_url")
		}
		if q.json == nil {
			return textReply(http.StatusBadRequest, "invalid_payload")
		}
		ru.uses++
		resp := responseFromJSON(ru.url, q.json, time.Now())
		var orig *Message
		if !ru.ephemeral {
			orig = s.findMessageLocked(ru.channel, ru.messageTS)
		}
		shown := s.findEphemeralLocked(ru.channel, ru.user, ru.shown)
		switch {
		case resp.DeleteOriginal && orig != nil:
			orig.Deleted = true
		case resp.DeleteOriginal && shown != nil:
			shown.Deleted = true
		case resp.DeleteOriginal:
		case resp.ReplaceOriginal && orig != nil:
			orig.Versions = append(orig.Versions, MessageVersion{Text: orig.Text, Blocks: orig.Blocks, Attachments: orig.Attachments})
			orig.Text, orig.Blocks, orig.Attachments = resp.Text, resp.Blocks, resp.Attachments
		case resp.ReplaceOriginal && shown != nil:
			shown.Versions = append(shown.Versions, MessageVersion{Text: shown.Text, Blocks: shown.Blocks, Attachments: shown.Attachments})
			shown.Text, shown.Blocks, shown.Attachments = resp.Text, resp.Blocks, resp.Attachments
		case resp.ResponseType == "in_channel" && !resp.ReplaceOriginal:
			s.addMessageLocked(&Message{
				Channel: ru.channel, User: s.cfg.botUserID, BotID: s.cfg.botID, ThreadTS: resp.ThreadTS,
				Text: resp.Text, Blocks: resp.Blocks, Attachments: resp.Attachments,
			})
		default:
			e := Ephemeral{
				Channel: ru.channel, User: ru.user, TS: s.newTSLocked(), ThreadTS: resp.ThreadTS,
				Text: resp.Text, Blocks: resp.Blocks, Attachments: resp.Attachments, Via: "response_url",
			}
			s.ephemerals = append(s.ephemerals, e)
			ru.shown = e.TS
		}
		s.notifyLocked()
		return jsonReply(http.StatusOK, map[string]any{"ok": true})
	})
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
