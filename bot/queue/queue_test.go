package queue

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/kraken-ops/kraken/bot/runs"
	"github.com/kraken-ops/kraken/enclave"
	"github.com/kraken-ops/kraken/tentacle"
)

const natsURL = "nats://127.0.0.1:4222"

// connect is the test's own client of the real NATS server; tests fail,
// never skip, without it.
func connect(t *testing.T) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(natsURL, nats.Timeout(2*time.Second))
	if err != nil {
		t.Fatalf("the queue tests need the NATS server at %s (start one with `nats-server -js`, or the machine's service): %v", natsURL, err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// prefix keeps each test's subjects apart on the shared server.
func prefix() string {
	var b [4]byte
	rand.Read(b[:])
	return "kt" + hex.EncodeToString(b[:])
}

// cluster is a fake of enclaves and their deployed workflow.yaml.
type cluster struct {
	mu        sync.Mutex
	enclaves  map[string]enclave.Enclave
	workflows map[string]map[string]string // enclave → tentacle → yaml
}

func newCluster() *cluster {
	return &cluster{enclaves: map[string]enclave.Enclave{}, workflows: map[string]map[string]string{}}
}

func (c *cluster) deploy(enc, name string, subjects ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.enclaves[enc]; !ok {
		c.enclaves[enc] = enclave.Enclave{Name: enc, Ready: true}
		c.workflows[enc] = map[string]string{}
	}
	c.workflows[enc][name] = workflowWith(name, subjects...)
}

func workflowWith(name string, subjects ...string) string {
	y := "name: " + name + "\nversion: \"1.0\"\ntriggers:\n"
	for _, s := range subjects {
		y += "  - type: queue\n    subject: \"" + s + "\"\n"
	}
	return y + "nodes:\n  a:\n    path: ./a.ts\n"
}

func (c *cluster) List(context.Context) ([]enclave.Enclave, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []enclave.Enclave
	for _, e := range c.enclaves {
		out = append(out, e)
	}
	return out, nil
}

type tentacles struct{ *cluster }

func (c tentacles) List(_ context.Context, enc string) ([]tentacle.Status, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []tentacle.Status
	for n := range c.workflows[enc] {
		out = append(out, tentacle.Status{Name: n})
	}
	return out, nil
}

func (c tentacles) Files(_ context.Context, enc, name string, _ int) (map[string][]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	y, ok := c.workflows[enc][name]
	if !ok {
		return nil, tentacle.ErrNotDeployed
	}
	return map[string][]byte{tentacle.FileName: []byte(y)}, nil
}

// counter is a runner that counts runs and answers with the input.
type counter struct {
	mu   sync.Mutex
	reqs []runs.Request
}

func (c *counter) Run(_ context.Context, req runs.Request) (runs.Record, json.RawMessage, error) {
	c.mu.Lock()
	c.reqs = append(c.reqs, req)
	c.mu.Unlock()
	return runs.Record{ID: "r"}, json.RawMessage(`{"success":true,"outputs":{"a":` + string(req.Input) + `}}`), nil
}

func (c *counter) requests() []runs.Request {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]runs.Request(nil), c.reqs...)
}

// start runs a Queue until the test ends and waits for its first scan.
func start(t *testing.T, cfg Config) *Queue {
	t.Helper()
	connect(t) // fail early, saying what is missing
	cfg.URL = natsURL
	q, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- q.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	waitScans(t, q, 1)
	return q
}

// rescan asks for a scan and waits for it.
func rescan(t *testing.T, q *Queue) {
	t.Helper()
	n := q.scans.Load()
	q.Rescan()
	waitScans(t, q, n+1)
}

func waitScans(t *testing.T, q *Queue, n int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for q.scans.Load() < n {
		if time.Now().After(deadline) {
			t.Fatalf("no scan %d in 10 s", n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// eventually waits for n runs, then a little longer to catch extra ones;
// when none are expected it only waits the little longer.
func eventually(t *testing.T, c *counter, n int) []runs.Request {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	if n == 0 {
		deadline = time.Now()
	}
	for len(c.requests()) < n && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	return c.requests()
}

func TestOnceAcrossReplicas(t *testing.T) {
	c := newCluster()
	c.deploy("payments", "orders", "orders.new")
	run := &counter{}
	p := prefix()
	a := start(t, Config{Prefix: p, Enclaves: c, Tentacles: tentacles{c}, Runner: run})
	b := start(t, Config{Prefix: p, Enclaves: c, Tentacles: tentacles{c}, Runner: run})
	want := []string{p + ".payments.orders.new"}
	for _, q := range []*Queue{a, b} {
		if got := q.Subscribed(); len(got) != 1 || got[0] != want[0] {
			t.Fatalf("subscribed %v, want %v", got, want)
		}
	}
	nc := connect(t)
	const n = 50
	for i := range n {
		if err := nc.Publish(want[0], []byte(`{"i":`+string(rune('0'+i%10))+`}`)); err != nil {
			t.Fatal(err)
		}
	}
	nc.Flush()
	reqs := eventually(t, run, n)
	if len(reqs) != n {
		t.Fatalf("%d runs for %d messages across two replicas", len(reqs), n)
	}
	if r := reqs[0]; r.Enclave != "payments" || r.Tentacle != "orders" || r.Trigger != "queue:orders.new" {
		t.Fatalf("request %+v", r)
	}
}

func TestRequestReplyAndIsolation(t *testing.T) {
	c := newCluster()
	c.deploy("payments", "orders", "orders.new")
	// other tries to reach payments' subjects: they stay under other's.
	c.deploy("other", "snoop", "payments.orders.new", ">")
	run := &counter{}
	p := prefix()
	q := start(t, Config{Prefix: p, Enclaves: c, Tentacles: tentacles{c}, Runner: run})
	wantSubs := []string{p + ".other.>", p + ".other.payments.orders.new", p + ".payments.orders.new"}
	if got := q.Subscribed(); strings.Join(got, " ") != strings.Join(wantSubs, " ") {
		t.Fatalf("subscribed %v, want %v", got, wantSubs)
	}
	nc := connect(t)
	msg, err := nc.Request(p+".payments.orders.new", []byte(`{"id":7}`), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if string(msg.Data) != `{"success":true,"outputs":{"a":{"id":7}}}` {
		t.Fatalf("reply %s", msg.Data)
	}
	reqs := eventually(t, run, 1)
	if len(reqs) != 1 || reqs[0].Enclave != "payments" {
		t.Fatalf("runs %+v: another enclave's tentacle ran", reqs)
	}

	// Text is wrapped as JSON.
	msg, err = nc.Request(p+".payments.orders.new", []byte(`hi there`), 5*time.Second)
	if err != nil || !strings.Contains(string(msg.Data), `{"body":"hi there"}`) {
		t.Fatalf("text: %s %v", msg.Data, err)
	}
}

// A request can name any reply subject; the bot answers only on the
// enclave's own subjects or a client's default inbox, never into another
// enclave's subjects.
func TestReplyStaysInTheEnclave(t *testing.T) {
	c := newCluster()
	c.deploy("payments", "orders", "orders.new")
	c.deploy("other", "listener", "results")
	run := &counter{}
	p := prefix()
	start(t, Config{Prefix: p, Enclaves: c, Tentacles: tentacles{c}, Runner: run})
	nc := connect(t)

	own, err := nc.SubscribeSync(p + ".payments._INBOX.x1")
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := nc.SubscribeSync(p + ".other.results")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.PublishRequest(p+".payments.orders.new", p+".other.results", []byte(`{"id":1}`)); err != nil {
		t.Fatal(err)
	}
	if err := nc.PublishRequest(p+".payments.orders.new", p+".payments._INBOX.x1", []byte(`{"id":2}`)); err != nil {
		t.Fatal(err)
	}
	msg, err := own.NextMsg(5 * time.Second)
	if err != nil || !strings.Contains(string(msg.Data), `"id":2`) {
		t.Fatalf("the enclave's own inbox got %v, %v", msg, err)
	}
	eventually(t, run, 2)
	if m, err := foreign.NextMsg(300 * time.Millisecond); err == nil {
		t.Fatalf("a run's result was published into another enclave's subject: %s", m.Data)
	}
}

func TestFrozenAndUndeploy(t *testing.T) {
	c := newCluster()
	c.deploy("payments", "orders", "orders.new")
	run := &counter{}
	p := prefix()
	q := start(t, Config{Prefix: p, Enclaves: c, Tentacles: tentacles{c}, Runner: run})
	nc := connect(t)
	subj := p + ".payments.orders.new"

	c.mu.Lock()
	e := c.enclaves["payments"]
	e.Frozen = true
	c.enclaves["payments"] = e
	c.mu.Unlock()
	rescan(t, q)
	msg, err := nc.Request(subj, []byte(`{}`), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var reply struct {
		Success bool
		Error   string
	}
	if json.Unmarshal(msg.Data, &reply) != nil || reply.Success || !strings.Contains(reply.Error, "frozen") {
		t.Fatalf("frozen reply %s", msg.Data)
	}
	nc.Publish(subj, []byte(`{}`))
	if reqs := eventually(t, run, 0); len(reqs) != 0 {
		t.Fatalf("a frozen enclave ran %d times", len(reqs))
	}

	c.mu.Lock()
	e.Frozen = false
	c.enclaves["payments"] = e
	delete(c.workflows["payments"], "orders")
	c.mu.Unlock()
	rescan(t, q)
	if got := q.Subscribed(); len(got) != 0 {
		t.Fatalf("still subscribed after undeploy: %v", got)
	}
	if _, err := nc.Request(subj, []byte(`{}`), 2*time.Second); !errors.Is(err, nats.ErrNoResponders) {
		t.Fatalf("after undeploy: %v, want no responders", err)
	}
	if n := len(run.requests()); n != 0 {
		t.Fatalf("%d runs", n)
	}
}

func TestCheckSubject(t *testing.T) {
	for s, ok := range map[string]bool{"a.b": true, "a.*": true, "a.>": true, ">": true, "": false, "a..b": false, "a.>.b": false, "a.b*": false, "a b": false} {
		if got := checkSubject(s, true) == nil; got != ok {
			t.Errorf("%q: ok=%t", s, got)
		}
	}
	if _, err := New(Config{Prefix: "kraken.*", Enclaves: newCluster(), Tentacles: tentacles{newCluster()}, Runner: &counter{}}); err == nil {
		t.Error("a wildcard prefix was accepted")
	}
}

// slow holds each run until released.
type slow struct {
	began   chan struct{}
	release chan struct{}
}

func (s slow) Run(_ context.Context, req runs.Request) (runs.Record, json.RawMessage, error) {
	s.began <- struct{}{}
	<-s.release
	return runs.Record{ID: "r"}, json.RawMessage(`{"success":true}`), nil
}

// TestStopFinishesTakenMessages: a stopping Queue answers the requests it
// took before closing, and takes no new ones.
func TestStopFinishesTakenMessages(t *testing.T) {
	nc := connect(t)
	c := newCluster()
	c.deploy("payments", "orders", "orders.new")
	run := slow{began: make(chan struct{}, 1), release: make(chan struct{})}
	p := prefix()
	q, err := New(Config{URL: natsURL, Prefix: p, Enclaves: c, Tentacles: tentacles{c}, Runner: run})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan error, 1)
	go func() { stopped <- q.Run(ctx) }()
	waitScans(t, q, 1)

	replied := make(chan *nats.Msg, 1)
	go func() {
		m, err := nc.Request(p+".payments.orders.new", []byte(`{}`), 10*time.Second)
		if err != nil {
			t.Errorf("request: %v", err)
		}
		replied <- m
	}()
	<-run.began
	cancel()
	select {
	case <-stopped:
		t.Fatal("Run returned with a run in flight")
	case <-time.After(200 * time.Millisecond):
	}
	if _, err := nc.Request(p+".payments.orders.new", []byte(`{}`), time.Second); err == nil {
		t.Fatal("a stopping queue took a new message")
	}
	close(run.release)
	if m := <-replied; m == nil || string(m.Data) != `{"success":true}` {
		t.Fatalf("reply %v", m)
	}
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
}
