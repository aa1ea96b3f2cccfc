// Package oidctest runs a real OpenID Connect issuer on loopback for tests.
//
// The issuer serves a discovery document and a JSON Web Key Set over HTTP and
// signs tokens with a per-test RSA key, so code under test discovers and
// verifies it exactly as it would a production identity provider: nothing in
// the verifier is mocked. It also mints the bad tokens a verifier must refuse
// (expired, signed by another key, alg "none", …), so the refusals are tested
// against the same wire format as the successes.
//
// Only what token verification needs is served: there is no authorization,
// token or device endpoint yet.
package oidctest

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Paths served by an Issuer.
const (
	DiscoveryPath = "/.well-known/openid-configuration"
	JWKSPath      = "/keys"
)

// Defaults for the claims Token fills in.
const (
	DefaultAudience = "kraken-admin"
	DefaultSubject  = "test-user"
	DefaultKeyID    = "test-key-1"
)

// tokenLifetime is how long a default token is valid: long enough that no
// test, however slow under -race, sees it expire by accident.
const tokenLifetime = time.Hour

// Issuer is an OpenID Connect identity provider listening on loopback. It is
// safe for concurrent use.
type Issuer struct {
	t        testing.TB
	srv      *httptest.Server
	key      *rsa.PrivateKey
	kid      string
	audience string
	down     atomic.Bool

	otherKeyOnce sync.Once
	otherKey     *rsa.PrivateKey

	mu   sync.Mutex
	hits map[string]int
}

// Option configures an Issuer.
type Option func(*Issuer)

// WithAudience sets the audience Token puts in "aud" by default.
func WithAudience(aud string) Option { return func(i *Issuer) { i.audience = aud } }

// WithKeyID sets the "kid" of the issuer's signing key.
func WithKeyID(kid string) Option { return func(i *Issuer) { i.kid = kid } }

// New starts an issuer with a fresh RSA key; it is shut down when the test ends.
func New(t testing.TB, opts ...Option) *Issuer {
	t.Helper()
	i := &Issuer{
		t:        t,
		kid:      DefaultKeyID,
		audience: DefaultAudience,
		key:      newKey(t),
		hits:     map[string]int{},
	}
	for _, o := range opts {
		o(i)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+DiscoveryPath, i.serveDiscovery)
	mux.HandleFunc("GET "+JWKSPath, i.serveJWKS)
	i.srv = httptest.NewServer(i.track(mux))
	t.Cleanup(i.srv.Close)
	return i
}

// URL is the issuer identifier: the "iss" of its tokens and the base of its
// discovery document. It has no trailing slash.
func (i *Issuer) URL() string { return i.srv.URL }

// Audience is the default "aud" of the tokens the issuer signs.
func (i *Issuer) Audience() string { return i.audience }

// KeyID is the "kid" of the issuer's signing key.
func (i *Issuer) KeyID() string { return i.kid }

// SetDown makes the issuer unreachable (true) or reachable again (false).
// While down, every request has its connection dropped without a response,
// which is what a client sees when the identity provider is gone.
func (i *Issuer) SetDown(down bool) { i.down.Store(down) }

// Requests reports how many requests have been made for path (for example
// DiscoveryPath or JWKSPath), including those refused while down.
func (i *Issuer) Requests(path string) int {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.hits[path]
}

func (i *Issuer) track(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i.mu.Lock()
		i.hits[r.URL.Path]++
		i.mu.Unlock()
		if i.down.Load() {
			// ErrAbortHandler closes the connection without writing a
			// response, and the server does not log a stack for it.
			panic(http.ErrAbortHandler)
		}
		next.ServeHTTP(w, r)
	})
}

func (i *Issuer) serveDiscovery(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, map[string]any{
		"issuer":                                i.URL(),
		"jwks_uri":                              i.URL() + JWKSPath,
		"response_types_supported":              []string{"id_token"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{string(jose.RS256)},
	})
}

func (i *Issuer) serveJWKS(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{
		Key:       &i.key.PublicKey,
		KeyID:     i.kid,
		Algorithm: string(jose.RS256),
		Use:       "sig",
	}}})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// Token returns a compact RS256 JWT signed by the issuer's key. It carries
// iss, aud, sub, iat and exp (valid for an hour) unless claims overrides
// them; a claim set to nil is left out of the token.
func (i *Issuer) Token(claims map[string]any) string {
	return i.TokenWith(claims)
}

// TokenOption makes TokenWith produce a token a verifier must refuse.
type TokenOption func(*tokenSpec)

type tokenSpec struct {
	signing signing
	expired bool
}

type signing int

const (
	signIssuerKey    signing = iota
	signOtherKey             // a key the issuer does not publish, under the issuer's kid
	signUnknownKeyID         // a key the issuer does not publish, under a kid it does not know
	signNone                 // alg "none", no signature
	signHS256Public          // HS256 keyed with the issuer's public key (algorithm confusion)
)

// Expired dates the token so that it expired an hour ago (iat two hours ago).
// Explicit "exp" or "iat" claims still win.
func Expired() TokenOption { return func(s *tokenSpec) { s.expired = true } }

// WrongKey signs with a key the issuer does not publish, under the issuer's
// own kid: the signature does not verify against the advertised key.
func WrongKey() TokenOption { return func(s *tokenSpec) { s.signing = signOtherKey } }

// UnknownKey signs with a key the issuer does not publish, under a kid that is
// not in its key set, so a verifier will refetch the key set and still fail.
func UnknownKey() TokenOption { return func(s *tokenSpec) { s.signing = signUnknownKeyID } }

// AlgNone produces an unsigned token with header alg "none" and an empty
// signature.
func AlgNone() TokenOption { return func(s *tokenSpec) { s.signing = signNone } }

// AlgHS256WithPublicKey signs with HMAC-SHA256 using the issuer's public key
// (DER) as the secret: the classic algorithm-confusion forgery, which a
// verifier that trusts the token's "alg" header would accept.
func AlgHS256WithPublicKey() TokenOption {
	return func(s *tokenSpec) { s.signing = signHS256Public }
}

// TokenWith is Token with options for tokens that must be refused. Wrong
// audience or issuer need no option: set "aud" or "iss" in claims.
func (i *Issuer) TokenWith(claims map[string]any, opts ...TokenOption) string {
	i.t.Helper()
	var spec tokenSpec
	for _, o := range opts {
		o(&spec)
	}

	now := time.Now()
	iat, exp := now, now.Add(tokenLifetime)
	if spec.expired {
		iat, exp = now.Add(-2*tokenLifetime), now.Add(-tokenLifetime)
	}
	all := map[string]any{
		"iss": i.URL(),
		"aud": i.audience,
		"sub": DefaultSubject,
		"iat": iat.Unix(),
		"exp": exp.Unix(),
	}
	for k, v := range claims {
		if v == nil {
			delete(all, k)
			continue
		}
		all[k] = v
	}
	payload, err := json.Marshal(all)
	if err != nil {
		i.t.Fatalf("oidctest: encoding claims: %v", err)
	}

	switch spec.signing {
	case signNone:
		header := `{"alg":"none","typ":"JWT","kid":` + quote(i.kid) + `}`
		enc := base64.RawURLEncoding
		return enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString(payload) + "."
	case signHS256Public:
		der, err := x509.MarshalPKIXPublicKey(&i.key.PublicKey)
		if err != nil {
			i.t.Fatalf("oidctest: encoding public key: %v", err)
		}
		return i.sign(jose.HS256, der, i.kid, payload)
	case signOtherKey:
		return i.sign(jose.RS256, i.other(), i.kid, payload)
	case signUnknownKeyID:
		return i.sign(jose.RS256, i.other(), i.kid+"-unknown", payload)
	default:
		return i.sign(jose.RS256, i.key, i.kid, payload)
	}
}

func (i *Issuer) sign(alg jose.SignatureAlgorithm, key any, kid string, payload []byte) string {
	i.t.Helper()
	opts := (&jose.SignerOptions{}).WithType("JWT").WithHeader(jose.HeaderKey("kid"), kid)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
	if err != nil {
		i.t.Fatalf("oidctest: signer: %v", err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		i.t.Fatalf("oidctest: signing: %v", err)
	}
	s, err := jws.CompactSerialize()
	if err != nil {
		i.t.Fatalf("oidctest: serializing: %v", err)
	}
	return s
}

// other is a second key, made only when a test asks for a forged token,
// because RSA key generation is the slow part of New.
func (i *Issuer) other() *rsa.PrivateKey {
	i.otherKeyOnce.Do(func() { i.otherKey = newKey(i.t) })
	return i.otherKey
}

func newKey(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatalf("oidctest: generating RSA key: %v", err)
	}
	return k
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
