// Package slacktest is a fake Slack for end-to-end tests: a Web API server
// that records calls, a signer for Events API requests, and a Socket Mode
// endpoint.
//
// New starts it on 127.0.0.1 and stops it when the test ends. Point slack-go
// at it with
//
//	api := slack.New(srv.BotToken(), slack.OptionAPIURL(srv.APIURL()),
//		slack.OptionAppLevelToken(srv.AppToken()))
//
// The fake holds a small workspace (a team, users, channels with members, the
// bot's own user) that tests set up with AddUser, AddChannel, SetMembers,
// ArchiveChannel and friends, and it answers the Web API methods the bot uses
// the way Slack does: the same JSON shapes, the same error codes, tokens
// checked. Every request is recorded (Calls, WaitFor) and what the bot
// produced can be read back as state (Messages, Ephemerals, Views, Files,
// Responses). FailNext and Delay inject rate limits, errors and latency.
//
// Requests the test sends to the bot are built here too: SignedRequest signs
// a body the way Slack signs Events API, slash command and interactivity
// requests, and EventCallback, SlashCommand, BlockAction and ViewSubmission
// build those bodies. Over Socket Mode the same payloads go out with
// SendEvent, SendSlashCommand and SendInteractive, and WaitAck waits for the
// bot's acknowledgement.
//
// The package imports no Slack client library: the JSON it serves is written
// from Slack's documented shapes, so tests that run slack-go against it check
// the client and the fake against each other rather than against themselves.
//
// Besides the Web API methods, these pseudo-methods are recorded and accept
// FailNext and Delay: "files.upload" (the upload URL of files upload v2),
// "files.download" (a file's url_private) and "response_url" (posts to a
// slash command's or an interaction's response_url).
package slacktest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Defaults used when no Option overrides them.
const (
	DefaultTeamID            = "T0KRAKEN1"
	DefaultTeamName          = "Kraken Test"
	DefaultTeamDomain        = "kraken-test"
	DefaultBotUserID         = "U0KRAKBOT"
	DefaultBotID             = "B0KRAKBOT"
	DefaultBotName           = "kraken"
	DefaultAppID             = "A0KRAKEN1"
	DefaultBotToken          = "xoxb-kraken-test-token"
	DefaultAppToken          = "xapp-1-kraken-test-token"
	DefaultSigningSecret     = "kraken-test-signing-secret"
	DefaultVerificationToken = "kraken-test-verification-token"
)

// Option configures a Server.
type Option func(*config)

type config struct {
	teamID, teamName, teamDomain string
	botUserID, botID, botName    string
	appID                        string
	botToken, appToken           string
	signingSecret                string
	verificationToken            string
	pingInterval                 time.Duration
	triggerTTL                   time.Duration
	waitTimeout                  time.Duration
	chatWritePublic              bool
}

// WithTeam sets the workspace's id, name and domain.
func WithTeam(id, name, domain string) Option {
	return func(c *config) { c.teamID, c.teamName, c.teamDomain = id, name, domain }
}

// WithBot sets the bot's user id, bot id and user name.
func WithBot(userID, botID, name string) Option {
	return func(c *config) { c.botUserID, c.botID, c.botName = userID, botID, name }
}

// WithAppID sets the app's id (api_app_id in payloads).
func WithAppID(id string) Option { return func(c *config) { c.appID = id } }

// WithBotToken sets the bot token (xoxb-) the Web API accepts.
func WithBotToken(tok string) Option { return func(c *config) { c.botToken = tok } }

// WithAppToken sets the app-level token (xapp-) apps.connections.open accepts.
func WithAppToken(tok string) Option { return func(c *config) { c.appToken = tok } }

// WithSigningSecret sets the secret SignedRequest signs with.
func WithSigningSecret(secret string) Option { return func(c *config) { c.signingSecret = secret } }

// WithVerificationToken sets the deprecated verification token put in payloads.
func WithVerificationToken(tok string) Option {
	return func(c *config) { c.verificationToken = tok }
}

// WithPingInterval sets how often the Socket Mode endpoint sends a websocket
// PING (default 5s). slack-go's socketmode client reconnects when it sees no
// PING for 30s.
func WithPingInterval(d time.Duration) Option { return func(c *config) { c.pingInterval = d } }

// WithTriggerTTL sets how long a trigger_id stays valid for views.open and
// views.push (default 3s, as in Slack). Zero or less: trigger ids never expire.
func WithTriggerTTL(d time.Duration) Option { return func(c *config) { c.triggerTTL = d } }

// WithWaitTimeout sets how long SendEvent and friends wait for a Socket Mode
// connection and WaitAck waits for an ack (default 10s).
func WithWaitTimeout(d time.Duration) Option { return func(c *config) { c.waitTimeout = d } }

// WithChatWritePublic lets the bot post to public channels it is not a member
// of, as with Slack's chat:write.public scope. Without it chat.postMessage to
// such a channel answers not_in_channel.
func WithChatWritePublic() Option { return func(c *config) { c.chatWritePublic = true } }

// User is a workspace member as the fake knows it.
type User struct {
	ID          string // generated when empty
	Name        string // the handle; defaults to a lower-case form of the id
	RealName    string
	DisplayName string
	Email       string
	IsBot       bool
	BotID       string // for bot users
	IsAdmin     bool
	IsOwner     bool
	// IsRestricted marks a multi-channel guest, IsUltraRestricted a
	// single-channel guest.
	IsRestricted      bool
	IsUltraRestricted bool
	Deleted           bool
	TZ                string // defaults to "Europe/Oslo"
}

// Channel is a conversation as the fake knows it. Private channels are
// invisible to the bot unless it is a member (Slack answers
// channel_not_found); an IM is made by posting to a user id or by DMChannel.
type Channel struct {
	ID         string // generated when empty: C…, G… for private, D… for IMs
	Name       string
	IsPrivate  bool
	IsArchived bool
	IsIM       bool
	IsGeneral  bool
	Members    []string
	Creator    string
	Topic      string
	Purpose    string
	Created    time.Time
	// IMUser is the other party of an IM.
	IMUser string
}

// Server is the fake Slack. All its methods are safe for concurrent use.
type Server struct {
	t   testing.TB
	cfg config
	ts  *httptest.Server
	mux *http.ServeMux
	api map[string]func(*request) reply

	mu      sync.Mutex
	changed chan struct{} // closed and replaced whenever something is recorded
	seq     int64         // for ids
	tsSeq   int64         // for message timestamps
	epoch   int64

	users      map[string]*User
	userOrder  []string
	channels   map[string]*Channel
	chanOrder  []string
	messages   map[string][]*Message // by channel, in ts order
	ephemerals []Ephemeral
	views      map[string]*View
	viewOrder  []string
	files      map[string]*File
	fileOrder  []string
	triggers   map[string]trigger
	responses  map[string]*responseURL
	calls      []Call
	faults     map[string][]*faultQueue
	delays     map[string]time.Duration

	// Socket Mode
	tickets map[string]bool
	conns   []*wsConn
	acks    []Ack
	closing bool
	wg      sync.WaitGroup
}

// New starts a fake Slack on 127.0.0.1 and stops it when the test ends.
func New(t testing.TB, opts ...Option) *Server {
	t.Helper()
	cfg := config{
		teamID: DefaultTeamID, teamName: DefaultTeamName, teamDomain: DefaultTeamDomain,
		botUserID: DefaultBotUserID, botID: DefaultBotID, botName: DefaultBotName,
		appID: DefaultAppID, botToken: DefaultBotToken, appToken: DefaultAppToken,
		signingSecret: DefaultSigningSecret, verificationToken: DefaultVerificationToken,
		pingInterval: 5 * time.Second, triggerTTL: 3 * time.Second, waitTimeout: 10 * time.Second,
	}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.pingInterval <= 0 {
		cfg.pingInterval = 5 * time.Second
	}
	if cfg.waitTimeout <= 0 {
		cfg.waitTimeout = 10 * time.Second
	}
	s := &Server{
		t: t, cfg: cfg,
		changed:   make(chan struct{}),
		epoch:     time.Now().Unix(),
		users:     map[string]*User{},
		channels:  map[string]*Channel{},
		messages:  map[string][]*Message{},
		views:     map[string]*View{},
		files:     map[string]*File{},
		triggers:  map[string]trigger{},
		responses: map[string]*responseURL{},
		faults:    map[string][]*faultQueue{},
		delays:    map[string]time.Duration{},
		tickets:   map[string]bool{},
	}
	s.api = s.methods()
	s.AddUser(User{ID: cfg.botUserID, Name: cfg.botName, RealName: "The Kraken", IsBot: true, BotID: cfg.botID})

	s.mux = http.NewServeMux()
	s.mux.HandleFunc("/api/{method}", s.handleAPI)
	s.mux.HandleFunc("POST /upload/{file}", s.handleUpload)
	s.mux.HandleFunc("GET /files-pri/{teamfile}/{name}", s.handleDownload)
	s.mux.HandleFunc("GET /files-pri/{teamfile}/download/{name}", s.handleDownload)
	s.mux.HandleFunc("GET /signin", s.handleSignin)
	s.mux.HandleFunc("POST /hooks/{id}", s.handleResponseURL)
	s.mux.HandleFunc("GET /socket", s.handleSocket)

	s.ts = httptest.NewUnstartedServer(s.mux)
	s.ts.Start() // httptest listens on 127.0.0.1
	t.Cleanup(s.close)
	return s
}

func (s *Server) close() {
	s.mu.Lock()
	s.closing = true
	conns := append([]*wsConn(nil), s.conns...)
	s.mu.Unlock()
	for _, c := range conns {
		c.close()
	}
	s.wg.Wait()
	s.ts.Close()
	if s.t.Failed() {
		s.t.Logf("slacktest: calls received:\n%s", s.Summary())
	}
}

// URL is the fake's base URL, http://127.0.0.1:<port>.
func (s *Server) URL() string { return s.ts.URL }

// APIURL is the Web API base for slack.OptionAPIURL: URL() + "/api/".
func (s *Server) APIURL() string { return s.ts.URL + "/api/" }

// BotToken is the bot token (xoxb-) the Web API accepts.
func (s *Server) BotToken() string { return s.cfg.botToken }

// AppToken is the app-level token (xapp-) for apps.connections.open.
func (s *Server) AppToken() string { return s.cfg.appToken }

// SigningSecret is the secret Slack signs requests to the bot with.
func (s *Server) SigningSecret() string { return s.cfg.signingSecret }

// VerificationToken is the deprecated "token" field put in payloads.
func (s *Server) VerificationToken() string { return s.cfg.verificationToken }

// TeamID is the workspace id.
func (s *Server) TeamID() string { return s.cfg.teamID }

// TeamDomain is the workspace's domain (<domain>.slack.com).
func (s *Server) TeamDomain() string { return s.cfg.teamDomain }

// BotUserID is the bot's own user id.
func (s *Server) BotUserID() string { return s.cfg.botUserID }

// BotID is the bot's bot id (B…).
func (s *Server) BotID() string { return s.cfg.botID }

// AppID is the app's id.
func (s *Server) AppID() string { return s.cfg.appID }

// --- workspace state ---

func (s *Server) newIDLocked(prefix string) string {
	s.seq++
	return fmt.Sprintf("%s%08d", prefix, s.seq)
}

// newTSLocked returns a message timestamp in Slack's "seconds.micros" form,
// strictly increasing and of constant width, so they sort as strings.
func (s *Server) newTSLocked() string {
	s.tsSeq++
	return fmt.Sprintf("%d.%06d", s.epoch+s.tsSeq/1_000_000, s.tsSeq%1_000_000)
}

// AddUser adds (or replaces) a user and returns it with its defaults filled.
func (s *Server) AddUser(u User) User {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u.ID == "" {
		u.ID = s.newIDLocked("U")
	}
	if u.Name == "" {
		u.Name = strings.ToLower(u.ID)
	}
	if u.TZ == "" {
		u.TZ = "Europe/Oslo"
	}
	if _, ok := s.users[u.ID]; !ok {
		s.userOrder = append(s.userOrder, u.ID)
	}
	s.users[u.ID] = &u
	return u
}

// DeleteUser marks a user deactivated (deleted: true), as Slack does.
func (s *Server) DeleteUser(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u, ok := s.users[id]; ok {
		u.Deleted = true
	}
}

// User returns a user by id.
func (s *Server) User(id string) (User, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.users[id]
	if !ok {
		return User{}, false
	}
	return *u, true
}

// AddChannel adds (or replaces) a channel and returns it with its defaults
// filled. Put BotUserID() in Members for the bot to be in the channel.
func (s *Server) AddChannel(c Channel) Channel {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addChannelLocked(c)
}

func (s *Server) addChannelLocked(c Channel) Channel {
	if c.ID == "" {
		switch {
		case c.IsIM:
			c.ID = s.newIDLocked("D")
		case c.IsPrivate:
			c.ID = s.newIDLocked("G")
		default:
			c.ID = s.newIDLocked("C")
		}
	}
	if c.Name == "" && !c.IsIM {
		c.Name = strings.ToLower(c.ID)
	}
	if c.Created.IsZero() {
		c.Created = time.Now()
	}
	c.Members = dedupe(c.Members)
	if _, ok := s.channels[c.ID]; !ok {
		s.chanOrder = append(s.chanOrder, c.ID)
	}
	s.channels[c.ID] = &c
	return cloneChannel(&c)
}

// Channel returns a channel by id.
func (s *Server) Channel(id string) (Channel, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.channels[id]
	if !ok {
		return Channel{}, false
	}
	return cloneChannel(c), true
}

// SetMembers replaces a channel's members.
func (s *Server) SetMembers(channelID string, userIDs ...string) {
	s.editChannel(channelID, func(c *Channel) { c.Members = dedupe(userIDs) })
}

// AddMembers adds users to a channel.
func (s *Server) AddMembers(channelID string, userIDs ...string) {
	s.editChannel(channelID, func(c *Channel) { c.Members = dedupe(append(c.Members, userIDs...)) })
}

// RemoveMembers removes users from a channel.
func (s *Server) RemoveMembers(channelID string, userIDs ...string) {
	s.editChannel(channelID, func(c *Channel) {
		var keep []string
		for _, m := range c.Members {
			if !contains(userIDs, m) {
				keep = append(keep, m)
			}
		}
		c.Members = keep
	})
}

// ArchiveChannel marks a channel archived.
func (s *Server) ArchiveChannel(id string) {
	s.editChannel(id, func(c *Channel) { c.IsArchived = true })
}

// UnarchiveChannel marks a channel not archived.
func (s *Server) UnarchiveChannel(id string) {
	s.editChannel(id, func(c *Channel) { c.IsArchived = false })
}

// RenameChannel renames a channel.
func (s *Server) RenameChannel(id, name string) {
	s.editChannel(id, func(c *Channel) { c.Name = name })
}

// DeleteChannel removes a channel; the Web API answers channel_not_found for
// it afterwards.
func (s *Server) DeleteChannel(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.channels, id)
}

func (s *Server) editChannel(id string, f func(*Channel)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.channels[id]
	if !ok {
		s.t.Errorf("slacktest: no channel %q", id)
		return
	}
	f(c)
}

// DMChannel returns the id of the bot's IM with a user, creating it if needed.
func (s *Server) DMChannel(userID string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dmLocked(userID)
}

func (s *Server) dmLocked(userID string) string {
	for _, id := range s.chanOrder {
		if c, ok := s.channels[id]; ok && c.IsIM && c.IMUser == userID {
			return id
		}
	}
	c := s.addChannelLocked(Channel{IsIM: true, IMUser: userID, Members: []string{s.cfg.botUserID, userID}})
	return c.ID
}

func cloneChannel(c *Channel) Channel {
	out := *c
	out.Members = append([]string(nil), c.Members...)
	return out
}

func dedupe(xs []string) []string {
	var out []string
	for _, x := range xs {
		if x != "" && !contains(out, x) {
			out = append(out, x)
		}
	}
	return out
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// --- faults ---

// Fault is how FailNext makes a call fail.
type Fault struct {
	status     int
	retryAfter time.Duration
	errCode    string
}

// RateLimited answers HTTP 429 with a Retry-After header of retryAfter in
// whole seconds (rounded up) and {"ok":false,"error":"ratelimited"}, as Slack
// does.
func RateLimited(retryAfter time.Duration) Fault {
	return Fault{status: http.StatusTooManyRequests, retryAfter: retryAfter, errCode: "ratelimited"}
}

// Error answers HTTP 200 with {"ok":false,"error":code}.
func Error(code string) Fault { return Fault{status: http.StatusOK, errCode: code} }

// HTTPError answers the given HTTP status (a 5xx, say) with a plain body.
func HTTPError(status int) Fault { return Fault{status: status} }

type faultQueue struct {
	fault Fault
	left  int
}

// FailNext makes the next n calls of method fail with f. Faults queue up in
// the order they are set.
func (s *Server) FailNext(method string, n int, f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults[method] = append(s.faults[method], &faultQueue{fault: f, left: n})
}

// Delay makes every later call of method wait d before it is answered (until
// set back to 0). The wait ends early when the client gives up.
func (s *Server) Delay(method string, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d <= 0 {
		delete(s.delays, method)
		return
	}
	s.delays[method] = d
}

func (s *Server) takeFault(method string) (Fault, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.faults[method]
	for len(q) > 0 && q[0].left <= 0 {
		q = q[1:]
	}
	s.faults[method] = q
	if len(q) == 0 {
		return Fault{}, false
	}
	q[0].left--
	return q[0].fault, true
}

func (s *Server) delayFor(method string) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.delays[method]
}

// --- request plumbing ---

// request is a decoded incoming call.
type request struct {
	method string
	r      *http.Request
	params url.Values
	json   map[string]any
	body   []byte
	token  string
}

func (q *request) get(k string) string { return q.params.Get(k) }

// reply is what a handler answers.
type reply struct {
	status int
	header http.Header
	body   []byte
}

func okReply(fields map[string]any) reply {
	m := map[string]any{"ok": true}
	for k, v := range fields {
		m[k] = v
	}
	return jsonReply(http.StatusOK, m)
}

func errReply(code string) reply {
	return jsonReply(http.StatusOK, map[string]any{"ok": false, "error": code})
}

func jsonReply(status int, v any) reply {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	h := http.Header{}
	h.Set("Content-Type", "application/json; charset=utf-8")
	return reply{status: status, header: h, body: b}
}

func textReply(status int, text string) reply {
	h := http.Header{}
	h.Set("Content-Type", "text/plain; charset=utf-8")
	return reply{status: status, header: h, body: []byte(text)}
}

func faultReply(f Fault) reply {
	if f.status == http.StatusOK || f.status == 0 {
		return errReply(f.errCode)
	}
	if f.errCode == "" {
		return textReply(f.status, http.StatusText(f.status))
	}
	rep := jsonReply(f.status, map[string]any{"ok": false, "error": f.errCode})
	if f.status == http.StatusTooManyRequests {
		secs := int64((f.retryAfter + time.Second - 1) / time.Second)
		rep.header.Set("Retry-After", strconv.FormatInt(secs, 10))
	}
	return rep
}

// decode reads the request's parameters: the query, then a form, multipart or
// JSON body. Top-level JSON fields are also put in params, strings as they are
// and anything else as JSON text.
func decode(method string, r *http.Request) (*request, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<20))
	if err != nil {
		return nil, err
	}
	q := &request{method: method, r: r, body: body, params: url.Values{}}
	for k, v := range r.URL.Query() {
		q.params[k] = append(q.params[k], v...)
	}
	ct, ctParams, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch {
	case ct == "application/json":
		if len(bytes.TrimSpace(body)) > 0 {
			dec := json.NewDecoder(bytes.NewReader(body))
			dec.UseNumber()
			if err := dec.Decode(&q.json); err != nil {
				return q, err
			}
			for k, v := range q.json {
				if str, ok := v.(string); ok {
					q.params.Set(k, str)
					continue
				}
				b, _ := json.Marshal(v)
				q.params.Set(k, string(b))
			}
		}
	case ct == "multipart/form-data":
		mr := r.Clone(r.Context())
		mr.Body = io.NopCloser(bytes.NewReader(body))
		mr.Header.Set("Content-Type", mime.FormatMediaType(ct, ctParams))
		if err := mr.ParseMultipartForm(32 << 20); err != nil {
			return q, err
		}
		for k, v := range mr.MultipartForm.Value {
			q.params[k] = append(q.params[k], v...)
		}
	case r.Method == http.MethodPost && len(body) > 0:
		vals, err := url.ParseQuery(string(body))
		if err != nil {
			return q, err
		}
		for k, v := range vals {
			q.params[k] = append(q.params[k], v...)
		}
	}
	// Slack takes the token from the Authorization header, or from a form or
	// query parameter; never from a JSON body.
	if auth := r.Header.Get("Authorization"); strings.HasPrefix(auth, "Bearer ") {
		q.token = strings.TrimPrefix(auth, "Bearer ")
	} else if ct != "application/json" {
		q.token = q.params.Get("token")
	}
	return q, nil
}

// serve runs one recorded call: delay, fault, then the handler.
func (s *Server) serve(w http.ResponseWriter, r *http.Request, method string, h func(*request) reply) {
	at := time.Now()
	q, err := decode(method, r)
	var rep reply
	if d := s.delayFor(method); d > 0 {
		timer := time.NewTimer(d)
		select {
		case <-timer.C:
		case <-r.Context().Done():
			timer.Stop()
		}
	}
	switch f, faulted := s.takeFault(method); {
	case faulted:
		rep = faultReply(f)
	case err != nil:
		rep = errReply("invalid_form_data")
	default:
		rep = h(q)
	}
	for k, v := range rep.header {
		w.Header()[k] = v
	}
	if rep.status == 0 {
		rep.status = http.StatusOK
	}
	w.WriteHeader(rep.status)
	_, _ = w.Write(rep.body)
	s.record(q, at, rep)
}

func (s *Server) handleAPI(w http.ResponseWriter, r *http.Request) {
	method := r.PathValue("method")
	s.serve(w, r, method, func(q *request) reply {
		h, ok := s.api[method]
		if !ok {
			return jsonReply(http.StatusOK, map[string]any{"ok": false, "error": "unknown_method", "req_method": method})
		}
		tokenKind := botToken
		if method == "apps.connections.open" {
			tokenKind = appToken
		}
		if rep, ok := s.checkToken(q, tokenKind); !ok {
			return rep
		}
		return h(q)
	})
}

type tokenKind int

const (
	botToken tokenKind = iota
	appToken
)

func (s *Server) checkToken(q *request, want tokenKind) (reply, bool) {
	switch {
	case q.token == "":
		return errReply("not_authed"), false
	case q.token == s.cfg.botToken && want == botToken, q.token == s.cfg.appToken && want == appToken:
		return reply{}, true
	case q.token == s.cfg.botToken || q.token == s.cfg.appToken:
		return errReply("not_allowed_token_type"), false
	default:
		return errReply("invalid_auth"), false
	}
}

// Summary lists every recorded call, one per line, for failure messages.
func (s *Server) Summary() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b strings.Builder
	for _, c := range s.calls {
		keys := make([]string, 0, len(c.Params))
		for k := range c.Params {
			if k != "token" {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		var ps []string
		for _, k := range keys {
			v := c.Params.Get(k)
			if len(v) > 80 {
				v = v[:77] + "..."
			}
			ps = append(ps, k+"="+v)
		}
		status := "ok"
		if c.Error != "" {
			status = c.Error
		} else if c.Status != http.StatusOK {
			status = strconv.Itoa(c.Status)
		}
		fmt.Fprintf(&b, "  %s %s [%s] %s\n", c.At.Format("15:04:05.000"), c.Method, status, strings.Join(ps, " "))
	}
	return b.String()
}
