package command_test

import (
	"context"
	"crypto/rand"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kraken-ops/kraken/bot/command"
	"github.com/kraken-ops/kraken/bot/login"
	"github.com/kraken-ops/kraken/bot/login/logintest"
	"github.com/kraken-ops/kraken/enclave"
	"github.com/kraken-ops/kraken/engine/dev"
	"github.com/kraken-ops/kraken/store"
)

// third is a member of the channel who never signs in.
var third = enclave.Principal{TeamID: team, UserID: "UTHIRD"}

// newSignInFixture is newFixture with sign-in set up against a real
// OpenID provider on loopback, and a third member in the channel.
func newSignInFixture(t *testing.T, o logintest.Options) (*fixture, *logintest.Provider) {
	t.Helper()
	ctx := context.Background()
	op := logintest.New(t, o)
	dir := t.TempDir()
	rt, err := dev.Open(ctx, dev.Options{Dir: filepath.Join(dir, "cluster")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close() })
	key := make([]byte, store.KeySize)
	rand.Read(key)
	ring, err := store.NewKeyring(key)
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(filepath.Join(dir, "kraken.db"), store.Options{Keyring: ring})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ids, err := login.New(ctx, login.Config{Issuer: op.Issuer, ClientID: op.ClientID, ClientSecret: op.ClientSecret, Store: db, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ids.Close() })
	f := &fixture{t: t, db: db, now: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC),
		ch: &channels{members: map[string][]string{general.ID: {owner.UserID, member.UserID, third.UserID}}, info: map[string]command.ChannelInfo{general.ID: {Name: general.Name}}}}
	f.reg, err = command.New(command.Config{
		Enclaves: rt.Enclaves(), Tentacles: rt.Tentacles(), Store: db, Channels: f.ch,
		Examples: os.DirFS(filepath.Join(repoRoot(t), "examples")), Now: f.clock,
		Identities: ids,
	})
	if err != nil {
		t.Fatal(err)
	}
	return f, op
}

var codeIn = regexp.MustCompile(`\*([A-Z0-9-]{4,})\*`)

// startLogin asks /kraken login and returns its first reply and code.
func (f *fixture) startLogin(who enclave.Principal) (command.Reply, string) {
	f.t.Helper()
	r := f.reg.Do(context.Background(), command.Request{Actor: who, Via: command.ViaConsole, Channel: general, Text: "login"})
	if r.Failed || r.Later == nil {
		f.t.Fatalf("login: %+v", r)
	}
	m := codeIn.FindStringSubmatch(r.Text)
	if m == nil {
		f.t.Fatalf("login shows no code: %q", r.Text)
	}
	return r, m[1]
}

// ended waits for the reply that ends a sign-in.
func (f *fixture) ended(r command.Reply) command.Reply {
	f.t.Helper()
	select {
	case end := <-r.Later:
		return end
	case <-time.After(30 * time.Second):
		f.t.Fatal("the sign-in did not end within 30s")
	}
	return command.Reply{}
}

// signIn signs who in at op as subject.
func (f *fixture) signIn(op *logintest.Provider, who enclave.Principal, subject string) {
	f.t.Helper()
	r, code := f.startLogin(who)
	if err := op.Approve(code, subject); err != nil {
		f.t.Fatal(err)
	}
	if end := f.ended(r); end.Failed || !strings.HasPrefix(end.Text, "Signed in as") {
		f.t.Fatalf("sign-in: %+v", end)
	}
}

func TestLoginEndToEnd(t *testing.T) {
	f, op := newSignInFixture(t, logintest.Options{})
	ctx := context.Background()
	f.provisioned()
	if r := f.ok(member, "whoami"); !strings.Contains(r.Text, "not signed in") {
		t.Errorf("whoami before sign-in: %q", r.Text)
	}

	first, code := f.startLogin(member)
	host := strings.TrimPrefix(op.Issuer, "http://")
	if !first.Private || !strings.Contains(first.Text, op.Issuer+"/device?user_code="+code) || !strings.Contains(first.Text, "valid for") {
		t.Errorf("login's first reply: %+v", first)
	}
	if err := op.Approve(code, logintest.Alice); err != nil {
		t.Fatal(err)
	}
	end := f.ended(first)
	if want := "Signed in as " + logintest.AliceEmail + " (" + host + ")."; end.Failed || !end.Private || end.Text != want {
		t.Errorf("login's end: %+v, want %q", end, want)
	}
	who := f.ok(member, "whoami")
	if !strings.Contains(who.Text, "Signed in as "+logintest.AliceEmail+" ("+host+")") || strings.Contains(who.Text, "eyJ") {
		t.Errorf("whoami: %q", who.Text)
	}

	// The owner requires sign-in; signed in, the member deploys, and the
	// audit log names them at the provider.
	f.signIn(op, owner, logintest.Bob)
	f.ok(owner, "identity required")
	if r := f.ok(member, "whoami"); !strings.Contains(r.Text, "must sign in") || !strings.Contains(r.Text, "deploy") {
		t.Errorf("whoami in an enclave requiring sign-in: %q", r.Text)
	}
	f.confirmed(member, "deploy hello-fanout", "")
	entries, err := f.db.ListAudit(ctx, store.AuditQuery{Actor: member.UserID, Limit: 20})
	if err != nil {
		t.Fatal(err)
	}
	var deployed, loggedIn bool
	for _, e := range entries {
		if e.Issuer != op.Issuer || e.Subject != logintest.Alice {
			t.Errorf("audit entry %s without the issuer subject: %+v", e.Verb, e)
		}
		deployed = deployed || e.Verb == "deploy" && e.Result == store.ResultOK
		loggedIn = loggedIn || e.Verb == "login" && e.Result == store.ResultOK
	}
	if !deployed || !loggedIn {
		t.Errorf("audit lacks the deploy or the login: %+v", entries)
	}

	// Someone who never signed in can look, but not run or change.
	f.ok(third, "list")
	f.ok(third, "status hello-fanout")
	for _, text := range []string{"run hello-fanout", "undeploy hello-fanout", "add @UNEW"} {
		r := f.do(third, text)
		if !r.Failed || !strings.Contains(r.Text, "/kraken login") {
			t.Errorf("%s without sign-in: %+v", text, r)
		}
	}
	// Logout forgets the link: the member is refused too.
	out := f.ok(member, "logout")
	if !strings.Contains(out.Text, logintest.AliceEmail) {
		t.Errorf("logout: %q", out.Text)
	}
	if r := f.do(member, "run hello-fanout"); !r.Failed || !strings.Contains(r.Text, "/kraken login") {
		t.Errorf("run after logout: %+v", r)
	}
	if r := f.ok(member, "logout"); !strings.Contains(r.Text, "weren't signed in") {
		t.Errorf("second logout: %q", r.Text)
	}
}

func TestLoginEndsWithoutLink(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts logintest.Options
		act  func(op *logintest.Provider, code string) error
		want string
	}{
		{"denied consent", logintest.Options{}, func(op *logintest.Provider, code string) error { return op.Deny(code) }, "refused"},
		{"expired code", logintest.Options{CodeLifetime: 2 * time.Second}, func(*logintest.Provider, string) error { return nil }, "expired before it was used"},
		{"wrong audience", logintest.Options{}, func(op *logintest.Provider, code string) error {
			op.MisdirectIDTokens("another-app")
			return op.Approve(code, logintest.Alice)
		}, "couldn't verify"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, op := newSignInFixture(t, tc.opts)
			f.provisioned()
			r, code := f.startLogin(member)
			if err := tc.act(op, code); err != nil {
				t.Fatal(err)
			}
			end := f.ended(r)
			if !end.Failed || !end.Private || !strings.Contains(end.Text, tc.want) || !strings.Contains(end.Text, "nothing is linked") {
				t.Errorf("login's end: %+v, want %q", end, tc.want)
			}
			if r := f.ok(member, "whoami"); !strings.Contains(r.Text, "not signed in") {
				t.Errorf("whoami: %q", r.Text)
			}
			entries, err := f.db.ListAudit(context.Background(), store.AuditQuery{Verb: "login", Limit: 5})
			if err != nil || len(entries) != 1 || entries[0].Result != store.ResultError || entries[0].Subject != "" {
				t.Errorf("audit of the failed sign-in: %+v %v", entries, err)
			}
		})
	}
}

// TestSignInExpiresMidSession: a person asks for a change while signed
// in, their session ends at the provider, then they confirm: nothing is
// done, and they are told to sign in again.
func TestSignInExpiresMidSession(t *testing.T) {
	f, op := newSignInFixture(t, logintest.Options{IDTokenLifetime: 2 * time.Second})
	f.provisioned()
	f.signIn(op, owner, logintest.Bob)
	f.ok(owner, "identity required")
	f.confirmed(owner, "deploy hello-fanout", "")
	f.signIn(op, member, logintest.Alice)
	card := f.ok(member, "undeploy hello-fanout")
	if card.Confirm == nil {
		t.Fatalf("undeploy asked no confirmation: %+v", card)
	}

	if err := op.EndSessions(logintest.Alice); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2100 * time.Millisecond) // the ID token has expired: the next use refreshes
	r := f.reg.Click(context.Background(), command.Click{Actor: member, Via: command.ViaConsole, Channel: general, Value: card.Confirm.ConfirmValue})
	if !r.Failed || !strings.Contains(r.Text, "sign-in has expired") || !strings.Contains(r.Text, "/kraken login") {
		t.Fatalf("confirming after the session ended: %+v", r)
	}
	if st := f.ok(member, "status hello-fanout"); strings.Contains(st.Text, "not deployed") {
		t.Errorf("the tentacle was undeployed: %q", st.Text)
	}
	if w := f.ok(member, "whoami"); !strings.Contains(w.Text, "sign-in has expired") {
		t.Errorf("whoami after expiry: %q", w.Text)
	}
	// The owner's session refreshes and goes on.
	f.ok(owner, "status hello-fanout")
	f.ok(owner, "mode team")
	// Signing in again mends it.
	f.signIn(op, member, logintest.Alice)
	f.ok(member, "run hello-fanout")
}

func TestIdentityRule(t *testing.T) {
	f, op := newSignInFixture(t, logintest.Options{})
	f.provisioned()
	if r := f.do(owner, "identity required"); !r.Failed || !strings.Contains(r.Text, "Sign in first") {
		t.Errorf("requiring sign-in before signing in: %+v", r)
	}
	f.signIn(op, member, logintest.Alice)
	if r := f.do(member, "identity required"); !r.Failed || !strings.Contains(r.Text, "Only the owner") {
		t.Errorf("a member set the rule: %+v", r)
	}
	f.signIn(op, owner, logintest.Bob)
	if r := f.do(owner, "identity maybe"); !r.Failed || !strings.Contains(r.Text, "required") {
		t.Errorf("a bad rule: %+v", r)
	}
	f.ok(owner, "identity required")
	if r := f.ok(owner, "identity on"); !strings.Contains(r.Text, "Nothing to change") {
		t.Errorf("setting the rule twice: %q", r.Text)
	}
	f.ok(owner, "identity optional")
	f.ok(third, "add @UNEW")
}

// TestSignInNotSetUp: without an identity provider, login says who can set
// it up, and an enclave requiring sign-in refuses changes (fail closed)
// with that explanation, while looking still works.
func TestSignInNotSetUp(t *testing.T) {
	f := newFixture(t)
	f.provisioned()
	if r := f.do(member, "login"); !r.Failed || !r.Private || !strings.Contains(r.Text, "isn't set up") || !strings.Contains(r.Text, "KRAKEN_LOGIN_ISSUER") {
		t.Errorf("login: %+v", r)
	}
	if r := f.do(owner, "identity required"); !r.Failed || !strings.Contains(r.Text, "isn't set up") {
		t.Errorf("requiring sign-in that isn't set up: %+v", r)
	}
	admin := &command.Admin{Issuer: "https://idp", Subject: "ops-1", Email: "ops@example.com"}
	if r := f.reg.Do(context.Background(), command.Request{Admin: admin, Via: command.ViaAdmin, Enclave: "payments", Text: "identity required"}); r.Failed {
		t.Fatalf("an admin requiring sign-in: %+v", r)
	}
	f.ok(member, "list")
	for _, who := range []enclave.Principal{owner, member} {
		if r := f.do(who, "deploy hello-fanout"); !r.Failed || !strings.Contains(r.Text, "isn't set up") || !strings.Contains(r.Text, "platform administrator") {
			t.Errorf("%s deploying: %+v", who.UserID, r)
		}
	}
}
