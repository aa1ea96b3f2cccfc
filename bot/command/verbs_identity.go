package command

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/kraken-ops/kraken/bot/login"
	"github.com/kraken-ops/kraken/enclave"
	"github.com/kraken-ops/kraken/store"
)

// signInSetup says who can set sign-in up, and how.
const signInSetup = "A platform administrator can set it up by giving the bot an OpenID Connect issuer and client (KRAKEN_LOGIN_ISSUER and KRAKEN_LOGIN_CLIENT_ID)"

// identityVerbs are signing in and out, and the enclave's rule about it.
func (r *Registry) identityVerbs() []*verb {
	return []*verb{
		{Command: Command{Name: "login", Summary: "sign in with your organisation's account (enclaves may require it before you change things)"}, run: r.login},
		{Command: Command{Name: "logout", Summary: "forget your sign-in"}, run: r.logout},
		{Command: Command{Name: "identity", Usage: "required|optional", Summary: "whether people must sign in before deploying, running or changing anything here (owner only)", Enclave: true,
			Params: []Param{word("rule", "required or optional", true)}}, op: enclave.OpIdentity, minArgs: 1, run: r.identityRule},
	}
}

// identify says whether the person has a valid sign-in, from their link
// at the identity provider alone: whatever a transport set is ignored.
func (r *Registry) identify(ctx context.Context, c *call) {
	c.req.Actor.HasIdentity = false
	c.identity, c.identityErr = nil, nil
	if c.req.Admin != nil || r.cfg.Identities == nil {
		return
	}
	id, err := r.cfg.Identities.Current(ctx, c.req.Actor)
	if err != nil {
		c.identityErr = err
		if !errors.Is(err, login.ErrNotSignedIn) && !errors.Is(err, login.ErrSignInExpired) {
			r.log.Warn("sign-in not checked", "user", c.req.Actor.UserID, "err", err)
		}
		return
	}
	c.identity, c.req.Actor.HasIdentity = &id, true
}

// signInReason explains a refusal that only the enclave's sign-in rule
// made, with what the person can do about it.
func (r *Registry) signInReason(c *call, reason string) string {
	switch {
	case r.cfg.Identities == nil:
		return "this enclave requires people to sign in before changing or running anything, but sign-in isn't set up on this bot, so nothing can be changed here for now. " + signInSetup
	case errors.Is(c.identityErr, login.ErrSignInExpired):
		return "your sign-in has expired, so nothing was done: sign in again with /kraken login, then ask again"
	case c.identityErr != nil && !errors.Is(c.identityErr, login.ErrNotSignedIn):
		return "I couldn't confirm your sign-in with the identity provider just now, so nothing was done: try again in a minute, or sign in again with /kraken login"
	}
	return reason
}

func (r *Registry) login(ctx context.Context, c *call) Reply {
	if r.cfg.Identities == nil {
		return private(failed("Sign-in isn't set up on this bot. " + signInSetup + "."))
	}
	if c.req.Admin != nil {
		return failed("Platform administrators are signed in already; `/kraken login` is for people in Slack.")
	}
	p, err := r.cfg.Identities.Start(ctx, c.req.Actor)
	switch {
	case errors.Is(err, login.ErrNoDeviceFlow):
		r.log.Warn("sign-in not started", "user", c.req.Actor.UserID, "err", err)
		return private(failed("The identity provider this bot uses doesn't offer sign-in from a chat (the device authorization grant). A platform administrator needs to enable it for the bot's client."))
	case err != nil:
		r.log.Warn("sign-in not started", "user", c.req.Actor.UserID, "err", err)
		return private(failed("I couldn't reach the identity provider just now. Try `/kraken login` again in a minute."))
	}
	text := fmt.Sprintf("To sign in, open %s and enter the code *%s*.", p.VerificationURI, p.UserCode)
	if p.VerificationURIComplete != "" {
		text = fmt.Sprintf("To sign in, open %s and check that it shows the code *%s*.", p.VerificationURIComplete, p.UserCode)
	}
	text += fmt.Sprintf(" The code is valid for %s. I'll tell you here once you're signed in.", validFor(time.Until(p.Expires)))
	start := r.cfg.Now()
	later := make(chan Reply, 1)
	go func() {
		res := <-p.Done
		rep := private(r.signedIn(res))
		if !errors.Is(res.Err, login.ErrReplaced) {
			result, errText := store.ResultOK, ""
			if res.Err != nil {
				result, errText = store.ResultError, rep.Text
			} else {
				c.identity = &res.Identity
			}
			r.record(context.WithoutCancel(ctx), c, start, store.DecisionAllowed, "anyone may sign in", result, errText)
		}
		later <- rep
	}()
	return private(Reply{Text: text, Later: later})
}

// signedIn says how a sign-in ended.
func (r *Registry) signedIn(res login.Result) Reply {
	switch err := res.Err; {
	case err == nil:
		return Reply{Text: fmt.Sprintf("Signed in as %s (%s).", res.Identity.Name(), res.Identity.IssuerHost())}
	case errors.Is(err, login.ErrDenied):
		return failed("Sign-in was refused at the identity provider, so nothing is linked. `/kraken login` starts again.")
	case errors.Is(err, login.ErrCodeExpired):
		return failed("The code expired before it was used, so nothing is linked. `/kraken login` gives you a new one.")
	case errors.Is(err, login.ErrReplaced):
		return failed("This sign-in was replaced by a newer `/kraken login` (or ended by `/kraken logout`), so this code no longer works.")
	case errors.Is(err, login.ErrInvalidToken):
		return failed("The identity provider answered with an identity I couldn't verify, so nothing is linked. A platform administrator should check the bot's sign-in settings (issuer and client id).")
	}
	return failed("Signing in didn't finish: the identity provider couldn't be reached. Try `/kraken login` again in a minute.")
}

// validFor says how long a code lasts: "10 minutes", "45 seconds".
func validFor(d time.Duration) string {
	switch {
	case d >= 90*time.Second:
		return fmt.Sprintf("%d minutes", int(d.Round(time.Minute)/time.Minute))
	case d > time.Second:
		return fmt.Sprintf("%d seconds", int(d.Round(time.Second)/time.Second))
	}
	return "a moment only"
}

func (r *Registry) logout(ctx context.Context, c *call) Reply {
	if r.cfg.Identities == nil {
		return private(failed("Sign-in isn't set up on this bot, so there is nothing to sign out of."))
	}
	start := r.cfg.Now()
	id, err := r.cfg.Identities.Logout(ctx, c.req.Actor)
	switch {
	case errors.Is(err, login.ErrNotSignedIn):
		return private(Reply{Text: "You weren't signed in."})
	case err != nil:
		r.log.Error("sign-out failed", "user", c.req.Actor.UserID, "err", err)
		return private(failed("I couldn't sign you out just now. Try again in a minute."))
	}
	c.identity = &id
	r.record(ctx, c, start, store.DecisionAllowed, "anyone may sign out", store.ResultOK, "")
	return private(Reply{Text: fmt.Sprintf("Signed out: you are no longer linked to %s (%s). Enclaves that require sign-in won't let you change things until you sign in again.", id.Name(), id.IssuerHost())})
}

func (r *Registry) identityRule(ctx context.Context, c *call) Reply {
	var require bool
	switch strings.ToLower(c.args[0]) {
	case "required", "require", "on":
		require = true
	case "optional", "off":
	default:
		return private(failed(fmt.Sprintf("%q is not a rule. Say `/kraken identity required` or `/kraken identity optional`.", c.args[0])))
	}
	c.audit["rule"] = map[bool]string{true: "required", false: "optional"}[require]
	if require == c.enc.RequireIdentity {
		return private(Reply{Text: "Nothing to change: " + identityRuleWords(c.enc) + "."})
	}
	if require && c.req.Admin == nil && c.identity == nil {
		// Requiring what the owner lacks would lock them out of their own
		// enclave, this rule included.
		if r.cfg.Identities == nil {
			return private(failed("Sign-in isn't set up on this bot, so requiring it would stop everyone, you included, from changing anything here. " + signInSetup + "."))
		}
		return private(failed("Sign in first with `/kraken login`: once sign-in is required, you need it too to change anything here, this rule included."))
	}
	e, err := r.enclaves.SetRequireIdentity(ctx, c.enc.Name, require, c.prov)
	if err != nil {
		return failed(explain("change the sign-in rule", err))
	}
	if require {
		return Reply{Text: fmt.Sprintf("From now on people must sign in with `/kraken login` before deploying, running or changing anything in enclave %s. Looking around needs no sign-in.", e.Name)}
	}
	return Reply{Text: fmt.Sprintf("People no longer need to sign in before changing things in enclave %s.", e.Name)}
}

// identityRuleWords says an enclave's sign-in rule.
func identityRuleWords(e enclave.Enclave) string {
	if e.RequireIdentity {
		return "people must sign in before deploying, running or changing anything here"
	}
	return "people don't need to sign in to change things here"
}

// signInWords says, for whoami, whether the person is signed in.
func (r *Registry) signInWords(c *call) string {
	switch {
	case r.cfg.Identities == nil:
		return ""
	case c.identity != nil:
		return fmt.Sprintf(" Signed in as %s (%s).", cmp.Or(c.identity.Email, c.identity.Subject), c.identity.IssuerHost())
	case errors.Is(c.identityErr, login.ErrSignInExpired):
		return " Your sign-in has expired: `/kraken login` signs you in again."
	case errors.Is(c.identityErr, login.ErrNotSignedIn):
		return " You are not signed in: `/kraken login` signs you in."
	}
	return " Your sign-in couldn't be checked just now."
}
