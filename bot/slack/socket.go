package slack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"time"

	slackapi "github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"
)

// RunSocketMode receives Slack's requests over a Socket Mode connection
// instead of (or as well as) HTTP, until ctx ends. Requests go through
// the same de-duplication and the same workers as Handler's, so Run must
// be running: RunSocketMode waits until it is Ready before it connects.
// Each request is acknowledged once it is claimed in the store.
func (a *App) RunSocketMode(ctx context.Context) error {
	if a.cfg.AppToken == "" {
		return errors.New("slack: socket mode needs an app token")
	}
	select {
	case <-a.ready:
	case <-a.stopped:
		return errors.New("slack: socket mode: Run has stopped")
	case <-ctx.Done():
		return nil
	}
	api := slackapi.New(a.cfg.BotToken, slackapi.OptionAPIURL(a.apiURL),
		slackapi.OptionAppLevelToken(a.cfg.AppToken), slackapi.OptionHTTPClient(a.cfg.HTTPClient))
	sm := socketmode.New(api)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- sm.RunContext(ctx) }()
	for {
		select {
		case <-ctx.Done():
			<-done
			return nil
		case err := <-done:
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("slack: socket mode: %w", err)
		case evt := <-sm.Events:
			if err := a.socketEvent(ctx, sm, evt); err != nil {
				return fmt.Errorf("slack: socket mode: %w", err)
			}
		}
	}
}

// socketEvent handles one event from the Socket Mode client: the three
// kinds of request are admitted and acknowledged; a connection that Slack
// refuses ends RunSocketMode.
func (a *App) socketEvent(ctx context.Context, sm *socketmode.Client, evt socketmode.Event) error {
	switch evt.Type {
	case socketmode.EventTypeEventsAPI, socketmode.EventTypeSlashCommand, socketmode.EventTypeInteractive:
		if evt.Request != nil {
			a.socketRequest(ctx, sm, *evt.Request)
		}
	case socketmode.EventTypeErrorBadMessage:
		// slack-go could not parse it (an event type it does not know,
		// say); the envelope may still be one the bot handles.
		if bad, ok := evt.Data.(*socketmode.ErrorBadMessage); ok {
			var req socketmode.Request
			if json.Unmarshal(bad.Message, &req) == nil && req.EnvelopeID != "" {
				a.socketRequest(ctx, sm, req)
			}
		}
	case socketmode.EventTypeInvalidAuth:
		return errors.New("Slack refused the app token")
	case socketmode.EventTypeConnected:
		a.log.Info("socket mode connected")
	case socketmode.EventTypeConnectionError:
		a.log.Warn("socket mode connection failed; retrying", "err", evt.Data)
	}
	return nil
}

// socketRequest is serve for an envelope: parse, claim, queue, ack. An
// envelope that could not be claimed is not acknowledged, so Slack sends
// it again.
func (a *App) socketRequest(ctx context.Context, sm *socketmode.Client, req socketmode.Request) {
	start := time.Now()
	rid := newRequestID()
	var in inbound
	var err error
	var kind string
	switch req.Type {
	case socketmode.RequestTypeEventsAPI:
		kind = kindEvent
		in, err = a.parseEventBody(ctx, req.Payload)
	case socketmode.RequestTypeSlashCommands:
		kind = kindCommand
		var body []byte
		if body, err = formOf(req.Payload); err == nil {
			in, err = parseCommandBody(body)
		}
	case socketmode.RequestTypeInteractive:
		kind = kindInteraction
		in, err = parseInteraction(req.Payload)
	default:
		return
	}
	log := a.log.With("rid", rid, "kind", kind, "envelope", req.EnvelopeID)
	ctx = withLog(ctx, log)
	answerLater := false
	defer func() {
		if !answerLater {
			a.observe(kind, time.Since(start))
		}
	}()
	if err != nil {
		// It will not parse any better next time: acknowledge and drop.
		log.Warn("request not understood", "err", err)
		a.ack(ctx, sm, req, nil)
		return
	}
	var adm admission
	if in.id != "" {
		in.job.RID = rid
		adm, err = a.admit(ctx, in.id, in.job)
		switch {
		case err != nil:
			log.Error("request not claimed; Slack will retry", "id", in.id, "err", err)
			return
		case adm == notReady:
			return
		case adm == duplicate:
			a.count("duplicate")
			log.Debug("duplicate request dropped", "id", in.id, "retry", req.RetryAttempt)
		case adm == busy:
			log.Warn("secret form submitted while the queue is full; asked to submit again", "id", in.id)
		}
	}
	if sub := in.job.Secret; sub != nil {
		// The ack carries the answer, which waits for the registry: not
		// on the loop that reads every other envelope.
		answerLater = true
		go func() {
			a.ack(ctx, sm, req, awaitSubmission(ctx, sub, adm, start))
			a.observe(kindSubmission, time.Since(start))
		}()
		return
	}
	a.ack(ctx, sm, req, nil)
}

// ack acknowledges an envelope, with an answer when there is one: a nil
// answer sends none (a typed nil would send "null").
func (a *App) ack(ctx context.Context, sm *socketmode.Client, req socketmode.Request, answer *slackapi.ViewSubmissionResponse) {
	var payload any
	if answer != nil {
		payload = answer
	}
	if err := sm.AckCtx(ctx, req.EnvelopeID, payload); err != nil {
		a.logOf(ctx).Warn("ack not sent", "err", err)
	}
}

// formOf turns a slash command as Socket Mode carries it (a JSON object)
// into the form Slack posts over HTTP, so both are stored alike.
func formOf(payload json.RawMessage) ([]byte, error) {
	var m map[string]any
	if err := json.Unmarshal(payload, &m); err != nil {
		return nil, fmt.Errorf("slash command: %w", err)
	}
	v := url.Values{}
	for k, x := range m {
		switch x := x.(type) {
		case string:
			v.Set(k, x)
		case nil:
		default:
			b, _ := json.Marshal(x)
			v.Set(k, string(b))
		}
	}
	return []byte(v.Encode()), nil
}
