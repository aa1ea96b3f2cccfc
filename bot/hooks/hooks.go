// Package hooks receives webhooks for tentacles' webhook triggers:
// POST /hooks/{enclave}/{tentacle}/{path...}, authenticated by an HMAC
// signature of the body under a secret derived per trigger, and runs the
// tentacle with the body as its input.
//
// The secret is HMAC-SHA256(Key, "enclave/tentacle/trigger") where trigger
// is the trigger's name, or its path when it has none: every replica of
// the bot computes the same secret from the one key, nothing per trigger
// is stored, and a secret leaked for one trigger says nothing of another.
//
// What is not covered: a captured signed request can be replayed by
// anyone who saw it (neither format signs a timestamp); GitHub's delivery
// id only stops GitHub's own redeliveries, since it is not signed either.
package hooks

import (
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/kraken-ops/kraken/bot/runs"
	"github.com/kraken-ops/kraken/enclave"
	"github.com/kraken-ops/kraken/tentacle"
)

// Runner starts runs; *runs.Runner is one. done, when set, is called
// with the run's record and result when it ends.
type Runner interface {
	Start(ctx context.Context, req runs.Request, done func(runs.Record, json.RawMessage)) (runs.Record, error)
}

// Config wires Hooks.
type Config struct {
	Enclaves  Enclaves
	Tentacles Tentacles
	Runner    Runner
	// Key derives every trigger's secret; at least 32 bytes, the same on
	// every replica, and kept like any other credential of the bot.
	Key    []byte
	Logger *slog.Logger
	// MaxBody bounds a delivery's body; zero means 1 MiB.
	MaxBody int64
	Now     func() time.Time
	// CacheTTL is how long what the cluster said about enclaves and
	// tentacles is trusted; zero means 10 s. A deploy, an undeploy or a
	// freeze is seen by webhooks within it.
	CacheTTL time.Duration
}

// Signature headers.
const (
	HeaderSignature       = "X-Kraken-Signature"
	HeaderGitHubSignature = "X-Hub-Signature-256"
	HeaderGitHubEvent     = "X-GitHub-Event"
	HeaderGitHubDelivery  = "X-GitHub-Delivery"
)

const (
	defaultMaxBody = 1 << 20
	// notFound is the same whichever of enclave, tentacle or path is
	// unknown, so a caller cannot probe which exist.
	notFound = "no such webhook\n"
)

// Hooks serves webhooks. It is safe for concurrent use.
type Hooks struct {
	cfg  Config
	log  *slog.Logger
	reg  *registry
	seen *deliveries
}

// New makes Hooks.
func New(cfg Config) (*Hooks, error) {
	if cfg.Enclaves == nil || cfg.Tentacles == nil || cfg.Runner == nil {
		return nil, errors.New("hooks: enclaves, tentacles and a runner are needed")
	}
	if len(cfg.Key) < 32 {
		return nil, errors.New("hooks: the key must be at least 32 bytes")
	}
	cfg.Key = slices.Clone(cfg.Key)
	cfg.MaxBody = cmp.Or(cfg.MaxBody, defaultMaxBody)
	cfg.CacheTTL = cmp.Or(cfg.CacheTTL, 10*time.Second)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Hooks{
		cfg:  cfg,
		log:  cfg.Logger,
		reg:  newRegistry(cfg.Enclaves, cfg.Tentacles, cfg.CacheTTL, cfg.Now),
		seen: newDeliveries(time.Hour, 10000),
	}, nil
}

// Secret is the secret a trigger's sender signs with: what the tentacle's
// owner configures at the sender (privately; it is a credential).
func (h *Hooks) Secret(enc, name string, t tentacle.Trigger) string {
	m := hmac.New(sha256.New, h.cfg.Key)
	m.Write([]byte(enc + "/" + name + "/" + cmp.Or(t.Name, t.Path)))
	return hex.EncodeToString(m.Sum(nil))
}

// URL is where a trigger's sender posts, under the bot's public base URL.
func URL(base, enc, name, path string) string {
	return strings.TrimRight(base, "/") + "/hooks/" + url.PathEscape(enc) + "/" + url.PathEscape(name) + "/" + strings.TrimLeft(path, "/")
}

// Handler serves POST /hooks/{enclave}/{tentacle}/{path...}.
func (h *Hooks) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /hooks/{enclave}/{tentacle}/{path...}", h.serve)
	return mux
}

func (h *Hooks) serve(w http.ResponseWriter, r *http.Request) {
	enc, name, path := r.PathValue("enclave"), r.PathValue("tentacle"), "/"+r.PathValue("path")
	log := h.log.With("enclave", enc, "tentacle", name, "path", path)
	tg, ok, err := h.reg.resolve(r.Context(), enc, name)
	if err != nil {
		log.Error("webhook: cannot read the cluster", "err", err)
		http.Error(w, "try again later", http.StatusServiceUnavailable)
		return
	}
	var cands []tentacle.Trigger
	for _, t := range tg.triggers {
		if t.Path == path {
			cands = append(cands, t)
		}
	}
	if !ok || len(cands) == 0 {
		http.Error(w, notFound, http.StatusNotFound)
		return
	}

	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.cfg.MaxBody))
	if err != nil {
		if _, tooBig := errors.AsType[*http.MaxBytesError](err); tooBig {
			http.Error(w, fmt.Sprintf("body larger than %d bytes", h.cfg.MaxBody), http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "cannot read the body", http.StatusBadRequest)
		return
	}

	// Several triggers may share a path; the signature says which one.
	t, ok := h.verify(r.Header, enc, name, cands, body)
	if !ok {
		log.Info("webhook refused: bad or missing signature")
		http.Error(w, "bad or missing signature", http.StatusUnauthorized)
		return
	}
	// The enclave's state is told only to callers who proved they hold
	// the secret.
	switch st := enclave.StateOf(tg.enclave); st.Phase {
	case enclave.PhaseFrozen, enclave.PhaseFlagged, enclave.PhaseDeprovisioning, enclave.PhaseGone:
		log.Info("webhook refused: enclave takes no runs", "state", st.Phase.String())
		http.Error(w, fmt.Sprintf("enclave %s is %s and starts no runs", enc, st.Phase), http.StatusConflict)
		return
	}

	input := inputOf(r.Header.Get("Content-Type"), body, t.Provider == "github")
	if t.Provider == "github" {
		if why := githubFilter(t, r.Header.Get(HeaderGitHubEvent), input); why != "" {
			w.WriteHeader(http.StatusAccepted)
			io.WriteString(w, "ignored: "+why+"\n")
			return
		}
	}
	delivery := ""
	if id := r.Header.Get(HeaderGitHubDelivery); id != "" && t.Provider == "github" {
		delivery = enc + "/" + name + "/" + id
		if !h.seen.add(delivery, h.cfg.Now()) {
			w.WriteHeader(http.StatusOK)
			io.WriteString(w, "duplicate\n")
			return
		}
	}

	req := runs.Request{Enclave: enc, Tentacle: name, Revision: tg.revision, Trigger: "webhook:" + t.Path, Input: input}
	// Waiting callers get the result; one who stops waiting does not
	// cancel the run, which was accepted and goes on with its record.
	type ended struct {
		rec    runs.Record
		result json.RawMessage
	}
	var done func(runs.Record, json.RawMessage)
	wait := r.URL.Query().Get("wait") == "1"
	end := make(chan ended, 1)
	if wait {
		done = func(rec runs.Record, result json.RawMessage) { end <- ended{rec, result} }
	}
	rec, err := h.cfg.Runner.Start(r.Context(), req, done)
	if err != nil {
		h.refused(w, log, delivery, err)
		return
	}
	log.Info("webhook started a run", "run", rec.ID)
	if !wait {
		writeJSON(w, http.StatusAccepted, map[string]string{"run": rec.ID})
		return
	}
	select {
	case e := <-end:
		if e.result == nil {
			writeJSON(w, http.StatusBadGateway, map[string]string{"run": e.rec.ID, "error": e.rec.Error})
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		w.Write(e.result)
	case <-r.Context().Done():
	}
}

// refused answers a run the runner would not start; the delivery is
// forgotten so the sender's retry runs.
func (h *Hooks) refused(w http.ResponseWriter, log *slog.Logger, delivery string, err error) {
	if delivery != "" {
		h.seen.forget(delivery)
	}
	if errors.Is(err, runs.ErrStopping) {
		w.Header().Set("Retry-After", "60")
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	log.Error("webhook: run not started", "err", err)
	http.Error(w, "the run could not be started", http.StatusInternalServerError)
}

// verify finds the trigger whose secret signed body, comparing in
// constant time.
func (h *Hooks) verify(hdr http.Header, enc, name string, cands []tentacle.Trigger, body []byte) (tentacle.Trigger, bool) {
	for _, t := range cands {
		header := HeaderSignature
		if t.Provider == "github" {
			header = HeaderGitHubSignature
		}
		got, ok := strings.CutPrefix(hdr.Get(header), "sha256=")
		if !ok {
			continue
		}
		sig, err := hex.DecodeString(got)
		if err != nil {
			continue
		}
		m := hmac.New(sha256.New, []byte(h.Secret(enc, name, t)))
		m.Write(body)
		if hmac.Equal(sig, m.Sum(nil)) {
			return t, true
		}
	}
	return tentacle.Trigger{}, false
}

// inputOf is the run's input: the body when it is JSON, else the body as
// text under "body". GitHub may post its JSON form-encoded as payload=.
func inputOf(contentType string, body []byte, github bool) json.RawMessage {
	if mt, _, _ := mime.ParseMediaType(contentType); github && mt == "application/x-www-form-urlencoded" {
		if v, err := url.ParseQuery(string(body)); err == nil && json.Valid([]byte(v.Get("payload"))) {
			return json.RawMessage(v.Get("payload"))
		}
	}
	if json.Valid(body) {
		return json.RawMessage(body)
	}
	wrapped, _ := json.Marshal(map[string]string{"body": string(body)})
	return wrapped
}

// githubFilter says why a delivery does not match the trigger's event and
// actions, or "" when it does.
func githubFilter(t tentacle.Trigger, event string, input json.RawMessage) string {
	if t.Event != "" && event != t.Event {
		return "event " + event
	}
	if len(t.Actions) == 0 {
		return ""
	}
	var p struct {
		Action string `json:"action"`
	}
	_ = json.Unmarshal(input, &p)
	if !slices.Contains(t.Actions, p.Action) {
		return fmt.Sprintf("event %s action %q", event, p.Action)
	}
	return ""
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
