// Package admin is the operators' HTTP surface: liveness, readiness,
// metrics, and the admin API (enclaves, tentacles, runs, audit; freeze,
// unfreeze, deprovision and any other command) for platform
// administrators signed in with the identity provider.
package admin

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/kraken-ops/kraken/bot/command"
	"github.com/kraken-ops/kraken/bot/oidcauth"
	"github.com/kraken-ops/kraken/bot/runs"
	"github.com/kraken-ops/kraken/enclave"
	"github.com/kraken-ops/kraken/store"
	"github.com/kraken-ops/kraken/tentacle"
)

// Commands is what the admin API asks of the command registry.
type Commands interface {
	Do(ctx context.Context, req command.Request) command.Reply
	AdminEnclaves(ctx context.Context, a command.Admin) ([]command.EnclaveView, error)
	AdminEnclave(ctx context.Context, a command.Admin, name string) (command.EnclaveView, error)
	AdminTentacles(ctx context.Context, a command.Admin, name string) ([]tentacle.Status, error)
	AdminRuns(ctx context.Context, a command.Admin, name string) ([]runs.Record, error)
	AdminAudit(ctx context.Context, a command.Admin, q store.AuditQuery) ([]store.AuditEntry, error)
}

// Check is one readiness condition: the store is open, the cluster
// answers, Slack accepts the token.
type Check struct {
	Name string
	Run  func(ctx context.Context) error
}

// Config wires the admin surface.
type Config struct {
	Commands Commands
	// Auth guards /admin/v1; nil leaves the admin API off (404), never
	// open.
	Auth    func(http.Handler) http.Handler
	Checks  []Check
	Metrics http.Handler
	Logger  *slog.Logger
	// CheckTimeout bounds each readiness check; default 3 s.
	CheckTimeout time.Duration
}

// Handler serves /healthz, /readyz, /metrics and /admin/v1/.
func Handler(cfg Config) http.Handler {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.CheckTimeout <= 0 {
		cfg.CheckTimeout = 3 * time.Second
	}
	s := &server{cfg: cfg}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", s.ready)
	if cfg.Metrics != nil {
		mux.Handle("GET /metrics", cfg.Metrics)
	}
	if cfg.Auth != nil && cfg.Commands != nil {
		api := http.NewServeMux()
		api.HandleFunc("GET /admin/v1/enclaves", signedIn(s.enclaves))
		api.HandleFunc("GET /admin/v1/enclaves/{name}", signedIn(s.enclave))
		api.HandleFunc("GET /admin/v1/enclaves/{name}/tentacles", signedIn(s.tentacles))
		api.HandleFunc("GET /admin/v1/enclaves/{name}/runs", signedIn(s.runs))
		api.HandleFunc("GET /admin/v1/audit", signedIn(s.audit))
		api.HandleFunc("POST /admin/v1/enclaves/{name}/freeze", signedIn(s.verb("freeze")))
		api.HandleFunc("POST /admin/v1/enclaves/{name}/unfreeze", signedIn(s.verb("unfreeze")))
		api.HandleFunc("POST /admin/v1/enclaves/{name}/deprovision", signedIn(s.verb("deprovision")))
		api.HandleFunc("POST /admin/v1/enclaves/{name}/commands", signedIn(s.command))
		mux.Handle("/admin/v1/", cfg.Auth(api))
	}
	return requestIDs(cfg.Logger, mux)
}

type server struct{ cfg Config }

func (s *server) ready(w http.ResponseWriter, r *http.Request) {
	failed := map[string]string{}
	for _, c := range s.cfg.Checks {
		ctx, cancel := context.WithTimeout(r.Context(), s.cfg.CheckTimeout)
		err := c.Run(ctx)
		cancel()
		if err != nil {
			failed[c.Name] = err.Error()
			s.cfg.Logger.WarnContext(r.Context(), "not ready", "check", c.Name, "err", err)
		}
	}
	if len(failed) > 0 {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "not ready", "failed": failed})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// signedIn hands h the signed-in administrator, whom the middleware
// guarantees; without one (a wiring mistake) it refuses.
func signedIn(h func(http.ResponseWriter, *http.Request, command.Admin)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, ok := oidcauth.IdentityFrom(r.Context())
		if !ok || id.Subject == "" {
			writeError(w, http.StatusUnauthorized, "not signed in")
			return
		}
		h(w, r, command.Admin{Issuer: id.Issuer, Subject: id.Subject, Email: id.Email})
	}
}

func (s *server) enclaves(w http.ResponseWriter, r *http.Request, a command.Admin) {
	out, err := s.cfg.Commands.AdminEnclaves(r.Context(), a)
	s.answer(w, r, out, err)
}

func (s *server) enclave(w http.ResponseWriter, r *http.Request, a command.Admin) {
	out, err := s.cfg.Commands.AdminEnclave(r.Context(), a, r.PathValue("name"))
	s.answer(w, r, out, err)
}

func (s *server) tentacles(w http.ResponseWriter, r *http.Request, a command.Admin) {
	out, err := s.cfg.Commands.AdminTentacles(r.Context(), a, r.PathValue("name"))
	s.answer(w, r, out, err)
}

func (s *server) runs(w http.ResponseWriter, r *http.Request, a command.Admin) {
	out, err := s.cfg.Commands.AdminRuns(r.Context(), a, r.PathValue("name"))
	s.answer(w, r, out, err)
}

func (s *server) audit(w http.ResponseWriter, r *http.Request, a command.Admin) {
	q := r.URL.Query()
	aq := store.AuditQuery{Enclave: q.Get("enclave"), Actor: q.Get("actor"), Verb: q.Get("verb")}
	var err error
	if v := q.Get("limit"); v != "" {
		if aq.Limit, err = strconv.Atoi(v); err != nil || aq.Limit < 1 || aq.Limit > 1000 {
			writeError(w, http.StatusBadRequest, "limit must be a number from 1 to 1000")
			return
		}
	}
	if v := q.Get("before"); v != "" {
		if aq.Before, err = strconv.ParseUint(v, 10, 64); err != nil {
			writeError(w, http.StatusBadRequest, "before must be an audit entry id")
			return
		}
	}
	for key, dst := range map[string]*time.Time{"since": &aq.Since, "until": &aq.Until} {
		if v := q.Get(key); v != "" {
			if *dst, err = time.Parse(time.RFC3339, v); err != nil {
				writeError(w, http.StatusBadRequest, key+" must be an RFC 3339 time, like 2026-11-23T12:00:00Z")
				return
			}
		}
	}
	out, err := s.cfg.Commands.AdminAudit(r.Context(), a, aq)
	s.answer(w, r, out, err)
}

// verb runs one registry verb on the enclave in the path. Destructive
// verbs need ?confirm=<enclave name>.
func (s *server) verb(name string) func(http.ResponseWriter, *http.Request, command.Admin) {
	return func(w http.ResponseWriter, r *http.Request, a command.Admin) {
		s.run(w, r, a, name, r.URL.Query().Get("confirm"))
	}
}

// command runs any registry command line on the enclave in the path:
// {"text": "transfer <@U123>", "confirm": "U123"}.
func (s *server) command(w http.ResponseWriter, r *http.Request, a command.Admin) {
	var body struct {
		Text    string `json:"text"`
		Confirm string `json:"confirm"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&body); err != nil || body.Text == "" {
		writeError(w, http.StatusBadRequest, `the body must be JSON like {"text": "freeze"}`)
		return
	}
	s.run(w, r, a, body.Text, body.Confirm)
}

func (s *server) run(w http.ResponseWriter, r *http.Request, a command.Admin, text, confirm string) {
	rep := s.cfg.Commands.Do(r.Context(), command.Request{Admin: &a, Via: command.ViaAdmin, Enclave: r.PathValue("name"), Text: text, Confirmed: confirm}).Wait(r.Context())
	out := map[string]any{"ok": !rep.Failed && rep.Confirm == nil, "message": rep.Text}
	if len(rep.Fields) > 0 {
		fields := map[string]string{}
		for _, f := range rep.Fields {
			fields[f.Label] = f.Value
		}
		out["fields"] = fields
	}
	status := http.StatusOK
	switch {
	case rep.Confirm != nil:
		// The card can't be clicked here: say how to confirm.
		status = http.StatusConflict
		name := rep.Confirm.TypeName
		if name == "" {
			name = "the name the command acts on"
		}
		out["message"] = rep.Text + " This needs a confirmation: repeat the request with confirm set to " + name + "."
	case rep.Failed:
		status = http.StatusUnprocessableEntity
	}
	writeJSON(w, status, out)
}

// answer writes a read's result, or its error as a status.
func (s *server) answer(w http.ResponseWriter, r *http.Request, v any, err error) {
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, v)
	case errors.Is(err, enclave.ErrNotFound):
		writeError(w, http.StatusNotFound, "no such enclave")
	default:
		s.cfg.Logger.ErrorContext(r.Context(), "admin read failed", "path", r.URL.Path, "err", err)
		writeError(w, http.StatusBadGateway, "the cluster or the store did not answer; see the bot's log")
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

type requestIDKey struct{}

// RequestID is the id of the request being served, for logs.
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// requestIDs gives every request an id (the caller's X-Request-Id when it
// sends a sane one), echoes it, and logs each request with it.
func requestIDs(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-Id")
		if len(id) == 0 || len(id) > 64 {
			var b [8]byte
			_, _ = rand.Read(b[:])
			id = hex.EncodeToString(b[:])
		}
		w.Header().Set("X-Request-Id", id)
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r.WithContext(context.WithValue(r.Context(), requestIDKey{}, id)))
		if r.URL.Path != "/healthz" && r.URL.Path != "/readyz" && r.URL.Path != "/metrics" {
			log.Info("admin request", "request_id", id, "method", r.Method, "path", r.URL.Path, "status", rec.status, "duration", time.Since(start))
		}
	})
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}
