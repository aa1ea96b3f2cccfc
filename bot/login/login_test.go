package login_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kraken-ops/kraken/bot/login"
	"github.com/kraken-ops/kraken/bot/login/logintest"
	"github.com/kraken-ops/kraken/enclave"
	"github.com/kraken-ops/kraken/store"
)

var (
	alex = enclave.Principal{TeamID: "T1", UserID: "UALEX"}
	sam  = enclave.Principal{TeamID: "T1", UserID: "USAM"}
)

// syncBuffer is a log sink the service's goroutines may write to.
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

type fixture struct {
	t     *testing.T
	op    *logintest.Provider
	svc   *login.Service
	db    *store.DB
	vault *store.SealedBucket[login.Secret]
	logs  *syncBuffer
}

func newFixture(t *testing.T, o logintest.Options) *fixture {
	t.Helper()
	op := logintest.New(t, o)
	key := make([]byte, store.KeySize)
	rand.Read(key)
	ring, err := store.NewKeyring(key)
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(filepath.Join(t.TempDir(), "kraken.db"), store.Options{Keyring: ring})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	f := &fixture{t: t, op: op, db: db, vault: store.NewSealedBucket[login.Secret](db, "test_secrets"), logs: &syncBuffer{}}
	f.svc, err = login.New(context.Background(), login.Config{
		Issuer: op.Issuer, ClientID: op.ClientID, ClientSecret: op.ClientSecret,
		Store: db, Vault: f.vault,
		Logger: slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.svc.Close() })
	return f
}

// outcome waits for a sign-in to end.
func (f *fixture) outcome(p login.Pending) login.Result {
	f.t.Helper()
	select {
	case r := <-p.Done:
		return r
	case <-time.After(30 * time.Second):
		f.t.Fatal("the sign-in did not end within 30s")
	}
	return login.Result{}
}

// signIn signs who in as subject, approving at once.
func (f *fixture) signIn(who enclave.Principal, subject string) login.Identity {
	f.t.Helper()
	p, err := f.svc.Start(context.Background(), who)
	if err != nil {
		f.t.Fatalf("start: %v", err)
	}
	if err := f.op.Approve(p.UserCode, subject); err != nil {
		f.t.Fatal(err)
	}
	r := f.outcome(p)
	if r.Err != nil {
		f.t.Fatalf("sign-in failed: %v", r.Err)
	}
	return r.Identity
}

// noTokens fails if the logs show a refresh token or a JWT.
func (f *fixture) noTokens(refresh ...string) {
	f.t.Helper()
	logs := f.logs.String()
	if strings.Contains(logs, "eyJ") {
		f.t.Errorf("a JWT is in the logs:\n%s", logs)
	}
	for _, r := range refresh {
		if r != "" && strings.Contains(logs, r) {
			f.t.Errorf("a refresh token is in the logs")
		}
	}
}

func TestSignIn(t *testing.T) {
	f := newFixture(t, logintest.Options{})
	ctx := context.Background()
	if _, err := f.svc.Current(ctx, alex); !errors.Is(err, login.ErrNotSignedIn) {
		t.Fatalf("before sign-in: %v", err)
	}
	p, err := f.svc.Start(ctx, alex)
	if err != nil {
		t.Fatal(err)
	}
	if p.UserCode == "" || !strings.HasPrefix(p.VerificationURI, f.op.Issuer) || !strings.Contains(p.VerificationURIComplete, p.UserCode) {
		t.Errorf("pending sign-in: %+v", p)
	}
	if left := time.Until(p.Expires); left < 50*time.Second || left > time.Minute {
		t.Errorf("the code expires in %s, want about a minute", left)
	}
	// Nothing is linked while the person has not approved.
	time.Sleep(1500 * time.Millisecond)
	if _, err := f.svc.Current(ctx, alex); !errors.Is(err, login.ErrNotSignedIn) {
		t.Fatalf("linked before approval: %v", err)
	}
	if err := f.op.Approve(p.UserCode, logintest.Alice); err != nil {
		t.Fatal(err)
	}
	r := f.outcome(p)
	if r.Err != nil {
		t.Fatalf("sign-in: %v", r.Err)
	}
	id := r.Identity
	if id.Issuer != f.op.Issuer || id.Subject != logintest.Alice || id.Email != logintest.AliceEmail || !id.Until.After(time.Now().Add(50*time.Minute)) {
		t.Errorf("identity: %+v", id)
	}
	if id.IssuerHost() != strings.TrimPrefix(f.op.Issuer, "http://") {
		t.Errorf("issuer host %q", id.IssuerHost())
	}
	cur, err := f.svc.Current(ctx, alex)
	if err != nil || cur.Subject != logintest.Alice {
		t.Fatalf("current: %+v, %v", cur, err)
	}
	if _, err := f.svc.Current(ctx, sam); !errors.Is(err, login.ErrNotSignedIn) {
		t.Errorf("someone else is signed in too: %v", err)
	}

	// The refresh token is kept, sealed: not in the clear in the file.
	sec, ok, err := f.vault.Get(ctx, "T1/UALEX")
	if err != nil || !ok || sec.RefreshToken == "" {
		t.Fatalf("refresh token kept: %v %v", ok, err)
	}
	if s := (login.Secret{RefreshToken: "x"}); strings.Contains(s.String()+s.GoString(), "x") {
		t.Error("a Secret prints its token")
	}
	raw, err := os.ReadFile(f.db.Path())
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte(sec.RefreshToken)) {
		t.Error("the refresh token is in the store file in the clear")
	}
	f.noTokens(sec.RefreshToken)
}

func TestSignInEndsWithoutLink(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts logintest.Options
		act  func(op *logintest.Provider, p login.Pending) error
		want error
	}{
		{"denied consent", logintest.Options{}, func(op *logintest.Provider, p login.Pending) error { return op.Deny(p.UserCode) }, login.ErrDenied},
		{"expired code", logintest.Options{CodeLifetime: 2 * time.Second}, func(*logintest.Provider, login.Pending) error { return nil }, login.ErrCodeExpired},
		{"wrong audience", logintest.Options{}, func(op *logintest.Provider, p login.Pending) error {
			op.MisdirectIDTokens("another-app")
			return op.Approve(p.UserCode, logintest.Alice)
		}, login.ErrInvalidToken},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc.opts)
			ctx := context.Background()
			p, err := f.svc.Start(ctx, alex)
			if err != nil {
				t.Fatal(err)
			}
			if err := tc.act(f.op, p); err != nil {
				t.Fatal(err)
			}
			r := f.outcome(p)
			if !errors.Is(r.Err, tc.want) {
				t.Fatalf("ended with %v, want %v", r.Err, tc.want)
			}
			if tc.want == login.ErrInvalidToken && !strings.Contains(r.Err.Error(), "audience") {
				t.Errorf("the refusal does not say the audience was wrong: %v", r.Err)
			}
			if _, err := f.svc.Current(ctx, alex); !errors.Is(err, login.ErrNotSignedIn) {
				t.Errorf("something is linked: %v", err)
			}
			if _, ok, err := f.vault.Get(ctx, "T1/UALEX"); ok || err != nil {
				t.Errorf("a refresh token is kept: %v %v", ok, err)
			}
			f.noTokens()
		})
	}
}

func TestSecondSignInReplacesFirst(t *testing.T) {
	f := newFixture(t, logintest.Options{})
	ctx := context.Background()
	first, err := f.svc.Start(ctx, alex)
	if err != nil {
		t.Fatal(err)
	}
	second, err := f.svc.Start(ctx, alex)
	if err != nil {
		t.Fatal(err)
	}
	if r := f.outcome(first); !errors.Is(r.Err, login.ErrReplaced) {
		t.Fatalf("first sign-in ended with %v, want replaced", r.Err)
	}
	// Approving the replaced code links nothing; the second one works.
	if err := f.op.Approve(first.UserCode, logintest.Bob); err != nil {
		t.Fatal(err)
	}
	if err := f.op.Approve(second.UserCode, logintest.Alice); err != nil {
		t.Fatal(err)
	}
	if r := f.outcome(second); r.Err != nil || r.Identity.Subject != logintest.Alice {
		t.Fatalf("second sign-in: %+v", r)
	}
	if id, err := f.svc.Current(ctx, alex); err != nil || id.Subject != logintest.Alice {
		t.Errorf("current: %+v %v", id, err)
	}
}

func TestSessionRefreshAndExpiry(t *testing.T) {
	f := newFixture(t, logintest.Options{IDTokenLifetime: 2 * time.Second})
	ctx := context.Background()
	id := f.signIn(alex, logintest.Alice)
	before, _, _ := f.vault.Get(ctx, "T1/UALEX")
	time.Sleep(time.Until(id.Until) + 10*time.Millisecond)

	// Many requests at once after expiry: one refresh, which rotates the
	// token; none of them is refused for spending a rotated token.
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			if _, err := f.svc.Current(ctx, alex); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("a request after expiry: %v", err)
	}
	cur, err := f.svc.Current(ctx, alex)
	if err != nil || !cur.Until.After(id.Until) {
		t.Fatalf("after refresh: %+v %v", cur, err)
	}
	after, _, _ := f.vault.Get(ctx, "T1/UALEX")
	if after.RefreshToken == before.RefreshToken {
		t.Error("the rotated refresh token was not kept")
	}

	// The provider ends the session: the next refresh fails, the link
	// expires, and says who it was.
	if err := f.op.EndSessions(logintest.Alice); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Until(cur.Until) + 10*time.Millisecond)
	got, err := f.svc.Current(ctx, alex)
	if !errors.Is(err, login.ErrSignInExpired) || got.Subject != logintest.Alice {
		t.Fatalf("after the provider ended the session: %+v %v", got, err)
	}
	if _, err := f.svc.Current(ctx, alex); !errors.Is(err, login.ErrSignInExpired) {
		t.Errorf("expiry is not remembered: %v", err)
	}
	if _, ok, _ := f.vault.Get(ctx, "T1/UALEX"); ok {
		t.Error("the refused refresh token is still kept")
	}
	// Signing in again mends it.
	f.signIn(alex, logintest.Alice)
	if _, err := f.svc.Current(ctx, alex); err != nil {
		t.Errorf("after signing in again: %v", err)
	}
	f.noTokens(before.RefreshToken, after.RefreshToken)
}

func TestLogoutRevokes(t *testing.T) {
	f := newFixture(t, logintest.Options{})
	ctx := context.Background()
	f.signIn(alex, logintest.Alice)
	if n := f.op.RefreshTokens(); n != 1 {
		t.Fatalf("the provider holds %d refresh tokens, want 1", n)
	}
	id, err := f.svc.Logout(ctx, alex)
	if err != nil || id.Subject != logintest.Alice {
		t.Fatalf("logout: %+v %v", id, err)
	}
	if n := f.op.RefreshTokens(); n != 0 {
		t.Errorf("the refresh token was not revoked at the provider (%d left)", n)
	}
	if _, err := f.svc.Current(ctx, alex); !errors.Is(err, login.ErrNotSignedIn) {
		t.Errorf("after logout: %v", err)
	}
	if _, ok, _ := f.vault.Get(ctx, "T1/UALEX"); ok {
		t.Error("the refresh token is still kept")
	}
	if _, err := f.svc.Logout(ctx, alex); !errors.Is(err, login.ErrNotSignedIn) {
		t.Errorf("second logout: %v", err)
	}
	// Logout also ends a sign-in still waiting.
	p, err := f.svc.Start(ctx, alex)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Logout(ctx, alex); !errors.Is(err, login.ErrNotSignedIn) {
		t.Errorf("logout while waiting: %v", err)
	}
	if r := f.outcome(p); !errors.Is(r.Err, login.ErrReplaced) {
		t.Errorf("the waiting sign-in ended with %v", r.Err)
	}
}

func TestConfig(t *testing.T) {
	db, err := store.Open(filepath.Join(t.TempDir(), "kraken.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, tc := range []struct {
		cfg  login.Config
		want string
	}{
		{login.Config{ClientID: "k", Store: db}, "Issuer is required"},
		{login.Config{Issuer: "https://id.example", Store: db}, "ClientID is required"},
		{login.Config{Issuer: "https://id.example", ClientID: "k"}, "Store is required"},
		{login.Config{Issuer: "id.example", ClientID: "k", Store: db}, "not an http(s) URL"},
	} {
		_, err := login.New(context.Background(), tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.cfg, err, tc.want)
		}
	}
	// An unreachable provider is not fatal: sign-in says so when asked.
	svc, err := login.New(context.Background(), login.Config{Issuer: "http://127.0.0.1:1", ClientID: "k", Store: db, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	if _, err := svc.Start(context.Background(), alex); !errors.Is(err, login.ErrUnavailable) {
		t.Errorf("start with no provider: %v", err)
	}
}

// BenchmarkCurrent is what every request to the registry pays to know
// whether its person is signed in, while their ID token is valid.
func BenchmarkCurrent(b *testing.B) {
	op := logintest.New(b, logintest.Options{})
	db, err := store.Open(filepath.Join(b.TempDir(), "kraken.db"), store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	svc, err := login.New(context.Background(), login.Config{Issuer: op.Issuer, ClientID: op.ClientID, ClientSecret: op.ClientSecret, Store: db, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer svc.Close()
	p, err := svc.Start(context.Background(), alex)
	if err != nil {
		b.Fatal(err)
	}
	if err := op.Approve(p.UserCode, logintest.Alice); err != nil {
		b.Fatal(err)
	}
	if r := <-p.Done; r.Err != nil {
		b.Fatal(r.Err)
	}
	b.ResetTimer()
	for b.Loop() {
		if _, err := svc.Current(context.Background(), alex); err != nil {
			b.Fatal(err)
		}
	}
}
