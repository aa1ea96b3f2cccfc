package hooks_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kraken-ops/kraken/bot/hooks"
	"github.com/kraken-ops/kraken/bot/runs"
	"github.com/kraken-ops/kraken/enclave"
	"github.com/kraken-ops/kraken/tentacle"
)

var key = []byte("0123456789abcdef0123456789abcdef")

// registry is a cluster of enclaves and their deployed workflow.yaml.
type registry struct {
	mu        sync.Mutex
	enclaves  []enclave.Enclave
	workflows map[string]map[string]string // enclave → tentacle → yaml
}

func (f *registry) List(context.Context) ([]enclave.Enclave, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]enclave.Enclave(nil), f.enclaves...), nil
}

type tentacles struct{ *registry }

func (f tentacles) List(_ context.Context, enc string) ([]tentacle.Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []tentacle.Status
	for n := range f.workflows[enc] {
		out = append(out, tentacle.Status{Name: n, Revision: 1})
	}
	return out, nil
}

func (f tentacles) Files(_ context.Context, enc, name string, _ int) (map[string][]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	y, ok := f.workflows[enc][name]
	if !ok {
		return nil, tentacle.ErrNotDeployed
	}
	return map[string][]byte{tentacle.FileName: []byte(y)}, nil
}

// runner counts the runs it is asked for.
type runner struct {
	mu   sync.Mutex
	reqs []runs.Request
	err  error
}

func (r *runner) Start(_ context.Context, req runs.Request, done func(runs.Record, json.RawMessage)) (runs.Record, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return runs.Record{}, r.err
	}
	r.reqs = append(r.reqs, req)
	rec := runs.Record{ID: "run-1"}
	if done != nil {
		go done(rec, json.RawMessage(`{"success":true,"outputs":{"n":1}}`))
	}
	return rec, nil
}

func (r *runner) requests() []runs.Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]runs.Request(nil), r.reqs...)
}

const workflow = `name: %s
version: "1.0"
triggers:
  - type: webhook
    path: /deploy
  - type: webhook
    name: gh
    path: /github
    provider: github
    event: pull_request
    actions: [opened, synchronize]
  - type: webhook
    name: gh-any
    path: /github-any
    provider: github
  - type: queue
    subject: orders
nodes:
  a:
    path: ./a.ts
`

func active(name string) enclave.Enclave {
	return enclave.Enclave{Name: name, Ready: true, Owner: "U1"}
}

func setup(t *testing.T) (*hooks.Hooks, *registry, *runner, http.Handler) {
	t.Helper()
	reg := &registry{
		enclaves: []enclave.Enclave{active("payments"), active("other")},
		workflows: map[string]map[string]string{
			"payments": {"ci": strings.ReplaceAll(workflow, "%s", "ci")},
			"other":    {},
		},
	}
	run := &runner{}
	// A real clock and a tiny TTL: every request reads the registry, as
	// one past the cache's life does.
	h, err := hooks.New(hooks.Config{Enclaves: reg, Tentacles: tentacles{reg}, Runner: run, Key: key, MaxBody: 1024, CacheTTL: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	return h, reg, run, h.Handler()
}

func sign(secret, body string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(body))
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

func post(h http.Handler, url, body string, hdr map[string]string) *httptest.ResponseRecorder {
	req := httptest.NewRequest("POST", url, strings.NewReader(body))
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

var (
	generic = tentacle.Trigger{Type: tentacle.TriggerWebhook, Path: "/deploy"}
	gh      = tentacle.Trigger{Type: tentacle.TriggerWebhook, Name: "gh", Path: "/github", Provider: "github"}
	ghAny   = tentacle.Trigger{Type: tentacle.TriggerWebhook, Name: "gh-any", Path: "/github-any", Provider: "github"}
)

func TestGenericRuns(t *testing.T) {
	h, _, run, srv := setup(t)
	body := `{"ref":"main"}`
	w := post(srv, "/hooks/payments/ci/deploy", body, map[string]string{hooks.HeaderSignature: sign(h.Secret("payments", "ci", generic), body)})
	if w.Code != http.StatusAccepted || strings.TrimSpace(w.Body.String()) != `{"run":"run-1"}` {
		t.Fatalf("got %d %q", w.Code, w.Body)
	}
	reqs := run.requests()
	if len(reqs) != 1 || reqs[0].Enclave != "payments" || reqs[0].Tentacle != "ci" || reqs[0].Trigger != "webhook:/deploy" || string(reqs[0].Input) != body {
		t.Fatalf("runs: %+v", reqs)
	}

	// A body that is not JSON is passed as text.
	w = post(srv, "/hooks/payments/ci/deploy", "hello <there>", map[string]string{hooks.HeaderSignature: sign(h.Secret("payments", "ci", generic), "hello <there>")})
	if w.Code != http.StatusAccepted {
		t.Fatalf("got %d %q", w.Code, w.Body)
	}
	var in map[string]string
	if err := json.Unmarshal(run.requests()[1].Input, &in); err != nil || in["body"] != "hello <there>" {
		t.Fatalf("input %s (%v)", run.requests()[1].Input, err)
	}

	// ?wait=1 answers with the result.
	w = post(srv, "/hooks/payments/ci/deploy?wait=1", body, map[string]string{hooks.HeaderSignature: sign(h.Secret("payments", "ci", generic), body)})
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"success":true`) {
		t.Fatalf("wait: got %d %q", w.Code, w.Body)
	}
}

func TestRefusalsRunNothing(t *testing.T) {
	h, reg, run, srv := setup(t)
	body := `{"x":1}`
	good := sign(h.Secret("payments", "ci", generic), body)
	for _, c := range []struct {
		name, url, body string
		hdr             map[string]string
		code            int
		says            string
	}{
		{"unknown enclave", "/hooks/nope/ci/deploy", body, map[string]string{hooks.HeaderSignature: good}, 404, "no such webhook"},
		{"unknown tentacle", "/hooks/payments/nope/deploy", body, map[string]string{hooks.HeaderSignature: good}, 404, "no such webhook"},
		{"unknown path", "/hooks/payments/ci/nope", body, map[string]string{hooks.HeaderSignature: good}, 404, "no such webhook"},
		{"tentacle of another enclave", "/hooks/other/ci/deploy", body, map[string]string{hooks.HeaderSignature: good}, 404, "no such webhook"},
		{"made-up names", "/hooks/..%2f..%2fetc/ci/deploy", body, nil, 404, "no such webhook"},
		{"no signature", "/hooks/payments/ci/deploy", body, nil, 401, "signature"},
		{"bad signature", "/hooks/payments/ci/deploy", body, map[string]string{hooks.HeaderSignature: sign("guess", body)}, 401, "signature"},
		{"not hex", "/hooks/payments/ci/deploy", body, map[string]string{hooks.HeaderSignature: "sha256=zz"}, 401, "signature"},
		{"no prefix", "/hooks/payments/ci/deploy", body, map[string]string{hooks.HeaderSignature: strings.TrimPrefix(good, "sha256=")}, 401, "signature"},
		{"body changed", "/hooks/payments/ci/deploy", `{"x":2}`, map[string]string{hooks.HeaderSignature: good}, 401, "signature"},
		{"another trigger's secret", "/hooks/payments/ci/deploy", body, map[string]string{hooks.HeaderSignature: sign(h.Secret("payments", "ci", gh), body)}, 401, "signature"},
		{"generic header on a github trigger", "/hooks/payments/ci/github-any", body, map[string]string{hooks.HeaderSignature: sign(h.Secret("payments", "ci", ghAny), body)}, 401, "signature"},
		{"too large", "/hooks/payments/ci/deploy", strings.Repeat("x", 2000), map[string]string{hooks.HeaderSignature: good}, 413, "larger"},
	} {
		w := post(srv, c.url, c.body, c.hdr)
		if w.Code != c.code || !strings.Contains(w.Body.String(), c.says) {
			t.Errorf("%s: got %d %q, want %d %q", c.name, w.Code, w.Body, c.code, c.says)
		}
	}
	// The same answer whichever part is unknown.
	a := post(srv, "/hooks/nope/ci/deploy", body, nil).Body.String()
	b := post(srv, "/hooks/payments/ci/nope", body, nil).Body.String()
	if a != b {
		t.Errorf("404 bodies differ: %q %q", a, b)
	}
	// GET is not served.
	req := httptest.NewRequest("GET", "/hooks/payments/ci/deploy", nil)
	w := httptest.NewRecorder()
	srv.ServeHTTP(w, req)
	if w.Code != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d", w.Code)
	}

	// Frozen (and flagged) enclaves refuse a well-signed delivery.
	for _, change := range []func(*enclave.Enclave){
		func(e *enclave.Enclave) { e.Frozen = true },
		func(e *enclave.Enclave) { e.Governance.Archived = true },
		func(e *enclave.Enclave) { e.Governance.ChannelDeleted = true },
		func(e *enclave.Enclave) { e.Terminating = true },
	} {
		reg.mu.Lock()
		reg.enclaves[0] = active("payments")
		change(&reg.enclaves[0])
		reg.mu.Unlock()
		w := post(srv, "/hooks/payments/ci/deploy", body, map[string]string{hooks.HeaderSignature: good})
		if w.Code != http.StatusConflict || !strings.Contains(w.Body.String(), "starts no runs") {
			t.Errorf("frozen: got %d %q", w.Code, w.Body)
		}
	}
	if n := len(run.requests()); n != 0 {
		t.Fatalf("%d runs after refusals: %+v", n, run.requests())
	}

	// The runner stopping: 503, and a GitHub retry of that delivery runs.
	reg.mu.Lock()
	reg.enclaves[0] = active("payments")
	reg.mu.Unlock()
	run.err = runs.ErrStopping
	ghBody := `{"action":"opened"}`
	hdr := map[string]string{hooks.HeaderGitHubSignature: sign(h.Secret("payments", "ci", gh), ghBody), hooks.HeaderGitHubEvent: "pull_request", hooks.HeaderGitHubDelivery: "d-1"}
	if w := post(srv, "/hooks/payments/ci/github", ghBody, hdr); w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" {
		t.Fatalf("stopping: %d %q", w.Code, w.Body)
	}
	run.err = nil
	if w := post(srv, "/hooks/payments/ci/github", ghBody, hdr); w.Code != http.StatusAccepted {
		t.Fatalf("retry after stopping: %d %q", w.Code, w.Body)
	}
}

func TestGitHub(t *testing.T) {
	h, _, run, srv := setup(t)
	secret := h.Secret("payments", "ci", gh)
	deliver := func(event, body, delivery string) *httptest.ResponseRecorder {
		return post(srv, "/hooks/payments/ci/github", body, map[string]string{
			hooks.HeaderGitHubSignature: sign(secret, body), hooks.HeaderGitHubEvent: event, hooks.HeaderGitHubDelivery: delivery,
		})
	}
	if w := deliver("push", `{"ref":"main"}`, "a"); w.Code != http.StatusAccepted || !strings.Contains(w.Body.String(), "ignored: event push") {
		t.Errorf("other event: %d %q", w.Code, w.Body)
	}
	if w := deliver("pull_request", `{"action":"closed"}`, "b"); w.Code != http.StatusAccepted || !strings.Contains(w.Body.String(), "ignored: event pull_request") {
		t.Errorf("other action: %d %q", w.Code, w.Body)
	}
	if n := len(run.requests()); n != 0 {
		t.Fatalf("filtered deliveries ran %d times", n)
	}
	if w := deliver("pull_request", `{"action":"opened","number":7}`, "c"); w.Code != http.StatusAccepted || !strings.Contains(w.Body.String(), `"run"`) {
		t.Fatalf("matching: %d %q", w.Code, w.Body)
	}
	if w := deliver("pull_request", `{"action":"opened","number":7}`, "c"); w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "duplicate") {
		t.Fatalf("redelivery: %d %q", w.Code, w.Body)
	}
	reqs := run.requests()
	if len(reqs) != 1 || reqs[0].Trigger != "webhook:/github" {
		t.Fatalf("runs: %+v", reqs)
	}

	// Without filters every event runs; form-encoded payloads are read.
	any := h.Secret("payments", "ci", ghAny)
	form := "payload=%7B%22zen%22%3A%22hi%22%7D"
	w := post(srv, "/hooks/payments/ci/github-any", form, map[string]string{
		hooks.HeaderGitHubSignature: sign(any, form), hooks.HeaderGitHubEvent: "ping", "Content-Type": "application/x-www-form-urlencoded",
	})
	if w.Code != http.StatusAccepted {
		t.Fatalf("ping: %d %q", w.Code, w.Body)
	}
	if in := string(run.requests()[1].Input); in != `{"zen":"hi"}` {
		t.Fatalf("form input %s", in)
	}
}

func TestSecrets(t *testing.T) {
	h, _, _, _ := setup(t)
	seen := map[string]string{}
	for _, c := range []struct{ enc, name string }{{"payments", "ci"}, {"payments", "cd"}, {"other", "ci"}} {
		for _, tr := range []tentacle.Trigger{generic, gh, ghAny} {
			s := h.Secret(c.enc, c.name, tr)
			if len(s) != 64 {
				t.Fatalf("secret %q", s)
			}
			id := c.enc + "/" + c.name + "/" + tr.Path
			if prev, dup := seen[s]; dup {
				t.Fatalf("%s and %s share a secret", prev, id)
			}
			seen[s] = id
		}
	}
	// Another replica with the same key computes the same secret.
	h2, _, _, _ := setup(t)
	if h.Secret("payments", "ci", gh) != h2.Secret("payments", "ci", gh) {
		t.Fatal("replicas disagree")
	}
	if _, err := hooks.New(hooks.Config{Enclaves: &registry{}, Tentacles: tentacles{&registry{}}, Runner: &runner{}, Key: []byte("short")}); err == nil {
		t.Fatal("a short key was accepted")
	}
	if got := hooks.URL("https://kraken.example.com/", "payments", "ci", "/github"); got != "https://kraken.example.com/hooks/payments/ci/github" {
		t.Fatal(got)
	}
}

func TestNewDeploySeen(t *testing.T) {
	h, reg, run, srv := setup(t)
	body := `{}`
	reg.mu.Lock()
	reg.workflows["other"]["late"] = strings.ReplaceAll(workflow, "%s", "late")
	reg.mu.Unlock()
	w := post(srv, "/hooks/other/late/deploy", body, map[string]string{hooks.HeaderSignature: sign(h.Secret("other", "late", generic), body)})
	if w.Code != http.StatusAccepted || len(run.requests()) != 1 {
		t.Fatalf("new deploy: %d %q", w.Code, w.Body)
	}
	reg.mu.Lock()
	delete(reg.workflows["other"], "late")
	reg.mu.Unlock()
	w = post(srv, "/hooks/other/late/deploy", body, map[string]string{hooks.HeaderSignature: sign(h.Secret("other", "late", generic), body)})
	if w.Code != http.StatusNotFound {
		t.Fatalf("undeployed: %d %q", w.Code, w.Body)
	}
}

// BenchmarkWebhookToRun measures a signed delivery through to the
// runner's Start, with a no-op runner and a warm cache: the bot's own
// share of webhook-to-run-start latency.
func BenchmarkWebhookToRun(b *testing.B) {
	reg := &registry{enclaves: []enclave.Enclave{active("payments")},
		workflows: map[string]map[string]string{"payments": {"ci": strings.ReplaceAll(workflow, "%s", "ci")}}}
	h, err := hooks.New(hooks.Config{Enclaves: reg, Tentacles: tentacles{reg}, Runner: nopRunner{}, Key: key})
	if err != nil {
		b.Fatal(err)
	}
	srv := h.Handler()
	body := `{"ref":"main","commits":[{"id":"abc","message":"fix"}]}`
	sig := sign(h.Secret("payments", "ci", generic), body)
	lat := make([]time.Duration, 0, b.N)
	for b.Loop() {
		start := time.Now()
		w := post(srv, "/hooks/payments/ci/deploy", body, map[string]string{hooks.HeaderSignature: sig})
		lat = append(lat, time.Since(start))
		if w.Code != http.StatusAccepted {
			b.Fatal(w.Code, w.Body)
		}
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
}

// BenchmarkWebhookToRunLoopback is the same over a real HTTP connection
// on loopback (kept alive, as a provider's would be).
func BenchmarkWebhookToRunLoopback(b *testing.B) {
	reg := &registry{enclaves: []enclave.Enclave{active("payments")},
		workflows: map[string]map[string]string{"payments": {"ci": strings.ReplaceAll(workflow, "%s", "ci")}}}
	h, err := hooks.New(hooks.Config{Enclaves: reg, Tentacles: tentacles{reg}, Runner: nopRunner{}, Key: key})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(h.Handler())
	defer srv.Close()
	body := `{"ref":"main","commits":[{"id":"abc","message":"fix"}]}`
	sig := sign(h.Secret("payments", "ci", generic), body)
	url := hooks.URL(srv.URL, "payments", "ci", "/deploy")
	lat := make([]time.Duration, 0, b.N)
	for b.Loop() {
		req, _ := http.NewRequest("POST", url, strings.NewReader(body))
		req.Header.Set(hooks.HeaderSignature, sig)
		start := time.Now()
		resp, err := srv.Client().Do(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		lat = append(lat, time.Since(start))
		if resp.StatusCode != http.StatusAccepted {
			b.Fatal(resp.Status)
		}
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
}

type nopRunner struct{}

func (nopRunner) Start(context.Context, runs.Request, func(runs.Record, json.RawMessage)) (runs.Record, error) {
	return runs.Record{ID: "x"}, nil
}
