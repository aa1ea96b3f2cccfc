package enclave

import "fmt"

// Principal is a person: a Slack user in a Slack team (workspace).
//
// Compare principals with Same, never with ==: two principals are the same
// person only when both ids match and neither is empty, and HasIdentity
// says something about the request, not about who the person is.
type Principal struct {
	TeamID string
	UserID string
	// HasIdentity: the person has signed in with /kraken login, so what
	// they do can be tied to an identity outside Slack. Enclaves may
	// require it for anything that changes or runs things.
	HasIdentity bool
}

// Valid reports whether both ids are set.
func (p Principal) Valid() bool { return p.TeamID != "" && p.UserID != "" }

// Same reports whether p and q are the same person: both valid, same team,
// same user.
func (p Principal) Same(q Principal) bool {
	return p.Valid() && q.Valid() && p.TeamID == q.TeamID && p.UserID == q.UserID
}

func (p Principal) String() string { return p.TeamID + "/" + p.UserID }

// Role is what a person is to an enclave.
type Role uint8

const (
	// RoleNone: not someone the enclave knows at all (no valid id, or
	// from another workspace and not in the channel). Allowed nothing.
	RoleNone Role = iota
	// RoleOwner: the enclave's owner.
	RoleOwner
	// RoleMember: a member of the enclave's Slack channel.
	RoleMember
	// RoleOther: anyone else in the enclave's workspace.
	RoleOther
)

func (r Role) String() string {
	switch r {
	case RoleOwner:
		return "owner"
	case RoleMember:
		return "member"
	case RoleOther:
		return "other"
	}
	return "nobody"
}

// who names the people holding a role, for reasons.
func (r Role) who() string {
	switch r {
	case RoleOwner:
		return "the owner"
	case RoleMember:
		return "members of this channel"
	case RoleOther:
		return "people outside this channel"
	}
	return "nobody"
}

// tentacleWho names the people holding a role on a tentacle.
func (r Role) tentacleWho() string {
	if r == RoleOwner {
		return "its owners (the enclave's owner and whoever deployed it)"
	}
	return r.who()
}

// Op is an operation someone asks the bot to do. The constants are the
// whole list: Decide refuses any other value.
//
// An op is one of:
//   - governed by the mode: Need is the right it takes (read, write or
//     execute), checked against the enclave's mode and the tentacle's;
//   - owner-only (OwnerOnly): only the enclave's owner, whatever the mode
//     says; Need then only says what kind of op it is (PermRead for
//     audit, PermWrite for the rest), which decides whether a frozen
//     enclave or the sign-in requirement stops it;
//   - OpProvision: in a channel with no enclave, any member of the
//     channel; in an enclave whose provisioning did not finish, its owner
//     (provisioning again finishes it). Its Need (PermWrite) is not
//     checked against a mode: there is none yet.
//
// Help and a whoami outside any enclave need no right and are not ops.
type Op uint8

const (
	opInvalid Op = iota

	// OpProvision makes an enclave for a channel (see Op).
	OpProvision

	// Read (r).
	OpList      // list tentacles
	OpStatus    // a tentacle's status
	OpInfo      // the enclave's details
	OpMembers   // who is in the enclave
	OpLogs      // a tentacle's logs
	OpEvents    // the cluster's events for a tentacle
	OpRuns      // run history
	OpRevisions // a tentacle's deployed revisions
	OpDescribe  // a tentacle's workflow (nodes, edges, contract)
	OpWhoami    // your role in this enclave

	// Write (w).
	OpDeploy
	OpUndeploy
	OpRollback
	OpAddMember
	OpRemoveMember
	OpSync // sync the member list from the channel

	// Execute (x).
	OpRun
	OpRestart
	OpCancel // cancel a run in progress

	// Owner only, whatever the mode.
	OpMode        // change the enclave's or a tentacle's mode
	OpTransfer    // give the enclave to another owner
	OpFreeze      // freeze the enclave
	OpUnfreeze    // unfreeze it
	OpDeprovision // remove the enclave and everything in it
	OpAudit       // read the audit log
	OpIdentity    // require (or not) a signed-in identity for changes

	opCount
)

type opKind uint8

const (
	kindRead opKind = iota + 1
	kindWrite
	kindExec
	kindAdmin // owner-only and changes things
	kindAudit // owner-only and only reads
	kindProvision
)

type opInfo struct {
	name string
	kind opKind
	// verb follows "can't"/"can": "deploy tentacles".
	verb string
	// gerund follows "before": "deploying".
	gerund string
	// participle follows "nothing can be": "deployed".
	participle string
}

var ops = [opCount]opInfo{
	OpProvision: {"provision", kindProvision, "provision an enclave for this channel", "provisioning", "provisioned"},

	OpList:      {"list", kindRead, "list tentacles", "listing tentacles", "listed"},
	OpStatus:    {"status", kindRead, "see tentacles' status", "looking at status", "seen"},
	OpInfo:      {"info", kindRead, "see this enclave's details", "looking at details", "seen"},
	OpMembers:   {"members", kindRead, "see who is in this enclave", "looking at members", "seen"},
	OpLogs:      {"logs", kindRead, "read logs", "reading logs", "read"},
	OpEvents:    {"events", kindRead, "read cluster events", "reading events", "read"},
	OpRuns:      {"runs", kindRead, "see run history", "looking at runs", "seen"},
	OpRevisions: {"revisions", kindRead, "see deployed revisions", "looking at revisions", "seen"},
	OpDescribe:  {"describe", kindRead, "look at a tentacle's workflow", "looking at workflows", "seen"},
	OpWhoami:    {"whoami", kindRead, "see your role", "looking at your role", "seen"},

	OpDeploy:       {"deploy", kindWrite, "deploy", "deploying", "deployed"},
	OpUndeploy:     {"undeploy", kindWrite, "undeploy tentacles", "undeploying", "undeployed"},
	OpRollback:     {"rollback", kindWrite, "roll back tentacles", "rolling back", "rolled back"},
	OpAddMember:    {"add", kindWrite, "add members", "adding members", "changed"},
	OpRemoveMember: {"remove", kindWrite, "remove members", "removing members", "changed"},
	OpSync:         {"sync", kindWrite, "sync members", "syncing members", "changed"},

	OpRun:     {"run", kindExec, "run tentacles", "running tentacles", "run"},
	OpRestart: {"restart", kindExec, "restart tentacles", "restarting tentacles", "restarted"},
	OpCancel:  {"cancel", kindExec, "cancel runs", "cancelling runs", "cancelled"},

	OpMode:        {"mode", kindAdmin, "change who may do what here", "changing who may do what", "changed"},
	OpTransfer:    {"transfer", kindAdmin, "give this enclave to someone else", "giving this enclave away", "changed"},
	OpFreeze:      {"freeze", kindAdmin, "freeze this enclave", "freezing this enclave", "changed"},
	OpUnfreeze:    {"unfreeze", kindAdmin, "unfreeze this enclave", "unfreezing this enclave", "changed"},
	OpDeprovision: {"deprovision", kindAdmin, "deprovision this enclave", "deprovisioning", "changed"},
	OpAudit:       {"audit", kindAudit, "read the audit log", "reading the audit log", "read"},
	OpIdentity:    {"identity", kindAdmin, "decide whether people must sign in before changing things here", "changing the sign-in rule", "changed"},
}

func (o Op) info() (opInfo, bool) {
	if o <= opInvalid || o >= opCount {
		return opInfo{}, false
	}
	return ops[o], true
}

// Ops lists every op, in declaration order.
func Ops() []Op {
	out := make([]Op, 0, opCount-1)
	for o := opInvalid + 1; o < opCount; o++ {
		out = append(out, o)
	}
	return out
}

// ParseOp finds an op by its Name.
func ParseOp(name string) (Op, bool) {
	for o := opInvalid + 1; o < opCount; o++ {
		if ops[o].name == name {
			return o, true
		}
	}
	return opInvalid, false
}

// Valid reports whether o is one of the constants.
func (o Op) Valid() bool { _, ok := o.info(); return ok }

// Name is the command's word: "deploy", "add", "mode".
func (o Op) Name() string {
	if i, ok := o.info(); ok {
		return i.name
	}
	return ""
}

func (o Op) String() string {
	if i, ok := o.info(); ok {
		return i.name
	}
	return fmt.Sprintf("Op(%d)", uint8(o))
}

// Need is the right the op takes (see Op for owner-only ops and
// OpProvision). An unknown op needs 0, which no one holds.
func (o Op) Need() Perm {
	i, ok := o.info()
	if !ok {
		return 0
	}
	switch i.kind {
	case kindRead, kindAudit:
		return PermRead
	case kindExec:
		return PermExec
	}
	return PermWrite
}

// OwnerOnly reports whether only the enclave's owner may do o, whatever
// the mode says.
func (o Op) OwnerOnly() bool {
	i, ok := o.info()
	return ok && (i.kind == kindAdmin || i.kind == kindAudit)
}

// Provision reports whether o is the op that makes an enclave, which is
// decided by channel membership rather than by a mode.
func (o Op) Provision() bool { return o == OpProvision }

// Changes reports whether o changes or runs something: those are the ops
// a frozen enclave and the sign-in requirement may stop.
func (o Op) Changes() bool {
	i, ok := o.info()
	return !ok || (i.kind != kindRead && i.kind != kindAudit)
}

// Access is what Decide needs to know about an enclave (or, for
// OpProvision, about a channel that has none).
type Access struct {
	// TeamID is the workspace the enclave's channel is in: "other" means
	// someone else in this workspace.
	TeamID string
	// Owner is the enclave's owner. Empty only for a channel with no
	// enclave (State.Phase == PhaseNone).
	Owner Principal
	// Members are the people in the enclave's Slack channel. Entries with
	// an empty id match no one.
	Members []Principal
	// Mode says who may do what. The zero Mode allows no one anything but
	// the owner-only ops.
	Mode Mode
	// State is the enclave's lifecycle state; its zero value is "no
	// enclave", where only OpProvision can be allowed.
	State State
	// RequireIdentity: people must have signed in (Principal.HasIdentity)
	// before anything that changes or runs things.
	RequireIdentity bool
}

// AccessOf fills an Access from an Enclave as the cluster records it: its
// workspace, owner, members, mode, sign-in rule and lifecycle state.
func AccessOf(e Enclave) Access {
	members := make([]Principal, 0, len(e.Members))
	for _, m := range e.Members {
		members = append(members, Principal{TeamID: e.Channel.TeamID, UserID: m})
	}
	return Access{
		TeamID:          e.Channel.TeamID,
		Owner:           Principal{TeamID: e.Channel.TeamID, UserID: e.Owner},
		Members:         members,
		Mode:            e.Mode,
		State:           StateOf(e),
		RequireIdentity: e.RequireIdentity,
	}
}

// TentacleAccessOf is what Decide needs about tentacle name in e, which
// deployedBy (a Slack user id, or "") deployed.
func TentacleAccessOf(e Enclave, name, deployedBy string) *TentacleAccess {
	t := &TentacleAccess{Name: name}
	if deployedBy != "" {
		t.Owner = Principal{TeamID: e.Channel.TeamID, UserID: deployedBy}
	}
	if m, ok := e.TentacleModes[name]; ok {
		t.Mode = &m
	}
	return t
}

// Role is what p is to the enclave: its owner, a member of its channel,
// someone else in its workspace, or nobody.
func (a Access) Role(p Principal) Role {
	if !p.Valid() {
		return RoleNone
	}
	if p.Same(a.Owner) {
		return RoleOwner
	}
	for _, m := range a.Members {
		if p.Same(m) {
			return RoleMember
		}
	}
	if a.TeamID != "" && p.TeamID == a.TeamID {
		return RoleOther
	}
	return RoleNone
}

// TentacleAccess is what Decide needs to know about a tentacle the op is
// about.
type TentacleAccess struct {
	Name string
	// Owner is who deployed the tentacle, if recorded. On the tentacle
	// they count as its owner (as does the enclave's owner); in the
	// enclave they keep their own role.
	Owner Principal
	// Mode is the tentacle's own mode. Nil: the enclave's mode alone
	// decides.
	Mode *Mode
}

// Decision is Decide's answer. Reason is plain language for the person
// (and the audit log), whether allowed or not.
type Decision struct {
	Allowed bool
	// Role is what the person is to the enclave.
	Role   Role
	Reason string
}

// Decide says whether p may do op in the enclave a, on the tentacle t
// (nil when the op is not about one). It fails closed: an unknown op, a
// person or enclave with missing ids, an inconsistent state or a damaged
// mode are refused, with a reason.
//
// The checks, in order, each refusing with its own reason:
//
//  1. the op, the person and the enclave's record are sound (a damaged
//     mode still lets the owner do the owner-only ops, so they can set
//     it again);
//  2. the person's role: owner, member, other (same workspace), or nobody;
//  3. owner-only ops: the owner, whatever the modes say;
//     every other op: the enclave's mode must give the role the op's
//     right, and then the tentacle's own mode (if it has one) must give
//     the person's role on the tentacle that right too. Both layers must
//     pass, so a tentacle's mode can narrow what the enclave allows but
//     never widen it;
//  4. the lifecycle state (below);
//  5. the sign-in requirement, for ops that change or run things.
//
// What each state allows (besides looking, which all but gone allow):
//
//   - active: everything.
//   - provisioning, provisioning failed: the owner may provision again (to
//     finish it) or deprovision; nothing else.
//   - frozen: no writes (deploy, undeploy, rollback, member changes,
//     sync) and no new runs (run, restart): a frozen enclave starts no
//     new work, just as its cron is paused, while the tentacles already
//     running keep serving their triggers. Cancelling a run in progress
//     is allowed: stopping work is always safe. The owner keeps every
//     owner-only op (mode, transfer, freeze, deprovision, audit,
//     identity) and unfreeze, except that an enclave frozen only because
//     its channel is archived unfreezes when the channel is unarchived.
//   - flagged for deprovision (channel deleted): the owner may deprovision
//     or transfer it; runs in progress may be cancelled; nothing else.
//   - deprovisioning: looking only.
//   - gone, or no enclave (for any op but provision): nothing.
func Decide(p Principal, a Access, t *TentacleAccess, op Op) Decision {
	info, ok := op.info()
	if !ok {
		return deny(RoleNone, "the bot does not know this operation, so it is not allowed")
	}
	if !p.Valid() {
		return deny(RoleNone, "the bot could not tell who you are, so nothing is allowed")
	}
	if a.TeamID == "" {
		return deny(RoleNone, "the bot could not tell which workspace this channel is in, so nothing is allowed here")
	}
	if !a.State.Valid() {
		return deny(RoleNone, fmt.Sprintf("this enclave's record is inconsistent (%s), so nothing is allowed until an operator repairs it", a.State))
	}
	role := a.Role(p)
	if op == OpProvision {
		return decideProvision(p, a, t, role, info)
	}
	switch a.State.Phase {
	case PhaseNone:
		return deny(role, "this channel has no enclave yet: /kraken provision makes one")
	case PhaseGone:
		return deny(role, "this enclave has been deprovisioned")
	}
	if !a.Owner.Valid() {
		return deny(role, "this enclave has no owner on record, so nothing is allowed until an operator repairs it")
	}
	if role == RoleNone {
		return deny(role, "you are not in this channel or its workspace, so you can't do anything in this enclave")
	}

	var why string
	if op.OwnerOnly() {
		if role != RoleOwner {
			return deny(role, "only the owner can "+info.verb)
		}
		why = "you own this enclave"
	} else {
		// A damaged mode allows nothing but the owner-only ops, among
		// them setting the mode again.
		if !a.Mode.Valid() {
			return deny(role, fmt.Sprintf("this enclave's mode is damaged (%s), so nothing is allowed until the owner sets it again with /kraken mode", a.Mode))
		}
		if t != nil && t.Mode != nil && !t.Mode.Valid() {
			return deny(role, fmt.Sprintf("tentacle %q's mode is damaged (%s), so nothing is allowed on it until the owner sets it again with /kraken mode", t.Name, *t.Mode))
		}
		need := op.Need()
		have := a.Mode.Perm(role)
		if !have.Has(need) {
			return deny(role, bitsReason(role, info.verb, "this enclave's mode is "+a.Mode.Describe(), have))
		}
		why = fmt.Sprintf("this enclave's mode, %s, lets %s %s", a.Mode.Describe(), role.who(), info.verb)
		if t != nil && t.Mode != nil {
			trole := role
			if p.Same(a.Owner) || p.Same(t.Owner) {
				trole = RoleOwner
			}
			thave := t.Mode.Perm(trole)
			if !thave.Has(need) {
				return deny(role, fmt.Sprintf("tentacle %q has its own mode, %s, %s, so you can't %s there", t.Name, t.Mode.Describe(), lets(trole.tentacleWho(), thave), info.verb))
			}
			why += fmt.Sprintf(", and so does tentacle %q's own mode, %s", t.Name, t.Mode.Describe())
		}
	}

	if r := stateRefusal(a.State, op, info); r != "" {
		return deny(role, r)
	}
	if op.Changes() && a.RequireIdentity && !p.HasIdentity {
		return deny(role, "you need to sign in with /kraken login before "+info.gerund+" here")
	}
	return Decision{Allowed: true, Role: role, Reason: why}
}

func deny(r Role, reason string) Decision { return Decision{Role: r, Reason: reason} }

// bitsReason explains a refusal by the mode: "members of this channel
// can't deploy here: this enclave's mode is rwxr-x--- (team-run), which
// only lets them look and run tentacles. The owner can change that with
// /kraken mode."
func bitsReason(r Role, verb, modeIs string, have Perm) string {
	if r == RoleOwner {
		return fmt.Sprintf("even the owner can't %s here: %s, %s. The owner can change that with /kraken mode", verb, modeIs, lets("them", have))
	}
	return fmt.Sprintf("%s can't %s here: %s, %s. The owner can change that with /kraken mode", r.who(), verb, modeIs, lets("them", have))
}

// lets says what have allows whom: "which only lets them look".
func lets(whom string, have Perm) string {
	if have == 0 {
		return "which gives " + whom + " no rights"
	}
	return "which only lets " + whom + " " + have.words()
}

// stateRefusal is why the enclave's state refuses op, or "".
func stateRefusal(s State, op Op, info opInfo) string {
	if !op.Changes() {
		if s.Phase == PhaseGone {
			return "this enclave has been deprovisioned"
		}
		return ""
	}
	switch s.Phase {
	case PhaseActive:
		return ""
	case PhaseProvisioning, PhaseProvisionFailed:
		if op == OpDeprovision {
			return ""
		}
		if s.Phase == PhaseProvisioning {
			return "this enclave is still being provisioned: you can look around, but nothing can be " + info.participle + " until it is ready"
		}
		return "provisioning this enclave did not finish: the owner can run /kraken provision again to finish it, or deprovision it; until then you can only look around"
	case PhaseFrozen:
		switch {
		case op == OpUnfreeze && s.Archived && !s.OwnerFrozen:
			return "this enclave is frozen because its channel is archived: it unfreezes when the channel is unarchived"
		case op.OwnerOnly(), op == OpCancel:
			return ""
		}
		switch {
		case s.Archived && s.OwnerFrozen:
			return "this enclave is frozen because its channel is archived and the owner froze it: nothing can be " + info.participle + " until the channel is unarchived and the owner unfreezes it"
		case s.Archived:
			return "this enclave is frozen because its channel is archived: nothing can be " + info.participle + " until it is unarchived"
		case s.OwnerFrozen:
			return "the owner froze this enclave: nothing can be " + info.participle + " until they unfreeze it"
		}
		return "this enclave is frozen: nothing can be " + info.participle + " until it is unfrozen"
	case PhaseFlagged:
		if op == OpDeprovision || op == OpTransfer || op == OpCancel {
			return ""
		}
		return "this enclave's channel was deleted, so it is frozen until its owner confirms deprovisioning: the owner can only deprovision it or give it to someone else"
	case PhaseDeprovisioning:
		return "this enclave is being deprovisioned: you can still look, but nothing else"
	}
	return "this enclave has been deprovisioned"
}

// decideProvision: in a channel with no enclave, any member of the
// channel may provision; in an enclave whose provisioning has not
// finished, the owner may provision again to finish it.
func decideProvision(p Principal, a Access, t *TentacleAccess, role Role, info opInfo) Decision {
	if t != nil {
		return deny(role, "provisioning is for a channel, not a tentacle")
	}
	var why string
	switch a.State.Phase {
	case PhaseNone:
		if role != RoleMember {
			return deny(role, "only members of this channel can provision an enclave for it")
		}
		why = "you are a member of this channel, which has no enclave yet"
	case PhaseProvisioning, PhaseProvisionFailed:
		if !a.Owner.Valid() {
			return deny(role, "this enclave has no owner on record, so nothing is allowed until an operator repairs it")
		}
		if role != RoleOwner {
			return deny(role, "only the owner can finish provisioning this enclave")
		}
		why = "you own this enclave, and provisioning again finishes it"
	case PhaseDeprovisioning:
		return deny(role, "this channel's enclave is being deprovisioned: provision a new one once that has finished")
	case PhaseGone:
		return deny(role, "this enclave has been deprovisioned")
	case PhaseFlagged:
		return deny(role, "this enclave's channel was deleted: it can only be deprovisioned")
	default:
		return deny(role, "this channel already has an enclave")
	}
	if a.RequireIdentity && !p.HasIdentity {
		return deny(role, "you need to sign in with /kraken login before "+info.gerund+" here")
	}
	return Decision{Allowed: true, Role: role, Reason: why}
}
