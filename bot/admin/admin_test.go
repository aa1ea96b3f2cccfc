package admin_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kraken-ops/kraken/bot/admin"
	"github.com/kraken-ops/kraken/bot/command"
	"github.com/kraken-ops/kraken/bot/metrics"
	"github.com/kraken-ops/kraken/bot/oidcauth"
	"github.com/kraken-ops/kraken/bot/oidctest"
	"github.com/kraken-ops/kraken/enclave"
	"github.com/kraken-ops/kraken/engine/dev"
	"github.com/kraken-ops/kraken/store"
)

type channels struct{ members []string }

func (c *channels) Members(context.Context, enclave.Channel) ([]string, error) { return c.members, nil }
func (c *channels) Info(context.Context, enclave.Channel) (command.ChannelInfo, error) {
	return command.ChannelInfo{Name: "payments"}, nil
}
func (c *channels) Invite(context.Context, enclave.Channel, string) error { return nil }
func (c *channels) Kick(context.Context, enclave.Channel, string) error   { return nil }

type fixture struct {
	srv   *httptest.Server
	idp   *oidctest.Issuer
	db    *store.DB
	reg   *command.Registry
	ready error
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	rt, err := dev.Open(ctx, dev.Options{Dir: filepath.Join(dir, "cluster")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close() })
	db, err := store.Open(filepath.Join(dir, "kraken.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	reg, err := command.New(command.Config{Enclaves: rt.Enclaves(), Tentacles: rt.Tentacles(), Store: db, Channels: &channels{members: []string{"UOWNER"}}})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{idp: oidctest.New(t), db: db, reg: reg}
	v, err := oidcauth.New(ctx, oidcauth.Config{Issuer: f.idp.URL(), Audience: f.idp.Audience(), AdminGroup: "platform-admins"})
	if err != nil {
		t.Fatal(err)
	}
	m := metrics.NewRegistry()
	m.Counter("kraken_events_total", "Events received.", "type").With("message").Inc()
	f.srv = httptest.NewServer(admin.Handler(admin.Config{
		Commands: reg, Auth: v.Middleware, Metrics: m.Handler(),
		Checks: []admin.Check{{Name: "cluster", Run: func(context.Context) error { return f.ready }}},
	}))
	t.Cleanup(f.srv.Close)
	ch := enclave.Channel{TeamID: "T1", ID: "C1", Name: "payments"}
	if r := reg.Do(ctx, command.Request{Actor: enclave.Principal{TeamID: "T1", UserID: "UOWNER"}, Channel: ch, Text: "provision"}); r.Failed {
		t.Fatal(r.Text)
	}
	return f
}

func (f *fixture) adminToken() string {
	return f.idp.Token(map[string]any{"sub": "ops-1", "email": "ops@example.com", "groups": []string{"platform-admins"}})
}

func (f *fixture) call(t *testing.T, method, path, token, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, f.srv.URL+path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestHealthReadyMetrics(t *testing.T) {
	f := newFixture(t)
	if code, _ := f.call(t, "GET", "/healthz", "", ""); code != 200 {
		t.Errorf("healthz %d", code)
	}
	if code, _ := f.call(t, "GET", "/readyz", "", ""); code != 200 {
		t.Errorf("readyz %d", code)
	}
	f.ready = errors.New("the cluster can't be reached")
	code, body := f.call(t, "GET", "/readyz", "", "")
	if code != 503 || !strings.Contains(body, "cluster") {
		t.Errorf("readyz when the cluster is down: %d %s", code, body)
	}
	code, body = f.call(t, "GET", "/metrics", "", "")
	if code != 200 || !strings.Contains(body, `kraken_events_total{type="message"} 1`) {
		t.Errorf("metrics: %d %s", code, body)
	}
}

func TestAdminAPIAuth(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name  string
		token string
		want  int
	}{
		{"no token", "", 401},
		{"garbage", "not-a-jwt", 401},
		{"expired", f.idp.TokenWith(map[string]any{"groups": []string{"platform-admins"}}, oidctest.Expired()), 401},
		{"wrong audience", f.idp.Token(map[string]any{"aud": "someone-else", "groups": []string{"platform-admins"}}), 401},
		{"forged", f.idp.TokenWith(map[string]any{"groups": []string{"platform-admins"}}, oidctest.WrongKey()), 401},
		{"not an admin", f.idp.Token(map[string]any{"groups": []string{"developers"}}), 403},
		{"admin", f.adminToken(), 200},
	}
	for _, tt := range tests {
		if code, body := f.call(t, "GET", "/admin/v1/enclaves", tt.token, ""); code != tt.want {
			t.Errorf("%s: %d %s, want %d", tt.name, code, body, tt.want)
		}
	}
}

func TestAdminAPI(t *testing.T) {
	f := newFixture(t)
	tok := f.adminToken()
	code, body := f.call(t, "GET", "/admin/v1/enclaves", tok, "")
	var list []command.EnclaveView
	if err := json.Unmarshal([]byte(body), &list); code != 200 || err != nil || len(list) != 1 || list[0].Name != "payments" || list[0].Owner != "UOWNER" {
		t.Fatalf("enclaves: %d %s", code, body)
	}
	if code, _ := f.call(t, "GET", "/admin/v1/enclaves/nope", tok, ""); code != 404 {
		t.Errorf("missing enclave: %d", code)
	}
	if code, body := f.call(t, "GET", "/admin/v1/enclaves/payments/tentacles", tok, ""); code != 200 || strings.TrimSpace(body) != "null" && strings.TrimSpace(body) != "[]" {
		t.Errorf("tentacles: %d %s", code, body)
	}
	if code, body := f.call(t, "POST", "/admin/v1/enclaves/payments/freeze", tok, ""); code != 200 || !strings.Contains(body, "frozen") {
		t.Errorf("freeze: %d %s", code, body)
	}
	if code, body := f.call(t, "POST", "/admin/v1/enclaves/payments/freeze", tok, ""); code != 422 || !strings.Contains(body, "already frozen") {
		t.Errorf("second freeze: %d %s", code, body)
	}
	if code, body := f.call(t, "POST", "/admin/v1/enclaves/payments/commands", tok, `{"text": "unfreeze"}`); code != 200 {
		t.Errorf("command: %d %s", code, body)
	}
	if code, _ := f.call(t, "POST", "/admin/v1/enclaves/payments/commands", tok, `nope`); code != 400 {
		t.Errorf("bad body: %d", code)
	}
	if code, body := f.call(t, "POST", "/admin/v1/enclaves/payments/deprovision", tok, ""); code != 409 || !strings.Contains(body, "confirm") {
		t.Errorf("deprovision unconfirmed: %d %s", code, body)
	}
	if code, body := f.call(t, "POST", "/admin/v1/enclaves/payments/deprovision?confirm=payments", tok, ""); code != 200 {
		t.Errorf("deprovision: %d %s", code, body)
	}
	code, body = f.call(t, "GET", "/admin/v1/audit?enclave=payments&limit=50", tok, "")
	var entries []store.AuditEntry
	if err := json.Unmarshal([]byte(body), &entries); code != 200 || err != nil {
		t.Fatalf("audit: %d %s", code, body)
	}
	var adminEntries int
	for _, e := range entries {
		if e.Subject == "ops-1" && e.Via == command.ViaAdmin {
			adminEntries++
		}
	}
	if adminEntries < 6 {
		t.Errorf("audit has %d admin entries: %s", adminEntries, body)
	}
	if code, _ := f.call(t, "GET", "/admin/v1/audit?since=yesterday", tok, ""); code != 400 {
		t.Errorf("bad since: %d", code)
	}
}

func TestAdminAPIOffWithoutAuth(t *testing.T) {
	srv := httptest.NewServer(admin.Handler(admin.Config{}))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/admin/v1/enclaves")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Errorf("admin API without auth: %d", resp.StatusCode)
	}
}
