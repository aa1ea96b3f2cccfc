package login

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/kraken-ops/kraken/enclave"
)

// defaultCodeLifetime bounds a sign-in whose provider did not say how
// long its code lasts (RFC 8628 requires it to): polling must end.
const defaultCodeLifetime = 10 * time.Minute

// Pending is a sign-in waiting for its person to approve it at the
// provider.
type Pending struct {
	// VerificationURI is where the person goes to enter UserCode.
	VerificationURI string
	// VerificationURIComplete, when the provider gives one, carries the
	// code already: one click.
	VerificationURIComplete string
	UserCode                string
	// Expires is when the code stops working.
	Expires time.Time
	// Done brings the outcome, once: the Identity now linked, or an error
	// wrapping ErrDenied, ErrCodeExpired, ErrReplaced, ErrInvalidToken or
	// ErrUnavailable, with nothing linked. It is buffered: no one has to
	// read it.
	Done <-chan Result
}

// Result is how a sign-in ended.
type Result struct {
	Identity Identity
	Err      error
}

// waiting is a sign-in whose poll runs in the background.
type waiting struct {
	cancel context.CancelCauseFunc
}

// Start begins a device sign-in for who and polls for its outcome in the
// background, respecting the provider's interval and slow_down, until
// the code expires. A person has one sign-in at a time: starting another
// ends the first with ErrReplaced.
func (s *Service) Start(ctx context.Context, who enclave.Principal) (Pending, error) {
	if !who.Valid() {
		return Pending{}, errors.New("login: a sign-in needs a person with a team and user id")
	}
	p, _, err := s.discovered(ctx)
	if err != nil {
		return Pending{}, err
	}
	oc := s.oauth(p)
	if oc.Endpoint.DeviceAuthURL == "" {
		return Pending{}, fmt.Errorf("%w: %s publishes no device_authorization_endpoint", ErrNoDeviceFlow, s.cfg.Issuer)
	}
	da, err := oc.DeviceAuth(s.httpContext(ctx))
	if err != nil {
		return Pending{}, fmt.Errorf("%w: device authorization: %s", ErrUnavailable, safe(err))
	}
	if da.DeviceCode == "" || da.UserCode == "" || da.VerificationURI == "" {
		return Pending{}, fmt.Errorf("%w: device authorization answered without a code or an address", ErrUnavailable)
	}
	if da.Expiry.IsZero() {
		da.Expiry = time.Now().Add(defaultCodeLifetime)
	}

	k := key(who)
	wctx, cancel := context.WithCancelCause(s.base)
	w := &waiting{cancel: cancel}
	s.mu.Lock()
	if old := s.waiting[k]; old != nil {
		old.cancel(ErrReplaced)
	}
	s.waiting[k] = w
	s.mu.Unlock()

	done := make(chan Result, 1)
	go func() {
		defer cancel(nil)
		r := s.await(wctx, p, oc, da, who)
		s.mu.Lock()
		if s.waiting[k] == w {
			delete(s.waiting, k)
		}
		s.mu.Unlock()
		done <- r
	}()
	s.log.Info("login: sign-in started", "team", who.TeamID, "user", who.UserID, "expires", da.Expiry.UTC().Format(time.RFC3339))
	return Pending{
		VerificationURI:         da.VerificationURI,
		VerificationURIComplete: da.VerificationURIComplete,
		UserCode:                da.UserCode,
		Expires:                 da.Expiry,
		Done:                    done,
	}, nil
}

// await polls until the person approves, refuses, or the code expires,
// then links them.
func (s *Service) await(ctx context.Context, p *oidc.Provider, oc *oauth2.Config, da *oauth2.DeviceAuthResponse, who enclave.Principal) Result {
	tok, err := oc.DeviceAccessToken(s.httpContext(ctx), da)
	if err != nil {
		err = s.pollError(ctx, err)
		s.log.Info("login: sign-in ended without a link", "team", who.TeamID, "user", who.UserID, "err", err)
		return Result{Err: err}
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, c, err := s.verify(ctx, p, raw)
	if err != nil {
		s.log.Warn("login: ID token refused; nothing linked", "team", who.TeamID, "user", who.UserID, "err", err)
		return Result{Err: err}
	}
	email := c.Email
	if email == "" && p.UserInfoEndpoint() != "" {
		// Some providers keep the email out of the ID token; the userinfo
		// endpoint has it, for the same subject only.
		if ui, err := p.UserInfo(s.httpContext(ctx), oauth2.StaticTokenSource(tok)); err == nil && ui.Subject == idt.Subject {
			email = ui.Email
		}
	}
	now := s.cfg.Now()
	l := Link{
		TeamID: who.TeamID, UserID: who.UserID,
		Issuer: idt.Issuer, Subject: idt.Subject, Email: email,
		Since: now, Until: idt.Expiry,
	}
	k := key(who)
	m := s.lock(k)
	m.Lock()
	defer m.Unlock()
	// A new sign-in replaces whatever was there, a claim on refreshing
	// the old one included: that refresh's outcome is then dropped.
	rec := Record{Link: l, Secret: Secret{RefreshToken: tok.RefreshToken}}
	err = s.links.Update(context.WithoutCancel(ctx), k, func(Record, bool) (Record, bool, error) { return rec, true, nil })
	if err != nil {
		s.log.Error("login: sign-in not kept; nothing linked", "team", who.TeamID, "user", who.UserID, "err", err)
		return Result{Err: fmt.Errorf("keep the sign-in: %w", err)}
	}
	s.log.Info("login: signed in", "team", who.TeamID, "user", who.UserID, "issuer", l.Issuer, "subject", l.Subject,
		"until", l.Until.UTC().Format(time.RFC3339), "refreshable", tok.RefreshToken != "")
	return Result{Identity: l.identity()}
}

// pollError says why polling ended: replaced (or the bot stopping), the
// code expired, the person refused, or the provider failed.
func (s *Service) pollError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ErrReplaced
	}
	switch code := oauthCode(err); {
	case code == "access_denied":
		return ErrDenied
	case code == "expired_token", errors.Is(err, context.DeadlineExceeded):
		return ErrCodeExpired
	}
	return fmt.Errorf("%w: %s", ErrUnavailable, safe(err))
}
