// Package queue runs tentacles from their queue triggers: NATS messages.
//
// A queue trigger's subject is relative to its enclave: a tentacle in
// enclave payments declaring subject orders.new subscribes
// <Prefix>.payments.orders.new, so no tentacle can subscribe to another
// enclave's subjects, wildcards included (they only match under the
// enclave's own prefix). Every replica of the bot subscribes in one queue
// group, so each message runs the tentacle once whichever replicas are
// up. A message with a reply subject gets the run's result (request-reply).
//
// Core NATS delivers at most once: a message that arrives while no replica
// is subscribed, or that a stopping replica had not taken yet, is lost.
// Publishers that need more retry on a request's timeout.
package queue

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"

	"github.com/nats-io/nats.go"

	"github.com/kraken-ops/kraken/bot/runs"
	"github.com/kraken-ops/kraken/enclave"
	"github.com/kraken-ops/kraken/tentacle"
)

// Enclaves is what queue triggers need to know of enclaves.
type Enclaves interface {
	List(ctx context.Context) ([]enclave.Enclave, error)
}

// Tentacles is what queue triggers need to know of deployed tentacles.
type Tentacles interface {
	List(ctx context.Context, enclave string) ([]tentacle.Status, error)
	Files(ctx context.Context, enclave, name string, rev int) (map[string][]byte, error)
}

// Runner runs a tentacle with a record; *runs.Runner is one.
type Runner interface {
	Run(ctx context.Context, req runs.Request) (runs.Record, json.RawMessage, error)
}

// Config wires a Queue.
type Config struct {
	// URL is the NATS server; empty means nats://127.0.0.1:4222.
	URL string
	// Prefix is the first token of every subject; empty means "kraken".
	Prefix    string
	Enclaves  Enclaves
	Tentacles Tentacles
	Runner    Runner
	Logger    *slog.Logger
	// Group is the queue group every replica joins; empty means "kraken".
	Group string
	// RescanEvery is how often deployed triggers are read again; zero
	// means 30 s. Rescan asks for one sooner.
	RescanEvery time.Duration
	// MaxInFlight bounds the runs this replica does at once from queue
	// messages; zero means 32. Past it, messages wait in the client.
	MaxInFlight int
	// Options are added to the connection's, e.g. the bot's credentials
	// on a server that requires them.
	Options []nats.Option
}

// Queue subscribes deployed queue triggers and runs their tentacles.
type Queue struct {
	cfg    Config
	log    *slog.Logger
	rescan chan struct{}
	sem    chan struct{}
	inner  sync.WaitGroup // message handlers
	scans  atomic.Int64   // completed scans, for tests and status

	mu     sync.Mutex
	subs   map[binding]*nats.Subscription
	phases map[string]enclave.Phase
	parsed map[string]parsedWorkflow // by enclave/tentacle
}

// binding is one tentacle's queue trigger in one enclave.
type binding struct {
	enclave, tentacle string
	subject           string // as declared, relative to the enclave
	full              string // what is subscribed
}

type parsedWorkflow struct {
	revision int
	subjects []string
}

// New makes a Queue; Run connects it.
func New(cfg Config) (*Queue, error) {
	if cfg.Enclaves == nil || cfg.Tentacles == nil || cfg.Runner == nil {
		return nil, errors.New("queue: enclaves, tentacles and a runner are needed")
	}
	cfg.URL = cmp.Or(cfg.URL, "nats://127.0.0.1:4222")
	cfg.Prefix = cmp.Or(cfg.Prefix, "kraken")
	cfg.Group = cmp.Or(cfg.Group, "kraken")
	cfg.RescanEvery = cmp.Or(cfg.RescanEvery, 30*time.Second)
	cfg.MaxInFlight = cmp.Or(cfg.MaxInFlight, 32)
	if err := checkSubject(cfg.Prefix, false); err != nil {
		return nil, fmt.Errorf("queue: prefix: %w", err)
	}
	if err := checkSubject(cfg.Group, false); err != nil || strings.Contains(cfg.Group, ".") {
		return nil, fmt.Errorf("queue: group %q must be one token without wildcards", cfg.Group)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Queue{
		cfg: cfg, log: cfg.Logger,
		rescan: make(chan struct{}, 1),
		sem:    make(chan struct{}, cfg.MaxInFlight),
		subs:   map[binding]*nats.Subscription{},
		phases: map[string]enclave.Phase{},
		parsed: map[string]parsedWorkflow{},
	}, nil
}

// Subject is the NATS subject a queue trigger of a tentacle in enclave
// enc listens on: what its owner publishes to.
func (q *Queue) Subject(enc, subject string) string {
	return q.cfg.Prefix + "." + enc + "." + subject
}

// Rescan asks Run to read deployed triggers again now (after a deploy,
// undeploy or freeze) rather than at the next period. It does not wait.
func (q *Queue) Rescan() {
	select {
	case q.rescan <- struct{}{}:
	default: // one is already asked for
	}
}

// Subscribed lists the subjects subscribed now, sorted.
func (q *Queue) Subscribed() []string {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []string
	for b := range q.subs {
		out = append(out, b.full)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Run connects to NATS, subscribes the deployed queue triggers and keeps
// them in step with the cluster until ctx ends. Then it stops taking
// messages, waits for the runs of those it took (the Runner's Drain bounds
// them), and closes the connection.
func (q *Queue) Run(ctx context.Context) error {
	nc, err := nats.Connect(q.cfg.URL, append([]nats.Option{nats.Name("kraken"), nats.MaxReconnects(-1)}, q.cfg.Options...)...)
	if err != nil {
		return fmt.Errorf("queue: connect to NATS at %s: %w", q.cfg.URL, err)
	}
	defer q.shutdown(nc)
	// Runs outlive a cancelled ctx: shutdown waits for them instead, so
	// a stopping bot answers the requests it took.
	runCtx := context.WithoutCancel(ctx)
	tick := time.NewTicker(q.cfg.RescanEvery)
	defer tick.Stop()
	for {
		if err := q.scan(ctx, runCtx, nc); err != nil && ctx.Err() == nil {
			q.log.Error("queue: read deployed triggers", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		case <-q.rescan:
		}
	}
}

func (q *Queue) shutdown(nc *nats.Conn) {
	q.mu.Lock()
	subs := slices.Collect(maps.Values(q.subs))
	clear(q.subs)
	q.mu.Unlock()
	// Drain, not unsubscribe: messages already delivered to this client
	// are handled rather than dropped.
	for _, s := range subs {
		if err := s.Drain(); err != nil {
			q.log.Warn("queue: drain subscription", "subject", s.Subject, "err", err)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, s := range subs {
		for s.IsValid() && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
	}
	q.inner.Wait()
	if err := nc.Flush(); err != nil {
		q.log.Warn("queue: flush replies", "err", err)
	}
	nc.Close()
}

// scan reads the deployed queue triggers and subscribes or unsubscribes
// to match. An enclave whose tentacles cannot be read keeps its current
// subscriptions: a cluster hiccup must not drop triggers.
func (q *Queue) scan(ctx, runCtx context.Context, nc *nats.Conn) error {
	defer q.scans.Add(1)
	encs, err := q.cfg.Enclaves.List(ctx)
	if err != nil {
		return fmt.Errorf("list enclaves: %w", err)
	}
	want := map[binding]bool{}
	phases := map[string]enclave.Phase{}
	keep := map[string]bool{} // enclaves not read this time
	var errs []error
	for _, e := range encs {
		phases[e.Name] = enclave.StateOf(e).Phase
		if enclave.ValidateName(e.Name) != nil {
			continue // never a subject token it could escape with
		}
		bs, err := q.bindings(ctx, e.Name)
		if err != nil {
			keep[e.Name] = true
			errs = append(errs, err)
			continue
		}
		for _, b := range bs {
			want[b] = true
		}
	}

	q.mu.Lock()
	q.phases = phases
	var drop []*nats.Subscription
	for b, s := range q.subs {
		if !want[b] && !keep[b.enclave] {
			drop = append(drop, s)
			delete(q.subs, b)
		}
	}
	var add []binding
	for b := range want {
		if _, ok := q.subs[b]; !ok {
			add = append(add, b)
		}
	}
	q.mu.Unlock()

	for _, s := range drop {
		if err := s.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrBadSubscription) {
			errs = append(errs, fmt.Errorf("unsubscribe %s: %w", s.Subject, err))
		}
	}
	for _, b := range add {
		s, err := nc.QueueSubscribe(b.full, q.cfg.Group, q.handler(runCtx, b))
		if err != nil {
			errs = append(errs, fmt.Errorf("subscribe %s: %w", b.full, err))
			continue
		}
		q.mu.Lock()
		q.subs[b] = s
		q.mu.Unlock()
		q.log.Info("queue: subscribed", "enclave", b.enclave, "tentacle", b.tentacle, "subject", b.full)
	}
	// The server has the changes once Flush returns, so Subscribed tells
	// the truth.
	if len(add)+len(drop) > 0 {
		if err := nc.FlushTimeout(5 * time.Second); err != nil {
			errs = append(errs, fmt.Errorf("flush subscriptions: %w", err))
		}
	}
	return errors.Join(errs...)
}

// bindings are an enclave's queue triggers. Workflows are parsed once per
// revision.
func (q *Queue) bindings(ctx context.Context, enc string) ([]binding, error) {
	all, err := q.cfg.Tentacles.List(ctx, enc)
	if err != nil {
		return nil, fmt.Errorf("list tentacles of %s: %w", enc, err)
	}
	var out []binding
	for _, st := range all {
		k := enc + "/" + st.Name
		q.mu.Lock()
		p, ok := q.parsed[k]
		q.mu.Unlock()
		if !ok || p.revision != st.Revision || st.Revision == 0 {
			files, err := q.cfg.Tentacles.Files(ctx, enc, st.Name, st.Revision)
			if errors.Is(err, tentacle.ErrNotDeployed) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("files of %s: %w", k, err)
			}
			wf, err := tentacle.Parse(tentacle.FileName, files[tentacle.FileName])
			if err != nil {
				// A deployed workflow was valid when deployed; one that no
				// longer parses is skipped, not fatal to its enclave.
				q.log.Warn("queue: deployed workflow does not parse", "enclave", enc, "tentacle", st.Name, "err", err)
				continue
			}
			p = parsedWorkflow{revision: st.Revision}
			for _, t := range wf.Triggers {
				if t.Type != tentacle.TriggerQueue {
					continue
				}
				if err := checkSubject(t.Subject, true); err != nil {
					q.log.Warn("queue: trigger skipped", "enclave", enc, "tentacle", st.Name, "err", err)
					continue
				}
				p.subjects = append(p.subjects, t.Subject)
			}
			q.mu.Lock()
			q.parsed[k] = p
			q.mu.Unlock()
		}
		for _, s := range p.subjects {
			out = append(out, binding{enclave: enc, tentacle: st.Name, subject: s, full: q.Subject(enc, s)})
		}
	}
	return out, nil
}

// checkSubject checks dot-separated NATS tokens; wildcards, when allowed,
// only as whole tokens and ">" only last. The parser checks triggers
// already; this keeps the bot safe from a workflow that skipped it.
func checkSubject(s string, wildcards bool) error {
	if s == "" || strings.ContainsFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) {
		return fmt.Errorf("subject %q is empty or has spaces", s)
	}
	tokens := strings.Split(s, ".")
	for i, t := range tokens {
		switch {
		case t == "":
			return fmt.Errorf("subject %q has an empty token", s)
		case strings.ContainsAny(t, "*>") && !wildcards:
			return fmt.Errorf("subject %q must not have wildcards", s)
		case len(t) > 1 && strings.ContainsAny(t, "*>"), t == ">" && i != len(tokens)-1:
			return fmt.Errorf("subject %q: wildcards must be whole tokens, '>' last", s)
		}
	}
	return nil
}

func (q *Queue) handler(ctx context.Context, b binding) nats.MsgHandler {
	return func(m *nats.Msg) {
		// Acquiring here, not in the goroutine, holds further messages in
		// the client while MaxInFlight runs go on.
		q.sem <- struct{}{}
		q.inner.Add(1)
		go func() {
			defer q.inner.Done()
			defer func() { <-q.sem }()
			q.deliver(ctx, b, m)
		}()
	}
}

func (q *Queue) deliver(ctx context.Context, b binding, m *nats.Msg) {
	log := q.log.With("enclave", b.enclave, "tentacle", b.tentacle, "subject", m.Subject)
	q.mu.Lock()
	phase := q.phases[b.enclave]
	q.mu.Unlock()
	switch phase {
	case enclave.PhaseFrozen, enclave.PhaseFlagged, enclave.PhaseDeprovisioning, enclave.PhaseGone:
		log.Info("queue: message refused, enclave takes no runs", "state", phase.String())
		q.reply(m, b, log, errorBody(fmt.Sprintf("enclave %s is %s and starts no runs", b.enclave, phase), ""))
		return
	}
	input := json.RawMessage(m.Data)
	if !json.Valid(m.Data) {
		input, _ = json.Marshal(map[string]string{"body": string(m.Data)})
	}
	rec, result, err := q.cfg.Runner.Run(ctx, runs.Request{Enclave: b.enclave, Tentacle: b.tentacle, Trigger: "queue:" + b.subject, Input: input})
	switch {
	case err != nil:
		log.Error("queue: run not started", "err", err)
		q.reply(m, b, log, errorBody(err.Error(), ""))
	case result == nil:
		q.reply(m, b, log, errorBody(rec.Error, rec.ID))
	default:
		q.reply(m, b, log, result)
	}
}

// reply answers a request, only on the enclave's own subjects or a
// client's default inbox: the server does not check a message's reply
// subject against the sender's rights, so without this a tentacle could
// have the bot publish a run's result into another enclave's subjects.
func (q *Queue) reply(m *nats.Msg, b binding, log *slog.Logger, body []byte) {
	if m.Reply == "" {
		return
	}
	if !strings.HasPrefix(m.Reply, "_INBOX.") && !strings.HasPrefix(m.Reply, q.cfg.Prefix+"."+b.enclave+".") {
		log.Warn("queue: reply not sent: its subject is outside the enclave's", "reply", m.Reply)
		return
	}
	if err := m.Respond(body); err != nil {
		log.Warn("queue: reply not sent", "err", err)
	}
}

func errorBody(msg, run string) []byte {
	b, _ := json.Marshal(struct {
		Success bool   `json:"success"`
		Error   string `json:"error"`
		Run     string `json:"run,omitempty"`
	}{false, msg, run})
	return b
}
