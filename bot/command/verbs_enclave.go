package command

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/kraken-ops/kraken/enclave"
	"github.com/kraken-ops/kraken/store"
)

// define lists every verb, in the order help shows them.
func (r *Registry) define() []*verb {
	vs := []*verb{
		{Command: Command{Name: "help", Summary: "what I can do"}, run: r.help},
		{Command: Command{Name: "whoami", Summary: "who you are here and what you may do"}, run: r.whoami},
		{Command: Command{Name: "provision", Usage: "[name]", Summary: "make this channel an enclave (named after the channel unless you give a name)", Enclave: true, Params: []Param{word("name", "the enclave's name: lower-case letters, digits and dashes", false)}}, op: enclave.OpProvision, run: r.provision},
		{Command: Command{Name: "info", Summary: "this enclave's owner, mode, state and quota", Enclave: true}, op: enclave.OpInfo, run: r.info},
		{Command: Command{Name: "members", Summary: "who is in this enclave", Enclave: true}, op: enclave.OpMembers, run: r.members},
		{Command: Command{Name: "add", Usage: "@person", Summary: "add someone to this channel and enclave", Enclave: true, Params: []Param{personParam("person", "who to add")}}, op: enclave.OpAddMember, minArgs: 1, run: r.add},
		{Command: Command{Name: "remove", Usage: "@person", Summary: "remove someone from this channel and enclave", Enclave: true, Destructive: true, Params: []Param{personParam("person", "who to remove")}}, op: enclave.OpRemoveMember, minArgs: 1, run: r.remove,
			confirm: func(c *call) (string, string) {
				return "Remove " + c.args[0], fmt.Sprintf("%s will be removed from this channel and lose their rights in enclave %s.", c.args[0], c.enc.Name)
			}},
		{Command: Command{Name: "mode", Usage: "[tentacle] <preset or rwx bits>", Summary: "who may do what: " + presetNames() + ", or bits like rwxr-x---", Enclave: true, Params: []Param{word("tentacle", "a tentacle whose own mode to set; leave out for the enclave's", false), word("mode", "a preset ("+presetNames()+"), nine rwx letters, or inherit (for a tentacle)", true)}}, op: enclave.OpMode, minArgs: 1, run: r.mode},
		{Command: Command{Name: "transfer", Usage: "@person", Summary: "give this enclave to another member", Enclave: true, Destructive: true, Params: []Param{personParam("person", "the new owner, a member of the channel")}}, op: enclave.OpTransfer, minArgs: 1, run: r.transfer,
			confirm: func(c *call) (string, string) {
				return "Give enclave " + c.enc.Name + " to " + c.args[0], fmt.Sprintf("%s will own enclave %s, and you will be an ordinary member.", c.args[0], c.enc.Name)
			}},
		{Command: Command{Name: "freeze", Summary: "stop deploys, new runs and schedules (running tentacles keep running)", Enclave: true}, op: enclave.OpFreeze, run: r.freeze},
		{Command: Command{Name: "unfreeze", Summary: "let work start again", Enclave: true}, op: enclave.OpUnfreeze, run: r.unfreeze},
		{Command: Command{Name: "deprovision", Summary: "remove this enclave and everything in it", Enclave: true, Destructive: true}, op: enclave.OpDeprovision, run: r.deprovision,
			preview: r.deprovisionPreview,
			confirm: func(c *call) (string, string) {
				return "Deprovision enclave " + c.enc.Name, fmt.Sprintf("Every tentacle in enclave %s, their data and their history will be removed for good. Type %s to confirm.", c.enc.Name, c.enc.Name)
			}},
		{Command: Command{Name: "audit", Usage: "[count]", Summary: "what was asked of this enclave, by whom, and what happened (owner only)", Enclave: true, Params: []Param{number("count", "how many entries, 1 to 200", false)}}, op: enclave.OpAudit, run: r.audit},
	}
	vs = append(vs, r.identityVerbs()...)
	vs = append(vs, r.tentacleVerbs()...)
	vs = append(vs, r.runVerbs()...)
	return append(vs, r.webhookVerb(), r.secretVerb())
}

func word(name, desc string, required bool) Param {
	return Param{Name: name, Kind: ParamWord, Required: required, Description: desc}
}

func personParam(name, desc string) Param {
	return Param{Name: name, Kind: ParamPerson, Required: true, Description: desc}
}

func number(name, desc string, required bool) Param {
	return Param{Name: name, Kind: ParamNumber, Required: required, Description: desc}
}

func presetNames() string {
	var names []string
	for _, p := range enclave.Presets() {
		names = append(names, p.Name)
	}
	return strings.Join(names, ", ")
}

func (r *Registry) help(_ context.Context, _ *call) Reply {
	var b strings.Builder
	b.WriteString("Here is what I can do. Type `/kraken <command>`:\n")
	for _, v := range r.verbs {
		usage := v.Name
		if v.Usage != "" {
			usage += " " + v.Usage
		}
		fmt.Fprintf(&b, "• `%s`: %s\n", usage, v.Summary)
	}
	b.WriteString("Commands that remove or replace things ask you to confirm first.")
	return private(Reply{Text: b.String()})
}

func (r *Registry) whoami(ctx context.Context, c *call) Reply {
	who := fmt.Sprintf("You are <@%s>", c.req.Actor.UserID)
	if c.req.ActorEmail != "" {
		who += " (" + c.req.ActorEmail + ")"
	}
	r.identify(ctx, c)
	signIn := r.signInWords(c)
	e, err := r.enclaves.ByChannel(ctx, c.req.Channel)
	if errors.Is(err, enclave.ErrNotFound) {
		return private(Reply{Text: who + "." + signIn + " This channel has no enclave yet; `/kraken provision` makes one."})
	}
	if err != nil {
		return private(failed(explain("look up this channel's enclave", err)))
	}
	a := enclave.AccessOf(e)
	role := a.Role(c.req.Actor)
	var can []string
	for _, op := range []enclave.Op{enclave.OpList, enclave.OpDeploy, enclave.OpRun, enclave.OpMode} {
		if enclave.Decide(c.req.Actor, a, nil, op).Allowed {
			can = append(can, op.Name())
		}
	}
	text := fmt.Sprintf("%s, %s of enclave %s.", who, roleWords(role), e.Name) + signIn
	if e.RequireIdentity {
		text += " Here " + identityRuleWords(e) + "."
	}
	if len(can) == 0 {
		text += " You can't do anything here right now."
	} else {
		text += " Here you can: " + strings.Join(can, ", ") + "."
	}
	return private(Reply{Text: text})
}

func roleWords(r enclave.Role) string {
	switch r {
	case enclave.RoleOwner:
		return "the owner"
	case enclave.RoleMember:
		return "a member"
	case enclave.RoleOther:
		return "not a member"
	}
	return "unknown to"
}

func (r *Registry) provision(ctx context.Context, c *call) Reply {
	name := ""
	if len(c.args) > 0 {
		name = strings.ToLower(c.args[0])
	} else if c.has {
		name = c.enc.Name
	} else {
		name = enclave.NameFor(c.req.Channel.Name)
	}
	if name == "" {
		return failed("I can't make an enclave name from this channel's name. Give one: `/kraken provision <name>` (lower-case letters, digits and dashes).")
	}
	members := c.channelMembers
	if c.has {
		members = c.enc.Members
	}
	c.audit["enclave"] = name
	e, err := r.enclaves.Provision(ctx, c.req.Channel, name, c.req.Actor.UserID, members, c.prov)
	if errors.Is(err, enclave.ErrChannelHasEnclave) {
		return private(failed(fmt.Sprintf("This channel already has enclave %s. `/kraken info` shows it.", e.Name)))
	}
	if err != nil {
		r.log.Warn("provision failed", "enclave", name, "err", err)
		return failed(explain("provision enclave "+name, err))
	}
	c.enc, c.has = e, true
	return Reply{Text: fmt.Sprintf("Enclave *%s* is ready, owned by <@%s>. The channel's members can deploy and run tentacles (mode %s). Try `/kraken deploy hello-fanout`, then `/kraken run hello-fanout`.",
		e.Name, e.Owner, e.Mode.Describe())}
}

func (r *Registry) info(ctx context.Context, c *call) Reply {
	e := c.enc
	tentacles := "none yet"
	if list, err := r.tentacles.List(ctx, e.Name); err == nil && len(list) > 0 {
		tentacles = strconv.Itoa(len(list))
	}
	fields := []Field{
		{"Enclave", e.Name},
		{"Channel", "#" + e.Channel.Name},
		{"Owner", "<@" + e.Owner + ">"},
		{"State", stateWords(e)},
		{"Mode", e.Mode.Describe()},
		{"Members", strconv.Itoa(len(e.Members))},
		{"Tentacles", tentacles},
	}
	if q := quotaWords(e.Quota); q != "" {
		fields = append(fields, Field{"Quota", q})
	}
	if !e.CreatedAt.IsZero() {
		fields = append(fields, Field{"Since", e.CreatedAt.UTC().Format("2 Jan 2006")})
	}
	if used := r.usage(ctx, e.Name, ""); used > 0 {
		fields = append(fields, Field{"AI assistant", fmt.Sprintf("%d tokens so far, %d of them yours", used, r.usage(ctx, e.Name, c.req.Actor.UserID))})
	}
	for _, t := range sortedNames(e.TentacleModes) {
		fields = append(fields, Field{"Mode of " + t, e.TentacleModes[t].Describe()})
	}
	fields = append(fields, r.servicesFields(ctx, e.Name)...)
	text := fmt.Sprintf("Enclave *%s* is %s.", e.Name, stateWords(e))
	if e.NeedsOwner {
		text += fmt.Sprintf(" Its owner <@%s> left the channel: they can hand it over with `/kraken transfer @person` once back, or a platform admin can.", e.Owner)
	}
	return Reply{Text: text, Fields: fields}
}

// stateWords says an enclave's state for people.
func stateWords(e enclave.Enclave) string {
	return enclave.StateOf(e).String()
}

func quotaWords(q enclave.Quota) string {
	var parts []string
	if q.CPU != "" {
		parts = append(parts, q.CPU+" CPU")
	}
	if q.Memory != "" {
		parts = append(parts, q.Memory+" memory")
	}
	if q.Pods > 0 {
		parts = append(parts, strconv.Itoa(q.Pods)+" tentacle replicas")
	}
	return strings.Join(parts, ", ")
}

func (r *Registry) members(_ context.Context, c *call) Reply {
	e := c.enc
	lines := []string{fmt.Sprintf("<@%s> (owner)", e.Owner)}
	for _, m := range e.Members {
		if m != e.Owner {
			lines = append(lines, "<@"+m+">")
		}
	}
	return Reply{Text: fmt.Sprintf("Enclave %s has %d people:\n• %s", e.Name, len(lines), strings.Join(lines, "\n• "))}
}

// person reads the @person argument.
func person(c *call) (string, Reply, bool) {
	u, ok := parseUser(c.args[0])
	if !ok {
		return "", private(failed(fmt.Sprintf("%q is not a person. Mention them, like `/kraken %s @alex`.", c.args[0], c.verb.Name))), false
	}
	c.audit["person"] = u
	return u, Reply{}, true
}

func (r *Registry) add(ctx context.Context, c *call) Reply {
	u, rep, ok := person(c)
	if !ok {
		return rep
	}
	if c.enc.IsMember(u) {
		return private(Reply{Text: fmt.Sprintf("<@%s> is already a member.", u)})
	}
	if err := r.cfg.Channels.Invite(ctx, c.enc.Channel, u); err != nil {
		r.log.Warn("invite failed", "user", u, "err", err)
		return failed(fmt.Sprintf("I couldn't add <@%s> to the channel: %s.", u, plainOr(err, "check the name and that I may invite people here")))
	}
	if _, err := r.enclaves.MemberJoined(ctx, c.enc.Name, u, c.prov); err != nil {
		return failed(explain("record the new member", err))
	}
	return Reply{Text: fmt.Sprintf("<@%s> is now a member of this channel and enclave %s.", u, c.enc.Name)}
}

func (r *Registry) remove(ctx context.Context, c *call) Reply {
	u, rep, ok := person(c)
	if !ok {
		return rep
	}
	if u == c.enc.Owner {
		return failed(fmt.Sprintf("<@%s> owns this enclave. Give it to someone else first with `/kraken transfer @person`.", u))
	}
	if !c.enc.IsMember(u) {
		return private(failed(fmt.Sprintf("<@%s> is not a member.", u)))
	}
	if err := r.cfg.Channels.Kick(ctx, c.enc.Channel, u); err != nil {
		r.log.Warn("kick failed", "user", u, "err", err)
		return failed(fmt.Sprintf("I couldn't remove <@%s> from the channel: %s.", u, plainOr(err, "I may not be allowed to remove people here")))
	}
	if _, err := r.enclaves.MemberLeft(ctx, c.enc.Name, u, c.prov); err != nil {
		return failed(explain("record the removal", err))
	}
	return Reply{Text: fmt.Sprintf("<@%s> was removed from this channel and enclave %s.", u, c.enc.Name)}
}

func plainOr(err error, fallback string) string {
	if m := plainMessage(err); m != "" {
		return m
	}
	return fallback
}

func (r *Registry) mode(ctx context.Context, c *call) Reply {
	target, text := "", c.args[0]
	if len(c.args) >= 2 {
		target, text = c.args[0], c.args[1]
	}
	c.audit["mode"] = text
	if target != "" {
		c.audit["tentacle"] = target
	}
	var m *enclave.Mode
	if !(target != "" && strings.EqualFold(text, "inherit")) {
		parsed, err := enclave.ParseMode(text)
		if err != nil {
			return private(failed(capitalize(strings.TrimPrefix(err.Error(), "invalid mode: ")) + "."))
		}
		m = &parsed
	}
	e, err := r.enclaves.SetMode(ctx, c.enc.Name, target, m, c.prov)
	if err != nil {
		return failed(explain("change the mode", err))
	}
	switch {
	case target == "":
		return Reply{Text: fmt.Sprintf("Enclave %s's mode is now %s.", e.Name, e.Mode.Describe())}
	case m == nil:
		return Reply{Text: fmt.Sprintf("Tentacle %s follows the enclave's mode again (%s).", target, e.Mode.Describe())}
	}
	return Reply{Text: fmt.Sprintf("Tentacle %s's own mode is now %s; the enclave's mode (%s) still applies too.", target, m.Describe(), e.Mode.Describe())}
}

func (r *Registry) transfer(ctx context.Context, c *call) Reply {
	u, rep, ok := person(c)
	if !ok {
		return rep
	}
	e, err := r.enclaves.Transfer(ctx, c.enc.Name, u, c.prov)
	switch {
	case errors.Is(err, enclave.ErrNotMember):
		return failed(fmt.Sprintf("<@%s> is not in this channel. Add them first with `/kraken add <@%s>`.", u, u))
	case err != nil:
		return failed(explain("transfer the enclave", err))
	}
	return Reply{Text: fmt.Sprintf("<@%s> now owns enclave %s.", e.Owner, e.Name)}
}

func (r *Registry) freeze(ctx context.Context, c *call) Reply {
	e, err := r.enclaves.Apply(ctx, c.enc.Name, enclave.EventOwnerFroze, c.prov)
	if err != nil {
		return failed(explain("freeze the enclave", err))
	}
	return Reply{Text: fmt.Sprintf("Enclave %s is frozen: running tentacles keep running, but nothing new is deployed or started and schedules are paused. `/kraken unfreeze` lets work start again.", e.Name)}
}

func (r *Registry) unfreeze(ctx context.Context, c *call) Reply {
	e, err := r.enclaves.Apply(ctx, c.enc.Name, enclave.EventOwnerUnfroze, c.prov)
	if err != nil {
		return failed(explain("unfreeze the enclave", err))
	}
	if enclave.StateOf(e).Phase == enclave.PhaseFrozen {
		return Reply{Text: fmt.Sprintf("You lifted your freeze, but enclave %s stays frozen while its channel is archived.", e.Name)}
	}
	return Reply{Text: fmt.Sprintf("Enclave %s is active again.", e.Name)}
}

func (r *Registry) deprovision(ctx context.Context, c *call) Reply {
	if err := r.enclaves.Deprovision(ctx, c.enc.Name, c.prov); err != nil {
		r.log.Warn("deprovision failed", "enclave", c.enc.Name, "err", err)
		return failed(explain("deprovision enclave "+c.enc.Name, err))
	}
	return Reply{Text: fmt.Sprintf("Enclave %s and everything in it has been removed. `/kraken provision` would start a new one.", c.enc.Name)}
}

func (r *Registry) audit(ctx context.Context, c *call) Reply {
	n := 20
	if len(c.args) > 0 {
		v, err := strconv.Atoi(c.args[0])
		if err != nil || v < 1 || v > 200 {
			return private(failed("Give a count from 1 to 200, like `/kraken audit 50`."))
		}
		n = v
	}
	entries, err := r.cfg.Store.ListAudit(ctx, store.AuditQuery{Enclave: c.enc.Name, Limit: n})
	if err != nil {
		return failed(explain("read the audit log", err))
	}
	if len(entries) == 0 {
		return private(Reply{Text: "Nothing has been asked of this enclave yet."})
	}
	lines := make([]string, 0, len(entries))
	for _, e := range entries {
		lines = append(lines, auditLine(e))
	}
	slices.Reverse(lines)
	return private(Reply{Text: fmt.Sprintf("The last %d things asked of enclave %s, oldest first:\n%s", len(lines), c.enc.Name, strings.Join(lines, "\n"))})
}

// auditLine says one audit entry in a line.
func auditLine(e store.AuditEntry) string {
	who := "<@" + e.Actor + ">"
	if strings.HasPrefix(e.Actor, "admin:") {
		who = "platform admin " + strings.TrimPrefix(e.Actor, "admin:")
	}
	what := "`" + strings.TrimSpace(e.Verb+" "+e.Args["args"]) + "`"
	outcome := "done"
	switch {
	case e.Decision == store.DecisionDenied:
		outcome = "refused: " + e.Reason
	case e.Result == store.ResultPendingConfirmation:
		outcome = "waiting for confirmation"
	case e.Result == store.ResultError:
		outcome = "failed"
	}
	return fmt.Sprintf("• %s %s asked %s (%s, via %s): %s", e.At.UTC().Format("2 Jan 15:04"), who, what, e.Duration.Round(1e6), e.Via, outcome)
}
