package natsuser_test

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/kraken-ops/kraken/enclave"
	"github.com/kraken-ops/kraken/enclave/natsuser"
	"github.com/kraken-ops/kraken/enclave/natsuser/natstest"
)

var testKey = []byte("the platform's key: 32 bytes at least, for tests")

// backend is a Backend on s, signing with the account's signing key.
func backend(t testing.TB, s *natstest.Server) *natsuser.Backend {
	t.Helper()
	b, err := natsuser.New(t.Context(), natsuser.Config{
		URL: s.URL, AccountSeed: s.AccountSeed, Account: s.Account, Key: testKey,
		Network: []enclave.Network{{CIDR: "127.0.0.1/32", Port: s.Port}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func grant(t testing.TB, b *natsuser.Backend, enc, tentacle string) enclave.Space {
	t.Helper()
	s, err := b.Grant(t.Context(), enc, tentacle)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// client is a connection whose asynchronous errors (the server's
// permission violations) are collected.
type client struct {
	*nats.Conn
	errs chan error
}

func connect(t *testing.T, url string, opts ...nats.Option) (*client, error) {
	t.Helper()
	c := &client{errs: make(chan error, 16)}
	opts = append(opts, nats.Timeout(5*time.Second), nats.NoReconnect(),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			select {
			case c.errs <- err:
			default:
			}
		}))
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, err
	}
	t.Cleanup(nc.Close)
	c.Conn = nc
	return c, nil
}

// as connects with a space's credentials, as a tentacle would.
func as(t *testing.T, url string, s enclave.Space, opts ...nats.Option) *client {
	t.Helper()
	c, err := connect(t, url, append([]nats.Option{nats.UserJWTAndSeed(s.Token, s.Secret)}, opts...)...)
	if err != nil {
		t.Fatalf("%s connects: %v", s.Prefix, err)
	}
	return c
}

// refused waits for the server's permissions violation on subject, or on
// any subject under it when it ends with a dot (a client's inbox).
func (c *client) refused(t *testing.T, subject string) {
	t.Helper()
	if err := c.Flush(); err != nil && !errors.Is(err, nats.ErrPermissionViolation) {
		t.Fatalf("flush: %v", err)
	}
	timeout := time.After(5 * time.Second)
	for {
		select {
		case err := <-c.errs:
			quoted := `"` + subject
			if !strings.HasSuffix(subject, ".") {
				quoted += `"`
			}
			if errors.Is(err, nats.ErrPermissionViolation) && strings.Contains(err.Error(), quoted) {
				return
			}
			t.Logf("other async error: %v", err)
		case <-timeout:
			t.Fatalf("no permissions violation for %q", subject)
		}
	}
}

// allowed checks the server took everything so far without complaint.
func (c *client) allowed(t *testing.T) {
	t.Helper()
	if err := c.Flush(); err != nil {
		t.Fatalf("flush: %v", err)
	}
	select {
	case err := <-c.errs:
		t.Fatalf("refused: %v", err)
	default:
	}
}

// receive waits for one message on sub.
func receive(t *testing.T, sub *nats.Subscription) *nats.Msg {
	t.Helper()
	m, err := sub.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatalf("nothing on %s: %v", sub.Subject, err)
	}
	return m
}

// nothing checks sub got no message.
func nothing(t *testing.T, c *client, sub *nats.Subscription) {
	t.Helper()
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	if m, err := sub.NextMsg(200 * time.Millisecond); err == nil {
		t.Fatalf("%s got %q", sub.Subject, m.Data)
	}
}

func TestPermissions(t *testing.T) {
	s := natstest.Start(t)
	b := backend(t, s)
	pay := grant(t, b, "payments", "ledger")
	pay2 := grant(t, b, "payments", "invoices")
	bill := grant(t, b, "billing", "ledger")
	if pay.Prefix != "kraken.payments" || natsuser.Inbox(pay) != "kraken.payments._INBOX" {
		t.Fatalf("prefix %q, inbox %q", pay.Prefix, natsuser.Inbox(pay))
	}

	t.Run("own prefix", func(t *testing.T) {
		c := as(t, s.URL, pay)
		sub, err := c.SubscribeSync("kraken.payments.orders.>")
		if err != nil {
			t.Fatal(err)
		}
		other := as(t, s.URL, pay2)
		if err := other.Publish("kraken.payments.orders.new", []byte("1")); err != nil {
			t.Fatal(err)
		}
		other.allowed(t)
		if m := receive(t, sub); string(m.Data) != "1" {
			t.Errorf("got %q", m.Data)
		}
		c.allowed(t)
	})

	t.Run("subscribe outside", func(t *testing.T) {
		for _, subject := range []string{"kraken.billing.orders", "kraken.billing.>", "kraken.*.orders", "kraken.>", ">", "_INBOX.>", "$SYS.>", "kraken.payments"} {
			c := as(t, s.URL, pay)
			if _, err := c.SubscribeSync(subject); err != nil {
				t.Fatal(err)
			}
			c.refused(t, subject)
		}
	})

	t.Run("publish outside", func(t *testing.T) {
		listener := as(t, s.URL, bill)
		sub, err := listener.SubscribeSync("kraken.billing.>")
		if err != nil {
			t.Fatal(err)
		}
		listener.allowed(t)
		c := as(t, s.URL, pay)
		for _, subject := range []string{"kraken.billing.orders", "kraken.payments", "other"} {
			if err := c.Publish(subject, []byte("x")); err != nil {
				t.Fatal(err)
			}
			c.refused(t, subject)
		}
		nothing(t, listener, sub)
	})

	t.Run("request-reply", func(t *testing.T) {
		responder := as(t, s.URL, pay2)
		if _, err := responder.Subscribe("kraken.payments.rates", func(m *nats.Msg) {
			m.Respond([]byte("rate for " + string(m.Data)))
		}); err != nil {
			t.Fatal(err)
		}
		responder.allowed(t)

		c := as(t, s.URL, pay, nats.CustomInboxPrefix(natsuser.Inbox(pay)))
		m, err := c.Request("kraken.payments.rates", []byte("eur"), 5*time.Second)
		if err != nil {
			t.Fatalf("request: %v", err)
		}
		if string(m.Data) != "rate for eur" {
			t.Errorf("reply %q", m.Data)
		}
		c.allowed(t)

		// Without the enclave's inbox prefix, the client's inbox
		// subscription is refused.
		plain := as(t, s.URL, pay)
		if _, err := plain.Request("kraken.payments.rates", []byte("eur"), time.Second); err == nil {
			t.Error("a request with the default inbox got a reply")
		}
		plain.refused(t, "_INBOX.")
	})

	t.Run("another enclave's inbox", func(t *testing.T) {
		c := as(t, s.URL, bill)
		if _, err := c.SubscribeSync("kraken.payments._INBOX.>"); err != nil {
			t.Fatal(err)
		}
		c.refused(t, "kraken.payments._INBOX.>")

		spy := as(t, s.URL, bill, nats.CustomInboxPrefix(natsuser.Inbox(pay)))
		if _, err := spy.Request("kraken.payments.rates", nil, time.Second); err == nil {
			t.Error("billing requested with payments' inbox")
		}
		spy.refused(t, "kraken.payments._INBOX.")
	})

	// A responder may reply only under its own prefix: a sibling cannot
	// make it write into another enclave by naming a reply subject there
	// (what allow_responses would let it do, see below).
	t.Run("reply outside", func(t *testing.T) {
		listener := as(t, s.URL, bill)
		sub, err := listener.SubscribeSync("kraken.billing.orders")
		if err != nil {
			t.Fatal(err)
		}
		listener.allowed(t)
		responder := as(t, s.URL, pay2)
		if _, err := responder.Subscribe("kraken.payments.echo", func(m *nats.Msg) { m.Respond([]byte("injected")) }); err != nil {
			t.Fatal(err)
		}
		responder.allowed(t)
		c := as(t, s.URL, pay)
		if err := c.PublishMsg(&nats.Msg{Subject: "kraken.payments.echo", Reply: "kraken.billing.orders"}); err != nil {
			t.Fatal(err)
		}
		c.allowed(t)
		responder.refused(t, "kraken.billing.orders")
		nothing(t, listener, sub)
	})
}

// TestAllowResponsesLeaks is why users get no allow_responses: with it,
// a tentacle makes its sibling publish into another enclave.
func TestAllowResponsesLeaks(t *testing.T) {
	s := natstest.Start(t)
	within := jwt.StringList{"kraken.payments.>"}
	token, seed, err := natstest.Mint(s.AccountSeed, s.Account, jwt.Permissions{
		Pub: jwt.Permission{Allow: within}, Sub: jwt.Permission{Allow: within},
		Resp: &jwt.ResponsePermission{MaxMsgs: 1, Expires: time.Minute},
	})
	if err != nil {
		t.Fatal(err)
	}
	loose := enclave.Space{Token: token, Secret: seed, Prefix: "kraken.payments"}
	b := backend(t, s)

	listener := as(t, s.URL, grant(t, b, "billing", "ledger"))
	sub, err := listener.SubscribeSync("kraken.billing.orders")
	if err != nil {
		t.Fatal(err)
	}
	listener.allowed(t)
	responder := as(t, s.URL, loose)
	if _, err := responder.Subscribe("kraken.payments.echo", func(m *nats.Msg) { m.Respond([]byte("injected")) }); err != nil {
		t.Fatal(err)
	}
	responder.allowed(t)
	c := as(t, s.URL, grant(t, b, "payments", "ledger"))
	if err := c.PublishMsg(&nats.Msg{Subject: "kraken.payments.echo", Reply: "kraken.billing.orders"}); err != nil {
		t.Fatal(err)
	}
	if m := receive(t, sub); string(m.Data) != "injected" {
		t.Errorf("got %q", m.Data)
	}
}

func TestForeignCredentialsRefused(t *testing.T) {
	s := natstest.Start(t)
	other, err := nkeys.CreateAccount()
	if err != nil {
		t.Fatal(err)
	}
	otherSeed, err := other.Seed()
	if err != nil {
		t.Fatal(err)
	}
	otherPub, err := other.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	all := jwt.Permissions{Pub: jwt.Permission{Allow: jwt.StringList{">"}}, Sub: jwt.Permission{Allow: jwt.StringList{">"}}}

	cases := []struct {
		name string
		cfg  natsuser.Config
	}{
		// An account the operator never signed.
		{"unknown account", natsuser.Config{AccountSeed: string(otherSeed)}},
		// A key claiming to sign for the account, not among its signing keys.
		{"unregistered signing key", natsuser.Config{AccountSeed: string(otherSeed), Account: s.Account}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.URL, tc.cfg.Key = s.URL, testKey
			b, err := natsuser.New(t.Context(), tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			sp := grant(t, b, "payments", "ledger")
			if _, err := connect(t, s.URL, nats.UserJWTAndSeed(sp.Token, sp.Secret)); !errors.Is(err, nats.ErrAuthorization) {
				t.Fatalf("connect: %v, want %v", err, nats.ErrAuthorization)
			}
		})
	}

	t.Run("forged permissions", func(t *testing.T) {
		token, seed, err := natstest.Mint(string(otherSeed), otherPub, all)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := connect(t, s.URL, nats.UserJWTAndSeed(token, seed)); !errors.Is(err, nats.ErrAuthorization) {
			t.Fatalf("connect: %v, want %v", err, nats.ErrAuthorization)
		}
	})

	t.Run("someone else's seed", func(t *testing.T) {
		b := backend(t, s)
		a, c := grant(t, b, "payments", "ledger"), grant(t, b, "billing", "ledger")
		if _, err := connect(t, s.URL, nats.UserJWTAndSeed(a.Token, c.Secret)); !errors.Is(err, nats.ErrAuthorization) {
			t.Fatalf("connect: %v, want %v", err, nats.ErrAuthorization)
		}
	})
}

// TestAccountKey checks both kinds of account seed mint users the server
// takes.
func TestAccountKey(t *testing.T) {
	s := natstest.Start(t)
	for name, cfg := range map[string]natsuser.Config{
		"signing key":  {AccountSeed: s.AccountSeed, Account: s.Account},
		"account key":  {AccountSeed: s.AccountKeySeed},
		"both, stated": {AccountSeed: s.AccountKeySeed, Account: s.Account},
	} {
		t.Run(name, func(t *testing.T) {
			cfg.URL, cfg.Key = s.URL, testKey
			b, err := natsuser.New(t.Context(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			sp := grant(t, b, "payments", "ledger")
			c := as(t, s.URL, sp)
			sub, err := c.SubscribeSync("kraken.payments.x")
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Publish("kraken.payments.x", []byte("hi")); err != nil {
				t.Fatal(err)
			}
			receive(t, sub)
			c.allowed(t)
		})
	}
}

func TestCreds(t *testing.T) {
	s := natstest.Start(t)
	sp := grant(t, backend(t, s), "payments", "ledger")
	creds, err := natsuser.Creds(sp)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "user.creds")
	if err := os.WriteFile(path, creds, 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := connect(t, s.URL, nats.UserCredentials(path))
	if err != nil {
		t.Fatalf("connect with the creds file: %v", err)
	}
	c.allowed(t)
	if tok, err := jwt.ParseDecoratedJWT(creds); err != nil || tok != sp.Token {
		t.Errorf("creds JWT differs (%v)", err)
	}

	if _, err := natsuser.Creds(enclave.Space{Token: sp.Token}); err == nil {
		t.Error("creds without a seed")
	}
	bad := sp
	bad.Secret = grant(t, backend(t, s), "payments", "other").Secret
	if _, err := natsuser.Creds(bad); err == nil || strings.Contains(err.Error(), bad.Secret) {
		t.Errorf("mismatched seed: %v", err)
	}
}

func TestBot(t *testing.T) {
	s := natstest.Start(t)
	b := backend(t, s)
	opts, err := b.BotOptions()
	if err != nil {
		t.Fatal(err)
	}
	bot, err := connect(t, s.URL, opts...)
	if err != nil {
		t.Fatalf("bot connects: %v", err)
	}

	// The bot's queue triggers answer requests in every enclave.
	for _, enc := range []string{"payments", "billing"} {
		if _, err := bot.QueueSubscribe("kraken."+enc+".orders.new", "kraken", func(m *nats.Msg) {
			m.Respond([]byte("ran in " + enc))
		}); err != nil {
			t.Fatal(err)
		}
	}
	bot.allowed(t)
	for _, enc := range []string{"payments", "billing"} {
		sp := grant(t, b, enc, "ledger")
		c := as(t, s.URL, sp, nats.CustomInboxPrefix(natsuser.Inbox(sp)))
		m, err := c.Request("kraken."+enc+".orders.new", nil, 5*time.Second)
		if err != nil {
			t.Fatalf("%s: request: %v", enc, err)
		}
		if string(m.Data) != "ran in "+enc {
			t.Errorf("%s: reply %q", enc, m.Data)
		}
	}

	// Its own requests use its inbox.
	if _, err := bot.Subscribe("kraken.billing.ping", func(m *nats.Msg) { m.Respond([]byte("pong")) }); err != nil {
		t.Fatal(err)
	}
	if _, err := bot.Request("kraken.billing.ping", nil, 5*time.Second); err != nil {
		t.Fatalf("bot request: %v", err)
	}
	bot.allowed(t)

	// And nothing outside the prefix.
	for _, subject := range []string{">", "other.>", "$SYS.>"} {
		if _, err := bot.SubscribeSync(subject); err != nil {
			t.Fatal(err)
		}
		bot.refused(t, subject)
	}
}

// TestRevoke checks what the package comment claims: Revoke cannot cut a
// user off, and revoking its public key in the account JWT does.
func TestRevoke(t *testing.T) {
	s := natstest.Start(t)
	var log bytes.Buffer
	b, err := natsuser.New(t.Context(), natsuser.Config{
		URL: s.URL, AccountSeed: s.AccountSeed, Account: s.Account, Key: testKey,
		Logger: slog.New(slog.NewTextHandler(&log, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	sp, kept := grant(t, b, "payments", "ledger"), grant(t, b, "payments", "invoices")

	if err := b.Revoke(t.Context(), "payments", "ledger"); err != nil {
		t.Fatal(err)
	}
	// The warning names what the platform must revoke, and no secret.
	if l := log.String(); strings.Contains(l, sp.Secret) || strings.Contains(l, s.AccountSeed) {
		t.Error("revoke logged a seed")
	} else if !strings.Contains(l, "user="+sp.User) || !strings.Contains(l, "account="+s.Account) {
		t.Errorf("revoke logged %q", l)
	}
	if again := grant(t, b, "payments", "ledger"); again.Token != sp.Token {
		t.Error("a revoked tentacle's credentials changed")
	}
	c := as(t, s.URL, sp)
	c.allowed(t)

	s.Revoke(t, sp.User)
	if _, err := connect(t, s.URL, nats.UserJWTAndSeed(sp.Token, sp.Secret)); !errors.Is(err, nats.ErrAuthorization) {
		t.Fatalf("revoked user connects: %v", err)
	}
	as(t, s.URL, kept).allowed(t)
}

func TestNewRefusesBadConfig(t *testing.T) {
	operator, _ := nkeys.CreateOperator()
	opSeed, _ := operator.Seed()
	user, _ := nkeys.CreateUser()
	userSeed, _ := user.Seed()
	userPub, _ := user.PublicKey()
	account, _ := nkeys.CreateAccount()
	accSeed, _ := account.Seed()
	good := natsuser.Config{URL: "nats://nats.kraken-system:4222", AccountSeed: string(accSeed), Key: testKey}

	cases := []struct {
		name string
		mod  func(*natsuser.Config)
		want string
	}{
		{"no url", func(c *natsuser.Config) { c.URL = "" }, "url: empty"},
		{"http url", func(c *natsuser.Config) { c.URL = "http://nats:4222" }, "scheme must be nats or tls"},
		{"url with credentials", func(c *natsuser.Config) { c.URL = "nats://u:hunter2@nats:4222" }, "want only nats://host:port"},
		{"bad url with credentials", func(c *natsuser.Config) { c.URL = "nats://u:hunter2@nats:42%2" }, "not a URL"},
		{"http url with credentials", func(c *natsuser.Config) { c.URL = "http://u:hunter2@nats:4222" }, "scheme must be"},
		{"bad port", func(c *natsuser.Config) { c.URL = "nats://nats:99999" }, "bad port"},
		{"no host", func(c *natsuser.Config) { c.URL = "nats://:4222" }, "no host"},
		{"short key", func(c *natsuser.Config) { c.Key = []byte("short") }, "at least 32 bytes, got 5"},
		{"wildcard prefix", func(c *natsuser.Config) { c.Prefix = "kraken.*" }, "prefix"},
		{"empty token prefix", func(c *natsuser.Config) { c.Prefix = "kraken..x" }, "prefix"},
		{"no seed", func(c *natsuser.Config) { c.AccountSeed = "" }, "account seed: empty"},
		{"operator seed", func(c *natsuser.Config) { c.AccountSeed = string(opSeed) }, "is an operator seed"},
		{"user seed", func(c *natsuser.Config) { c.AccountSeed = string(userSeed) }, "is a user seed"},
		{"garbage seed", func(c *natsuser.Config) { c.AccountSeed = "SAnotaseedatall" }, "not an nkey seed"},
		{"account is a user", func(c *natsuser.Config) { c.Account = userPub }, "is not an account public key"},
		{"network without port", func(c *natsuser.Config) { c.Network = []enclave.Network{{CIDR: "10.0.0.0/8"}} }, "network 1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := good
			tc.mod(&cfg)
			_, err := natsuser.New(t.Context(), cfg)
			if !errors.Is(err, natsuser.ErrConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			for _, secret := range []string{string(opSeed), string(userSeed), string(accSeed), "hunter2", "SAnotaseed"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("the error shows a secret")
				}
			}
		})
	}

	b, err := natsuser.New(t.Context(), good)
	if err != nil {
		t.Fatal(err)
	}
	if b.URL() != "nats://nats.kraken-system:4222" {
		t.Errorf("url %q", b.URL())
	}
	cfg := good
	cfg.URL = "tls://nats.example"
	if b, err = natsuser.New(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	if sp := grant(t, b, "payments", "ledger"); !sp.TLS || sp.Port != 4222 || sp.Host != "nats.example" {
		t.Errorf("space %+v", sp.Host)
	}
}

func TestGrant(t *testing.T) {
	account, _ := nkeys.CreateAccount()
	accPub, _ := account.PublicKey()
	signer, _ := nkeys.CreateAccount()
	signerSeed, _ := signer.Seed()
	signerPub, _ := signer.PublicKey()
	nets := []enclave.Network{{Namespace: "nats", Pods: map[string]string{"app": "nats"}, Port: 4222}}
	cfg := natsuser.Config{URL: "nats://nats.kraken-system", AccountSeed: string(signerSeed), Account: accPub, Key: testKey, Network: nets}
	b, err := natsuser.New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}

	sp := grant(t, b, "payments", "ledger")
	if sp.Kind != enclave.Messaging || sp.Protocol != "nats" || sp.Host != "nats.kraken-system" || sp.Port != 4222 || sp.TLS ||
		sp.Prefix != "kraken.payments" || len(sp.Network) != 1 || sp.Network[0].Namespace != "nats" {
		t.Errorf("space = %+v", sp.Network)
	}
	kp, err := nkeys.FromSeed([]byte(sp.Secret))
	if err != nil {
		t.Fatal(err)
	}
	if pub, _ := kp.PublicKey(); pub != sp.User || !nkeys.IsValidPublicUserKey(pub) {
		t.Errorf("the seed is not the user's")
	}

	uc, err := jwt.DecodeUserClaims(sp.Token)
	if err != nil {
		t.Fatal(err)
	}
	if uc.Subject != sp.User || uc.Issuer != signerPub || uc.IssuerAccount != accPub || uc.Name != "payments/ledger" {
		t.Errorf("claims: sub %s iss %s account %s name %q", uc.Subject, uc.Issuer, uc.IssuerAccount, uc.Name)
	}
	if uc.Expires != 0 || uc.IssuedAt != 0 || uc.BearerToken {
		t.Errorf("exp %d, iat %d, bearer %v", uc.Expires, uc.IssuedAt, uc.BearerToken)
	}
	want := jwt.StringList{"kraken.payments.>"}
	if !equal(uc.Pub.Allow, want) || !equal(uc.Sub.Allow, want) || len(uc.Pub.Deny)+len(uc.Sub.Deny) != 0 || uc.Resp != nil {
		t.Errorf("permissions %+v", uc.Permissions)
	}
	vr := jwt.CreateValidationResults()
	uc.Validate(vr)
	if !vr.IsEmpty() {
		t.Errorf("validation: %v", vr.Errors())
	}

	// Same names, same credentials, byte for byte, from another replica.
	b2, err := natsuser.New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if again := grant(t, b2, "payments", "ledger"); again.User != sp.User || again.Secret != sp.Secret || again.Token != sp.Token {
		t.Error("a second grant gave other credentials")
	}
	// Anything else, other users.
	seen := map[string]string{sp.User: "payments/ledger"}
	other := cfg
	other.Key = []byte("another platform key, also 32 bytes long")
	b3, err := natsuser.New(t.Context(), other)
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range []struct {
		b         *natsuser.Backend
		enc, tent string
		label     string
	}{
		{b, "payments", "invoices", "payments/invoices"},
		{b, "billing", "ledger", "billing/ledger"},
		{b, "paymentsl", "edger", "paymentsl/edger"},
		{b3, "payments", "ledger", "other key"},
	} {
		u := grant(t, g.b, g.enc, g.tent).User
		if prev, ok := seen[u]; ok {
			t.Errorf("%s has the user of %s", g.label, prev)
		}
		seen[u] = g.label
	}

	// The prefix is configurable.
	cfg.Prefix = "acme.kraken"
	if b, err = natsuser.New(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	if sp := grant(t, b, "payments", "ledger"); sp.Prefix != "acme.kraken.payments" {
		t.Errorf("prefix %q", sp.Prefix)
	}
}

func equal(a, b jwt.StringList) bool {
	return strings.Join(a, ",") == strings.Join(b, ",")
}

func TestNames(t *testing.T) {
	account, _ := nkeys.CreateAccount()
	seed, _ := account.Seed()
	b, err := natsuser.New(t.Context(), natsuser.Config{URL: "nats://nats", AccountSeed: string(seed), Key: testKey})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	for _, enc := range []string{"", "a.b", "*", ">", "Payments", "pay ments", "_INBOX", "default", strings.Repeat("a", 64)} {
		if err := b.Open(ctx, enc); !errors.Is(err, natsuser.ErrName) {
			t.Errorf("open %q: %v", enc, err)
		}
		if _, err := b.Grant(ctx, enc, "ledger"); !errors.Is(err, natsuser.ErrName) {
			t.Errorf("grant %q: %v", enc, err)
		}
		if _, err := b.Usage(ctx, enc); !errors.Is(err, natsuser.ErrName) {
			t.Errorf("usage %q: %v", enc, err)
		}
		if err := b.Drop(ctx, enc); !errors.Is(err, natsuser.ErrName) {
			t.Errorf("drop %q: %v", enc, err)
		}
	}
	for _, tent := range []string{"", "a.b", "*", "Ledger", "-x", strings.Repeat("a", 64)} {
		if _, err := b.Grant(ctx, "payments", tent); !errors.Is(err, natsuser.ErrName) {
			t.Errorf("grant tentacle %q: %v", tent, err)
		}
		if err := b.Revoke(ctx, "payments", tent); !errors.Is(err, natsuser.ErrName) {
			t.Errorf("revoke tentacle %q: %v", tent, err)
		}
	}

	// Nothing is made or kept: these succeed without a server.
	if err := b.Open(ctx, "payments"); err != nil {
		t.Error(err)
	}
	if err := b.Drop(ctx, "payments"); err != nil {
		t.Error(err)
	}
	u, err := b.Usage(ctx, "payments")
	if err != nil {
		t.Fatal(err)
	}
	if u != (enclave.Usage{Kind: enclave.Messaging, What: "messaging subjects kraken.payments.>", Exists: true}) {
		t.Errorf("usage %+v", u)
	}
	if b.Kind() != enclave.Messaging {
		t.Errorf("kind %q", b.Kind())
	}
}

func BenchmarkGrant(b *testing.B) {
	account, _ := nkeys.CreateAccount()
	seed, _ := account.Seed()
	be, err := natsuser.New(b.Context(), natsuser.Config{URL: "nats://nats", AccountSeed: string(seed), Key: testKey})
	if err != nil {
		b.Fatal(err)
	}
	ctx := b.Context()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := be.Grant(ctx, "payments", "ledger"); err != nil {
			b.Fatal(err)
		}
	}
}
