package k8s_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kraken-ops/kraken/bot/login"
	"github.com/kraken-ops/kraken/bot/login/logintest"
	"github.com/kraken-ops/kraken/enclave"
	"github.com/kraken-ops/kraken/k8s"
	"github.com/kraken-ops/kraken/k8s/k8stest"
	"github.com/kraken-ops/kraken/store"
)

func testKeyring(t testing.TB) *store.Keyring {
	t.Helper()
	key := make([]byte, store.KeySize)
	rand.Read(key)
	ring, err := store.NewKeyring(key)
	if err != nil {
		t.Fatal(err)
	}
	return ring
}

// replica is one bot replica's sign-in service over the shared Secret.
func replica(t *testing.T, c *k8s.Client, ring *store.Keyring, op *logintest.Provider, logs *bytes.Buffer, mu *sync.Mutex) *login.Service {
	t.Helper()
	ids, err := c.Identities(ring)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := login.New(context.Background(), login.Config{
		Issuer: op.Issuer, ClientID: op.ClientID, ClientSecret: op.ClientSecret, Links: ids,
		Logger: slog.New(slog.NewTextHandler(lockedWriter{mu, logs}, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() })
	return svc
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func signInThrough(t *testing.T, svc *login.Service, op *logintest.Provider, who enclave.Principal, subject string) login.Identity {
	t.Helper()
	p, err := svc.Start(context.Background(), who)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	if err := op.Approve(p.UserCode, subject); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-p.Done:
		if r.Err != nil {
			t.Fatalf("sign-in: %v", r.Err)
		}
		return r.Identity
	case <-time.After(30 * time.Second):
		t.Fatal("the sign-in did not end within 30s")
	}
	return login.Identity{}
}

// TestIdentitiesShared is two replicas of the bot, under the chart's
// RBAC, sharing people's sign-ins through the Secret.
func TestIdentitiesShared(t *testing.T) {
	e := installBotRBAC(t)
	c := newBotClient(t, e, nil)
	ctx := testCtx(t, 2*time.Minute)
	op := logintest.New(t, logintest.Options{IDTokenLifetime: 2 * time.Second})
	ring := testKeyring(t)
	var logs bytes.Buffer
	var mu sync.Mutex
	a := replica(t, c, ring, op, &logs, &mu)
	b := replica(t, c, ring, op, &logs, &mu)
	alex := enclave.Principal{TeamID: "T1", UserID: "UALEX"}
	sam := enclave.Principal{TeamID: "T1", UserID: "USAM"}

	// Signed in through A: signed in on B.
	id := signInThrough(t, a, op, alex, logintest.Alice)
	got, err := b.Current(ctx, alex)
	if err != nil || got.Subject != logintest.Alice || got.Email != logintest.AliceEmail {
		t.Fatalf("B after signing in through A: %+v %v", got, err)
	}
	if _, err := b.Current(ctx, sam); !errors.Is(err, login.ErrNotSignedIn) {
		t.Errorf("someone who never signed in, on B: %v, want ErrNotSignedIn", err)
	}

	// After expiry both replicas at once, many requests each: one
	// refresh at the provider, which rotates the token; none is refused
	// for spending a rotated token (which would sign the person out).
	time.Sleep(time.Until(id.Until) + 10*time.Millisecond)
	before := op.Refreshes()
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 16 {
		svc := a
		if i%2 == 1 {
			svc = b
		}
		wg.Go(func() {
			if got, err := svc.Current(ctx, alex); err != nil || !got.Until.After(id.Until) {
				errs <- fmt.Errorf("%+v %w", got, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("a request after expiry: %v", err)
	}
	if n := op.Refreshes() - before; n != 1 {
		t.Errorf("the provider honoured %d refreshes for two replicas at once, want 1", n)
	}
	if n := op.RefreshTokens(); n != 1 {
		t.Errorf("the provider holds %d refresh tokens, want 1", n)
	}

	// What the Secret holds: one key per person, nothing readable.
	sec, err := e.admin.CoreV1().Secrets(e.opts.Namespace).Get(ctx, e.opts.IdentitiesSecret(), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(sec.Data) != 1 || sec.Data["T1.UALEX"] == nil {
		t.Errorf("the Secret's keys: %v, want only T1.UALEX", keys(sec.Data))
	}
	for k, v := range sec.Data {
		for _, plain := range []string{logintest.AliceEmail, logintest.Alice, op.Issuer, "refresh_token", "eyJ"} {
			if bytes.Contains(v, []byte(plain)) {
				t.Errorf("the Secret's %s holds %q in the clear", k, plain)
			}
		}
		t.Logf("one sign-in takes %d bytes of the Secret", len(k)+len(v))
	}

	// The wrong store key: a clear error, not "signed out".
	wrong, err := c.Identities(testKeyring(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := wrong.Get(ctx, "T1/UALEX"); !errors.Is(err, store.ErrSealed) || !strings.Contains(err.Error(), "store key") {
		t.Errorf("reading with another store key: %v, want ErrSealed naming the store key", err)
	}

	// Logout on B is logout on A, and revokes the token.
	if _, err := b.Logout(ctx, alex); err != nil {
		t.Fatal(err)
	}
	// A may answer from its copy of the Secret for up to a second.
	for deadline := time.Now().Add(1500 * time.Millisecond); ; time.Sleep(50 * time.Millisecond) {
		_, err := a.Current(ctx, alex)
		if errors.Is(err, login.ErrNotSignedIn) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("A 1.5s after logout on B: %v, want ErrNotSignedIn", err)
		}
	}
	if n := op.RefreshTokens(); n != 0 {
		t.Errorf("after logout the provider holds %d refresh tokens, want 0", n)
	}
	if _, err := a.Logout(ctx, alex); !errors.Is(err, login.ErrNotSignedIn) {
		t.Errorf("logout again on A: %v, want ErrNotSignedIn", err)
	}

	mu.Lock()
	defer mu.Unlock()
	if strings.Contains(logs.String(), "eyJ") {
		t.Error("a JWT is in the logs")
	}
}

func keys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestIdentitiesUpdate holds Identities to login.Links' contract:
// compare-and-swap under concurrent writers, deletion, refusal of bad
// keys, a missing Secret named, and a full one refused with nothing lost.
func TestIdentitiesUpdate(t *testing.T) {
	e := installBotRBAC(t)
	c := newBotClient(t, e, nil)
	ctx := testCtx(t, 2*time.Minute)
	ids, err := c.Identities(testKeyring(t))
	if err != nil {
		t.Fatal(err)
	}

	// Concurrent increments of one person's record and writes of others:
	// none is lost.
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Go(func() {
			err := ids.Update(ctx, "T1/UCOUNT", func(r login.Record, _ bool) (login.Record, bool, error) {
				r.Link.Refreshes++
				return r, true, nil
			})
			if err != nil {
				t.Errorf("increment: %v", err)
			}
			err = ids.Update(ctx, fmt.Sprintf("T1/U%d", i), func(login.Record, bool) (login.Record, bool, error) {
				return login.Record{Link: login.Link{Subject: fmt.Sprint(i)}}, true, nil
			})
			if err != nil {
				t.Errorf("write: %v", err)
			}
		})
	}
	wg.Wait()
	r, ok, err := ids.Get(ctx, "T1/UCOUNT")
	if err != nil || !ok || r.Link.Refreshes != 10 {
		t.Fatalf("after 10 concurrent increments: %+v %v %v, want 10", r.Link, ok, err)
	}
	for i := range 10 {
		if r, ok, err := ids.Get(ctx, fmt.Sprintf("T1/U%d", i)); err != nil || !ok || r.Link.Subject != fmt.Sprint(i) {
			t.Errorf("T1/U%d: %+v %v %v", i, r.Link, ok, err)
		}
	}

	// Deleting.
	if err := ids.Update(ctx, "T1/U0", func(login.Record, bool) (login.Record, bool, error) { return login.Record{}, false, nil }); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := ids.Get(ctx, "T1/U0"); ok || err != nil {
		t.Errorf("after deletion: %v %v", ok, err)
	}

	// An error from change writes nothing.
	boom := errors.New("boom")
	if err := ids.Update(ctx, "T1/U1", func(login.Record, bool) (login.Record, bool, error) { return login.Record{}, false, boom }); !errors.Is(err, boom) {
		t.Errorf("change's error: %v", err)
	}
	if _, ok, _ := ids.Get(ctx, "T1/U1"); !ok {
		t.Error("a failed change deleted the record")
	}

	for _, bad := range []string{"", "T1", "T1/", "/U1", "T1/U1/x", "T.1/U1", "T1/U 1"} {
		if _, _, err := ids.Get(ctx, bad); err == nil {
			t.Errorf("Get(%q): no error", bad)
		}
	}

	// Full: a record too big to fit is refused, and what was there stays.
	huge := login.Record{Secret: login.Secret{RefreshToken: strings.Repeat("x", 1<<20)}}
	err = ids.Update(ctx, "T1/UHUGE", func(login.Record, bool) (login.Record, bool, error) { return huge, true, nil })
	if !errors.Is(err, k8s.ErrIdentitiesFull) {
		t.Errorf("a record over the limit: %v, want ErrIdentitiesFull", err)
	}
	if _, ok, err := ids.Get(ctx, "T1/UCOUNT"); !ok || err != nil {
		t.Errorf("after the refused write: %v %v", ok, err)
	}

	// The Secret missing (seen by an administrator: the bot could not
	// tell it from a Secret it may not read): named, with how to make it.
	gone := newBotClient(t, e, func(cfg *k8s.Config) { cfg.Rest, cfg.IdentitiesSecret = k8stest.Config(t), "kraken-nothing" })
	missing, err := gone.Identities(testKeyring(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := missing.Get(ctx, "T1/U1"); !errors.Is(err, k8s.ErrIdentitiesMissing) {
		t.Errorf("a missing Secret: %v, want ErrIdentitiesMissing", err)
	}
	if _, err := c.Identities(nil); !errors.Is(err, store.ErrNoKeyring) {
		t.Errorf("no keyring: %v, want ErrNoKeyring", err)
	}
}

// BenchmarkIdentitiesCurrent is what a request pays to know its person
// is signed in when the sign-ins live in the cluster, with 500 people in
// the Secret: from this replica's fresh copy (an unsealing), and when the
// Secret must be read (someone not in the copy).
func BenchmarkIdentitiesCurrent(b *testing.B) {
	ctx := context.Background()
	admin := k8stest.Clientset(b)
	ns := k8stest.Namespace(b, "kraken-ids-bench")
	if _, err := admin.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: k8s.DefaultIdentitiesSecret}}, metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	rc := k8stest.Config(b)
	rc.QPS, rc.Burst = 10000, 10000 // the API server, not the client's limiter
	c, err := k8s.New(k8s.Config{Rest: rc, BotNamespace: ns})
	if err != nil {
		b.Fatal(err)
	}
	ids, err := c.Identities(testKeyring(b))
	if err != nil {
		b.Fatal(err)
	}
	rec := login.Record{
		Link:   login.Link{Issuer: "https://id.example.com", Subject: "248289761001", Email: "someone@example.com", Since: time.Now(), Until: time.Now().Add(time.Hour)},
		Secret: login.Secret{RefreshToken: strings.Repeat("r", 64)},
	}
	for i := range 500 {
		if err := ids.Update(ctx, fmt.Sprintf("T1/U%d", i), func(login.Record, bool) (login.Record, bool, error) { return rec, true, nil }); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("copy", func(b *testing.B) {
		for b.Loop() {
			if _, ok, err := ids.Get(ctx, "T1/U250"); !ok || err != nil {
				b.Fatal(ok, err)
			}
		}
	})
	b.Run("read", func(b *testing.B) {
		for b.Loop() {
			if _, ok, err := ids.Get(ctx, "T1/UNOBODY"); ok || err != nil {
				b.Fatal(ok, err)
			}
		}
	})
}
