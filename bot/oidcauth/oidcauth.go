// Package oidcauth authenticates callers of the admin HTTP API with OpenID
// Connect bearer tokens and admits only members of an admin group.
//
// A token is accepted when its signature verifies against the issuer's
// published keys (found by OIDC discovery), its "iss" is the configured
// issuer, its "aud" contains the configured audience, it has not expired,
// it names a subject, and its groups claim contains the admin group.
//
// The bot must start even when its identity provider does not answer: chat
// keeps working without the admin API. So New does not fail when discovery
// fails for a transient reason; the Verifier retries discovery when requests
// arrive (at most once per Config.DiscoveryRetry) and until it succeeds every
// request is refused with ErrUnavailable (503 from Middleware).
package oidcauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
)

// Errors callers branch on. Errors returned by Verify wrap one of them.
var (
	// ErrNoToken means the request carried no bearer token.
	ErrNoToken = errors.New("no bearer token")
	// ErrInvalidToken means the token is malformed, forged, expired, or
	// meant for another issuer or audience.
	ErrInvalidToken = errors.New("invalid token")
	// ErrNotAdmin means the token is valid but its groups do not include the
	// admin group.
	ErrNotAdmin = errors.New("not in the admin group")
	// ErrUnavailable means the identity provider has not been discovered
	// yet, so no token can be checked.
	ErrUnavailable = errors.New("identity provider unreachable")
)

const (
	defaultGroupsClaim    = "groups"
	defaultDiscoveryRetry = 5 * time.Second
	// defaultHTTPTimeout bounds each call to the identity provider; the
	// zero-valued http.Client would wait forever on a provider that accepts
	// connections and never answers.
	defaultHTTPTimeout = 10 * time.Second
)

// Config says which tokens are admin tokens.
type Config struct {
	// Issuer is the identity provider's issuer URL, exactly as it appears in
	// its discovery document and in the "iss" of its tokens. Required.
	Issuer string
	// Audience must be one of the token's "aud" values (usually the client
	// ID registered for the bot). Required.
	Audience string
	// GroupsClaim names the claim listing the caller's groups. It may hold a
	// JSON array of strings or a single string. Default "groups".
	GroupsClaim string
	// AdminGroup is the group a caller must belong to. Required: an empty
	// group would silently admit everyone or no one.
	AdminGroup string
	// HTTPClient talks to the identity provider (discovery and keys).
	// Default: a client with a 10 s timeout.
	HTTPClient *http.Client
	// Logger receives one line per refused request and discovery attempt.
	// Default slog.Default().
	Logger *slog.Logger
	// DiscoveryRetry is the least time between two discovery attempts while
	// the identity provider is unreachable, so a burst of requests does not
	// become a burst of calls to a struggling provider. Default 5 s.
	DiscoveryRetry time.Duration
}

// Identity is the verified caller.
type Identity struct {
	Issuer  string
	Subject string
	Email   string
	Groups  []string
}

// Verifier checks bearer tokens. It is safe for concurrent use.
type Verifier struct {
	cfg    Config
	log    *slog.Logger
	client *http.Client

	// idv is nil until discovery has succeeded, then never changes.
	idv atomic.Pointer[oidc.IDTokenVerifier]

	// discover serialises discovery attempts; lastTry and lastErr are
	// guarded by it.
	discover sync.Mutex
	lastTry  time.Time
	lastErr  error
}

// New returns a Verifier for cfg and tries discovery once, bounded by ctx.
//
// It returns an error only for a configuration that can never work: a
// missing field, or an identity provider that answers discovery with a
// different issuer (a trailing slash is the usual culprit). If the provider
// cannot be reached, New logs a warning and returns a working Verifier that
// answers ErrUnavailable until a later discovery succeeds.
func New(ctx context.Context, cfg Config) (*Verifier, error) {
	switch {
	case cfg.Issuer == "":
		return nil, errors.New("oidcauth: Config.Issuer is required")
	case cfg.Audience == "":
		return nil, errors.New("oidcauth: Config.Audience is required")
	case cfg.AdminGroup == "":
		return nil, errors.New("oidcauth: Config.AdminGroup is required")
	}
	if cfg.GroupsClaim == "" {
		cfg.GroupsClaim = defaultGroupsClaim
	}
	if cfg.DiscoveryRetry <= 0 {
		cfg.DiscoveryRetry = defaultDiscoveryRetry
	}
	v := &Verifier{cfg: cfg, log: cfg.Logger, client: cfg.HTTPClient}
	if v.log == nil {
		v.log = slog.Default()
	}
	if v.client == nil {
		v.client = &http.Client{Timeout: defaultHTTPTimeout}
	}

	v.discover.Lock()
	defer v.discover.Unlock()
	if err := v.discoverLocked(ctx); err != nil {
		if _, ok := errors.AsType[*oidc.IssuerMismatchError](err); ok {
			return nil, fmt.Errorf("oidcauth: %w", err)
		}
		v.log.Warn("oidcauth: identity provider unreachable at start; admin API will answer 503 until it is",
			"issuer", cfg.Issuer, "err", err)
	}
	return v, nil
}

// Ready reports whether the identity provider has been discovered.
func (v *Verifier) Ready() bool { return v.idv.Load() != nil }

// verifier returns the token verifier, discovering the provider first if
// that has not succeeded yet and the last attempt is old enough.
func (v *Verifier) verifier(ctx context.Context) (*oidc.IDTokenVerifier, error) {
	if idv := v.idv.Load(); idv != nil {
		return idv, nil
	}
	// Only one request discovers at a time; the others are refused at once
	// rather than queued behind a provider that may take the whole client
	// timeout to fail.
	if !v.discover.TryLock() {
		return nil, fmt.Errorf("%w: discovery in progress", ErrUnavailable)
	}
	defer v.discover.Unlock()
	if idv := v.idv.Load(); idv != nil {
		return idv, nil
	}
	if time.Since(v.lastTry) < v.cfg.DiscoveryRetry {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, v.lastErr)
	}
	if err := v.discoverLocked(ctx); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	v.log.Info("oidcauth: identity provider discovered", "issuer", v.cfg.Issuer)
	return v.idv.Load(), nil
}

// discoverLocked runs one discovery attempt; v.discover must be held.
func (v *Verifier) discoverLocked(ctx context.Context) error {
	v.lastTry = time.Now()
	// The client rides in the context: that is how go-oidc is told which
	// client to use, for discovery now and for fetching keys later.
	p, err := oidc.NewProvider(oidc.ClientContext(ctx, v.client), v.cfg.Issuer)
	if err != nil {
		v.lastErr = err
		return err
	}
	v.lastErr = nil
	v.idv.Store(p.Verifier(&oidc.Config{ClientID: v.cfg.Audience}))
	return nil
}

// Verify checks rawToken and returns who it identifies.
//
// The error wraps ErrNoToken, ErrUnavailable, ErrInvalidToken or
// ErrNotAdmin. With ErrNotAdmin the Identity is filled in too, so the
// caller can say who was refused.
func (v *Verifier) Verify(ctx context.Context, rawToken string) (Identity, error) {
	if rawToken == "" {
		return Identity{}, ErrNoToken
	}
	idv, err := v.verifier(ctx)
	if err != nil {
		return Identity{}, err
	}
	tok, err := idv.Verify(ctx, rawToken)
	if err != nil {
		return Identity{}, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	if tok.Subject == "" {
		return Identity{}, fmt.Errorf("%w: no subject", ErrInvalidToken)
	}
	var claims map[string]json.RawMessage
	if err := tok.Claims(&claims); err != nil {
		return Identity{}, fmt.Errorf("%w: reading claims: %w", ErrInvalidToken, err)
	}
	groups, err := stringOrList(claims[v.cfg.GroupsClaim])
	if err != nil {
		return Identity{}, fmt.Errorf("%w: claim %q: %w", ErrInvalidToken, v.cfg.GroupsClaim, err)
	}
	id := Identity{Issuer: tok.Issuer, Subject: tok.Subject, Groups: groups}
	if raw, ok := claims["email"]; ok {
		// A malformed email is not a reason to refuse: it is informative only.
		_ = json.Unmarshal(raw, &id.Email)
	}
	if !slices.Contains(groups, v.cfg.AdminGroup) {
		return id, ErrNotAdmin
	}
	return id, nil
}

// stringOrList decodes a claim that providers send either as one string or
// as a list of strings. An absent or null claim is an empty list.
func stringOrList(raw json.RawMessage) ([]string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var one string
	if err := json.Unmarshal(raw, &one); err == nil {
		return []string{one}, nil
	}
	var list []string
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, errors.New("not a string or a list of strings")
	}
	return list, nil
}

type identityKey struct{}

// IdentityFrom returns the Identity that Middleware stored in ctx.
func IdentityFrom(ctx context.Context) (Identity, bool) {
	id, ok := ctx.Value(identityKey{}).(Identity)
	return id, ok
}

// WithIdentity returns a context carrying id, as Middleware does. It lets
// handlers behind Middleware be tested without tokens.
func WithIdentity(ctx context.Context, id Identity) context.Context {
	return context.WithValue(ctx, identityKey{}, id)
}
