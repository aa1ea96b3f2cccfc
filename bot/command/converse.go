package command

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/kraken-ops/kraken/enclave"
)

// What the registry offers the conversation loop: whether a line is a
// command, the verbs a person may use here as tools, command lines built
// from a tool call's arguments (so a tool call is checked exactly as the
// same slash command would be), and deploying a tentacle the loop wrote.

// Chat answers plain words: the conversation loop.
type Chat interface {
	Converse(ctx context.Context, req Request) Reply
}

// EnclaveName is the name of the enclave req is about: the one it names,
// or its channel's. enclave.ErrNotFound when the channel has none.
func (r *Registry) EnclaveName(ctx context.Context, req Request) (string, error) {
	if req.Enclave != "" {
		return req.Enclave, nil
	}
	e, err := r.enclaves.ByChannel(ctx, req.Channel)
	if err != nil {
		return "", err
	}
	return e.Name, nil
}

// Role is what req's actor is to req's channel's enclave: "owner",
// "member" or "other"; "" when the channel has none.
func (r *Registry) Role(ctx context.Context, req Request) (string, error) {
	e, err := r.enclaves.ByChannel(ctx, req.Channel)
	if errors.Is(err, enclave.ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	role := enclave.AccessOf(e).Role(req.Actor)
	if role == enclave.RoleNone {
		return "", nil
	}
	return role.String(), nil
}

// SetWebhooks sets what tells people their webhooks' addresses and
// secrets; the webhook triggers are made after the registry.
func (r *Registry) SetWebhooks(w Webhooks) { r.cfg.Webhooks = w }

// SetSchedules sets the scheduler /kraken resume talks to.
func (r *Registry) SetSchedules(s Schedules) { r.cfg.Schedules = s }

// SetChat sets what answers a request whose first word is not a verb.
// Without one, such a request gets a short help reply. Call it before
// the registry takes requests.
func (r *Registry) SetChat(c Chat) { r.chat = c }

// IsCommand reports whether text starts with a verb (or is empty, which
// asks for help): anything else is plain words for the conversation loop.
func (r *Registry) IsCommand(text string) bool {
	name, _ := splitVerb(text)
	_, ok := r.byName[name]
	return ok || name == ""
}

// Tools are the verbs req's actor may use in req's channel's enclave now,
// each with its parameters: what the conversation loop offers the model.
// Verbs about other enclaves do not exist here: every request is about
// the channel's own. Help and the secret form are left out (the loop
// explains itself, and secret values never go through it).
func (r *Registry) Tools(ctx context.Context, req Request) ([]Command, error) {
	access := enclave.Access{TeamID: req.Channel.TeamID}
	e, err := r.enclaves.ByChannel(ctx, req.Channel)
	switch {
	case err == nil:
		access = enclave.AccessOf(e)
	case errors.Is(err, enclave.ErrNotFound):
		members, err := r.cfg.Channels.Members(ctx, req.Channel)
		if err != nil {
			return nil, fmt.Errorf("tools: %w", err)
		}
		for _, m := range members {
			access.Members = append(access.Members, enclave.Principal{TeamID: req.Channel.TeamID, UserID: m})
		}
	default:
		return nil, fmt.Errorf("tools: %w", err)
	}
	var out []Command
	for _, v := range r.verbs {
		switch {
		case v.Name == "help" || v.Name == "secret" || v.Name == "webhooks":
			continue
		case v.Name == "login" || v.Name == "logout":
			// Signing in is the person's own act, and its code must not
			// pass through the model.
			continue
		case v.op == 0:
			out = append(out, v.Command)
		case enclave.Decide(req.Actor, access, nil, v.op).Allowed:
			out = append(out, v.Command)
		}
	}
	return out, nil
}

// plainWord is what a word argument may be: no spaces, no markup.
var plainWord = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:/-]{0,252}$`)

// userID is a Slack user id, or the console's simple names.
var userID = regexp.MustCompile(`^(?:<@)?([A-Za-z0-9._-]{1,64})(?:\|[^>]*)?>?$`)

// CommandLine writes a tool call as the command line the same request
// typed by the person would be, checking each argument against its kind.
// The registry then checks the line as it checks any other.
func (r *Registry) CommandLine(name string, args map[string]any) (string, error) {
	v, ok := r.byName[name]
	if !ok {
		return "", fmt.Errorf("there is no command %q", name)
	}
	known := map[string]bool{}
	parts := []string{name}
	for _, p := range v.Params {
		known[p.Name] = true
		raw, ok := args[p.Name]
		if !ok || raw == nil || raw == "" {
			if p.Required {
				return "", fmt.Errorf("%s needs %s (%s)", name, p.Name, p.Description)
			}
			// A later argument can't be given without this one.
			continue
		}
		s, err := argument(p, raw)
		if err != nil {
			return "", fmt.Errorf("%s: %s: %w", name, p.Name, err)
		}
		parts = append(parts, s)
	}
	for k := range args {
		if !known[k] {
			return "", fmt.Errorf("%s takes no argument %q", name, k)
		}
	}
	return strings.Join(parts, " "), nil
}

func argument(p Param, raw any) (string, error) {
	switch p.Kind {
	case ParamJSON:
		b, err := json.Marshal(raw)
		if err != nil {
			return "", err
		}
		if len(b) > maxRunInput {
			return "", errors.New("too long")
		}
		return string(b), nil
	case ParamNumber:
		switch n := raw.(type) {
		case float64:
			if n != float64(int(n)) || n < 1 {
				return "", errors.New("must be a positive whole number")
			}
			return strconv.Itoa(int(n)), nil
		case string:
			if v, err := strconv.Atoi(n); err == nil && v > 0 {
				return n, nil
			}
		}
		return "", errors.New("must be a positive whole number")
	}
	s, ok := raw.(string)
	if !ok {
		return "", errors.New("must be text")
	}
	s = strings.TrimSpace(s)
	if p.Kind == ParamPerson {
		m := userID.FindStringSubmatch(strings.TrimPrefix(s, "@"))
		if m == nil {
			return "", errors.New("must be a person's id")
		}
		return "<@" + m[1] + ">", nil
	}
	if !plainWord.MatchString(s) {
		return "", fmt.Errorf("%q is not a single word", s)
	}
	return s, nil
}

// ProposeDeploy shows a tentacle the conversation loop wrote, as a
// deploy would: the picture, what changes, and a Deploy button only the
// asker can press.
func (r *Registry) ProposeDeploy(ctx context.Context, req Request, files map[string][]byte) Reply {
	req.Text = "deploy"
	return r.dispatch(ctx, &call{req: req, verb: r.byName["deploy"], written: files})
}

// tokens is a running count of language-model tokens.
type tokens struct {
	Total int `json:"total"`
}

func usageKey(enc, user string) string {
	if user == "" {
		return "enclave/" + enc
	}
	return "user/" + enc + "/" + user
}

// RecordUsage adds what a conversation cost to its enclave's and its
// person's counts, which /kraken info shows.
func (r *Registry) RecordUsage(ctx context.Context, enc, user string, n int) error {
	for _, key := range []string{usageKey(enc, ""), usageKey(enc, user)} {
		if _, err := r.tokens.Update(ctx, key, func(t tokens, _ bool) (tokens, error) {
			t.Total += n
			return t, nil
		}); err != nil {
			return fmt.Errorf("record token usage: %w", err)
		}
	}
	return nil
}

// usage is the tokens an enclave (or one person in it) has used.
func (r *Registry) usage(ctx context.Context, enc, user string) int {
	t, _, err := r.tokens.Get(ctx, usageKey(enc, user))
	if err != nil {
		r.log.Warn("token usage not read", "enclave", enc, "err", err)
	}
	return t.Total
}
