package oidcauth_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/kraken-ops/kraken/bot/oidcauth"
	"github.com/kraken-ops/kraken/bot/oidctest"
)

const adminGroup = "kraken-admins"

// syncBuffer collects log output from handlers running on server goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newVerifier(t *testing.T, iss *oidctest.Issuer, mod func(*oidcauth.Config)) (*oidcauth.Verifier, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	cfg := oidcauth.Config{
		Issuer:     iss.URL(),
		Audience:   iss.Audience(),
		AdminGroup: adminGroup,
		Logger:     slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if mod != nil {
		mod(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v, err := oidcauth.New(ctx, cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return v, logs
}

// echo answers with the identity Middleware put in the context.
var echo = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	id, ok := oidcauth.IdentityFrom(r.Context())
	if !ok {
		http.Error(w, "no identity in context", http.StatusInternalServerError)
		return
	}
	_ = json.NewEncoder(w).Encode(id)
})

type response struct {
	status    int
	challenge string
	body      map[string]any
	header    http.Header
}

func do(t *testing.T, h http.Handler, authorization string) response {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, "/admin/enclaves", nil)
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	res := response{status: rec.Code, challenge: rec.Header().Get("WWW-Authenticate"), header: rec.Header()}
	if err := json.Unmarshal(rec.Body.Bytes(), &res.body); err != nil {
		t.Fatalf("body %q is not JSON: %v", rec.Body.String(), err)
	}
	return res
}

func TestMiddleware(t *testing.T) {
	iss := oidctest.New(t)
	v, logs := newVerifier(t, iss, nil)
	h := v.Middleware(echo)

	admin := map[string]any{"sub": "alice", "email": "alice@example.com", "groups": []string{"ops", adminGroup}}
	bearer := func(raw string) string { return "Bearer " + raw }

	const (
		noError      = `Bearer realm="kraken-admin"`
		invalidToken = `Bearer realm="kraken-admin", error="invalid_token"`
		notAdmin     = `Bearer realm="kraken-admin", error="insufficient_scope"`
	)
	tests := []struct {
		name          string
		authorization string
		wantStatus    int
		wantChallenge string
		wantSubject   string
	}{
		{"valid admin", bearer(iss.Token(admin)), http.StatusOK, "", "alice"},
		{"scheme is case-insensitive", "bearer " + iss.Token(admin), http.StatusOK, "", "alice"},
		{"groups as a single string", bearer(iss.Token(map[string]any{"sub": "bob", "groups": adminGroup})), http.StatusOK, "", "bob"},
		{"audience among several", bearer(iss.Token(map[string]any{"aud": []string{"other", iss.Audience()}, "groups": []string{adminGroup}})), http.StatusOK, "", oidctest.DefaultSubject},

		{"no header", "", http.StatusUnauthorized, noError, ""},
		{"another scheme", "Basic YWxpY2U6c2VjcmV0", http.StatusUnauthorized, noError, ""},
		{"bearer without token", "Bearer", http.StatusUnauthorized, invalidToken, ""},
		{"bearer with blank token", "Bearer    ", http.StatusUnauthorized, invalidToken, ""},
		{"two tokens", bearer(iss.Token(admin) + " " + iss.Token(admin)), http.StatusUnauthorized, invalidToken, ""},
		{"not a JWT", "Bearer not-a-jwt", http.StatusUnauthorized, invalidToken, ""},
		{"expired", bearer(iss.TokenWith(admin, oidctest.Expired())), http.StatusUnauthorized, invalidToken, ""},
		{"wrong audience", bearer(iss.Token(with(admin, "aud", "some-other-app"))), http.StatusUnauthorized, invalidToken, ""},
		{"wrong issuer", bearer(iss.Token(with(admin, "iss", "https://evil.example"))), http.StatusUnauthorized, invalidToken, ""},
		{"wrong key, same kid", bearer(iss.TokenWith(admin, oidctest.WrongKey())), http.StatusUnauthorized, invalidToken, ""},
		{"unknown key", bearer(iss.TokenWith(admin, oidctest.UnknownKey())), http.StatusUnauthorized, invalidToken, ""},
		{"alg none", bearer(iss.TokenWith(admin, oidctest.AlgNone())), http.StatusUnauthorized, invalidToken, ""},
		{"HS256 keyed with the public key", bearer(iss.TokenWith(admin, oidctest.AlgHS256WithPublicKey())), http.StatusUnauthorized, invalidToken, ""},
		{"no subject", bearer(iss.Token(with(admin, "sub", nil))), http.StatusUnauthorized, invalidToken, ""},
		{"groups claim of the wrong type", bearer(iss.Token(with(admin, "groups", 42))), http.StatusUnauthorized, invalidToken, ""},
		{"groups list with a non-string", bearer(iss.Token(with(admin, "groups", []any{adminGroup, 7}))), http.StatusUnauthorized, invalidToken, ""},

		{"not in the admin group", bearer(iss.Token(with(admin, "groups", []string{"ops"}))), http.StatusForbidden, notAdmin, ""},
		{"single other group as string", bearer(iss.Token(with(admin, "groups", "ops"))), http.StatusForbidden, notAdmin, ""},
		{"no groups claim", bearer(iss.Token(with(admin, "groups", nil))), http.StatusForbidden, notAdmin, ""},
		{"group name differs in case", bearer(iss.Token(with(admin, "groups", []string{strings.ToUpper(adminGroup)}))), http.StatusForbidden, notAdmin, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := do(t, h, tt.authorization)
			if res.status != tt.wantStatus {
				t.Fatalf("status = %d, want %d (body %v)", res.status, tt.wantStatus, res.body)
			}
			if res.challenge != tt.wantChallenge {
				t.Errorf("WWW-Authenticate = %q, want %q", res.challenge, tt.wantChallenge)
			}
			if tt.wantStatus == http.StatusOK {
				if res.body["Subject"] != tt.wantSubject || res.body["Issuer"] != iss.URL() {
					t.Errorf("identity = %v, want subject %q from %q", res.body, tt.wantSubject, iss.URL())
				}
				return
			}
			if ct := res.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q", ct)
			}
			if msg, _ := res.body["error"].(string); msg == "" || len(res.body) != 1 {
				t.Errorf(`body = %v, want just {"error": "..."}`, res.body)
			}
		})
	}

	// Every token above went through the log; none may be in it.
	out := logs.String()
	for _, tt := range tests {
		_, raw, _ := strings.Cut(tt.authorization, " ")
		raw = strings.TrimSpace(raw)
		if len(raw) < 20 {
			continue // "not-a-jwt" and the empty ones are not tokens
		}
		for _, part := range strings.Split(raw, ".") {
			if len(part) > 8 && strings.Contains(out, part) {
				t.Errorf("%s: the log contains part of the token:\n%s", tt.name, out)
			}
		}
	}
	if !strings.Contains(out, "subject=alice") || !strings.Contains(out, "reason=\"not in admin group\"") {
		t.Errorf("the log should name the refused subject and the reason:\n%s", out)
	}
}

func TestVerifyIdentityAndErrors(t *testing.T) {
	iss := oidctest.New(t)
	v, _ := newVerifier(t, iss, nil)
	ctx := context.Background()

	id, err := v.Verify(ctx, iss.Token(map[string]any{"sub": "alice", "email": "alice@example.com", "groups": []string{"ops", adminGroup}}))
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	want := oidcauth.Identity{Issuer: iss.URL(), Subject: "alice", Email: "alice@example.com", Groups: []string{"ops", adminGroup}}
	if id.Issuer != want.Issuer || id.Subject != want.Subject || id.Email != want.Email || !slices.Equal(id.Groups, want.Groups) {
		t.Errorf("identity = %+v, want %+v", id, want)
	}

	if _, err := v.Verify(ctx, ""); !errors.Is(err, oidcauth.ErrNoToken) {
		t.Errorf("empty token: err = %v, want ErrNoToken", err)
	}

	_, err = v.Verify(ctx, iss.TokenWith(map[string]any{"groups": adminGroup}, oidctest.Expired()))
	if !errors.Is(err, oidcauth.ErrInvalidToken) {
		t.Errorf("expired: err = %v, want ErrInvalidToken", err)
	}
	// The cause stays reachable for callers who want to tell expiry apart.
	if _, ok := errors.AsType[*oidc.TokenExpiredError](err); !ok {
		t.Errorf("expired: err = %v, want it to wrap *oidc.TokenExpiredError", err)
	}

	id, err = v.Verify(ctx, iss.Token(map[string]any{"sub": "mallory", "groups": "ops"}))
	if !errors.Is(err, oidcauth.ErrNotAdmin) {
		t.Errorf("not admin: err = %v, want ErrNotAdmin", err)
	}
	if id.Subject != "mallory" || !slices.Equal(id.Groups, []string{"ops"}) {
		t.Errorf("not admin: identity = %+v, want mallory in [ops]", id)
	}
}

func TestCustomGroupsClaim(t *testing.T) {
	iss := oidctest.New(t)
	v, _ := newVerifier(t, iss, func(c *oidcauth.Config) { c.GroupsClaim = "roles" })
	ctx := context.Background()

	if _, err := v.Verify(ctx, iss.Token(map[string]any{"roles": []string{adminGroup}})); err != nil {
		t.Errorf("admin in roles: %v", err)
	}
	if _, err := v.Verify(ctx, iss.Token(map[string]any{"groups": []string{adminGroup}})); !errors.Is(err, oidcauth.ErrNotAdmin) {
		t.Errorf("admin only in groups: err = %v, want ErrNotAdmin", err)
	}
}

func TestIdentityProviderDownAtStartThenUp(t *testing.T) {
	iss := oidctest.New(t)
	iss.SetDown(true)
	v, logs := newVerifier(t, iss, func(c *oidcauth.Config) { c.DiscoveryRetry = time.Nanosecond })
	if v.Ready() {
		t.Fatal("Ready before the provider was reachable")
	}
	if !strings.Contains(logs.String(), "unreachable at start") {
		t.Errorf("no warning at start:\n%s", logs)
	}

	h := v.Middleware(echo)
	token := "Bearer " + iss.Token(map[string]any{"groups": adminGroup})

	res := do(t, h, token)
	if res.status != http.StatusServiceUnavailable || res.body["error"] != "identity provider unreachable" {
		t.Fatalf("while down: %d %v, want 503 identity provider unreachable", res.status, res.body)
	}
	if res.header.Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
	if _, err := v.Verify(context.Background(), iss.Token(nil)); !errors.Is(err, oidcauth.ErrUnavailable) {
		t.Errorf("Verify while down: err = %v, want ErrUnavailable", err)
	}

	iss.SetDown(false)
	if res := do(t, h, token); res.status != http.StatusOK {
		t.Fatalf("after the provider came up: %d %v, want 200", res.status, res.body)
	}
	if !v.Ready() {
		t.Error("not Ready after discovery succeeded")
	}

	// Once discovered, the provider going away again does not matter for
	// keys already fetched.
	iss.SetDown(true)
	if res := do(t, h, token); res.status != http.StatusOK {
		t.Errorf("provider down after discovery: %d %v, want 200 from cached keys", res.status, res.body)
	}
}

// A burst of requests while the provider is down must not become a burst of
// discovery calls.
func TestDiscoveryRetryIsThrottled(t *testing.T) {
	iss := oidctest.New(t)
	iss.SetDown(true)
	v, _ := newVerifier(t, iss, func(c *oidcauth.Config) { c.DiscoveryRetry = time.Hour })
	atStart := iss.Requests(oidctest.DiscoveryPath)
	if atStart == 0 {
		t.Fatal("New did not try discovery")
	}

	iss.SetDown(false)
	h := v.Middleware(echo)
	token := "Bearer " + iss.Token(map[string]any{"groups": adminGroup})
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			if res := do(t, h, token); res.status != http.StatusServiceUnavailable {
				t.Errorf("status = %d, want 503 until the retry interval has passed", res.status)
			}
		})
	}
	wg.Wait()
	if got := iss.Requests(oidctest.DiscoveryPath); got != atStart {
		t.Errorf("discovery requests = %d, want still %d", got, atStart)
	}
}

func TestUnreachableAddress(t *testing.T) {
	// A port that was just closed refuses connections: the provider's host
	// is up but nothing listens.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v, err := oidcauth.New(ctx, oidcauth.Config{
		Issuer: "http://" + addr, Audience: "a", AdminGroup: "g",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatalf("New: %v, want a Verifier that waits for the provider", err)
	}
	if res := do(t, v.Middleware(echo), "Bearer x.y.z"); res.status != http.StatusServiceUnavailable {
		t.Errorf("status = %d, want 503", res.status)
	}
}

func TestNewRejectsConfigurationThatCannotWork(t *testing.T) {
	iss := oidctest.New(t)
	base := oidcauth.Config{Issuer: iss.URL(), Audience: "a", AdminGroup: "g", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	tests := []struct {
		name string
		mod  func(*oidcauth.Config)
		want string
	}{
		{"no issuer", func(c *oidcauth.Config) { c.Issuer = "" }, "Issuer"},
		{"no audience", func(c *oidcauth.Config) { c.Audience = "" }, "Audience"},
		{"no admin group", func(c *oidcauth.Config) { c.AdminGroup = "" }, "AdminGroup"},
		// The provider answers, but as a different issuer: waiting will
		// not fix a trailing slash.
		{"issuer mismatch", func(c *oidcauth.Config) { c.Issuer += "/" }, "did not match"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := base
			tt.mod(&cfg)
			_, err := oidcauth.New(context.Background(), cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want one mentioning %q", err, tt.want)
			}
		})
	}
}

func TestIdentityFrom(t *testing.T) {
	if _, ok := oidcauth.IdentityFrom(context.Background()); ok {
		t.Error("identity found in an empty context")
	}
	ctx := oidcauth.WithIdentity(context.Background(), oidcauth.Identity{Subject: "alice"})
	if id, ok := oidcauth.IdentityFrom(ctx); !ok || id.Subject != "alice" {
		t.Errorf("IdentityFrom = %+v, %v", id, ok)
	}
}

// with returns a copy of claims with k set to v (nil removes k from the
// token, see oidctest.Issuer.Token).
func with(claims map[string]any, k string, v any) map[string]any {
	c := make(map[string]any, len(claims)+1)
	for kk, vv := range claims {
		c[kk] = vv
	}
	c[k] = v
	return c
}
