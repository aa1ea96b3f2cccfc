// Package logintest runs a real OpenID Connect provider on loopback for
// tests of sign-in: zitadel/oidc's OP with its example in-memory storage,
// which implements the device authorization grant (RFC 8628), refresh
// tokens and revocation. Tests approve or refuse a sign-in the way the
// provider's own pages would, through its storage.
package logintest

import (
	"context"
	"crypto/rand"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/zitadel/oidc/v3/example/server/storage"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// The example storage's users: Alice is "id1", Bob "id2".
const (
	Alice      = "id1"
	AliceEmail = "test-user@zitadel.ch"
	Bob        = "id2"
)

// Options shape the provider; zero values take the defaults.
type Options struct {
	// IDTokenLifetime: how long ID tokens are valid; default 1 hour.
	IDTokenLifetime time.Duration
	// CodeLifetime: how long a device code is valid; default 1 minute.
	CodeLifetime time.Duration
	// PollInterval: the interval the provider asks clients to poll at,
	// in whole seconds; default 1 second.
	PollInterval time.Duration
}

// Provider is a running OP with one confidential device client.
type Provider struct {
	Issuer       string
	ClientID     string
	ClientSecret string

	store *store
	srv   *httptest.Server
}

// New starts a provider on 127.0.0.1; it stops when the test ends.
func New(t testing.TB, o Options) *Provider {
	t.Helper()
	if o.IDTokenLifetime <= 0 {
		o.IDTokenLifetime = time.Hour
	}
	if o.CodeLifetime <= 0 {
		o.CodeLifetime = time.Minute
	}
	if o.PollInterval <= 0 {
		o.PollInterval = time.Second
	}
	srv := httptest.NewUnstartedServer(nil)
	issuer := "http://" + srv.Listener.Addr().String()
	p := &Provider{Issuer: issuer, ClientID: "kraken", ClientSecret: rand.Text()}
	base := storage.DeviceClient(p.ClientID, p.ClientSecret)
	p.store = &store{
		Storage: storage.NewStorageWithClients(storage.NewUserStore(issuer), map[string]*storage.Client{p.ClientID: base}),
		client:  &client{Client: base, idLifetime: o.IDTokenLifetime},
	}
	cfg := &op.Config{
		GrantTypeRefreshToken: true,
		DeviceAuthorization: op.DeviceAuthorizationConfig{
			Lifetime:     o.CodeLifetime,
			PollInterval: o.PollInterval,
			UserFormPath: "/device",
			UserCode:     op.UserCodeBase20,
		},
	}
	copy(cfg.CryptoKey[:], rand.Text())
	provider, err := op.NewProvider(cfg, p.store, op.StaticIssuer(issuer), op.WithAllowInsecure())
	if err != nil {
		t.Fatalf("logintest: starting the OpenID provider: %v", err)
	}
	srv.Config.Handler = provider
	srv.Start()
	t.Cleanup(srv.Close)
	p.srv = srv
	return p
}

// Approve is the person signing in as subject and approving the code, as
// the provider's device page does.
func (p *Provider) Approve(userCode, subject string) error {
	p.store.dev.Lock()
	defer p.store.dev.Unlock()
	return p.store.CompleteDeviceAuthorization(context.Background(), userCode, subject)
}

// Deny is the person refusing the sign-in.
func (p *Provider) Deny(userCode string) error {
	p.store.dev.Lock()
	defer p.store.dev.Unlock()
	if _, err := p.store.GetDeviceAuthorizationByUserCode(context.Background(), userCode); err != nil {
		return err
	}
	return p.store.DenyDeviceAuthorization(context.Background(), userCode)
}

// EndSessions revokes every token the provider issued to subject, as an
// administrator ending their sessions would: refreshes fail from now on.
func (p *Provider) EndSessions(subject string) error {
	return p.store.TerminateSession(context.Background(), subject, p.ClientID)
}

// MisdirectIDTokens makes the provider issue the next device sign-ins'
// ID tokens to another audience, as a misconfigured or hostile provider
// would.
func (p *Provider) MisdirectIDTokens(to string) {
	p.store.mu.Lock()
	defer p.store.mu.Unlock()
	p.store.audience = to
}

// RefreshTokens is how many refresh tokens the provider holds now (not
// revoked, not rotated away).
func (p *Provider) RefreshTokens() int {
	return p.store.refreshTokens()
}

// Refreshes is how many refresh grants the provider has honoured: each
// spends one refresh token and rotates it.
func (p *Provider) Refreshes() int {
	p.store.mu.Lock()
	defer p.store.mu.Unlock()
	return p.store.refreshes
}

// store is the example storage with our client and the misdirection.
type store struct {
	*storage.Storage
	client *client

	// dev orders the example's device states: it changes them under its
	// lock but hands the OP a pointer it reads without one, so we hand
	// the OP copies made under dev, and approve and deny under dev.
	dev sync.Mutex

	mu        sync.Mutex
	audience  string
	live      map[string]bool
	refreshes int
}

func (s *store) GetClientByClientID(ctx context.Context, id string) (op.Client, error) {
	if id == s.client.GetID() {
		return s.client, nil
	}
	return s.Storage.GetClientByClientID(ctx, id)
}

// GetDeviceAuthorizatonState (sic, the OP's spelling) hands the OP a copy
// naming another client when misdirection is on: the OP then signs the ID
// token for that audience.
func (s *store) GetDeviceAuthorizatonState(ctx context.Context, clientID, deviceCode string) (*op.DeviceAuthorizationState, error) {
	s.dev.Lock()
	defer s.dev.Unlock()
	st, err := s.Storage.GetDeviceAuthorizatonState(ctx, clientID, deviceCode)
	if err != nil {
		return st, err
	}
	c := *st
	s.mu.Lock()
	if s.audience != "" {
		c.ClientID = s.audience
	}
	s.mu.Unlock()
	return &c, nil
}

// CreateAccessAndRefreshTokens counts refresh tokens as they are made,
// rotated and revoked, so tests can see logout revoke one. The example
// storage records no client for tokens of a device sign-in (it knows the
// client only of its own request types), so their refresh and revocation
// would be refused: a device sign-in is handed over as the equivalent
// authorization request.
func (s *store) CreateAccessAndRefreshTokens(ctx context.Context, req op.TokenRequest, current string) (string, string, time.Time, error) {
	if d, ok := req.(*op.DeviceAuthorizationState); ok {
		req = &storage.AuthRequest{ApplicationID: d.ClientID, UserID: d.Subject, Scopes: d.Scopes}
	}
	id, refresh, exp, err := s.Storage.CreateAccessAndRefreshTokens(ctx, req, current)
	if err == nil {
		s.mu.Lock()
		if s.live == nil {
			s.live = map[string]bool{}
		}
		delete(s.live, current)
		s.live[refresh] = true
		if current != "" {
			s.refreshes++
		}
		s.mu.Unlock()
	}
	return id, refresh, exp, err
}

func (s *store) RevokeToken(ctx context.Context, token, userID, clientID string) *oidc.Error {
	if err := s.Storage.RevokeToken(ctx, token, userID, clientID); err != nil {
		return err
	}
	s.mu.Lock()
	delete(s.live, token)
	s.mu.Unlock()
	return nil
}

func (s *store) TerminateSession(ctx context.Context, userID, clientID string) error {
	if err := s.Storage.TerminateSession(ctx, userID, clientID); err != nil {
		return err
	}
	s.mu.Lock()
	clear(s.live)
	s.mu.Unlock()
	return nil
}

func (s *store) refreshTokens() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.live)
}

// client is the example's device client, also allowed refresh tokens,
// with our ID token lifetime.
type client struct {
	*storage.Client
	idLifetime time.Duration
}

func (c *client) GrantTypes() []oidc.GrantType {
	return []oidc.GrantType{oidc.GrantTypeDeviceCode, oidc.GrantTypeRefreshToken}
}

func (c *client) IDTokenLifetime() time.Duration { return c.idLifetime }
