package login

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/kraken-ops/kraken/enclave"
)

// noExpiryValidity is how long a refresh vouches for a person when the
// provider says neither when its ID token nor its access token expires.
const noExpiryValidity = 5 * time.Minute

// Claims on a refresh: how long the others wait for the replica that
// made one (longer than its provider call may take), and how often they
// look whether it is done.
const (
	claimLifetime = 3 * defaultHTTPTimeout
	claimPoll     = 100 * time.Millisecond
)

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
	r, ok, err := s.links.Get(ctx, k)
	if done, id, err := s.judge(r, ok, err); done {
		return id, err
	}
	m := s.lock(k)
	m.Lock()
	defer m.Unlock()
	return s.refreshShared(ctx, k)
}

// judge says whether a record settles Current without a refresh, and how.
func (s *Service) judge(r Record, ok bool, err error) (bool, Identity, error) {
	switch {
	case err != nil:
		return true, Identity{}, err
	case !ok:
		return true, Identity{}, ErrNotSignedIn
	case r.Link.Expired:
		return true, r.Link.identity(), ErrSignInExpired
	case s.cfg.Now().Before(r.Link.Until):
		return true, r.Link.identity(), nil
	}
	return false, r.Link.identity(), nil
}

// refreshShared renews an expired link once across every replica sharing
// the links: it claims the refresh with a compare-and-swap on the record
// and spends the refresh token only if the claim is its own; otherwise
// it waits for the claimant's outcome and takes it, or takes over a
// claim whose claimant went quiet. The lock of k is held.
func (s *Service) refreshShared(ctx context.Context, k string) (Identity, error) {
	for {
		var (
			cur     Record
			present bool
			claimed bool
		)
		err := s.links.Update(ctx, k, func(r Record, ok bool) (Record, bool, error) {
			cur, present, claimed = r, ok, false
			if done, _, _ := s.judge(r, ok, nil); done {
				return r, ok, nil
			}
			now := time.Now()
			if c := r.Refreshing; c != nil && c.By != s.id && now.Before(c.Until) {
				return r, ok, nil
			}
			r.Refreshing = &Claim{By: s.id, Until: now.Add(claimLifetime)}
			cur, claimed = r, true
			return r, true, nil
		})
		if err != nil {
			return Identity{}, err
		}
		if done, id, err := s.judge(cur, present, nil); done {
			return id, err
		}
		if claimed {
			return s.refresh(ctx, k, cur)
		}
		// Another replica is spending the token: its outcome is ours.
		select {
		case <-ctx.Done():
			return cur.Link.identity(), fmt.Errorf("%w: waiting for another replica's refresh: %w", ErrUnavailable, context.Cause(ctx))
		case <-time.After(claimPoll):
		}
	}
}

// refresh renews an expired link with its refresh token; r carries this
// Service's claim on it.
func (s *Service) refresh(ctx context.Context, k string, r Record) (Identity, error) {
	l, used := r.Link, r.Secret
	if used.empty() {
		return s.expire(ctx, k, used, "no refresh token")
	}
	p, _, err := s.discovered(ctx)
	if err != nil {
		s.release(ctx, k)
		return l.identity(), err
	}
	tok, err := s.oauth(p).TokenSource(s.httpContext(ctx), used.token()).Token()
	if err != nil {
		if code := oauthCode(err); code != "" {
			return s.expire(ctx, k, used, "refresh refused: "+code)
		}
		s.release(ctx, k)
		return l.identity(), fmt.Errorf("%w: refresh: %s", ErrUnavailable, safe(err))
	}
	until := tok.Expiry
	if raw, _ := tok.Extra("id_token").(string); raw != "" {
		idt, c, err := s.verify(ctx, p, raw)
		if err != nil {
			return s.expire(ctx, k, used, err.Error())
		}
		if idt.Subject != l.Subject || idt.Issuer != l.Issuer {
			return s.expire(ctx, k, used, "the refresh answered for another subject")
		}
		until = idt.Expiry
		if c.Email != "" {
			l.Email = c.Email
		}
	}
	if until.IsZero() {
		until = s.cfg.Now().Add(noExpiryValidity)
	}
	l.Until, l.Refreshes = until, l.Refreshes+1
	// A provider that rotates refresh tokens has spent the old one: the
	// new one is kept unless the sign-in it renews is gone (a logout or a
	// new sign-in came in between), which then must not be resurrected.
	next := Secret{RefreshToken: tok.RefreshToken}
	if next.empty() {
		next = used
	}
	kept := false
	err = s.links.Update(context.WithoutCancel(ctx), k, func(cur Record, ok bool) (Record, bool, error) {
		kept = ok && cur.Secret == used
		if !kept {
			return cur, ok, nil
		}
		return Record{Link: l, Secret: next}, true, nil
	})
	if err != nil {
		s.log.Error("login: refreshed sign-in not kept; the person may have to sign in again", "key", k, "err", err)
		return l.identity(), err
	}
	if !kept {
		s.log.Info("login: sign-in ended while it was refreshed; the new token is dropped", "key", k)
		if next != used {
			if err := s.revokeToken(ctx, next); err != nil {
				s.log.Warn("login: dropped refresh token not revoked at the provider", "key", k, "err", err)
			}
		}
		r, ok, err := s.links.Get(ctx, k)
		_, id, err := s.judge(r, ok, err)
		return id, err
	}
	s.log.Debug("login: sign-in refreshed", "key", k, "subject", l.Subject, "until", until.UTC().Format(time.RFC3339))
	return l.identity(), nil
}

// release drops this Service's claim on k's refresh, which failed for a
// reason that may pass: another replica may try at once.
func (s *Service) release(ctx context.Context, k string) {
	err := s.links.Update(context.WithoutCancel(ctx), k, func(cur Record, ok bool) (Record, bool, error) {
		if ok && cur.Refreshing != nil && cur.Refreshing.By == s.id {
			cur.Refreshing = nil
		}
		return cur, ok, nil
	})
	if err != nil {
		s.log.Warn("login: refresh claim not released; other replicas wait for it to lapse", "key", k, "err", err)
	}
}

// expire marks a link as no longer vouching for its person and forgets
// its refresh token, unless the sign-in that failed (the one holding
// used) was replaced meanwhile.
func (s *Service) expire(ctx context.Context, k string, used Secret, why string) (Identity, error) {
	var l Link
	var ok, same bool
	err := s.links.Update(context.WithoutCancel(ctx), k, func(cur Record, present bool) (Record, bool, error) {
		l, ok, same = cur.Link, present, present && cur.Secret == used
		if !same {
			return cur, present, nil
		}
		cur.Link.Expired, cur.Link.Why = true, why
		cur.Secret, cur.Refreshing = Secret{}, nil
		return cur, true, nil
	})
	switch {
	case err != nil:
		return l.identity(), fmt.Errorf("%w (and not recorded: %w)", ErrSignInExpired, err)
	case !ok:
		return Identity{}, ErrNotSignedIn
	case !same:
		r, ok, err := s.links.Get(ctx, k)
		_, id, err := s.judge(r, ok, err)
		return id, err
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
	var gone Record
	var ok bool
	err := s.links.Update(ctx, k, func(cur Record, present bool) (Record, bool, error) {
		gone, ok = cur, present
		return Record{}, false, nil
	})
	if err != nil {
		return Identity{}, err
	}
	if !ok {
		return Identity{}, ErrNotSignedIn
	}
	l := gone.Link
	s.log.Info("login: signed out", "key", k, "issuer", l.Issuer, "subject", l.Subject)
	if !gone.Secret.empty() {
		if err := s.revokeToken(ctx, gone.Secret); err != nil {
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
