package command

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/kraken-ops/kraken/bot/login"
	"github.com/kraken-ops/kraken/bot/runs"
	"github.com/kraken-ops/kraken/enclave"
	"github.com/kraken-ops/kraken/store"
	"github.com/kraken-ops/kraken/tentacle"
)

// Channels is what the registry needs from the chat workspace about a
// channel: who is in it, whether it still exists, and adding or removing
// people (membership of an enclave is membership of its channel).
type Channels interface {
	Members(ctx context.Context, ch enclave.Channel) ([]string, error)
	Info(ctx context.Context, ch enclave.Channel) (ChannelInfo, error)
	Invite(ctx context.Context, ch enclave.Channel, user string) error
	Kick(ctx context.Context, ch enclave.Channel, user string) error
}

// ChannelInfo is what the workspace says about a channel now.
type ChannelInfo struct {
	Name     string
	Archived bool
	// Deleted: the channel is gone.
	Deleted bool
}

// Config wires a Registry.
type Config struct {
	Enclaves  enclave.Cluster
	Tentacles tentacle.Cluster
	Store     *store.DB
	Channels  Channels
	// Examples holds the tentacles people can deploy by name, one
	// directory each ("hello-fanout/workflow.yaml").
	Examples fs.FS
	// ConfirmTTL is how long a confirmation card stays valid; default 10
	// minutes.
	ConfirmTTL time.Duration
	Now        func() time.Time
	Logger     *slog.Logger
	// Observe, when set, is told of every request's verb, outcome
	// ("ok", "failed", "denied", "confirm") and duration, for metrics.
	Observe func(verb, outcome string, d time.Duration)
	// Runner starts runs and keeps their records; shared with the
	// triggers. Nil makes one over Tentacles and Store.
	Runner *runs.Runner
	// Schedules, when set, resumes a tentacle's schedule paused after
	// failures (/kraken resume).
	Schedules Schedules
	// Webhooks, when set, tells people their webhooks' addresses and
	// secrets (/kraken webhooks).
	Webhooks Webhooks
	// Identities, when set, signs people in with the organisation's
	// identity provider (/kraken login). Nil: sign-in is not set up, and
	// enclaves that require it refuse changes, saying so.
	Identities Identities
	// Exoskeleton is the services enclaves get a space on (database,
	// object storage, messaging); nil for none.
	Exoskeleton *enclave.Exoskeleton
}

// Identities links people to the organisation's identity provider
// (login.Service). Current is trusted only when it returns no error: an
// expired or unverifiable sign-in vouches for no one.
type Identities interface {
	Start(ctx context.Context, who enclave.Principal) (login.Pending, error)
	Current(ctx context.Context, who enclave.Principal) (login.Identity, error)
	Logout(ctx context.Context, who enclave.Principal) (login.Identity, error)
}

// Schedules is what the registry asks of the cron scheduler.
type Schedules interface {
	Resume(ctx context.Context, enclave, tentacle, by string) error
}

// Registry is the one place every verb is defined and every request goes
// through: parse, find the enclave, authorize, confirm, run, audit.
type Registry struct {
	cfg       Config
	enclaves  *enclave.Service
	tentacles tentacle.Cluster
	pending   *store.Bucket[pending]
	runs      *runs.Runner
	log       *slog.Logger
	verbs     []*verb
	byName    map[string]*verb
	chat      Chat
	tokens    *store.Bucket[tokens]
}

// verb is a command's definition.
type verb struct {
	Command
	// op is the right it takes; zero for verbs that need none (help).
	op enclave.Op
	// onTentacle: the first argument names a tentacle, whose own mode
	// applies too.
	onTentacle bool
	// minArgs is how many arguments it needs.
	minArgs int
	run     func(ctx context.Context, c *call) Reply
	// preview, for destructive verbs that show what they will do before
	// the confirmation (deploy: the picture and the diff), returns the
	// reply the card goes on and what to keep until the confirmation;
	// false stops the request with that reply.
	preview func(ctx context.Context, c *call) (Reply, map[string][]byte, bool)
	// confirm words the confirmation card: its title ("Undeploy hello")
	// and what confirming does.
	confirm func(c *call) (title, prompt string)
}

// call is one request on its way through the registry.
type call struct {
	req  Request
	verb *verb
	args []string
	// rest is the text after the verb, untouched (run's JSON input).
	rest string
	// enc is the enclave the request is about; has says whether there
	// is one.
	enc  enclave.Enclave
	has  bool
	prov enclave.Provenance
	// status is the tentacle's, for verbs on a deployed tentacle.
	status   tentacle.Status
	deployed bool
	// audit collects what the audit entry records of the arguments,
	// secrets redacted.
	audit map[string]string
	// pending is the confirmation being carried out, if any.
	pending *pending
	// channelMembers are the channel's members, read for provision.
	channelMembers []string
	// written is a tentacle the conversation loop wrote, to deploy.
	written map[string][]byte
	// secret is the value a secret form carried.
	secret string
	// identity is the person's valid sign-in, if any; identityErr says
	// why there is none (login.ErrNotSignedIn, ErrSignInExpired, ...).
	identity    *login.Identity
	identityErr error
}

// New makes a Registry.
func New(cfg Config) (*Registry, error) {
	if cfg.Enclaves == nil || cfg.Tentacles == nil || cfg.Store == nil || cfg.Channels == nil {
		return nil, errors.New("command: a registry needs enclaves, tentacles, a store and channels")
	}
	if cfg.ConfirmTTL <= 0 {
		cfg.ConfirmTTL = 10 * time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Observe == nil {
		cfg.Observe = func(string, string, time.Duration) {}
	}
	r := &Registry{
		cfg:       cfg,
		enclaves:  &enclave.Service{Cluster: cfg.Enclaves, Exoskeleton: cfg.Exoskeleton},
		tentacles: cfg.Tentacles,
		pending:   store.NewBucket[pending](cfg.Store, "confirmations"),
		tokens:    store.NewBucket[tokens](cfg.Store, "llm_usage"),
		log:       cfg.Logger,
		byName:    map[string]*verb{},
	}
	r.runs = cfg.Runner
	if r.runs == nil {
		var err error
		if r.runs, err = runs.New(runs.Config{Tentacles: cfg.Tentacles, Store: cfg.Store, Now: cfg.Now, Logger: cfg.Logger}); err != nil {
			return nil, err
		}
	}
	for _, v := range r.define() {
		r.verbs = append(r.verbs, v)
		r.byName[v.Name] = v
	}
	return r, nil
}

// Runner is the registry's runner, which every trigger shares.
func (r *Registry) Runner() *runs.Runner { return r.runs }

// Commands lists the verbs, in help order.
func (r *Registry) Commands() []Command {
	out := make([]Command, 0, len(r.verbs))
	for _, v := range r.verbs {
		out = append(out, v.Command)
	}
	return out
}

// Do carries out one request and says what happened. It never returns an
// error: every failure is a Reply a person can act on, and is audited.
func (r *Registry) Do(ctx context.Context, req Request) Reply {
	name, rest := splitVerb(req.Text)
	if name == "" {
		name = "help"
	}
	v, ok := r.byName[name]
	if !ok {
		// A mistyped verb gets its correction, not a conversation.
		if r.chat != nil && (rest != "" || !r.typo(name)) {
			return r.chat.Converse(ctx, req)
		}
		return r.unknown(name, rest)
	}
	return r.dispatch(ctx, &call{req: req, verb: v, rest: rest, args: fields(rest)})
}

// dispatch authorizes, confirms, runs and audits a call.
func (r *Registry) dispatch(ctx context.Context, c *call) Reply {
	start := r.cfg.Now()
	c.audit = map[string]string{}
	if c.rest != "" {
		c.audit["args"] = redactLine(c.rest)
	}
	if len(c.args) < c.verb.minArgs {
		return failed(fmt.Sprintf("`/kraken %s` needs %s. For example: `/kraken %s %s`", c.verb.Name, c.verb.Usage, c.verb.Name, c.verb.Usage))
	}
	c.prov = enclave.Provenance{Actor: actorID(c.req), Channel: c.req.Channel.ID, At: start}
	if c.verb.op == 0 {
		return c.verb.run(ctx, c)
	}
	if rep, ok := r.resolve(ctx, c); !ok {
		r.record(ctx, c, start, store.DecisionDenied, rep.Text, store.ResultError, "")
		return rep
	}
	r.identify(ctx, c)
	d := r.decide(c)
	if !d.Allowed {
		r.record(ctx, c, start, store.DecisionDenied, d.Reason, "", "")
		return private(failed(capitalize(d.Reason) + "."))
	}
	if c.verb.Destructive && c.pending == nil {
		if c.req.Admin != nil && c.req.Confirmed != "" {
			if want := c.confirmName(); c.req.Confirmed != want {
				r.record(ctx, c, start, store.DecisionAllowed, d.Reason, store.ResultError, "confirmation did not match")
				return failed(fmt.Sprintf("The confirmation must be exactly %q.", want))
			}
		} else {
			rep := r.askConfirmation(ctx, c)
			r.record(ctx, c, start, store.DecisionAllowed, d.Reason, store.ResultPendingConfirmation, "")
			return rep
		}
	}
	rep := c.verb.run(ctx, c)
	result, errText := store.ResultOK, ""
	if rep.Failed {
		result, errText = store.ResultError, rep.Text
	}
	if rep.Confirm != nil {
		result = store.ResultPendingConfirmation
	}
	r.record(ctx, c, start, store.DecisionAllowed, d.Reason, result, errText)
	return rep
}

// resolve finds the enclave (and tentacle) a call is about. It fails
// with the reply to give when a verb needs an enclave and there is none.
func (r *Registry) resolve(ctx context.Context, c *call) (Reply, bool) {
	var err error
	if c.req.Enclave != "" {
		c.enc, err = r.cfg.Enclaves.Get(ctx, c.req.Enclave)
	} else {
		c.enc, err = r.enclaves.ByChannel(ctx, c.req.Channel)
	}
	switch {
	case errors.Is(err, enclave.ErrNotFound):
		if c.verb.op == enclave.OpProvision && c.req.Enclave == "" {
			// Anyone in the channel may provision it: ask who is.
			members, err := r.cfg.Channels.Members(ctx, c.req.Channel)
			if err != nil {
				r.log.Warn("channel members not read", "channel", c.req.Channel.ID, "err", err)
				return failed("I couldn't see who is in this channel, so I can't provision it yet. Make sure I am a member of the channel, then try again."), false
			}
			c.channelMembers = members
			return Reply{}, true
		}
		if c.req.Enclave != "" {
			return failed(fmt.Sprintf("There is no enclave called %q.", c.req.Enclave)), false
		}
		return private(failed("This channel has no enclave yet. `/kraken provision` makes one.")), false
	case err != nil:
		return failed(explain("look up this channel's enclave", err)), false
	}
	c.has = true
	if c.verb.onTentacle && len(c.args) > 0 {
		st, err := r.tentacles.Status(ctx, c.enc.Name, c.args[0])
		switch {
		case err == nil:
			c.status, c.deployed = st, true
		case errors.Is(err, tentacle.ErrNotDeployed):
		default:
			return failed(explain("look up tentacle "+c.args[0], err)), false
		}
	}
	return Reply{}, true
}

// decide asks the enclave's rules whether the call may go ahead.
func (r *Registry) decide(c *call) enclave.Decision {
	if c.req.Admin != nil {
		return r.decideAdmin(c)
	}
	access := enclave.Access{TeamID: c.req.Channel.TeamID}
	for _, m := range c.channelMembers {
		access.Members = append(access.Members, enclave.Principal{TeamID: c.req.Channel.TeamID, UserID: m})
	}
	if c.has {
		access = enclave.AccessOf(c.enc)
	}
	var t *enclave.TentacleAccess
	if c.verb.onTentacle && c.has && len(c.args) > 0 {
		t = enclave.TentacleAccessOf(c.enc, c.args[0], c.status.DeployedBy)
	}
	d := enclave.Decide(c.req.Actor, access, t, c.verb.op)
	if !d.Allowed && access.RequireIdentity && !c.req.Actor.HasIdentity {
		// Refused by the sign-in rule alone: say what to do about it.
		access.RequireIdentity = false
		if enclave.Decide(c.req.Actor, access, t, c.verb.op).Allowed {
			d.Reason = r.signInReason(c, d.Reason)
		}
	}
	return d
}

// decideAdmin: platform administrators are not bound by an enclave's
// mode, but the lifecycle still holds (a frozen enclave takes no deploy
// from anyone), which Decide checks when asked on the owner's behalf.
func (r *Registry) decideAdmin(c *call) enclave.Decision {
	if !c.has {
		return enclave.Decision{Reason: "platform administrators can't provision enclaves; the channel's members do that from Slack"}
	}
	access := enclave.AccessOf(c.enc)
	access.Mode = 0o777
	access.RequireIdentity = false
	d := enclave.Decide(access.Owner, access, nil, c.verb.op)
	if d.Allowed {
		d.Reason = "platform administrator"
	}
	return d
}

// record appends the call's audit entry. An audit failure is logged, not
// shown: the act already happened (or was refused) and saying otherwise
// would mislead.
func (r *Registry) record(ctx context.Context, c *call, start time.Time, decision, reason, result, errText string) {
	e := store.AuditEntry{
		At:         start,
		Actor:      actorID(c.req),
		ActorEmail: c.req.ActorEmail,
		Verb:       c.verb.Name,
		Args:       c.audit,
		Decision:   decision,
		Reason:     reason,
		Result:     result,
		Error:      errText,
		Duration:   r.cfg.Now().Sub(start),
		Via:        c.req.Via,
	}
	if a := c.req.Admin; a != nil {
		e.ActorEmail, e.Issuer, e.Subject = a.Email, a.Issuer, a.Subject
	} else if id := c.identity; id != nil {
		e.Issuer, e.Subject = id.Issuer, id.Subject
	}
	if c.has {
		e.Enclave = c.enc.Name
	}
	if len(e.Args) == 0 {
		e.Args = nil
	}
	if _, err := r.cfg.Store.AppendAudit(context.WithoutCancel(ctx), e); err != nil {
		r.log.Error("audit entry not written", "verb", e.Verb, "actor", e.Actor, "err", err)
	}
	outcome := "ok"
	switch {
	case decision == store.DecisionDenied:
		outcome = "denied"
	case result == store.ResultPendingConfirmation:
		outcome = "confirm"
	case result == store.ResultError:
		outcome = "failed"
	}
	r.cfg.Observe(c.verb.Name, outcome, e.Duration)
}

// unknown answers a verb the registry does not have, when no
// conversation loop is there to read plain words.
func (r *Registry) unknown(name, rest string) Reply {
	if rest != "" && len(fields(rest)) > 1 {
		return private(failed("I only understand commands here, like `/kraken list` or `/kraken run <tentacle>`; no AI assistant is set up to read plain sentences. `/kraken help` lists the commands."))
	}
	best := r.suggest(name)
	msg := fmt.Sprintf("I don't know the command %q.", name)
	if best != "" {
		msg += fmt.Sprintf(" Did you mean `/kraken %s`?", best)
	}
	return private(failed(msg + " `/kraken help` lists what I can do."))
}

// suggest is the verb name is most likely a typo of, or "".
func (r *Registry) suggest(name string) string {
	best, dist := "", 3
	for _, v := range r.verbs {
		if d := osaDistance(name, v.Name); d < dist {
			best, dist = v.Name, d
		}
	}
	return best
}

// typo reports whether name is one slip (a letter wrong, missing, extra,
// or two swapped) from a verb: "deplyo", "lsit". Plain words like
// "hello" are further from every verb.
func (r *Registry) typo(name string) bool {
	if len(name) < 4 {
		return false
	}
	for _, v := range r.verbs {
		if osaDistance(name, v.Name) <= 1 {
			return true
		}
	}
	return false
}

// actorID is who the audit log and the cluster's provenance name.
func actorID(req Request) string {
	if req.Admin != nil {
		return "admin:" + req.Admin.Subject
	}
	return req.Actor.UserID
}

// confirmName is what an admin must type to confirm: the enclave's name
// for deprovision, otherwise the first argument (a tentacle or person).
func (c *call) confirmName() string {
	if c.verb.op == enclave.OpDeprovision || len(c.args) == 0 {
		return c.enc.Name
	}
	return c.args[0]
}

func failed(text string) Reply { return Reply{Text: text, Failed: true} }
func private(r Reply) Reply    { r.Private = true; return r }
func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// sortedNames is a helper for deterministic output.
func sortedNames[M ~map[string]V, V any](m M) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
