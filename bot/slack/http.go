package slack

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

// maxBody caps what the bot reads of a request. Slack's payloads are a
// few kilobytes; an interaction carrying a large message stays well
// under this.
const maxBody = 1 << 20

// maxSkew is how far a request's timestamp may be from now, either way,
// before it is taken for a replay.
const maxSkew = 5 * time.Minute

// Why a request was not let in.
var (
	errNoSignature  = errors.New("no signature or timestamp")
	errBadTimestamp = errors.New("timestamp outside the 5 minute window")
	errBadSignature = errors.New("signature does not match")
)

// verify checks Slack's signature of a request: v0=HMAC-SHA256 of
// "v0:<timestamp>:<body>" keyed with the signing secret, and a timestamp
// within maxSkew of now.
func verify(secret string, h http.Header, body []byte, now time.Time) error {
	ts, sig := h.Get("X-Slack-Request-Timestamp"), h.Get("X-Slack-Signature")
	if ts == "" || sig == "" || secret == "" {
		return errNoSignature
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return errBadTimestamp
	}
	if d := now.Sub(time.Unix(sec, 0)); d > maxSkew || d < -maxSkew {
		return errBadTimestamp
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte("v0:" + ts + ":"))
	mac.Write(body)
	want := "v0=" + hex.EncodeToString(mac.Sum(nil))
	if !hmac.Equal([]byte(sig), []byte(want)) {
		return errBadSignature
	}
	return nil
}

// Handler serves Slack's requests: POST /slack/events (Events API),
// POST /slack/commands (slash commands) and POST /slack/interactions
// (buttons and other interactivity). Each is verified, claimed, queued and
// acknowledged; Run does the work.
func (a *App) Handler() http.Handler { return a.mux }

// inbound is a verified request, read far enough to know what to do.
type inbound struct {
	kind string
	// id is the de-duplication key; "" means there is nothing to do.
	id  string
	job job
	// challenge is set for url_verification.
	challenge string
}

func (a *App) serveEvents(w http.ResponseWriter, r *http.Request) {
	a.serve(w, r, kindEvent, func(body []byte) (inbound, error) { return a.parseEventBody(r.Context(), body) })
}

func (a *App) serveCommands(w http.ResponseWriter, r *http.Request) {
	a.serve(w, r, kindCommand, func(body []byte) (inbound, error) { return parseCommandBody(body) })
}

func (a *App) serveInteractions(w http.ResponseWriter, r *http.Request) {
	a.serve(w, r, kindInteraction, func(body []byte) (inbound, error) { return parseInteractionForm(body) })
}

// serve is the first half of every request: read, verify, parse, claim,
// queue, acknowledge. It does nothing slow but the claim's one write.
func (a *App) serve(w http.ResponseWriter, r *http.Request, kind string, parse func([]byte) (inbound, error)) {
	start := time.Now()
	rid := newRequestID()
	log := a.log.With("rid", rid, "kind", kind)
	ctx := withLog(r.Context(), log)
	status := a.serveStatus(ctx, w, r, start, rid, &kind, parse)
	if status != 0 {
		w.WriteHeader(status)
	}
	a.observe(kind, time.Since(start))
	if retry := r.Header.Get("X-Slack-Retry-Num"); retry != "" {
		log.Debug("slack retry", "retry", retry, "reason", r.Header.Get("X-Slack-Retry-Reason"), "status", status)
	}
}

// serveStatus handles the request and returns the status to answer, or 0
// when it already wrote the response. A secret form's submission changes
// kind to "submissions": its answer waits for the registry.
func (a *App) serveStatus(ctx context.Context, w http.ResponseWriter, r *http.Request, start time.Time, rid string, kind *string, parse func([]byte) (inbound, error)) int {
	log := a.logOf(ctx)
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return http.StatusRequestEntityTooLarge
		}
		return http.StatusBadRequest
	}
	if err := verify(a.cfg.SigningSecret, r.Header, body, time.Now()); err != nil {
		a.count("rejected")
		log.Warn("request rejected", "why", err, "remote", r.RemoteAddr)
		return http.StatusUnauthorized
	}
	in, err := parse(body)
	if err != nil {
		log.Warn("request not understood", "err", err)
		return http.StatusBadRequest
	}
	if in.challenge != "" {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, in.challenge)
		return 0
	}
	if in.id == "" {
		return http.StatusOK // nothing the bot acts on
	}
	in.job.RID = rid
	adm, err := a.admit(ctx, in.id, in.job)
	switch {
	case err != nil:
		log.Error("request not claimed; Slack will retry", "id", in.id, "err", err)
		return http.StatusInternalServerError
	case adm == notReady:
		return http.StatusServiceUnavailable
	case adm == duplicate:
		a.count("duplicate")
		log.Debug("duplicate request dropped", "id", in.id)
	case adm == busy:
		log.Warn("secret form submitted while the queue is full; asked to submit again", "id", in.id)
	default:
		log.Debug("request queued", "id", in.id)
	}
	if sub := in.job.Secret; sub != nil {
		*kind = kindSubmission
		if answer := awaitSubmission(ctx, sub, adm, start); answer != nil {
			b, err := json.Marshal(answer)
			if err != nil {
				return http.StatusInternalServerError
			}
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(b)
			return 0
		}
	}
	return http.StatusOK
}

// withoutToken drops the deprecated verification token from a JSON
// payload before it is stored: the signature stands in for it, and a
// credential has no business on disk.
func withoutToken(payload []byte) []byte {
	var m map[string]json.RawMessage
	if json.Unmarshal(payload, &m) != nil || m["token"] == nil {
		return payload
	}
	delete(m, "token")
	b, err := json.Marshal(m)
	if err != nil {
		return payload
	}
	return b
}

// hashID is the de-duplication key of a request with no id of its own.
func hashID(prefix string, body []byte) string {
	sum := sha256.Sum256(body)
	return fmt.Sprintf("%s:sha256:%x", prefix, sum[:16])
}
