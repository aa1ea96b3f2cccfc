// Package login links Slack users to an identity at the organisation's
// OpenID Connect provider, so that what they ask of the bot can be tied
// to an identity outside Slack.
//
// A person signs in once with the OAuth 2.0 Device Authorization Grant
// (RFC 8628): the bot asks the provider for a code, shows the person the
// verification address and the code, and polls the token endpoint in the
// background until they approve, refuse, or the code expires. The ID
// token that comes back is verified with go-oidc (signature, issuer,
// audience = our client id, expiry); its subject and email become the
// person's link.
//
// A link vouches for the person while its ID token (or the last refresh)
// is valid. After that the bot refreshes it with the refresh token, which
// is kept sealed at rest (Links: the store by default, or a place the
// replicas share); when the refresh fails
// because the provider no longer honours it, the link is marked expired
// and the person must sign in again. No token is ever logged, shown or put
// in an error.
package login

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/kraken-ops/kraken/enclave"
	"github.com/kraken-ops/kraken/store"
)

// Errors callers branch on. Errors returned by the Service wrap one of
// them, or a store error.
var (
	// ErrNotSignedIn: the person has no link.
	ErrNotSignedIn = errors.New("not signed in")
	// ErrSignInExpired: the person's link no longer vouches for them (its
	// refresh was refused or revoked): they must sign in again.
	ErrSignInExpired = errors.New("sign-in expired")
	// ErrUnavailable: the identity provider could not be reached or
	// answered nonsense; trying again later may work.
	ErrUnavailable = errors.New("identity provider unavailable")
	// ErrNoDeviceFlow: the provider does not offer device sign-in.
	ErrNoDeviceFlow = errors.New("the identity provider does not offer device sign-in")
	// ErrDenied: the person refused the sign-in at the provider.
	ErrDenied = errors.New("sign-in refused at the identity provider")
	// ErrCodeExpired: the code was not used before it expired.
	ErrCodeExpired = errors.New("sign-in code expired")
	// ErrReplaced: a newer sign-in by the same person replaced this one
	// (or the bot is stopping).
	ErrReplaced = errors.New("sign-in replaced by a newer one")
	// ErrInvalidToken: the provider's ID token did not verify (another
	// audience, issuer, an expired or forged token, or no subject).
	ErrInvalidToken = errors.New("the identity provider's ID token did not verify")
)

const (
	defaultDiscoveryRetry = 5 * time.Second
	defaultHTTPTimeout    = 10 * time.Second
	linksBucket           = "login_links"
	secretsBucket         = "login_secrets"
)

// DefaultScopes are asked when Config.Scopes is empty: the ID token,
// the email to show, and a refresh token (offline_access).
var DefaultScopes = []string{oidc.ScopeOpenID, "email", "profile", oidc.ScopeOfflineAccess}

// Identity is who a Slack user is at the identity provider.
type Identity struct {
	Issuer  string
	Subject string
	// Email is the provider's email claim, shown to people; may be empty.
	Email string
	// Since is when the person signed in.
	Since time.Time
	// Until is when the ID token (or the last refresh) stops vouching for
	// the person; the next use after it refreshes.
	Until time.Time
}

// IssuerHost is the issuer's host, which is how people name it.
func (i Identity) IssuerHost() string {
	if u, err := url.Parse(i.Issuer); err == nil && u.Host != "" {
		return u.Host
	}
	return i.Issuer
}

// Name is the email, or the subject when the provider gave no email.
func (i Identity) Name() string {
	if i.Email != "" {
		return i.Email
	}
	return i.Subject
}

// Secret is what a link keeps sealed: the refresh token. Its String and
// LogValue never show it, so a stray %v or log attribute cannot leak it.
type Secret struct {
	RefreshToken string `json:"refresh_token"`
}

func (Secret) String() string         { return "[sealed]" }
func (Secret) GoString() string       { return "login.Secret{[sealed]}" }
func (Secret) LogValue() slog.Value   { return slog.StringValue("[sealed]") }
func (s Secret) empty() bool          { return s.RefreshToken == "" }
func (s Secret) token() *oauth2.Token { return &oauth2.Token{RefreshToken: s.RefreshToken} }

// Vault keeps each person's Secret encrypted at rest.
// store.SealedBucket[Secret] is the one the bot uses.
type Vault interface {
	Put(ctx context.Context, key string, v Secret) error
	Get(ctx context.Context, key string) (Secret, bool, error)
	Delete(ctx context.Context, key string) error
}

// Config wires a Service.
type Config struct {
	// Issuer is the provider's issuer URL exactly as its discovery
	// document says it. Required.
	Issuer string
	// ClientID is the client registered for the bot at the provider; ID
	// tokens must name it as their audience. Required.
	ClientID string
	// ClientSecret, for a confidential client; empty for a public one.
	ClientSecret string
	// Scopes asked for; default DefaultScopes. "openid" is always added.
	Scopes []string
	// Links keeps the sign-ins; replicas serving the same people share
	// one. Default NewStoreLinks(Store, Vault).
	Links Links
	// Store keeps the links (issuer, subject, email, validity) when Links
	// is nil; one of the two is required.
	Store *store.DB
	// Vault keeps the refresh tokens when Links is nil; default
	// store.NewSealedBucket[Secret](Store, "login_secrets"), which needs
	// the store opened with a keyring.
	Vault Vault
	// HTTPClient talks to the provider; default one with a 10 s timeout.
	HTTPClient *http.Client
	// Now is the clock sessions are judged by; default time.Now.
	Now func() time.Time
	// Logger; default slog.Default().
	Logger *slog.Logger
	// DiscoveryRetry is the least time between two discovery attempts
	// while the provider is unreachable; default 5 s.
	DiscoveryRetry time.Duration
}

// Link is a person's sign-in as it is kept: who they are at the
// provider and how long that vouches for them; no token.
type Link struct {
	TeamID    string    `json:"team_id"`
	UserID    string    `json:"user_id"`
	Issuer    string    `json:"issuer"`
	Subject   string    `json:"subject"`
	Email     string    `json:"email,omitempty"`
	Since     time.Time `json:"since"`
	Until     time.Time `json:"until"`
	Expired   bool      `json:"expired,omitempty"`
	Why       string    `json:"why,omitempty"` // why it expired, for the log
	Refreshes int       `json:"refreshes,omitempty"`
}

func (l Link) identity() Identity {
	return Identity{Issuer: l.Issuer, Subject: l.Subject, Email: l.Email, Since: l.Since, Until: l.Until}
}

// Service signs people in and says who they are. It is safe for
// concurrent use. Close stops the sign-ins still waiting.
type Service struct {
	cfg    Config
	log    *slog.Logger
	client *http.Client
	links  Links
	// id names this Service in the claims of the refreshes it makes.
	id string

	// base is the parent of every background poll; Close cancels it.
	base  context.Context
	close context.CancelFunc

	mu      sync.Mutex
	waiting map[string]*waiting    // key → the person's sign-in in progress
	locks   map[string]*sync.Mutex // key → serialises the person's refreshes

	disc     sync.Mutex
	provider *oidc.Provider
	revoke   string // revocation endpoint, "" when not offered
	lastTry  time.Time
	lastErr  error
}

// New makes a Service and tries discovery once. An unreachable provider is
// not an error (sign-in is retried on use); a configuration that can
// never work is.
func New(ctx context.Context, cfg Config) (*Service, error) {
	switch {
	case cfg.Issuer == "":
		return nil, errors.New("login: Config.Issuer is required")
	case cfg.ClientID == "":
		return nil, errors.New("login: Config.ClientID is required")
	case cfg.Store == nil && cfg.Links == nil:
		return nil, errors.New("login: Config.Store is required (or Config.Links)")
	}
	if u, err := url.Parse(cfg.Issuer); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("login: issuer %q is not an http(s) URL", cfg.Issuer)
	}
	if len(cfg.Scopes) == 0 {
		cfg.Scopes = DefaultScopes
	}
	if !containsScope(cfg.Scopes, oidc.ScopeOpenID) {
		cfg.Scopes = append([]string{oidc.ScopeOpenID}, cfg.Scopes...)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.DiscoveryRetry <= 0 {
		cfg.DiscoveryRetry = defaultDiscoveryRetry
	}
	s := &Service{
		cfg: cfg, log: cfg.Logger, client: cfg.HTTPClient,
		links: cfg.Links, id: rand.Text(),
		waiting: map[string]*waiting{}, locks: map[string]*sync.Mutex{},
	}
	if s.client == nil {
		s.client = &http.Client{Timeout: defaultHTTPTimeout}
	}
	if s.links == nil {
		s.links = NewStoreLinks(cfg.Store, cfg.Vault, cfg.Logger)
	}
	s.base, s.close = context.WithCancel(context.Background())
	s.disc.Lock()
	defer s.disc.Unlock()
	if err := s.discoverLocked(ctx); err != nil {
		if _, ok := errors.AsType[*oidc.IssuerMismatchError](err); ok {
			return nil, fmt.Errorf("login: %w", err)
		}
		s.log.Warn("login: identity provider unreachable at start; sign-in is retried when someone asks", "issuer", cfg.Issuer, "err", err)
	}
	return s, nil
}

// Close stops every sign-in still waiting for its person; each ends with
// ErrReplaced.
func (s *Service) Close() error {
	s.close()
	return nil
}

// Issuer is the configured issuer, for messages.
func (s *Service) Issuer() string { return s.cfg.Issuer }

func containsScope(scopes []string, want string) bool {
	for _, sc := range scopes {
		if sc == want {
			return true
		}
	}
	return false
}

// key is where a person's link and secret are kept.
func key(p enclave.Principal) string { return p.TeamID + "/" + p.UserID }

// discovered returns the provider, discovering it first if that has not
// succeeded yet and the last attempt is old enough.
func (s *Service) discovered(ctx context.Context) (*oidc.Provider, string, error) {
	s.disc.Lock()
	defer s.disc.Unlock()
	if s.provider != nil {
		return s.provider, s.revoke, nil
	}
	if time.Since(s.lastTry) < s.cfg.DiscoveryRetry && s.lastErr != nil {
		return nil, "", fmt.Errorf("%w: %w", ErrUnavailable, s.lastErr)
	}
	if err := s.discoverLocked(ctx); err != nil {
		return nil, "", fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	s.log.Info("login: identity provider discovered", "issuer", s.cfg.Issuer)
	return s.provider, s.revoke, nil
}

// discoverLocked runs one discovery; s.disc must be held.
func (s *Service) discoverLocked(ctx context.Context) error {
	s.lastTry = time.Now()
	p, err := oidc.NewProvider(s.httpContext(ctx), s.cfg.Issuer)
	if err != nil {
		s.lastErr = err
		return err
	}
	var extra struct {
		Revocation string `json:"revocation_endpoint"`
	}
	// A provider without revocation is fine: logout then only forgets.
	_ = p.Claims(&extra)
	s.provider, s.revoke, s.lastErr = p, extra.Revocation, nil
	return nil
}

// httpContext carries our HTTP client to go-oidc and oauth2, which take
// it from the context.
func (s *Service) httpContext(ctx context.Context) context.Context {
	return oidc.ClientContext(context.WithValue(ctx, oauth2.HTTPClient, s.client), s.client)
}

func (s *Service) oauth(p *oidc.Provider) *oauth2.Config {
	return &oauth2.Config{ClientID: s.cfg.ClientID, ClientSecret: s.cfg.ClientSecret, Endpoint: p.Endpoint(), Scopes: s.cfg.Scopes}
}

// verify checks an ID token: signature, issuer, audience, expiry, subject.
func (s *Service) verify(ctx context.Context, p *oidc.Provider, raw string) (*oidc.IDToken, claims, error) {
	if raw == "" {
		return nil, claims{}, fmt.Errorf("%w: the provider sent no ID token (is the openid scope allowed for this client?)", ErrInvalidToken)
	}
	tok, err := p.Verifier(&oidc.Config{ClientID: s.cfg.ClientID, Now: s.cfg.Now}).Verify(s.httpContext(ctx), raw)
	if err != nil {
		// go-oidc names the failed check and quotes claims, never the token.
		return nil, claims{}, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	if tok.Subject == "" {
		return nil, claims{}, fmt.Errorf("%w: no subject", ErrInvalidToken)
	}
	var c claims
	if err := tok.Claims(&c); err != nil {
		return nil, claims{}, fmt.Errorf("%w: reading claims: %w", ErrInvalidToken, err)
	}
	return tok, c, nil
}

type claims struct {
	Email string `json:"email"`
}

// lock serialises one person's refreshes in this process, so that two
// requests at once do not both claim them; the claim in the record
// (Record.Refreshing) does the same across replicas.
func (s *Service) lock(k string) *sync.Mutex {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.locks[k]
	if !ok {
		m = &sync.Mutex{}
		s.locks[k] = m
	}
	return m
}

// oauthCode is the OAuth error code of err ("invalid_grant"), or "".
func oauthCode(err error) string {
	if re, ok := errors.AsType[*oauth2.RetrieveError](err); ok {
		if re.ErrorCode != "" {
			return re.ErrorCode
		}
		if re.Response != nil && re.Response.StatusCode >= 400 && re.Response.StatusCode < 500 {
			return fmt.Sprintf("http %d", re.Response.StatusCode)
		}
	}
	return ""
}

// safe says an oauth2 error without its body: a token endpoint's error
// body is the provider's to word and is not ours to log.
func safe(err error) string {
	if re, ok := errors.AsType[*oauth2.RetrieveError](err); ok {
		msg := "the token endpoint refused"
		if re.ErrorCode != "" {
			msg += ": " + re.ErrorCode
		}
		if re.ErrorDescription != "" {
			msg += " (" + strings.TrimSpace(re.ErrorDescription) + ")"
		}
		return msg
	}
	return err.Error()
}
