package oidctest_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/kraken-ops/kraken/bot/oidctest"
)

// verifier discovers iss over HTTP, the way production code does.
func verifier(t *testing.T, iss *oidctest.Issuer) *oidc.IDTokenVerifier {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, err := oidc.NewProvider(ctx, iss.URL())
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	return p.Verifier(&oidc.Config{ClientID: iss.Audience()})
}

func TestTokenVerifiesAfterDiscovery(t *testing.T) {
	iss := oidctest.New(t)
	v := verifier(t, iss)

	raw := iss.Token(map[string]any{"sub": "alice", "email": "alice@example.com", "groups": []string{"ops"}})
	tok, err := v.Verify(context.Background(), raw)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if tok.Issuer != iss.URL() || tok.Subject != "alice" {
		t.Errorf("iss/sub = %q/%q, want %q/alice", tok.Issuer, tok.Subject, iss.URL())
	}
	if len(tok.Audience) != 1 || tok.Audience[0] != oidctest.DefaultAudience {
		t.Errorf("aud = %v, want [%s]", tok.Audience, oidctest.DefaultAudience)
	}
	if d := time.Until(tok.Expiry); d < 50*time.Minute || d > 61*time.Minute {
		t.Errorf("exp in %v, want about an hour", d)
	}
	var extra struct {
		Email  string   `json:"email"`
		Groups []string `json:"groups"`
	}
	if err := tok.Claims(&extra); err != nil {
		t.Fatal(err)
	}
	if extra.Email != "alice@example.com" || len(extra.Groups) != 1 || extra.Groups[0] != "ops" {
		t.Errorf("extra claims = %+v", extra)
	}
	if got := iss.Requests(oidctest.DiscoveryPath); got != 1 {
		t.Errorf("discovery requests = %d, want 1", got)
	}
	if got := iss.Requests(oidctest.JWKSPath); got != 1 {
		t.Errorf("JWKS requests = %d, want 1", got)
	}
}

func TestOptions(t *testing.T) {
	iss := oidctest.New(t, oidctest.WithAudience("other-app"), oidctest.WithKeyID("k9"))
	if iss.Audience() != "other-app" || iss.KeyID() != "k9" {
		t.Fatalf("audience/kid = %q/%q", iss.Audience(), iss.KeyID())
	}
	if h := header(t, iss.Token(nil)); h["kid"] != "k9" || h["alg"] != "RS256" || h["typ"] != "JWT" {
		t.Errorf("header = %v", h)
	}
	if _, err := verifier(t, iss).Verify(context.Background(), iss.Token(nil)); err != nil {
		t.Errorf("Verify: %v", err)
	}
}

func TestNilClaimRemovesDefault(t *testing.T) {
	iss := oidctest.New(t)
	c := claims(t, iss.Token(map[string]any{"sub": nil, "aud": []string{"a", "b"}}))
	if _, ok := c["sub"]; ok {
		t.Errorf("sub present: %v", c)
	}
	if aud, _ := c["aud"].([]any); len(aud) != 2 {
		t.Errorf("aud = %v, want [a b]", c["aud"])
	}
}

// Each forged or stale token must be refused by a real go-oidc verifier,
// which is what makes them useful to the packages that test against them.
func TestBadTokensAreRefused(t *testing.T) {
	iss := oidctest.New(t)
	v := verifier(t, iss)

	tests := []struct {
		name       string
		raw        string
		wantHeader map[string]any
		wantErr    string
	}{
		{"expired", iss.TokenWith(nil, oidctest.Expired()), map[string]any{"alg": "RS256"}, "expired"},
		{"wrong audience", iss.Token(map[string]any{"aud": "someone-else"}), nil, "audience"},
		{"wrong issuer", iss.Token(map[string]any{"iss": "https://evil.example"}), nil, "different provider"},
		{"wrong key, same kid", iss.TokenWith(nil, oidctest.WrongKey()), map[string]any{"kid": iss.KeyID()}, "signature"},
		{"unknown kid", iss.TokenWith(nil, oidctest.UnknownKey()), map[string]any{"kid": iss.KeyID() + "-unknown"}, "signature"},
		{"alg none", iss.TokenWith(nil, oidctest.AlgNone()), map[string]any{"alg": "none"}, "malformed"},
		{"HS256 keyed with public key", iss.TokenWith(nil, oidctest.AlgHS256WithPublicKey()), map[string]any{"alg": "HS256"}, "malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := header(t, tt.raw)
			for k, want := range tt.wantHeader {
				if h[k] != want {
					t.Errorf("header %s = %v, want %v", k, h[k], want)
				}
			}
			_, err := v.Verify(context.Background(), tt.raw)
			if err == nil {
				t.Fatal("Verify accepted the token")
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Verify error = %v, want it to mention %q", err, tt.wantErr)
			}
		})
	}

	t.Run("alg none has an empty signature", func(t *testing.T) {
		if raw := iss.TokenWith(nil, oidctest.AlgNone()); !strings.HasSuffix(raw, ".") {
			t.Errorf("token %q does not end with an empty signature", raw)
		}
	})
	t.Run("expired is in the past", func(t *testing.T) {
		c := claims(t, iss.TokenWith(nil, oidctest.Expired()))
		if exp := int64(c["exp"].(float64)); exp >= time.Now().Unix() {
			t.Errorf("exp %d is not in the past", exp)
		}
	})
}

func TestSetDown(t *testing.T) {
	iss := oidctest.New(t)
	iss.SetDown(true)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := oidc.NewProvider(ctx, iss.URL()); err == nil {
		t.Fatal("discovery succeeded while the issuer is down")
	} else if errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("discovery hung instead of failing: %v", err)
	}
	if iss.Requests(oidctest.DiscoveryPath) == 0 {
		t.Error("the refused request was not counted")
	}

	iss.SetDown(false)
	if _, err := oidc.NewProvider(ctx, iss.URL()); err != nil {
		t.Fatalf("discovery after coming back up: %v", err)
	}
}

func TestDiscoveryDocument(t *testing.T) {
	iss := oidctest.New(t)
	resp, err := http.Get(iss.URL() + oidctest.DiscoveryPath)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	var doc map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	if doc["issuer"] != iss.URL() || doc["jwks_uri"] != iss.URL()+oidctest.JWKSPath {
		t.Errorf("discovery document = %v", doc)
	}
}

func header(t *testing.T, raw string) map[string]any { return segment(t, raw, 0) }
func claims(t *testing.T, raw string) map[string]any { return segment(t, raw, 1) }

func segment(t *testing.T, raw string, i int) map[string]any {
	t.Helper()
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts, want 3", len(parts))
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[i])
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]any{}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}
