package command

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/kraken-ops/kraken/enclave"
)

// Button values the registry gives out and reads back from a Click.
const (
	valueRun     = "run:"
	valueConfirm = "confirm:"
	valueCancel  = "cancel:"
)

// RunValue is the button value that runs a command line when clicked,
// e.g. the provision offer on the card the bot posts when invited.
func RunValue(text string) string { return valueRun + text }

// pending is a destructive request waiting for its asker's confirmation.
// It is stored, so a confirmation survives a restart of the bot.
type pending struct {
	ID         string
	Verb       string
	Text       string
	Actor      enclave.Principal
	ActorEmail string
	Admin      *Admin
	Via        string
	Channel    enclave.Channel
	Enclave    string
	TypeName   string
	Expires    int64 // unix seconds
	Used       bool
	// Files are the bundle a deploy showed, so the deploy confirmed is
	// exactly the one previewed.
	Files map[string][]byte `json:",omitempty"`
}

// askConfirmation stores the call as pending and returns the card that
// asks its asker to confirm it.
func (r *Registry) askConfirmation(ctx context.Context, c *call) Reply {
	rep := Reply{}
	var files map[string][]byte
	if c.verb.preview != nil {
		var ok bool
		rep, files, ok = c.verb.preview(ctx, c)
		if !ok {
			return rep
		}
	}
	var b [16]byte
	_, _ = rand.Read(b[:])
	p := pending{
		ID:         hex.EncodeToString(b[:]),
		Verb:       c.verb.Name,
		Text:       c.rest,
		Actor:      c.req.Actor,
		ActorEmail: c.req.ActorEmail,
		Admin:      c.req.Admin,
		Via:        c.req.Via,
		Channel:    c.req.Channel,
		Enclave:    c.enc.Name,
		Expires:    r.cfg.Now().Add(r.cfg.ConfirmTTL).Unix(),
		Files:      files,
	}
	if c.verb.op == enclave.OpDeprovision {
		p.TypeName = c.enc.Name
	}
	if err := r.pending.Put(ctx, p.ID, p); err != nil {
		r.log.Error("confirmation not stored", "verb", p.Verb, "err", err)
		return failed("I couldn't prepare the confirmation. Try again in a minute.")
	}
	title, prompt := c.verb.confirm(c)
	if rep.Text == "" {
		rep.Text = title + "?"
	}
	rep.Confirm = &Confirm{
		Title:        title,
		Prompt:       prompt,
		ConfirmLabel: capitalize(c.verb.Name),
		CancelLabel:  "Cancel",
		ConfirmValue: valueConfirm + p.ID,
		CancelValue:  valueCancel + p.ID,
		TypeName:     p.TypeName,
		Expires:      r.cfg.Now().Add(r.cfg.ConfirmTTL),
	}
	return rep
}

// Click handles a button press on one of the bot's messages.
func (r *Registry) Click(ctx context.Context, k Click) Reply {
	switch {
	case strings.HasPrefix(k.Value, valueRun):
		return r.Do(ctx, Request{Actor: k.Actor, ActorEmail: k.ActorEmail, Via: k.Via, Channel: k.Channel, Text: strings.TrimPrefix(k.Value, valueRun)})
	case strings.HasPrefix(k.Value, valueConfirm):
		return r.confirm(ctx, k, strings.TrimPrefix(k.Value, valueConfirm))
	case strings.HasPrefix(k.Value, valueCancel):
		return r.cancel(ctx, k, strings.TrimPrefix(k.Value, valueCancel))
	}
	return private(failed("I don't recognise that button; it may be from an older version of the bot. Ask again with `/kraken help`."))
}

var (
	errGone      = errors.New("confirmation used or gone")
	errNotAsker  = errors.New("not the asker")
	errWrongName = errors.New("wrong name typed")
	errExpired   = errors.New("confirmation expired")
)

// confirm carries out a pending request, once: only its asker can, only
// before it expires, and the request is authorized again, because the
// enclave or the person's rights may have changed since the card.
func (r *Registry) confirm(ctx context.Context, k Click, id string) Reply {
	now := r.cfg.Now().Unix()
	var asker, typeName string
	p, err := r.pending.Update(ctx, id, func(p pending, ok bool) (pending, error) {
		asker, typeName = p.Actor.UserID, p.TypeName
		switch {
		case !ok || p.Used:
			return p, errGone
		case !p.Actor.Same(k.Actor):
			return p, errNotAsker
		case now > p.Expires:
			return p, errExpired
		case p.TypeName != "" && strings.TrimSpace(k.Typed) != p.TypeName:
			return p, errWrongName
		}
		p.Used = true
		return p, nil
	})
	switch {
	case errors.Is(err, errNotAsker):
		return private(failed(fmt.Sprintf("Only <@%s>, who asked for this, can confirm it.", asker)))
	case errors.Is(err, errWrongName):
		return private(failed(fmt.Sprintf("To confirm, type the enclave's name exactly: %s.", typeName)))
	case errors.Is(err, errExpired):
		return private(failed("This confirmation has expired. Ask again."))
	case errors.Is(err, errGone):
		return private(failed("This confirmation was already used or cancelled. Ask again if you still want it."))
	case err != nil:
		r.log.Error("confirmation not read", "err", err)
		return failed("I couldn't read that confirmation. Ask again.")
	}
	v, ok := r.byName[p.Verb]
	if !ok {
		return failed("That confirmation is for a command I no longer have.")
	}
	req := Request{Actor: p.Actor, ActorEmail: p.ActorEmail, Admin: p.Admin, Via: p.Via, Channel: p.Channel, Enclave: p.Enclave, Text: p.Verb + " " + p.Text}
	rep := r.dispatch(ctx, &call{req: req, verb: v, rest: p.Text, args: fields(p.Text), pending: &p})
	_ = r.pending.Delete(context.WithoutCancel(ctx), id)
	return rep
}

// cancel drops a pending request; only its asker may.
func (r *Registry) cancel(ctx context.Context, k Click, id string) Reply {
	p, ok, err := r.pending.Get(ctx, id)
	if err != nil || !ok || p.Used {
		return private(Reply{Text: "Nothing to cancel: it was already done, cancelled or expired."})
	}
	if !p.Actor.Same(k.Actor) {
		return private(failed(fmt.Sprintf("Only <@%s>, who asked for this, can cancel it.", p.Actor.UserID)))
	}
	if err := r.pending.Delete(ctx, id); err != nil {
		return failed("I couldn't cancel that. Try again.")
	}
	return Reply{Text: fmt.Sprintf("Cancelled: `/kraken %s %s` was not done.", p.Verb, p.Text)}
}

// PruneConfirmations forgets confirmations that expired before now.
func (r *Registry) PruneConfirmations(ctx context.Context) (int, error) {
	now := r.cfg.Now().Unix()
	return r.pending.DeleteFunc(ctx, "", func(_ string, p pending) bool { return p.Expires < now })
}
