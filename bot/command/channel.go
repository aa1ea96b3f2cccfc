package command

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/kraken-ops/kraken/bot/runs"
	"github.com/kraken-ops/kraken/enclave"
	"github.com/kraken-ops/kraken/store"
)

// Post is a message the bot sends on its own: to a channel, or to a
// person directly.
type Post struct {
	// Channel is set for a message in a channel; User for a direct
	// message.
	Channel enclave.Channel
	User    string
	Reply   Reply
}

// system is the actor channel events and reconciles are recorded as.
const system = "system"

// ChannelEvent applies what happened to a channel to its enclave, and
// returns what to tell people about it. Events for channels without an
// enclave change nothing (except the bot's own arrival, which offers to
// make one). Slack redelivers events and reconciles replay them, so
// applying one twice is harmless.
func (r *Registry) ChannelEvent(ctx context.Context, ev ChannelEvent) []Post {
	start := r.cfg.Now()
	e, err := r.enclaves.ByChannel(ctx, ev.Channel)
	if errors.Is(err, enclave.ErrNotFound) {
		if ev.Kind == BotJoined {
			return []Post{{Channel: ev.Channel, Reply: r.offer(ev)}}
		}
		return nil
	}
	if err != nil {
		r.log.Warn("channel event not applied: enclave lookup failed", "channel", ev.Channel.ID, "kind", ev.Kind, "err", err)
		return nil
	}
	p := enclave.Provenance{Actor: system, Channel: ev.Channel.ID, At: start}
	var posts []Post
	var verb string
	switch ev.Kind {
	case BotJoined:
		verb = "bot-joined"
		posts = append(posts, Post{Channel: ev.Channel, Reply: Reply{Text: fmt.Sprintf("I'm back. This channel is enclave %s, which is %s.", e.Name, stateWords(e))}})
	case MemberJoined:
		verb = "member-joined"
		_, err = r.enclaves.MemberJoined(ctx, e.Name, ev.User, p)
	case MemberLeft:
		verb = "member-left"
		e, err = r.enclaves.MemberLeft(ctx, e.Name, ev.User, p)
		if err == nil && ev.User == e.Owner {
			posts = append(posts, Post{Channel: ev.Channel, Reply: Reply{Text: fmt.Sprintf(
				"<@%s>, who owns enclave %s, left the channel. The enclave keeps working. It needs a new owner: <@%s> can hand it over with `/kraken transfer @person` after coming back, or a platform admin can.",
				e.Owner, e.Name, e.Owner)}})
		}
	case Archived:
		verb = "channel-archived"
		e, err = r.enclaves.Apply(ctx, e.Name, enclave.EventChannelArchived, p)
	case Unarchived:
		verb = "channel-unarchived"
		e, err = r.enclaves.Apply(ctx, e.Name, enclave.EventChannelUnarchived, p)
		if err == nil {
			posts = append(posts, Post{Channel: ev.Channel, Reply: Reply{Text: fmt.Sprintf("This channel is back, and enclave %s is %s.", e.Name, stateWords(e))}})
		}
	case Renamed:
		verb = "channel-renamed"
		_, err = r.enclaves.Rename(ctx, e.Name, ev.Channel.Name, p)
	case Deleted:
		verb = "channel-deleted"
		e, err = r.enclaves.Apply(ctx, e.Name, enclave.EventChannelDeleted, p)
		if err == nil {
			posts = append(posts, r.deletedNotice(ctx, e))
		}
	default:
		return nil
	}
	result, errText := store.ResultOK, ""
	if err != nil {
		result, errText = store.ResultError, err.Error()
		r.log.Warn("channel event not applied", "enclave", e.Name, "kind", verb, "err", err)
	}
	args := map[string]string(nil)
	if ev.User != "" {
		args = map[string]string{"person": ev.User}
	}
	if _, aerr := r.cfg.Store.AppendAudit(context.WithoutCancel(ctx), store.AuditEntry{
		At: start, Actor: system, Enclave: e.Name, Verb: verb, Args: args,
		Decision: store.DecisionAllowed, Reason: "the channel changed", Result: result, Error: errText,
		Duration: r.cfg.Now().Sub(start), Via: ev.Via,
	}); aerr != nil {
		r.log.Error("audit entry not written", "verb", verb, "err", aerr)
	}
	return posts
}

// offer is the card the bot posts when invited to a channel with no
// enclave.
func (r *Registry) offer(ev ChannelEvent) Reply {
	name := enclave.NameFor(ev.Channel.Name)
	text := "Hi! I can make this channel an *enclave*: a place where its members deploy and run tentacles (workflows) together."
	if ev.User != "" {
		text = fmt.Sprintf("Hi <@%s>, thanks for inviting me! I can make this channel an *enclave*: a place where its members deploy and run tentacles (workflows) together. Whoever provisions it owns it.", ev.User)
	}
	label := "Provision enclave"
	if name != "" {
		label += " " + name
	} else {
		text += " The channel's name can't be an enclave name, so type `/kraken provision <name>`."
		return Reply{Text: text}
	}
	return Reply{Text: text, Buttons: []Button{{Label: label, Value: RunValue("provision"), Style: "primary"}}}
}

// deletedNotice asks the owner, directly, whether to deprovision an
// enclave whose channel was deleted. It is never done without them.
func (r *Registry) deletedNotice(ctx context.Context, e enclave.Enclave) Post {
	owner := enclave.Principal{TeamID: e.Channel.TeamID, UserID: e.Owner}
	c := &call{
		req:  Request{Actor: owner, Via: ViaSlack, Channel: e.Channel},
		verb: r.byName["deprovision"],
		enc:  e, has: true,
		audit: map[string]string{},
	}
	rep := r.askConfirmation(ctx, c)
	rep.Text = fmt.Sprintf("The channel of enclave %s was deleted, so the enclave is frozen. Its tentacles keep running until you decide. Deprovision it to remove everything, or leave it and ask a platform admin to give it a new channel.", e.Name)
	return Post{User: e.Owner, Reply: rep}
}

// Reconcile repairs drift between the workspace and the cluster: a
// missed archive, rename, deletion or membership change, and enclaves
// whose provisioning was cut short. It returns what to tell people and
// the problems it could not repair, joined.
func (r *Registry) Reconcile(ctx context.Context) ([]Post, error) {
	all, err := r.cfg.Enclaves.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("reconcile: list enclaves: %w", err)
	}
	var posts []Post
	var errs []error
	for _, e := range all {
		if e.Terminating || e.Channel.ID == "" {
			continue
		}
		ps, err := r.reconcileOne(ctx, e)
		posts = append(posts, ps...)
		if err != nil {
			errs = append(errs, fmt.Errorf("enclave %s: %w", e.Name, err))
		}
	}
	if _, err := r.PruneConfirmations(ctx); err != nil {
		errs = append(errs, err)
	}
	return posts, errors.Join(errs...)
}

func (r *Registry) reconcileOne(ctx context.Context, e enclave.Enclave) ([]Post, error) {
	ch := e.Channel
	ev := func(k ChannelEventKind) []Post {
		return r.ChannelEvent(ctx, ChannelEvent{Kind: k, Channel: ch, Via: "reconcile"})
	}
	p := enclave.Provenance{Actor: system, Channel: ch.ID, At: r.cfg.Now()}
	if !e.Ready {
		if err := r.cfg.Enclaves.Provision(ctx, e, p); err != nil {
			return nil, fmt.Errorf("finish provisioning: %w", err)
		}
	}
	info, err := r.cfg.Channels.Info(ctx, ch)
	if err != nil {
		return nil, fmt.Errorf("read channel: %w", err)
	}
	if info.Deleted {
		if e.ChannelDeleted {
			return nil, nil
		}
		return ev(Deleted), nil
	}
	var posts []Post
	if info.Name != "" && info.Name != ch.Name {
		ch.Name = info.Name
		posts = append(posts, ev(Renamed)...)
	}
	switch {
	case info.Archived && !e.Archived:
		posts = append(posts, ev(Archived)...)
	case !info.Archived && e.Archived:
		posts = append(posts, ev(Unarchived)...)
	}
	members, err := r.cfg.Channels.Members(ctx, ch)
	if err != nil {
		return posts, fmt.Errorf("read channel members: %w", err)
	}
	slices.Sort(members)
	if !slices.Equal(members, e.Members) || slices.Contains(members, e.Owner) == e.NeedsOwner {
		if _, err := r.enclaves.SyncMembers(ctx, e.Name, members, p); err != nil {
			return posts, fmt.Errorf("sync members: %w", err)
		}
	}
	return posts, nil
}

// Home is what a person's App Home shows: the enclaves they own or are a
// member of, and the latest runs there.
func (r *Registry) Home(ctx context.Context, who enclave.Principal) (Home, error) {
	all, err := r.cfg.Enclaves.List(ctx)
	if err != nil {
		return Home{}, fmt.Errorf("home: list enclaves: %w", err)
	}
	var h Home
	for _, e := range all {
		role := enclave.AccessOf(e).Role(who)
		if role != enclave.RoleOwner && role != enclave.RoleMember {
			continue
		}
		n := 0
		if list, err := r.tentacles.List(ctx, e.Name); err == nil {
			n = len(list)
		}
		h.Enclaves = append(h.Enclaves, HomeEnclave{Name: e.Name, ChannelID: e.Channel.ID, ChannelName: e.Channel.Name, Role: role.String(), State: stateWords(e), Tentacles: n})
		recs, err := r.runs.List(ctx, e.Name, "", 10)
		if err != nil {
			return Home{}, fmt.Errorf("home: runs of %s: %w", e.Name, err)
		}
		for _, rec := range recs {
			h.Runs = append(h.Runs, summaryOf(rec, r.cfg.Now()))
		}
	}
	slices.SortFunc(h.Runs, func(a, b RunSummary) int { return b.At.Compare(a.At) })
	if len(h.Runs) > 10 {
		h.Runs = h.Runs[:10]
	}
	return h, nil
}

// summaryOf is a run record as people see it.
func summaryOf(rec runs.Record, now time.Time) RunSummary {
	s := RunSummary{Enclave: rec.Enclave, Tentacle: rec.Tentacle, Actor: rec.Actor, At: rec.Started, Duration: rec.Duration(now), OK: rec.State == runs.Succeeded}
	switch {
	case rec.State == runs.Succeeded:
		s.Summary = "succeeded: " + rec.Summary
	case rec.Error != "":
		s.Summary = string(rec.State) + ": " + escape(rec.Error)
	default:
		s.Summary = string(rec.State)
	}
	return s
}
