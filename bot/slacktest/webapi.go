package slacktest

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

func (s *Server) methods() map[string]func(*request) reply {
	return map[string]func(*request) reply{
		"auth.test":                    s.authTest,
		"chat.postMessage":             s.chatPostMessage,
		"chat.update":                  s.chatUpdate,
		"chat.postEphemeral":           s.chatPostEphemeral,
		"chat.delete":                  s.chatDelete,
		"conversations.info":           s.conversationsInfo,
		"conversations.members":        s.conversationsMembers,
		"conversations.list":           s.conversationsList,
		"conversations.invite":         s.conversationsInvite,
		"conversations.kick":           s.conversationsKick,
		"users.info":                   s.usersInfo,
		"users.lookupByEmail":          s.usersLookupByEmail,
		"views.open":                   s.viewsOpen,
		"views.push":                   s.viewsPush,
		"views.publish":                s.viewsPublish,
		"views.update":                 s.viewsUpdate,
		"reactions.add":                s.reactionsAdd,
		"reactions.remove":             s.reactionsRemove,
		"files.getUploadURLExternal":   s.filesGetUploadURLExternal,
		"files.completeUploadExternal": s.filesCompleteUploadExternal,
		"files.info":                   s.filesInfo,
		"apps.connections.open":        s.appsConnectionsOpen,
	}
}

// --- auth ---

func (s *Server) authTest(q *request) reply {
	return okReply(map[string]any{
		"url":                   "https://" + s.cfg.teamDomain + ".slack.com/",
		"team":                  s.cfg.teamName,
		"user":                  s.cfg.botName,
		"team_id":               s.cfg.teamID,
		"user_id":               s.cfg.botUserID,
		"bot_id":                s.cfg.botID,
		"is_enterprise_install": false,
	})
}

// --- channels ---

// visibleLocked returns a channel the bot can see by id.
func (s *Server) visibleLocked(id string) (*Channel, string) {
	c, ok := s.channels[id]
	if !ok || (c.IsPrivate && !contains(c.Members, s.cfg.botUserID)) {
		return nil, "channel_not_found"
	}
	return c, ""
}

// postTargetLocked resolves the channel argument of the chat methods: a
// channel id, a channel name (with or without #), or a user id for the IM.
func (s *Server) postTargetLocked(arg string) (*Channel, string) {
	if c, code := s.visibleLocked(arg); code == "" {
		return c, ""
	}
	if u, ok := s.users[arg]; ok && !u.Deleted {
		return s.channels[s.dmLocked(arg)], ""
	}
	name := strings.TrimPrefix(arg, "#")
	for _, id := range s.chanOrder {
		if c, ok := s.channels[id]; ok && !c.IsIM && c.Name == name {
			return s.visibleLocked(id)
		}
	}
	return nil, "channel_not_found"
}

// postableLocked is the channel the bot writes to for a chat or file
// method's channel argument, or Slack's error code for why it may not.
func (s *Server) postableLocked(arg string) (*Channel, string) {
	c, code := s.postTargetLocked(arg)
	if code == "" {
		code = s.canPostLocked(c)
	}
	return c, code
}

// canPostLocked applies Slack's rules for the bot writing to a channel.
func (s *Server) canPostLocked(c *Channel) string {
	if c.IsArchived {
		return "is_archived"
	}
	if !c.IsIM && !contains(c.Members, s.cfg.botUserID) && (c.IsPrivate || !s.cfg.chatWritePublic) {
		return "not_in_channel"
	}
	return ""
}

func (s *Server) channelJSONLocked(c *Channel, withNumMembers bool) map[string]any {
	created := c.Created.Unix()
	if c.IsIM {
		m := map[string]any{
			"id": c.ID, "created": created, "is_im": true, "is_org_shared": false,
			"user": c.IMUser, "is_user_deleted": false, "priority": 0,
			"is_archived": c.IsArchived,
		}
		if u, ok := s.users[c.IMUser]; ok {
			m["is_user_deleted"] = u.Deleted
		}
		return m
	}
	topic := map[string]any{"value": c.Topic, "creator": "", "last_set": 0}
	purpose := map[string]any{"value": c.Purpose, "creator": "", "last_set": 0}
	m := map[string]any{
		"id":                         c.ID,
		"name":                       c.Name,
		"name_normalized":            c.Name,
		"is_channel":                 true,
		"is_group":                   false,
		"is_im":                      false,
		"is_mpim":                    false,
		"is_private":                 c.IsPrivate,
		"is_archived":                c.IsArchived,
		"is_general":                 c.IsGeneral,
		"is_shared":                  false,
		"is_ext_shared":              false,
		"is_org_shared":              false,
		"is_pending_ext_shared":      false,
		"is_member":                  contains(c.Members, s.cfg.botUserID),
		"created":                    created,
		"creator":                    c.Creator,
		"unlinked":                   0,
		"context_team_id":            s.cfg.teamID,
		"shared_team_ids":            []string{s.cfg.teamID},
		"pending_shared":             []string{},
		"pending_connected_team_ids": []string{},
		"previous_names":             []string{},
		"topic":                      topic,
		"purpose":                    purpose,
		"updated":                    created * 1000,
	}
	if withNumMembers {
		m["num_members"] = len(c.Members)
	}
	return m
}

func (s *Server) conversationsInfo(q *request) reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, code := s.visibleLocked(q.get("channel"))
	if code != "" {
		return errReply(code)
	}
	return okReply(map[string]any{"channel": s.channelJSONLocked(c, q.get("include_num_members") == "true")})
}

// pageOf cuts [0,n) into a page after cursor. Cursors are opaque base64
// strings, as in Slack.
func pageOf(n int, cursor, limitArg string) (start, end int, next, code string) {
	limit := 100
	if limitArg != "" {
		l, err := strconv.Atoi(limitArg)
		if err != nil || l < 0 {
			return 0, 0, "", "invalid_limit"
		}
		if l > 0 {
			limit = min(l, 1000)
		}
	}
	if cursor != "" {
		raw, err := base64.StdEncoding.DecodeString(cursor)
		off, ok := strings.CutPrefix(string(raw), "offset:")
		i, convErr := strconv.Atoi(off)
		if err != nil || !ok || convErr != nil || i < 0 || i > n {
			return 0, 0, "", "invalid_cursor"
		}
		start = i
	}
	end = min(start+limit, n)
	if end < n {
		next = base64.StdEncoding.EncodeToString([]byte("offset:" + strconv.Itoa(end)))
	}
	return start, end, next, ""
}

func (s *Server) conversationsMembers(q *request) reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, code := s.visibleLocked(q.get("channel"))
	if code != "" {
		return errReply(code)
	}
	start, end, next, code := pageOf(len(c.Members), q.get("cursor"), q.get("limit"))
	if code != "" {
		return errReply(code)
	}
	return okReply(map[string]any{
		"members":           append([]string{}, c.Members[start:end]...),
		"response_metadata": map[string]any{"next_cursor": next},
	})
}

func (s *Server) conversationsList(q *request) reply {
	types := strings.Split(q.get("types"), ",")
	if q.get("types") == "" {
		types = []string{"public_channel"}
	}
	for _, t := range types {
		switch strings.TrimSpace(t) {
		case "public_channel", "private_channel", "im", "mpim":
		default:
			return errReply("invalid_types")
		}
	}
	want := func(t string) bool { return contains(types, t) }
	excludeArchived := q.get("exclude_archived") == "true" || q.get("exclude_archived") == "1"

	s.mu.Lock()
	defer s.mu.Unlock()
	var list []*Channel
	for _, id := range s.chanOrder {
		c, ok := s.channels[id]
		if !ok || (excludeArchived && c.IsArchived) {
			continue
		}
		switch {
		case c.IsIM:
			if !want("im") {
				continue
			}
		case c.IsPrivate:
			if !want("private_channel") || !contains(c.Members, s.cfg.botUserID) {
				continue
			}
		default:
			if !want("public_channel") {
				continue
			}
		}
		list = append(list, c)
	}
	start, end, next, code := pageOf(len(list), q.get("cursor"), q.get("limit"))
	if code != "" {
		return errReply(code)
	}
	out := []any{}
	for _, c := range list[start:end] {
		out = append(out, s.channelJSONLocked(c, true))
	}
	return okReply(map[string]any{"channels": out, "response_metadata": map[string]any{"next_cursor": next}})
}

// memberTargetLocked is the channel of conversations.invite and
// conversations.kick: one the bot can see, is a member of, and which takes
// members (not an IM); or Slack's error code.
func (s *Server) memberTargetLocked(id string) (*Channel, string) {
	c, code := s.visibleLocked(id)
	switch {
	case code != "":
		return nil, code
	case c.IsIM:
		return nil, "method_not_supported_for_channel_type"
	case !contains(c.Members, s.cfg.botUserID):
		return nil, "not_in_channel"
	case c.IsArchived:
		return nil, "is_archived"
	}
	return c, ""
}

// conversationsInvite adds users (comma-separated, up to 1000) to a channel
// the bot is in. As in Slack, one user that cannot be added fails the whole
// call and adds no one; the per-user reasons are in "errors".
func (s *Server) conversationsInvite(q *request) reply {
	var users []string
	for _, u := range strings.Split(q.get("users"), ",") {
		if u = strings.TrimSpace(u); u != "" {
			users = append(users, u)
		}
	}
	if len(users) == 0 {
		return errReply("no_user")
	}
	if len(users) > 1000 {
		return errReply("too_many_users")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c, code := s.memberTargetLocked(q.get("channel"))
	if code != "" {
		return errReply(code)
	}
	var failures []any
	first := ""
	for _, id := range users {
		u, ok := s.users[id]
		code := ""
		switch {
		case !ok:
			code = "user_not_found"
		case id == s.cfg.botUserID:
			code = "cant_invite_self"
		case u.Deleted:
			code = "cant_invite"
		case contains(c.Members, id):
			code = "already_in_channel"
		case u.IsUltraRestricted && s.channelCountLocked(id) > 0:
			code = "ura_max_channels"
		}
		if code != "" {
			if first == "" {
				first = code
			}
			failures = append(failures, map[string]any{"user": id, "ok": false, "error": code})
		}
	}
	if first != "" {
		return jsonReply(http.StatusOK, map[string]any{"ok": false, "error": first, "errors": failures})
	}
	c.Members = dedupe(append(c.Members, users...))
	s.notifyLocked()
	return okReply(map[string]any{"channel": s.channelJSONLocked(c, false)})
}

// channelCountLocked is how many channels (not IMs) a user is in.
func (s *Server) channelCountLocked(user string) int {
	n := 0
	for _, c := range s.channels {
		if !c.IsIM && contains(c.Members, user) {
			n++
		}
	}
	return n
}

// conversationsKick removes a user from a channel the bot is in. A
// workspace that lets only admins remove people answers restricted_action:
// inject it with FailNext(Error("restricted_action")).
func (s *Server) conversationsKick(q *request) reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, code := s.memberTargetLocked(q.get("channel"))
	if code != "" {
		return errReply(code)
	}
	user := q.get("user")
	switch _, ok := s.users[user]; {
	case user == "" || !ok:
		return errReply("user_not_found")
	case user == s.cfg.botUserID:
		return errReply("cant_kick_self")
	case c.IsGeneral:
		return errReply("cant_kick_from_general")
	case !contains(c.Members, user):
		return errReply("not_in_channel")
	}
	var keep []string
	for _, m := range c.Members {
		if m != user {
			keep = append(keep, m)
		}
	}
	c.Members = keep
	s.notifyLocked()
	return okReply(map[string]any{"errors": map[string]any{}})
}

// --- users ---

func (s *Server) userJSONLocked(u *User) map[string]any {
	profile := map[string]any{
		"real_name":               u.RealName,
		"real_name_normalized":    u.RealName,
		"display_name":            u.DisplayName,
		"display_name_normalized": u.DisplayName,
		"team":                    s.cfg.teamID,
		"status_text":             "",
		"status_emoji":            "",
		"image_48":                "https://avatars.slack-edge.com/" + u.ID + "_48.png",
	}
	if u.Email != "" {
		profile["email"] = u.Email
	}
	if u.IsBot {
		profile["bot_id"] = u.BotID
		profile["api_app_id"] = s.cfg.appID
	}
	return map[string]any{
		"id":                  u.ID,
		"team_id":             s.cfg.teamID,
		"name":                u.Name,
		"deleted":             u.Deleted,
		"color":               "9f69e7",
		"real_name":           u.RealName,
		"tz":                  u.TZ,
		"tz_label":            u.TZ,
		"tz_offset":           0,
		"profile":             profile,
		"is_admin":            u.IsAdmin,
		"is_owner":            u.IsOwner,
		"is_primary_owner":    false,
		"is_restricted":       u.IsRestricted,
		"is_ultra_restricted": u.IsUltraRestricted,
		"is_bot":              u.IsBot,
		"is_app_user":         false,
		"updated":             s.epoch,
	}
}

func (s *Server) usersInfo(q *request) reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.users[q.get("user")]
	if !ok {
		return errReply("user_not_found")
	}
	return okReply(map[string]any{"user": s.userJSONLocked(u)})
}

func (s *Server) usersLookupByEmail(q *request) reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range s.userOrder {
		if u := s.users[id]; u.Email != "" && strings.EqualFold(u.Email, q.get("email")) {
			return okReply(map[string]any{"user": s.userJSONLocked(u)})
		}
	}
	return errReply("users_not_found")
}

// --- chat ---

// rawJSONParam returns a JSON parameter (blocks, attachments, metadata) and
// whether it was present, or ok=false when it is not valid JSON.
func rawJSONParam(q *request, name string) (raw json.RawMessage, present, ok bool) {
	if _, present = q.params[name]; !present {
		return nil, false, true
	}
	v := q.get(name)
	if v == "" {
		return nil, true, true
	}
	if !json.Valid([]byte(v)) {
		return nil, true, false
	}
	return json.RawMessage(v), true, true
}

func (s *Server) messageJSONLocked(m *Message) map[string]any {
	out := map[string]any{
		"type": "message",
		"text": m.Text,
		"ts":   m.TS,
		"team": s.cfg.teamID,
	}
	if m.User != "" {
		out["user"] = m.User
	}
	if m.BotID != "" {
		out["bot_id"] = m.BotID
		out["app_id"] = s.cfg.appID
		out["bot_profile"] = map[string]any{
			"id": m.BotID, "app_id": s.cfg.appID, "name": s.cfg.botName,
			"deleted": false, "team_id": s.cfg.teamID, "updated": s.epoch,
		}
	}
	if m.Subtype != "" {
		out["subtype"] = m.Subtype
	}
	if m.ThreadTS != "" {
		out["thread_ts"] = m.ThreadTS
	}
	if len(m.Blocks) > 0 {
		out["blocks"] = m.Blocks
	}
	if len(m.Attachments) > 0 {
		out["attachments"] = m.Attachments
	}
	if len(m.Metadata) > 0 {
		out["metadata"] = m.Metadata
	}
	if len(m.Versions) > 0 {
		out["edited"] = map[string]any{"user": m.User, "ts": m.TS}
	}
	if len(m.Files) > 0 {
		var files []any
		for _, id := range m.Files {
			if f, ok := s.files[id]; ok {
				files = append(files, s.fileJSONLocked(f))
			}
		}
		out["files"] = files
		out["upload"] = true
	}
	if len(m.Reactions) > 0 {
		names := make([]string, 0, len(m.Reactions))
		for n := range m.Reactions {
			names = append(names, n)
		}
		slices.Sort(names)
		var rs []any
		for _, n := range names {
			rs = append(rs, map[string]any{"name": n, "users": m.Reactions[n], "count": len(m.Reactions[n])})
		}
		out["reactions"] = rs
	}
	return out
}

func (s *Server) chatPostMessage(q *request) reply {
	blocks, _, ok1 := rawJSONParam(q, "blocks")
	atts, _, ok2 := rawJSONParam(q, "attachments")
	meta, _, ok3 := rawJSONParam(q, "metadata")
	switch {
	case q.get("channel") == "":
		return errReply("channel_not_found")
	case !ok1:
		return errReply("invalid_blocks")
	case !ok2:
		return errReply("invalid_attachments")
	case !ok3:
		return errReply("invalid_metadata")
	case q.get("text") == "" && len(blocks) == 0 && len(atts) == 0:
		return errReply("no_text")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c, code := s.postableLocked(q.get("channel"))
	if code != "" {
		return errReply(code)
	}
	m := &Message{
		Channel: c.ID, User: s.cfg.botUserID, BotID: s.cfg.botID,
		Text: q.get("text"), Blocks: blocks, Attachments: atts, Metadata: meta,
		ThreadTS: q.get("thread_ts"),
	}
	s.addMessageLocked(m)
	return okReply(map[string]any{"channel": c.ID, "ts": m.TS, "message": s.messageJSONLocked(m)})
}

func (s *Server) chatUpdate(q *request) reply {
	blocks, hasBlocks, ok1 := rawJSONParam(q, "blocks")
	atts, hasAtts, ok2 := rawJSONParam(q, "attachments")
	switch {
	case !ok1:
		return errReply("invalid_blocks")
	case !ok2:
		return errReply("invalid_attachments")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c, m, code := s.ownMessageLocked(q, "cant_update_message")
	switch {
	case code != "":
		return errReply(code)
	case c.IsArchived:
		return errReply("is_archived")
	}
	_, hasText := q.params["text"]
	if !hasText && !hasBlocks && !hasAtts {
		return errReply("no_text")
	}
	m.Versions = append(m.Versions, MessageVersion{Text: m.Text, Blocks: m.Blocks, Attachments: m.Attachments})
	if hasText {
		m.Text = q.get("text")
	}
	if hasBlocks {
		m.Blocks = blocks
	}
	if hasAtts {
		m.Attachments = atts
	}
	s.notifyLocked()
	return okReply(map[string]any{"channel": c.ID, "ts": m.TS, "text": m.Text, "message": s.messageJSONLocked(m)})
}

func (s *Server) chatPostEphemeral(q *request) reply {
	blocks, _, ok1 := rawJSONParam(q, "blocks")
	atts, _, ok2 := rawJSONParam(q, "attachments")
	switch {
	case q.get("channel") == "":
		return errReply("channel_not_found")
	case !ok1:
		return errReply("invalid_blocks")
	case !ok2:
		return errReply("invalid_attachments")
	case q.get("user") == "":
		return errReply("user_not_found")
	case q.get("text") == "" && len(blocks) == 0 && len(atts) == 0:
		return errReply("no_text")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c, code := s.postableLocked(q.get("channel"))
	if code != "" {
		return errReply(code)
	}
	user := q.get("user")
	if _, ok := s.users[user]; !ok {
		return errReply("user_not_found")
	}
	if !contains(c.Members, user) {
		return errReply("user_not_in_channel")
	}
	e := Ephemeral{
		Channel: c.ID, User: user, TS: s.newTSLocked(), ThreadTS: q.get("thread_ts"),
		Text: q.get("text"), Blocks: blocks, Attachments: atts, Via: "chat.postEphemeral",
	}
	s.ephemerals = append(s.ephemerals, e)
	s.notifyLocked()
	return okReply(map[string]any{"message_ts": e.TS})
}

// ownMessageLocked finds the message a chat.update or chat.delete names
// (channel and ts), which must be the bot's own; notMine is Slack's code
// for someone else's. It returns the error code to answer, or "".
func (s *Server) ownMessageLocked(q *request, notMine string) (*Channel, *Message, string) {
	c, code := s.visibleLocked(q.get("channel"))
	if code != "" {
		return nil, nil, code
	}
	m := s.findMessageLocked(c.ID, q.get("ts"))
	switch {
	case m == nil || m.Deleted:
		return c, nil, "message_not_found"
	case m.BotID != s.cfg.botID:
		return c, nil, notMine
	}
	return c, m, ""
}

func (s *Server) chatDelete(q *request) reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, m, code := s.ownMessageLocked(q, "cant_delete_message")
	if code != "" {
		return errReply(code)
	}
	m.Deleted = true
	s.notifyLocked()
	return okReply(map[string]any{"channel": c.ID, "ts": m.TS})
}

// --- reactions ---

func (s *Server) reactionTargetLocked(q *request) (*Message, string) {
	if q.get("name") == "" {
		return nil, "invalid_name"
	}
	c, code := s.visibleLocked(q.get("channel"))
	if code != "" {
		return nil, code
	}
	m := s.findMessageLocked(c.ID, q.get("timestamp"))
	if m == nil || m.Deleted {
		return nil, "message_not_found"
	}
	return m, ""
}

func (s *Server) reactionsAdd(q *request) reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, code := s.reactionTargetLocked(q)
	if code != "" {
		return errReply(code)
	}
	name := q.get("name")
	if contains(m.Reactions[name], s.cfg.botUserID) {
		return errReply("already_reacted")
	}
	if m.Reactions == nil {
		m.Reactions = map[string][]string{}
	}
	m.Reactions[name] = append(m.Reactions[name], s.cfg.botUserID)
	s.notifyLocked()
	return okReply(nil)
}

func (s *Server) reactionsRemove(q *request) reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, code := s.reactionTargetLocked(q)
	if code != "" {
		return errReply(code)
	}
	name := q.get("name")
	if !contains(m.Reactions[name], s.cfg.botUserID) {
		return errReply("no_reaction")
	}
	var keep []string
	for _, u := range m.Reactions[name] {
		if u != s.cfg.botUserID {
			keep = append(keep, u)
		}
	}
	if len(keep) == 0 {
		delete(m.Reactions, name)
	} else {
		m.Reactions[name] = keep
	}
	s.notifyLocked()
	return okReply(nil)
}

// --- views ---

type trigger struct {
	user   string
	issued time.Time
	used   bool
}

// NewTriggerID issues a trigger_id for a user, as Slack does with each slash
// command and interaction; views.open and views.push accept it once, within
// the trigger TTL.
func (s *Server) NewTriggerID(user string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.newTriggerLocked(user)
}

func (s *Server) newTriggerLocked(user string) string {
	s.seq++
	id := fmt.Sprintf("%d.%d.%016x", s.epoch, s.seq, uint64(s.seq)*0x9e3779b97f4a7c15)
	s.triggers[id] = trigger{user: user, issued: time.Now()}
	return id
}

func (s *Server) registerTriggerLocked(id, user string) {
	if _, ok := s.triggers[id]; !ok && id != "" {
		s.triggers[id] = trigger{user: user, issued: time.Now()}
	}
}

func (s *Server) useTriggerLocked(id string) (string, string) {
	tr, ok := s.triggers[id]
	switch {
	case id == "" || !ok:
		return "", "invalid_trigger_id"
	case tr.used:
		return "", "exchanged_trigger_id"
	case s.cfg.triggerTTL > 0 && time.Since(tr.issued) > s.cfg.triggerTTL:
		return "", "expired_trigger_id"
	}
	tr.used = true
	s.triggers[id] = tr
	return tr.user, ""
}

// viewSpec decodes the "view" argument.
// viewSpecOf is the request's view, which must be of the given type, as
// Slack refuses a home tab in views.open and a modal in views.publish.
func viewSpecOf(q *request, typ string) (map[string]any, string) {
	spec, code := viewSpec(q)
	if code == "" && spec["type"] != typ {
		return nil, "invalid_arguments"
	}
	return spec, code
}

func viewSpec(q *request) (map[string]any, string) {
	raw := q.get("view")
	if raw == "" {
		return nil, "invalid_arguments"
	}
	var spec map[string]any
	if err := json.Unmarshal([]byte(raw), &spec); err != nil {
		return nil, "invalid_arguments"
	}
	return spec, ""
}

func (s *Server) newHashLocked() string {
	s.seq++
	return fmt.Sprintf("%d.%08x", s.epoch, uint32(s.seq)*2654435761)
}

// setViewLocked fills v from spec and renders the JSON Slack returns.
func (s *Server) setViewLocked(v *View, spec map[string]any) {
	if len(v.JSON) > 0 {
		v.Versions = append(v.Versions, v.JSON)
	}
	v.Hash = s.newHashLocked()
	str := func(k string) string { x, _ := spec[k].(string); return x }
	v.Type = str("type")
	v.CallbackID = str("callback_id")
	v.PrivateMetadata = str("private_metadata")
	if ext := str("external_id"); ext != "" {
		v.ExternalID = ext
	}
	v.Title = ""
	if t, ok := spec["title"].(map[string]any); ok {
		v.Title, _ = t["text"].(string)
	}
	out := map[string]any{}
	for k, val := range spec {
		out[k] = val
	}
	if _, ok := out["blocks"]; !ok {
		out["blocks"] = []any{}
	}
	v.Blocks, _ = json.Marshal(out["blocks"])
	nullable := func(x string) any {
		if x == "" {
			return nil
		}
		return x
	}
	out["id"] = v.ID
	out["team_id"] = s.cfg.teamID
	out["hash"] = v.Hash
	out["private_metadata"] = v.PrivateMetadata
	out["callback_id"] = v.CallbackID
	out["external_id"] = v.ExternalID
	out["root_view_id"] = nullable(v.RootViewID)
	out["previous_view_id"] = nullable(v.PreviousViewID)
	out["app_id"] = s.cfg.appID
	out["app_installed_team_id"] = s.cfg.teamID
	out["bot_id"] = s.cfg.botID
	if _, ok := out["state"]; !ok {
		out["state"] = map[string]any{"values": map[string]any{}}
	}
	for _, k := range []string{"clear_on_close", "notify_on_close"} {
		if _, ok := out[k]; !ok {
			out[k] = false
		}
	}
	v.JSON, _ = json.Marshal(out)
	s.notifyLocked()
}

func (s *Server) newViewLocked(user string) *View {
	v := &View{ID: s.newIDLocked("V"), User: user}
	s.views[v.ID] = v
	s.viewOrder = append(s.viewOrder, v.ID)
	return v
}

func (s *Server) viewsOpen(q *request) reply {
	spec, code := viewSpecOf(q, "modal")
	if code != "" {
		return errReply(code)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	user, code := s.useTriggerLocked(q.get("trigger_id"))
	if code != "" {
		return errReply(code)
	}
	v := s.newViewLocked(user)
	v.TriggerID = q.get("trigger_id")
	v.RootViewID = v.ID
	s.setViewLocked(v, spec)
	return okReply(map[string]any{"view": v.JSON})
}

func (s *Server) viewsPush(q *request) reply {
	spec, code := viewSpecOf(q, "modal")
	if code != "" {
		return errReply(code)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	user, code := s.useTriggerLocked(q.get("trigger_id"))
	if code != "" {
		return errReply(code)
	}
	var prev *View
	for i := len(s.viewOrder) - 1; i >= 0; i-- {
		if w := s.views[s.viewOrder[i]]; w.User == user && w.Type == "modal" {
			prev = w
			break
		}
	}
	if prev == nil {
		return errReply("not_found")
	}
	v := s.newViewLocked(user)
	v.TriggerID = q.get("trigger_id")
	v.RootViewID, v.PreviousViewID = prev.RootViewID, prev.ID
	s.setViewLocked(v, spec)
	return okReply(map[string]any{"view": v.JSON})
}

func (s *Server) viewsPublish(q *request) reply {
	spec, code := viewSpecOf(q, "home")
	if code != "" {
		return errReply(code)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	user := q.get("user_id")
	if u, ok := s.users[user]; !ok || u.Deleted {
		return errReply("user_not_found")
	}
	var v *View
	for _, id := range s.viewOrder {
		if w := s.views[id]; w.User == user && w.Type == "home" {
			v = w
		}
	}
	if v != nil && q.get("hash") != "" && q.get("hash") != v.Hash {
		return errReply("hash_conflict")
	}
	if v == nil {
		v = s.newViewLocked(user)
	}
	s.setViewLocked(v, spec)
	return okReply(map[string]any{"view": v.JSON})
}

func (s *Server) viewsUpdate(q *request) reply {
	spec, code := viewSpec(q)
	if code != "" {
		return errReply(code)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var v *View
	if id := q.get("view_id"); id != "" {
		v = s.views[id]
	} else if ext := q.get("external_id"); ext != "" {
		for _, id := range s.viewOrder {
			if s.views[id].ExternalID == ext {
				v = s.views[id]
			}
		}
	} else {
		return errReply("invalid_arguments")
	}
	if v == nil {
		return errReply("not_found")
	}
	if q.get("hash") != "" && q.get("hash") != v.Hash {
		return errReply("hash_conflict")
	}
	if t, _ := spec["type"].(string); t != v.Type {
		return errReply("invalid_arguments")
	}
	s.setViewLocked(v, spec)
	return okReply(map[string]any{"view": v.JSON})
}

// --- Socket Mode ---

func (s *Server) appsConnectionsOpen(q *request) reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	ticket := fmt.Sprintf("%016x", uint64(s.seq)*0x9e3779b97f4a7c15)
	s.tickets[ticket] = true
	wsURL := "ws" + strings.TrimPrefix(s.ts.URL, "http") + "/socket?ticket=" + ticket + "&app_id=" + s.cfg.appID
	return okReply(map[string]any{"url": wsURL})
}
