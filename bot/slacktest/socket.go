package slacktest

import (
	"encoding/json"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// Envelope is a Socket Mode message the fake sends to the bot.
type Envelope struct {
	EnvelopeID             string // generated when empty
	Type                   string // "events_api", "slash_commands" or "interactive"
	Payload                json.RawMessage
	AcceptsResponsePayload bool
	RetryAttempt           int
	RetryReason            string
}

// Ack is the bot's acknowledgement of an envelope.
type Ack struct {
	EnvelopeID string
	// Payload is what the bot put in the ack (a slash command's immediate
	// reply, a view_submission's response_action); nil when none.
	Payload json.RawMessage
	Raw     []byte
	At      time.Time
}

type wsConn struct {
	c    *websocket.Conn
	wmu  sync.Mutex
	done chan struct{}
	once sync.Once
	// leaving is set (under Server.mu) once the connection was told to
	// disconnect: like Slack, the fake sends nothing more on it.
	leaving bool
}

func (w *wsConn) usable() bool {
	select {
	case <-w.done:
		return false
	default:
		return !w.leaving
	}
}

func (w *wsConn) write(b []byte) error {
	w.wmu.Lock()
	defer w.wmu.Unlock()
	_ = w.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	return w.c.WriteMessage(websocket.TextMessage, b)
}

func (w *wsConn) close() {
	w.once.Do(func() {
		close(w.done)
		_ = w.c.Close()
	})
}

var upgrader = websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}

// handleSocket is the Socket Mode websocket. apps.connections.open hands out
// single-use tickets for it; on connecting the bot gets "hello", then PINGs
// every ping interval, and whatever the test sends. Everything the bot writes
// is taken as an ack.
func (s *Server) handleSocket(w http.ResponseWriter, r *http.Request) {
	ticket := r.URL.Query().Get("ticket")
	s.mu.Lock()
	valid, closing := s.tickets[ticket], s.closing
	delete(s.tickets, ticket)
	if valid && !closing {
		s.wg.Add(1)
	}
	s.mu.Unlock()
	switch {
	case closing:
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	case !valid:
		http.Error(w, "invalid or used ticket", http.StatusUnauthorized)
		return
	}
	defer s.wg.Done()

	c, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	conn := &wsConn{c: c, done: make(chan struct{})}
	s.mu.Lock()
	n := len(s.conns) + 1
	s.mu.Unlock()
	// hello goes out before the connection is listed, so it always comes
	// first.
	hello := mustJSON(map[string]any{
		"type":            "hello",
		"num_connections": n,
		"debug_info": map[string]any{
			"host": "slacktest", "build_number": 1, "approximate_connection_time": 18060,
		},
		"connection_info": map[string]any{"app_id": s.cfg.appID},
	})
	if err := conn.write(hello); err != nil {
		conn.close()
		return
	}
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		conn.close()
		return
	}
	s.conns = append(s.conns, conn)
	s.notifyLocked()
	s.mu.Unlock()

	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		ticker := time.NewTicker(s.cfg.pingInterval)
		defer ticker.Stop()
		for {
			select {
			case <-conn.done:
				return
			case <-ticker.C:
				if err := c.WriteControl(websocket.PingMessage, []byte("ping"), time.Now().Add(5*time.Second)); err != nil {
					conn.close()
					return
				}
			}
		}
	}()

	for {
		_, data, err := c.ReadMessage()
		if err != nil {
			break
		}
		var a struct {
			EnvelopeID string          `json:"envelope_id"`
			Payload    json.RawMessage `json:"payload"`
		}
		_ = json.Unmarshal(data, &a)
		s.mu.Lock()
		s.acks = append(s.acks, Ack{EnvelopeID: a.EnvelopeID, Payload: a.Payload, Raw: data, At: time.Now()})
		s.notifyLocked()
		s.mu.Unlock()
	}
	s.dropConn(conn)
}

func (s *Server) dropConn(conn *wsConn) {
	conn.close()
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, c := range s.conns {
		if c == conn {
			s.conns = append(s.conns[:i], s.conns[i+1:]...)
			break
		}
	}
	s.notifyLocked()
}

// Connections is the number of usable Socket Mode connections: open, past
// hello, and not told to disconnect.
func (s *Server) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.usableLocked()
}

func (s *Server) usableLocked() int {
	n := 0
	for _, c := range s.conns {
		if c.usable() {
			n++
		}
	}
	return n
}

// WaitConnected waits until n usable Socket Mode connections are open.
func (s *Server) WaitConnected(n int) {
	s.t.Helper()
	if !s.waitUntil(s.cfg.waitTimeout, func() bool { return s.usableLocked() >= n }) {
		s.t.Fatalf("slacktest: %d Socket Mode connection(s) within %s, want %d", s.Connections(), s.cfg.waitTimeout, n)
	}
}

// SendEnvelope sends an envelope over the newest usable Socket Mode
// connection, waiting for one if there is none yet, and returns its envelope
// id.
func (s *Server) SendEnvelope(e Envelope) string {
	s.t.Helper()
	s.mu.Lock()
	if e.EnvelopeID == "" {
		e.EnvelopeID = s.newIDLocked("env-")
	}
	s.mu.Unlock()
	var conn *wsConn
	if !s.waitUntil(s.cfg.waitTimeout, func() bool {
		for i := len(s.conns) - 1; i >= 0; i-- {
			if s.conns[i].usable() {
				conn = s.conns[i]
				return true
			}
		}
		return false
	}) {
		s.t.Fatalf("slacktest: no Socket Mode connection within %s to send %s", s.cfg.waitTimeout, e.Type)
	}
	b := mustJSON(map[string]any{
		"envelope_id":              e.EnvelopeID,
		"type":                     e.Type,
		"payload":                  e.Payload,
		"accepts_response_payload": e.AcceptsResponsePayload,
		"retry_attempt":            e.RetryAttempt,
		"retry_reason":             e.RetryReason,
	})
	if err := conn.write(b); err != nil {
		s.t.Fatalf("slacktest: sending %s envelope: %v", e.Type, err)
	}
	return e.EnvelopeID
}

// SendEvent sends an Events API envelope (from EventCallback) over Socket
// Mode and returns the envelope id.
func (s *Server) SendEvent(envelope []byte) string {
	s.t.Helper()
	return s.SendEnvelope(Envelope{Type: "events_api", Payload: envelope})
}

// SendSlashCommand sends a slash command over Socket Mode and returns the
// envelope id. Fill it with SlashCommand first to know its response_url and
// trigger_id; empty fields are filled here otherwise.
func (s *Server) SendSlashCommand(c SlashCommand) string {
	s.t.Helper()
	c = s.SlashCommand(c)
	return s.SendEnvelope(Envelope{Type: "slash_commands", Payload: c.socketPayload(), AcceptsResponsePayload: true})
}

// SendInteractive sends an interactivity payload (BlockAction,
// ViewSubmission) over Socket Mode and returns the envelope id.
func (s *Server) SendInteractive(i Interaction) string {
	s.t.Helper()
	accepts := i.Type == "view_submission" || i.Type == "block_suggestion"
	return s.SendEnvelope(Envelope{Type: "interactive", Payload: i.Payload, AcceptsResponsePayload: accepts})
}

// SendDisconnect asks every connected client to reconnect, as Slack does
// before it recycles a connection (reason "refresh_requested", "warning" or
// "link_disabled").
func (s *Server) SendDisconnect(reason string) {
	s.t.Helper()
	s.mu.Lock()
	var conns []*wsConn
	for _, c := range s.conns {
		if c.usable() {
			c.leaving = true
			conns = append(conns, c)
		}
	}
	s.notifyLocked()
	s.mu.Unlock()
	b := mustJSON(map[string]any{"type": "disconnect", "reason": reason, "debug_info": map[string]any{"host": "slacktest"}})
	for _, c := range conns {
		_ = c.write(b)
	}
}

// DropConnections closes every Socket Mode connection without a word.
func (s *Server) DropConnections() {
	s.mu.Lock()
	conns := append([]*wsConn(nil), s.conns...)
	s.mu.Unlock()
	for _, c := range conns {
		c.close()
	}
}

// WaitAck waits for the bot's ack of an envelope and returns it; it fails the
// test after the wait timeout.
func (s *Server) WaitAck(envelopeID string) Ack {
	s.t.Helper()
	var found Ack
	if !s.waitUntil(s.cfg.waitTimeout, func() bool {
		for _, a := range s.acks {
			if a.EnvelopeID == envelopeID {
				found = a
				return true
			}
		}
		return false
	}) {
		s.t.Fatalf("slacktest: no ack for envelope %s within %s", envelopeID, s.cfg.waitTimeout)
	}
	return found
}

// Acks returns every ack received, in order.
func (s *Server) Acks() []Ack {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Ack(nil), s.acks...)
}
