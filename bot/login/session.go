package login

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/kraken-ops/kraken/enclave"
	"github.com/kraken-ops/kraken/store"
)

// noExpiryValidity is how long a refresh vouches for a person when the
// provider says neither when its ID token nor its access token expires.
const noExpiryValidity = 5 * time.Minute

// Current is who's identity, valid now. A link whose ID token has expired
// is refreshed first. The error wraps:
//   - ErrNotSignedIn: no link;
//   - ErrSignInExpired: the link no longer vouches for them (the Identity
//     says who it was); they must sign in again;
//   - ErrUnavailable: the provider could not be asked; the link is kept,
//     but it does not vouch for them until a refresh succeeds.
func (s *Service) Current(ctx context.Context, who enclave.Principal) (Identity, error) {
	if !who.Valid() {
		return Identity{}, ErrNotSignedIn
	}
	k := key(who)
	l, ok, err := s.links.Get(ctx, k)
	switch {
	case err != nil:
		return Identity{}, err
	case !ok:
		return Identity{}, ErrNotSignedIn
	case l.Expired:
		return l.identity(), ErrSignInExpired
	case s.cfg.Now().Before(l.Until):
		return l.identity(), nil
	}
	m := s.lock(k)
	m.Lock()
	defer m.Unlock()
	// Someone may have refreshed (or signed out) while we waited.
	l, ok, err = s.links.Get(ctx, k)
	switch {
	case err != nil:
		return Identity{}, err
	case !ok:
		return Identity{}, ErrNotSignedIn
	case l.Expired:
		return l.identity(), ErrSignInExpired
	case s.cfg.Now().Before(l.Until):
		return l.identity(), nil
	}
	return s.refresh(ctx, k, l)
}

// refresh renews an expired link with its refresh token; the lock of k
// is held.
func (s *Service) refresh(ctx context.Context, k string, l link) (Identity, error) {
	sec, ok, err := s.vault.Get(ctx, k)
	switch {
	case errors.Is(err, store.ErrSealed), errors.Is(err, store.ErrNoKeyring):
		return s.expire(ctx, k, l, "the refresh token cannot be opened with the store's key")
	case err != nil:
		return l.identity(), err
	case !ok || sec.empty():
		return s.expire(ctx, k, l, "no refresh token")
	}
	p, _, err := s.discovered(ctx)
	if err != nil {
		return l.identity(), err
	}
	tok, err := s.oauth(p).TokenSource(s.httpContext(ctx), sec.token()).Token()
	if err != nil {
		if code := oauthCode(err); code != "" {
			return s.expire(ctx, k, l, "refresh refused: "+code)
		}
		return l.identity(), fmt.Errorf("%w: refresh: %s", ErrUnavailable, safe(err))
	}
	until := tok.Expiry
	if raw, _ := tok.Extra("id_token").(string); raw != "" {
		idt, c, err := s.verify(ctx, p, raw)
		if err != nil {
			return s.expire(ctx, k, l, err.Error())
		}
		if idt.Subject != l.Subject || idt.Issuer != l.Issuer {
			return s.expire(ctx, k, l, "the refresh answered for another subject")
		}
		until = idt.Expiry
		if c.Email != "" {
			l.Email = c.Email
		}
	}
	if until.IsZero() {
		until = s.cfg.Now().Add(noExpiryValidity)
	}
	// A provider that rotates refresh tokens has spent the old one: keep
	// the new one before anything else can fail.
	if tok.RefreshToken != sec.RefreshToken {
		if err := s.keep(ctx, k, tok.RefreshToken); err != nil {
			s.log.Error("login: rotated refresh token not kept; the person will have to sign in again", "key", k, "err", err)
		}
	}
	l.Until, l.Refreshes = until, l.Refreshes+1
	if err := s.links.Put(context.WithoutCancel(ctx), k, l); err != nil {
		return l.identity(), err
	}
	s.log.Debug("login: sign-in refreshed", "key", k, "subject", l.Subject, "until", until.UTC().Format(time.RFC3339))
	return l.identity(), nil
}

// expire marks a link as no longer vouching for its person and forgets
// its refresh token.
func (s *Service) expire(ctx context.Context, k string, l link, why string) (Identity, error) {
	ctx = context.WithoutCancel(ctx)
	l.Expired, l.Why = true, why
	if err := s.vault.Delete(ctx, k); err != nil {
		s.log.Error("login: expired refresh token not forgotten", "key", k, "err", err)
	}
	if err := s.links.Put(ctx, k, l); err != nil {
		return l.identity(), fmt.Errorf("%w (and not recorded: %w)", ErrSignInExpired, err)
	}
	s.log.Info("login: sign-in expired", "key", k, "issuer", l.Issuer, "subject", l.Subject, "why", why)
	return l.identity(), ErrSignInExpired
}

// Logout forgets who's link and refresh token, revokes the refresh token
// at the provider when it offers revocation, and ends a sign-in still
// waiting. It returns the identity that was linked, or ErrNotSignedIn.
// A failed revocation is logged, not returned: the link is gone either
// way.
func (s *Service) Logout(ctx context.Context, who enclave.Principal) (Identity, error) {
	k := key(who)
	s.mu.Lock()
	if w := s.waiting[k]; w != nil {
		w.cancel(ErrReplaced)
		delete(s.waiting, k)
	}
	s.mu.Unlock()
	m := s.lock(k)
	m.Lock()
	defer m.Unlock()
	l, ok, err := s.links.Get(ctx, k)
	if err != nil {
		return Identity{}, err
	}
	sec, hasSecret, err := s.vault.Get(ctx, k)
	if err != nil && !errors.Is(err, store.ErrSealed) && !errors.Is(err, store.ErrNoKeyring) {
		return Identity{}, err
	}
	if err := s.vault.Delete(ctx, k); err != nil && !errors.Is(err, store.ErrNoKeyring) {
		return Identity{}, err
	}
	if !ok {
		return Identity{}, ErrNotSignedIn
	}
	if err := s.links.Delete(ctx, k); err != nil {
		return Identity{}, err
	}
	s.log.Info("login: signed out", "key", k, "issuer", l.Issuer, "subject", l.Subject)
	if hasSecret && !sec.empty() {
		if err := s.revokeToken(ctx, sec); err != nil {
			s.log.Warn("login: refresh token not revoked at the provider", "key", k, "err", err)
		}
	}
	return l.identity(), nil
}

// revokeToken asks the provider to forget a refresh token (RFC 7009),
// when it publishes a revocation endpoint.
func (s *Service) revokeToken(ctx context.Context, sec Secret) error {
	_, endpoint, err := s.discovered(ctx)
	if err != nil || endpoint == "" {
		return err
	}
	form := url.Values{"token": {sec.RefreshToken}, "token_type_hint": {"refresh_token"}}
	if s.cfg.ClientSecret == "" {
		form.Set("client_id", s.cfg.ClientID)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return fmt.Errorf("revocation request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if s.cfg.ClientSecret != "" {
		req.SetBasicAuth(url.QueryEscape(s.cfg.ClientID), url.QueryEscape(s.cfg.ClientSecret))
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("revocation: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("revocation answered %s", resp.Status)
	}
	return nil
}
