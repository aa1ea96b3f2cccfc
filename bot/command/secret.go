package command

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/kraken-ops/kraken/enclave"
	"github.com/kraken-ops/kraken/tentacle"
)

func (r *Registry) secretVerb() *verb {
	return &verb{
		Command: Command{Name: "secret", Usage: "<tentacle> <name>", Summary: "set one of a tentacle's secrets in a private form (never type secrets in a channel)", Enclave: true},
		op:      enclave.OpDeploy, onTentacle: true, minArgs: 2, run: r.secret,
	}
}

// secret asks for the value in a private form; the form's submission
// (SubmitSecret) comes back here with it.
func (r *Registry) secret(ctx context.Context, c *call) Reply {
	if !c.deployed {
		return notDeployed(c)
	}
	name, key := c.args[0], c.args[1]
	if tentacle.CheckSecretKey(key) != nil {
		return private(failed(fmt.Sprintf("A secret's name is letters, digits, dots, dashes and underscores, not starting with a dot, like `api_key`; %s is not one.", escape(key))))
	}
	if c.pending == nil {
		var b [16]byte
		_, _ = rand.Read(b[:])
		p := pending{
			ID: hex.EncodeToString(b[:]), Verb: "secret", Text: name + " " + key,
			Actor: c.req.Actor, ActorEmail: c.req.ActorEmail, Via: c.req.Via, Channel: c.req.Channel, Enclave: c.enc.Name,
			Expires: r.cfg.Now().Add(r.cfg.ConfirmTTL).Unix(),
		}
		if err := r.pending.Put(ctx, p.ID, p); err != nil {
			return failed("I couldn't prepare the form. Try again in a minute.")
		}
		return private(Reply{
			Text:   fmt.Sprintf("Set secret %s of *%s* in the private form; only you see it, and the value is never shown or kept in the chat.", key, name),
			Secret: &SecretForm{Tentacle: name, Key: key, Token: p.ID, Expires: r.cfg.Now().Add(r.cfg.ConfirmTTL)},
		})
	}
	if err := tentacle.CheckSecretValue(c.secret); err != nil {
		return private(failed("That value can't be a secret: it must be text of at most 64 KiB."))
	}
	if err := r.tentacles.SetSecret(ctx, c.enc.Name, name, key, c.secret, c.prov); err != nil {
		return private(failed(explain("set the secret", err)))
	}
	if c.secret == "" {
		return private(Reply{Text: fmt.Sprintf("Secret %s of *%s* is removed; the tentacle restarted without it.", key, name)})
	}
	return private(Reply{Text: fmt.Sprintf("Secret %s of *%s* is set; the tentacle restarted to use it.", key, name)})
}

// SecretSubmission is a secret form filled in.
type SecretSubmission struct {
	Actor      enclave.Principal
	ActorEmail string
	Via        string
	Token      string
	// Value is the secret. It goes to the cluster and nowhere else: not
	// to the audit log, not to a reply, not to a log line.
	Value string
}

// SubmitSecret sets the secret a form asked for, once, for the person it
// was shown to, checking their right again.
func (r *Registry) SubmitSecret(ctx context.Context, s SecretSubmission) Reply {
	now := r.cfg.Now().Unix()
	p, err := r.pending.Update(ctx, s.Token, func(p pending, ok bool) (pending, error) {
		switch {
		case !ok || p.Used || p.Verb != "secret":
			return p, errGone
		case !p.Actor.Same(s.Actor):
			return p, errNotAsker
		case now > p.Expires:
			return p, errExpired
		}
		p.Used = true
		return p, nil
	})
	switch {
	case errors.Is(err, errNotAsker):
		return private(failed("This form was opened for someone else."))
	case errors.Is(err, errExpired):
		return private(failed("This form has expired. Ask again with `/kraken secret <tentacle> <name>`."))
	case errors.Is(err, errGone):
		return private(failed("This form was already used. Ask again with `/kraken secret <tentacle> <name>`."))
	case err != nil:
		return private(failed("I couldn't read that form. Ask again."))
	}
	req := Request{Actor: p.Actor, ActorEmail: p.ActorEmail, Via: p.Via, Channel: p.Channel, Enclave: p.Enclave, Text: "secret " + p.Text}
	rep := r.dispatch(ctx, &call{req: req, verb: r.byName["secret"], rest: p.Text, args: fields(p.Text), pending: &p, secret: s.Value})
	bg := context.WithoutCancel(ctx)
	if rep.Failed {
		// Nothing was set: the same form may be tried again until it
		// expires.
		p.Used = false
		if err := r.pending.Put(bg, s.Token, p); err == nil {
			return rep
		}
	}
	_ = r.pending.Delete(bg, s.Token)
	return rep
}
