package slacktest

import (
	"encoding/json"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"
)

// Call is one request the fake received, recorded after it was answered.
type Call struct {
	// Method is the Web API method ("chat.postMessage") or a pseudo-method:
	// "files.upload", "files.download", "response_url".
	Method string
	// Path is the URL path requested ("/api/chat.postMessage").
	Path string
	// Params holds the query and the form, multipart or JSON body's fields.
	// Top-level JSON fields that are not strings are JSON text.
	Params url.Values
	// JSON is the decoded body when it was JSON.
	JSON   map[string]any
	Body   []byte
	Header http.Header
	Token  string
	At     time.Time
	// Status is the HTTP status answered; Error the "error" of an ok:false
	// answer; Response the decoded JSON answer (nil when not JSON).
	Status   int
	Error    string
	Response map[string]any
}

// Param returns a parameter's first value.
func (c Call) Param(name string) string { return c.Params.Get(name) }

// OK reports whether the call was answered 200 with ok:true.
func (c Call) OK() bool {
	ok, _ := c.Response["ok"].(bool)
	return c.Status == http.StatusOK && ok
}

func (s *Server) record(q *request, at time.Time, rep reply) {
	c := Call{Method: q.method, Path: q.r.URL.Path, At: at, Status: rep.status, Body: q.body, Token: q.token, JSON: q.json}
	c.Params = url.Values{}
	for k, v := range q.params {
		c.Params[k] = append([]string(nil), v...)
	}
	c.Header = q.r.Header.Clone()
	if strings.HasPrefix(rep.header.Get("Content-Type"), "application/json") {
		_ = json.Unmarshal(rep.body, &c.Response)
		if ok, _ := c.Response["ok"].(bool); !ok {
			c.Error, _ = c.Response["error"].(string)
		}
	}
	s.mu.Lock()
	s.calls = append(s.calls, c)
	s.notifyLocked()
	s.mu.Unlock()
}

// notifyLocked wakes everything waiting in WaitFor and WaitAck.
func (s *Server) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// Calls returns the recorded calls of a method in arrival order; all calls
// when method is "".
func (s *Server) Calls(method string) []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Call
	for _, c := range s.calls {
		if method == "" || c.Method == method {
			out = append(out, c)
		}
	}
	return out
}

// WaitFor waits until a call of method for which match returns true (any call
// when match is nil) has been answered, and returns it. Calls recorded before
// WaitFor was called count. match runs on the test's goroutine, without the
// fake's lock, so it may call the Server. It fails the test after timeout.
func (s *Server) WaitFor(t testing.TB, method string, match func(Call) bool, timeout time.Duration) Call {
	t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	checked := 0
	for {
		s.mu.Lock()
		fresh := append([]Call(nil), s.calls[checked:]...)
		checked = len(s.calls)
		ch := s.changed
		s.mu.Unlock()
		for _, c := range fresh {
			if c.Method == method && (match == nil || match(c)) {
				return c
			}
		}
		select {
		case <-ch:
		case <-timer.C:
			t.Fatalf("slacktest: no matching %s call within %s; calls so far:\n%s", method, timeout, s.Summary())
			return Call{}
		}
	}
}

// waitUntil runs cond under the lock each time something is recorded, until
// it returns true or timeout passes.
func (s *Server) waitUntil(timeout time.Duration, cond func() bool) bool {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		s.mu.Lock()
		if cond() {
			s.mu.Unlock()
			return true
		}
		ch := s.changed
		s.mu.Unlock()
		select {
		case <-ch:
		case <-timer.C:
			return false
		}
	}
}

// Message is a message in a channel, with its updates applied.
type Message struct {
	Channel  string
	TS       string
	ThreadTS string // set on replies (and on a thread's parent once it has replies)
	User     string
	BotID    string
	Subtype  string
	Text     string
	// Blocks, Attachments and Metadata are the JSON the poster sent.
	Blocks      json.RawMessage
	Attachments json.RawMessage
	Metadata    json.RawMessage
	Files       []string // file ids
	// Reactions maps an emoji name to the users who added it.
	Reactions map[string][]string
	// Versions are the earlier contents, oldest first: one per chat.update
	// (or response_url replace_original) applied.
	Versions []MessageVersion
	Deleted  bool
}

// MessageVersion is a message's content before an update.
type MessageVersion struct {
	Text        string
	Blocks      json.RawMessage
	Attachments json.RawMessage
}

// AllText returns the message's text and every "text" string in its blocks
// and attachments, joined by newlines: handy for asserting on content.
func (m Message) AllText() string {
	parts := []string{m.Text}
	for _, raw := range []json.RawMessage{m.Blocks, m.Attachments} {
		if len(raw) == 0 {
			continue
		}
		var v any
		if json.Unmarshal(raw, &v) == nil {
			collectText(v, &parts)
		}
	}
	return strings.Join(parts, "\n")
}

func collectText(v any, out *[]string) {
	switch x := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if str, ok := x[k].(string); ok && (k == "text" || k == "fallback" || k == "pretext" || k == "title" || k == "alt_text") {
				*out = append(*out, str)
				continue
			}
			collectText(x[k], out)
		}
	case []any:
		for _, e := range x {
			collectText(e, out)
		}
	}
}

func cloneMessage(m *Message) Message {
	out := *m
	out.Files = append([]string(nil), m.Files...)
	out.Versions = append([]MessageVersion(nil), m.Versions...)
	if m.Reactions != nil {
		out.Reactions = map[string][]string{}
		for k, v := range m.Reactions {
			out.Reactions[k] = append([]string(nil), v...)
		}
	}
	return out
}

// Messages returns a channel's messages (thread replies included), oldest
// first, with updates applied and deleted ones left out.
func (s *Server) Messages(channel string) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Message
	for _, m := range s.messages[channel] {
		if !m.Deleted {
			out = append(out, cloneMessage(m))
		}
	}
	return out
}

// Message returns one message, deleted or not.
func (s *Server) Message(channel, ts string) (Message, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.findMessageLocked(channel, ts)
	if m == nil {
		return Message{}, false
	}
	return cloneMessage(m), true
}

func (s *Server) findMessageLocked(channel, ts string) *Message {
	for _, m := range s.messages[channel] {
		if m.TS == ts {
			return m
		}
	}
	return nil
}

func (s *Server) addMessageLocked(m *Message) {
	if m.TS == "" {
		m.TS = s.newTSLocked()
	}
	if m.ThreadTS != "" && m.ThreadTS != m.TS {
		if parent := s.findMessageLocked(m.Channel, m.ThreadTS); parent != nil {
			parent.ThreadTS = parent.TS
		}
	}
	s.messages[m.Channel] = append(s.messages[m.Channel], m)
	s.notifyLocked()
}

// UserMessage stores a message as if a person wrote it in a channel (in a
// thread when threadTS is set) and returns it. Send the matching event with
// MessageEvent or AppMentionEvent.
func (s *Server) UserMessage(channel, user, threadTS, text string) Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := &Message{Channel: channel, User: user, ThreadTS: threadTS, Text: text}
	s.addMessageLocked(m)
	return cloneMessage(m)
}

// Ephemeral is a message only one user sees.
type Ephemeral struct {
	Channel     string
	User        string
	TS          string
	ThreadTS    string
	Text        string
	Blocks      json.RawMessage
	Attachments json.RawMessage
	// Via is "chat.postEphemeral" or "response_url".
	Via string
	// Versions are the earlier contents, oldest first, one per
	// replace_original through a response_url.
	Versions []MessageVersion
	// Deleted: a response_url's delete_original removed it.
	Deleted bool
}

// AllText is Message.AllText for an ephemeral message.
func (e Ephemeral) AllText() string {
	return Message{Text: e.Text, Blocks: e.Blocks, Attachments: e.Attachments}.AllText()
}

// Ephemerals returns the ephemeral messages shown to user in channel, oldest
// first, with replacements applied and deleted ones left out; every user's
// when user is "".
func (s *Server) Ephemerals(channel, user string) []Ephemeral {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Ephemeral
	for _, e := range s.ephemerals {
		if e.Channel == channel && (user == "" || e.User == user) && !e.Deleted {
			e.Versions = append([]MessageVersion(nil), e.Versions...)
			out = append(out, e)
		}
	}
	return out
}

func (s *Server) findEphemeralLocked(channel, user, ts string) *Ephemeral {
	if ts == "" {
		return nil
	}
	for i := range s.ephemerals {
		if e := &s.ephemerals[i]; e.Channel == channel && e.User == user && e.TS == ts && !e.Deleted {
			return e
		}
	}
	return nil
}

// View is a surface the bot opened, pushed or published.
type View struct {
	ID              string
	Type            string // "home" or "modal"
	User            string
	TriggerID       string
	CallbackID      string
	ExternalID      string
	PrivateMetadata string
	Hash            string
	RootViewID      string
	PreviousViewID  string
	Title           string // the title's text (modals)
	// JSON is the view as Slack returns it (the bot's view plus the fields
	// Slack adds), after updates.
	JSON json.RawMessage
	// Blocks are the view's blocks as the bot sent them.
	Blocks json.RawMessage
	// Versions holds the earlier JSON, one per views.update/views.publish
	// that replaced it.
	Versions []json.RawMessage
}

// AllText returns every "text" string in the view's blocks and title.
func (v View) AllText() string {
	return Message{Text: v.Title, Blocks: v.Blocks}.AllText()
}

// Views returns the views of a user (the App Home and every modal), in the
// order they were first opened, with updates applied.
func (s *Server) Views(user string) []View {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []View
	for _, id := range s.viewOrder {
		if v := s.views[id]; v.User == user {
			out = append(out, cloneView(v))
		}
	}
	return out
}

// HomeView returns the App Home view published for a user.
func (s *Server) HomeView(user string) (View, bool) {
	for _, v := range s.Views(user) {
		if v.Type == "home" {
			return v, true
		}
	}
	return View{}, false
}

// ViewByID returns a view by id.
func (s *Server) ViewByID(id string) (View, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.views[id]
	if !ok {
		return View{}, false
	}
	return cloneView(v), true
}

func cloneView(v *View) View {
	out := *v
	out.Versions = append([]json.RawMessage(nil), v.Versions...)
	return out
}
