package enclave

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// The people of the tests. The enclave lives in workspace T1.
var (
	owner    = Principal{TeamID: "T1", UserID: "UOWNER"}
	member   = Principal{TeamID: "T1", UserID: "UMEMBER"}
	member2  = Principal{TeamID: "T1", UserID: "UMEMBER2"}
	other    = Principal{TeamID: "T1", UserID: "UOTHER"}
	external = Principal{TeamID: "T2", UserID: "UEXT"}  // another org's person in the (shared) channel
	stranger = Principal{TeamID: "T2", UserID: "USTRA"} // another org's person, not in the channel
)

func access(m Mode, s State) Access {
	return Access{
		TeamID:  "T1",
		Owner:   owner,
		Members: []Principal{member, member2, external},
		Mode:    m,
		State:   s,
	}
}

// The ops by kind, written out by hand from the design rather than read
// from the code.
var (
	readOps      = []Op{OpList, OpStatus, OpInfo, OpMembers, OpLogs, OpEvents, OpRuns, OpRevisions, OpDescribe, OpWhoami}
	writeOps     = []Op{OpDeploy, OpUndeploy, OpRollback, OpAddMember, OpRemoveMember, OpSync}
	execOps      = []Op{OpRun, OpRestart, OpCancel}
	ownerOnlyOps = []Op{OpMode, OpTransfer, OpFreeze, OpUnfreeze, OpDeprovision, OpAudit, OpIdentity}
	modeOps      = slices.Concat(readOps, writeOps, execOps)
)

// letter is the permission letter an op needs, by the tables above: 'r',
// 'w' or 'x'.
func letter(op Op) byte {
	switch {
	case slices.Contains(readOps, op):
		return 'r'
	case slices.Contains(writeOps, op):
		return 'w'
	case slices.Contains(execOps, op):
		return 'x'
	}
	panic(fmt.Sprintf("%v is not governed by the mode", op))
}

// roleOf maps a test principal to its role index in "rwxrwxrwx": 0 owner,
// 1 member, 2 other.
var roles = []struct {
	p    Principal
	role Role
	idx  int
}{
	{owner, RoleOwner, 0},
	{member, RoleMember, 1},
	{external, RoleMember, 1},
	{other, RoleOther, 2},
}

// allowedByLetters is the expectation from a mode's written letters:
// the role's triplet must carry the op's letter.
func allowedByLetters(letters string, roleIdx int, op Op) bool {
	l := letter(op)
	return strings.IndexByte(letters[roleIdx*3:roleIdx*3+3], l) >= 0
}

func TestOps(t *testing.T) {
	all := Ops()
	if len(all) != 1+len(readOps)+len(writeOps)+len(execOps)+len(ownerOnlyOps) {
		t.Fatalf("Ops() has %d ops; the test knows %d", len(all), 1+len(modeOps)+len(ownerOnlyOps))
	}
	names := map[string]bool{}
	for _, op := range all {
		if !op.Valid() || op.Name() == "" || names[op.Name()] || op.String() != op.Name() {
			t.Errorf("op %d: bad or duplicate name %q", op, op.Name())
		}
		names[op.Name()] = true
		if back, ok := ParseOp(op.Name()); !ok || back != op {
			t.Errorf("ParseOp(%q) = %v, %v", op.Name(), back, ok)
		}
		var wantNeed Perm
		switch {
		case op == OpProvision:
			wantNeed = PermWrite
		case op == OpAudit:
			wantNeed = PermRead
		case slices.Contains(ownerOnlyOps, op):
			wantNeed = PermWrite
		default:
			wantNeed = map[byte]Perm{'r': 4, 'w': 2, 'x': 1}[letter(op)]
		}
		if op.Need() != wantNeed {
			t.Errorf("%v.Need() = %v, want %v", op, op.Need(), wantNeed)
		}
		if got, want := op.OwnerOnly(), slices.Contains(ownerOnlyOps, op); got != want {
			t.Errorf("%v.OwnerOnly() = %v", op, got)
		}
		if got, want := op.Changes(), !slices.Contains(readOps, op) && op != OpAudit; got != want {
			t.Errorf("%v.Changes() = %v", op, got)
		}
		if op.Provision() != (op == OpProvision) {
			t.Errorf("%v.Provision() = %v", op, op.Provision())
		}
	}
	for _, n := range []string{"deploy", "add", "remove", "mode", "provision", "whoami", "audit"} {
		if !names[n] {
			t.Errorf("no op named %q", n)
		}
	}
	for _, bad := range []Op{0, opCount, 200} {
		if bad.Valid() || bad.Name() != "" || bad.Need() != 0 || bad.OwnerOnly() || !bad.Changes() || !strings.HasPrefix(bad.String(), "Op(") {
			t.Errorf("unknown op %d looks known", bad)
		}
	}
	if _, ok := ParseOp("nope"); ok {
		t.Errorf("ParseOp(nope) found an op")
	}
	if _, ok := ParseOp(""); ok {
		t.Errorf(`ParseOp("") found an op`)
	}
}

// TestDecideEveryMode checks every one of the 512 modes against every role
// and every op the mode governs, in an active enclave, with expectations
// taken from the octal digits.
func TestDecideEveryMode(t *testing.T) {
	n, allowed := 0, 0
	for i := 0; i <= 0o777; i++ {
		digits := fmt.Sprintf("%03o", i)
		a := access(Mode(i), sActive)
		for _, r := range roles {
			d := digits[r.idx] - '0'
			for _, op := range modeOps {
				bit := map[byte]byte{'r': 4, 'w': 2, 'x': 1}[letter(op)]
				want := d&bit != 0
				got := Decide(r.p, a, nil, op)
				n++
				if got.Allowed != want || got.Role != r.role || got.Reason == "" {
					t.Fatalf("mode %s, %v %v: %+v; want allowed=%v role=%v with a reason", Mode(i), r.p, op, got, want, r.role)
				}
				if got.Allowed {
					allowed++
				}
			}
			// Owner-only ops ignore the mode: only the owner, always.
			for _, op := range ownerOnlyOps {
				got := Decide(r.p, a, nil, op)
				n++
				if got.Allowed != (r.role == RoleOwner) {
					t.Fatalf("mode %s, %v %v: %+v", Mode(i), r.p, op, got)
				}
			}
			// Provision: the channel already has an enclave.
			if got := Decide(r.p, a, nil, OpProvision); got.Allowed {
				t.Fatalf("mode %s: %v provisioned over an enclave", Mode(i), r.p)
			}
			n++
		}
		// Someone from another workspace who is not in the channel gets
		// nothing, even from rwxrwxrwx.
		for _, op := range Ops() {
			if got := Decide(stranger, a, nil, op); got.Allowed || got.Role != RoleNone {
				t.Fatalf("mode %s: a stranger may %v: %+v", Mode(i), op, got)
			}
			n++
		}
	}
	t.Logf("%d decisions, %d allowed", n, allowed)
}

// TestDecidePresets: role × preset × op, named, with expectations from the
// presets' letters as the design writes them.
func TestDecidePresets(t *testing.T) {
	presetLetters := map[string]string{
		"private":   "rwx------",
		"team":      "rwxrwx---",
		"team-run":  "rwxr-x---",
		"open-read": "rwxrwxr--",
		"open-run":  "rwxrwxr-x",
	}
	cases := 0
	for name, letters := range presetLetters {
		m, err := ParseMode(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range roles {
			for _, op := range Ops() {
				var want bool
				switch {
				case op == OpProvision:
					want = false
				case slices.Contains(ownerOnlyOps, op):
					want = r.role == RoleOwner
				default:
					want = allowedByLetters(letters, r.idx, op)
				}
				cases++
				t.Run(fmt.Sprintf("%s/%s(%s)/%s", name, r.role, r.p.UserID, op), func(t *testing.T) {
					got := Decide(r.p, access(m, sActive), nil, op)
					if got.Allowed != want || got.Role != r.role || got.Reason == "" {
						t.Fatalf("%+v, want allowed=%v", got, want)
					}
				})
			}
		}
	}
	t.Logf("%d preset cases", cases)
}

func TestDecideOwnerOnly(t *testing.T) {
	reasons := map[Op]string{
		OpMode:        "only the owner can change who may do what here",
		OpTransfer:    "only the owner can give this enclave to someone else",
		OpFreeze:      "only the owner can freeze this enclave",
		OpUnfreeze:    "only the owner can unfreeze this enclave",
		OpDeprovision: "only the owner can deprovision this enclave",
		OpAudit:       "only the owner can read the audit log",
		OpIdentity:    "only the owner can decide whether people must sign in before changing things here",
	}
	frozenOwner := State{Phase: PhaseFrozen, OwnerFrozen: true}
	for _, op := range ownerOnlyOps {
		for _, m := range []Mode{0, 0o777, ModePrivate, ModeTeam, ModeOpenRun, 0o1777 /* damaged */} {
			for _, s := range []State{sActive, frozenOwner} {
				for _, r := range roles {
					got := Decide(r.p, access(m, s), nil, op)
					if r.role == RoleOwner {
						if !got.Allowed || got.Reason != "you own this enclave" {
							t.Errorf("%v, mode %s, %s: owner refused: %+v", op, m, s, got)
						}
						continue
					}
					if got.Allowed || got.Reason != reasons[op] {
						t.Errorf("%v, mode %s, %s, %v: %+v; want refused with %q", op, m, s, r.role, got, reasons[op])
					}
				}
			}
			// A tentacle's own mode does not stop the owner either (the
			// mode op is how a tentacle's mode gets fixed).
			zero, damaged := Mode(0), Mode(0o7777)
			for _, tm := range []*Mode{&zero, &damaged} {
				tn := &TentacleAccess{Name: "digest", Mode: tm}
				if got := Decide(owner, access(m, sActive), tn, op); !got.Allowed {
					t.Errorf("%v on a tentacle with mode %v: owner refused: %+v", op, *tm, got)
				}
				if got := Decide(member, access(ModeTeam, sActive), tn, op); got.Allowed {
					t.Errorf("%v on a tentacle: member allowed: %+v", op, got)
				}
			}
		}
	}
}

// TestDecideStates: the owner (with every right in the mode) and a member
// in each lifecycle state, against every op. Written out by hand.
func TestDecideStates(t *testing.T) {
	reads := readOps
	admin := []Op{OpMode, OpTransfer, OpFreeze, OpUnfreeze, OpDeprovision, OpIdentity}
	type allowSet []Op
	set := func(groups ...[]Op) allowSet { return slices.Concat(groups...) }
	tests := []struct {
		name   string
		state  State
		owner  allowSet
		member allowSet
	}{
		{"active", sActive, set(reads, writeOps, execOps, ownerOnlyOps), set(reads, writeOps, execOps)},
		{"provisioning", sProv, set(reads, []Op{OpAudit, OpDeprovision, OpProvision}), set(reads)},
		{"provisioning failed", sFailed, set(reads, []Op{OpAudit, OpDeprovision, OpProvision}), set(reads)},
		{"frozen: archived", frozenA, set(reads, []Op{OpAudit, OpCancel, OpMode, OpTransfer, OpFreeze, OpDeprovision, OpIdentity}), set(reads, []Op{OpCancel})},
		{"frozen: owner", frozenO, set(reads, []Op{OpAudit, OpCancel}, admin), set(reads, []Op{OpCancel})},
		{"frozen: both", frozenAO, set(reads, []Op{OpAudit, OpCancel}, admin), set(reads, []Op{OpCancel})},
		{"frozen: unknown cause", sFrozen, set(reads, []Op{OpAudit, OpCancel}, admin), set(reads, []Op{OpCancel})},
		{"flagged", sFlagged, set(reads, []Op{OpAudit, OpCancel, OpDeprovision, OpTransfer}), set(reads, []Op{OpCancel})},
		{"flagged, owner left", State{Phase: PhaseFlagged, ChannelDeleted: true, NeedsOwner: true}, set(reads, []Op{OpAudit, OpCancel, OpDeprovision, OpTransfer}), set(reads, []Op{OpCancel})},
		{"active, owner left", State{Phase: PhaseActive, NeedsOwner: true}, set(reads, writeOps, execOps, ownerOnlyOps), set(reads, writeOps, execOps)},
		{"deprovisioning", sDeprov, set(reads, []Op{OpAudit}), set(reads)},
		{"gone", sGone, nil, nil},
		// (A channel with no enclave has no owner; one on record is
		// just someone else who may not provision.)
		{"no enclave", sNone, nil, set([]Op{OpProvision})},
	}
	n := 0
	for _, tt := range tests {
		a := access(0o777, tt.state)
		for _, who := range []struct {
			p     Principal
			allow allowSet
		}{{owner, tt.owner}, {member, tt.member}} {
			for _, op := range Ops() {
				n++
				got := Decide(who.p, a, nil, op)
				want := slices.Contains(who.allow, op)
				if got.Allowed != want || got.Reason == "" {
					t.Errorf("%s: %s %v: %+v, want allowed=%v", tt.name, who.p.UserID, op, got, want)
				}
			}
		}
	}
	t.Logf("%d state cases", n)

	// The reasons people read.
	reason := func(p Principal, s State, op Op) string { return Decide(p, access(0o777, s), nil, op).Reason }
	want := map[string]string{
		reason(member, frozenA, OpDeploy):   "this enclave is frozen because its channel is archived: nothing can be deployed until it is unarchived",
		reason(member, frozenA, OpRun):      "this enclave is frozen because its channel is archived: nothing can be run until it is unarchived",
		reason(member, frozenO, OpRollback): "the owner froze this enclave: nothing can be rolled back until they unfreeze it",
		reason(member, frozenAO, OpDeploy):  "this enclave is frozen because its channel is archived and the owner froze it: nothing can be deployed until the channel is unarchived and the owner unfreezes it",
		reason(member, sFrozen, OpRestart):  "this enclave is frozen: nothing can be restarted until it is unfrozen",
		reason(owner, frozenA, OpUnfreeze):  "this enclave is frozen because its channel is archived: it unfreezes when the channel is unarchived",
		reason(owner, sFlagged, OpDeploy):   "this enclave's channel was deleted, so it is frozen until its owner confirms deprovisioning: the owner can only deprovision it or give it to someone else",
		reason(member, sProv, OpDeploy):     "this enclave is still being provisioned: you can look around, but nothing can be deployed until it is ready",
		reason(owner, sDeprov, OpRun):       "this enclave is being deprovisioned: you can still look, but nothing else",
		reason(owner, sGone, OpList):        "this enclave has been deprovisioned",
		reason(member, sNone, OpList):       "this channel has no enclave yet: /kraken provision makes one",
		reason(owner, sActive, OpProvision): "this channel already has an enclave",
	}
	for got, w := range want {
		if got != w {
			t.Errorf("reason %q, want %q", got, w)
		}
	}
	if len(want) != 12 {
		t.Errorf("two reasons are the same: %d distinct", len(want))
	}
}

func TestDecideIdentity(t *testing.T) {
	for _, op := range Ops() {
		if op == OpProvision {
			continue
		}
		for _, hasID := range []bool{false, true} {
			for _, require := range []bool{false, true} {
				p := owner
				p.HasIdentity = hasID
				a := access(0o777, sActive)
				a.RequireIdentity = require
				got := Decide(p, a, nil, op)
				needsID := !slices.Contains(readOps, op) && op != OpAudit
				want := !require || hasID || !needsID
				if got.Allowed != want {
					t.Errorf("%v, require=%v, signed in=%v: %+v", op, require, hasID, got)
				}
				if !want && !strings.HasPrefix(got.Reason, "you need to sign in with /kraken login before ") {
					t.Errorf("%v: reason %q", op, got.Reason)
				}
			}
		}
	}
	a := access(ModeTeam, sActive)
	a.RequireIdentity = true
	if got := Decide(member, a, nil, OpDeploy).Reason; got != "you need to sign in with /kraken login before deploying here" {
		t.Errorf("reason %q", got)
	}
	// The mode is explained before the sign-in: signing in would not help.
	a.Mode = ModeTeamRun
	if got := Decide(member, a, nil, OpDeploy).Reason; !strings.Contains(got, "members of this channel can't deploy here") {
		t.Errorf("reason %q", got)
	}
	// A signed-in person is still the same person.
	signed := member
	signed.HasIdentity = true
	if got := Decide(signed, a, nil, OpRun); !got.Allowed || got.Role != RoleMember {
		t.Errorf("signed-in member: %+v", got)
	}
	a.RequireIdentity = false
	a.Owner.HasIdentity = true // whatever the record says about the request
	if got := Decide(owner, a, nil, OpMode); !got.Allowed {
		t.Errorf("owner not recognised when the record's HasIdentity differs: %+v", got)
	}
}

func ptr(m Mode) *Mode { return &m }

func TestDecideTentacle(t *testing.T) {
	tests := []struct {
		name      string
		enclave   Mode
		tentacle  *TentacleAccess
		who       Principal
		op        Op
		allowed   bool
		reasonHas string
	}{
		{"no own mode: the enclave decides", ModeTeam, &TentacleAccess{Name: "digest"}, member, OpDeploy, true, "mode, rwxrwx--- (team), lets members of this channel deploy"},
		{"narrower tentacle refuses a member's deploy", ModeTeam, &TentacleAccess{Name: "digest", Mode: ptr(ModeTeamRun)}, member, OpDeploy, false,
			`tentacle "digest" has its own mode, rwxr-x--- (team-run), which only lets members of this channel look and run tentacles, so you can't deploy there`},
		{"narrower tentacle still lets a member run", ModeTeam, &TentacleAccess{Name: "digest", Mode: ptr(ModeTeamRun)}, member, OpRun, true, `and so does tentacle "digest"'s own mode`},
		{"narrower tentacle lets the owner deploy", ModeTeam, &TentacleAccess{Name: "digest", Mode: ptr(ModeTeamRun)}, owner, OpDeploy, true, ""},
		{"wider tentacle does not widen: member deploy", ModeTeamRun, &TentacleAccess{Name: "digest", Mode: ptr(0o777)}, member, OpDeploy, false, "this enclave's mode is rwxr-x--- (team-run)"},
		{"wider tentacle does not widen: other runs", ModeTeamRun, &TentacleAccess{Name: "digest", Mode: ptr(0o777)}, other, OpRun, false, "people outside this channel can't run tentacles here"},
		{"wider tentacle does not widen: other reads", ModeTeamRun, &TentacleAccess{Name: "digest", Mode: ptr(0o777)}, other, OpStatus, false, "which gives them no rights"},
		{"private tentacle in an open enclave: other", ModeOpenRead, &TentacleAccess{Name: "digest", Mode: ptr(ModePrivate)}, other, OpLogs, false, "which gives people outside this channel no rights"},
		{"private tentacle in an open enclave: member", ModeOpenRead, &TentacleAccess{Name: "digest", Mode: ptr(ModePrivate)}, member, OpLogs, false, ""},
		{"private tentacle in an open enclave: owner", ModeOpenRead, &TentacleAccess{Name: "digest", Mode: ptr(ModePrivate)}, owner, OpLogs, true, ""},
		{"its deployer owns it on the tentacle", ModeTeam, &TentacleAccess{Name: "digest", Owner: member, Mode: ptr(ModeTeamRun)}, member, OpDeploy, true, ""},
		{"another member does not", ModeTeam, &TentacleAccess{Name: "digest", Owner: member, Mode: ptr(ModeTeamRun)}, member2, OpDeploy, false, "its own mode"},
		{"the deployer keeps their enclave role", ModeTeamRun, &TentacleAccess{Name: "digest", Owner: member, Mode: ptr(ModePrivate)}, member, OpDeploy, false, "this enclave's mode"},
		{"the deployer runs a private tentacle", ModeTeamRun, &TentacleAccess{Name: "digest", Owner: member, Mode: ptr(ModePrivate)}, member, OpRun, true, ""},
		{"a deployer id from another team is someone else", ModeTeam, &TentacleAccess{Name: "digest", Owner: Principal{TeamID: "T2", UserID: "UMEMBER"}, Mode: ptr(ModeTeamRun)}, member, OpDeploy, false, ""},
		{"an empty deployer owns nothing", ModeTeam, &TentacleAccess{Name: "digest", Owner: Principal{}, Mode: ptr(ModeTeamRun)}, member, OpDeploy, false, ""},
		{"zero tentacle mode: even the owner", ModeTeam, &TentacleAccess{Name: "digest", Mode: ptr(0)}, owner, OpRun, false, "which gives its owners (the enclave's owner and whoever deployed it) no rights"},
		{"damaged tentacle mode", 0o777, &TentacleAccess{Name: "digest", Mode: ptr(0o1000)}, owner, OpList, false, `tentacle "digest"'s mode is damaged`},
		{"provision is not about a tentacle", ModeTeam, &TentacleAccess{Name: "digest"}, member, OpProvision, false, "not a tentacle"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Decide(tt.who, access(tt.enclave, sActive), tt.tentacle, tt.op)
			if got.Allowed != tt.allowed || !strings.Contains(got.Reason, tt.reasonHas) {
				t.Fatalf("%+v; want allowed=%v, reason containing %q", got, tt.allowed, tt.reasonHas)
			}
		})
	}

	// Every enclave preset × tentacle preset (and none) × role × op: both
	// layers must allow, so a tentacle only ever narrows.
	n := 0
	for _, ep := range Presets() {
		for _, tp := range append([]Preset{{Name: "inherit"}}, Presets()...) {
			tn := &TentacleAccess{Name: "digest"}
			if tp.Name != "inherit" {
				tn.Mode = ptr(tp.Mode)
			}
			for _, r := range roles {
				for _, op := range modeOps {
					want := allowedByLetters(symbolic(int(ep.Mode)), r.idx, op)
					if tn.Mode != nil {
						want = want && allowedByLetters(symbolic(int(*tn.Mode)), r.idx, op)
					}
					got := Decide(r.p, access(ep.Mode, sActive), tn, op)
					without := Decide(r.p, access(ep.Mode, sActive), nil, op)
					if got.Allowed != want || (got.Allowed && !without.Allowed) {
						t.Errorf("enclave %s, tentacle %s, %v %v: %+v, want %v", ep.Name, tp.Name, r.role, op, got, want)
					}
					n++
				}
			}
		}
	}
	t.Logf("%d layered cases", n)
}

func TestDecideFailClosed(t *testing.T) {
	good := access(0o777, sActive)
	tests := []struct {
		name      string
		p         Principal
		a         Access
		op        Op
		reasonHas string
	}{
		{"empty team id", Principal{UserID: "UOWNER"}, good, OpList, "could not tell who you are"},
		{"empty user id", Principal{TeamID: "T1"}, good, OpList, "could not tell who you are"},
		{"empty principal", Principal{}, good, OpList, "could not tell who you are"},
		{"owner's user id in another team", Principal{TeamID: "T2", UserID: "UOWNER"}, good, OpMode, "not in this channel or its workspace"},
		{"member's user id in another team", Principal{TeamID: "T2", UserID: "UMEMBER"}, good, OpList, "not in this channel or its workspace"},
		{"stranger from another workspace", stranger, access(0o777, sActive), OpList, "not in this channel or its workspace"},
		{"zero access", owner, Access{}, OpList, "which workspace"},
		{"zero access, provision", member, Access{}, OpProvision, "which workspace"},
		{"no owner on record", owner, Access{TeamID: "T1", Members: []Principal{member}, Mode: 0o777, State: sActive}, OpList, "no owner on record"},
		{"empty owner does not match an empty-id person", Principal{TeamID: "T1"}, Access{TeamID: "T1", Mode: 0o777, State: sActive}, OpMode, "could not tell who you are"},
		{"zero mode: member", member, access(0, sActive), OpList, "which gives them no rights"},
		{"zero mode: owner", owner, access(0, sActive), OpDeploy, "even the owner can't deploy here"},
		{"damaged mode", owner, access(0o1777, sActive), OpList, "mode is damaged"},
		{"damaged mode, member", member, access(0xffff, sActive), OpRun, "mode is damaged"},
		{"unknown op 0", owner, good, Op(0), "does not know this operation"},
		{"unknown op past the end", owner, good, opCount, "does not know this operation"},
		{"unknown op 255", owner, good, Op(255), "does not know this operation"},
		{"inconsistent state", owner, access(0o777, State{Phase: PhaseActive, Archived: true}), OpList, "inconsistent"},
		{"unknown phase", owner, access(0o777, State{Phase: Phase(42)}), OpList, "inconsistent"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Decide(tt.p, tt.a, nil, tt.op)
			if got.Allowed || !strings.Contains(got.Reason, tt.reasonHas) {
				t.Fatalf("%+v; want refused with a reason containing %q", got, tt.reasonHas)
			}
		})
	}

	// The zero Access refuses every op to everyone.
	for _, p := range []Principal{owner, member, other, stranger, {}} {
		for _, op := range append(Ops(), 0, opCount) {
			if got := Decide(p, Access{}, nil, op); got.Allowed || got.Reason == "" {
				t.Errorf("zero Access: %v %v: %+v", p, op, got)
			}
		}
	}

	// Members with empty ids match no one; they make nobody a member.
	a := access(ModeTeam, sActive)
	a.Members = []Principal{{}, {TeamID: "T1"}, {UserID: "UOTHER"}}
	if r := a.Role(other); r != RoleOther {
		t.Errorf("role of %v among members with empty ids = %v", other, r)
	}
	if got := Decide(other, a, nil, OpList); got.Allowed {
		t.Errorf("other allowed to list in a team enclave: %+v", got)
	}
	// The owner is the owner even when no longer in the channel; a member
	// from another workspace in a shared channel is a member.
	if a.Role(owner) != RoleOwner || access(ModeTeam, sActive).Role(external) != RoleMember {
		t.Errorf("roles: owner %v, external member %v", a.Role(owner), access(ModeTeam, sActive).Role(external))
	}
	// Principal.Same.
	for _, c := range []struct {
		p, q Principal
		same bool
	}{
		{owner, owner, true},
		{owner, Principal{TeamID: "T1", UserID: "UOWNER", HasIdentity: true}, true},
		{owner, Principal{TeamID: "T2", UserID: "UOWNER"}, false},
		{owner, Principal{TeamID: "T1", UserID: "UOTHER"}, false},
		{Principal{}, Principal{}, false},
		{Principal{TeamID: "T1"}, Principal{TeamID: "T1"}, false},
		{Principal{UserID: "U"}, Principal{UserID: "U"}, false},
	} {
		if c.p.Same(c.q) != c.same || c.q.Same(c.p) != c.same {
			t.Errorf("%v.Same(%v) = %v", c.p, c.q, !c.same)
		}
	}
}

func TestDecideProvision(t *testing.T) {
	unbound := Access{TeamID: "T1", Members: []Principal{member, external}}
	withID := unbound
	withID.RequireIdentity = true
	signed := member
	signed.HasIdentity = true
	tests := []struct {
		name      string
		p         Principal
		a         Access
		allowed   bool
		role      Role
		reasonHas string
	}{
		{"a channel member", member, unbound, true, RoleMember, "you are a member of this channel, which has no enclave yet"},
		{"a member from a shared channel's other org", external, unbound, true, RoleMember, ""},
		{"someone else in the workspace", other, unbound, false, RoleOther, "only members of this channel can provision"},
		{"a stranger", stranger, unbound, false, RoleNone, "only members of this channel can provision"},
		{"no members known", member, Access{TeamID: "T1"}, false, RoleOther, "only members"},
		{"sign-in required", member, withID, false, RoleMember, "you need to sign in with /kraken login before provisioning here"},
		{"sign-in required, signed in", signed, withID, true, RoleMember, ""},
		{"owner finishes a provisioning", owner, access(ModeTeam, sProv), true, RoleOwner, "provisioning again finishes it"},
		{"owner finishes a failed one", owner, access(ModeTeam, sFailed), true, RoleOwner, ""},
		{"a member can't", member, access(ModeTeam, sFailed), false, RoleMember, "only the owner can finish provisioning"},
		{"active", member, access(ModeTeam, sActive), false, RoleMember, "already has an enclave"},
		{"frozen", owner, access(ModeTeam, frozenA), false, RoleOwner, "already has an enclave"},
		{"flagged", owner, access(ModeTeam, sFlagged), false, RoleOwner, "channel was deleted"},
		{"deprovisioning", owner, access(ModeTeam, sDeprov), false, RoleOwner, "being deprovisioned"},
		{"gone", owner, access(ModeTeam, sGone), false, RoleOwner, "deprovisioned"},
		{"not-ready enclave without an owner", member, Access{TeamID: "T1", Members: []Principal{member}, State: sProv}, false, RoleMember, "no owner on record"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Decide(tt.p, tt.a, nil, OpProvision)
			if got.Allowed != tt.allowed || got.Role != tt.role || !strings.Contains(got.Reason, tt.reasonHas) {
				t.Fatalf("%+v; want allowed=%v role=%v reason containing %q", got, tt.allowed, tt.role, tt.reasonHas)
			}
		})
	}
	// In an unbound channel nothing but provision is possible.
	for _, op := range Ops() {
		if op != OpProvision && Decide(member, unbound, nil, op).Allowed {
			t.Errorf("%v allowed in a channel with no enclave", op)
		}
	}
}

func TestReasons(t *testing.T) {
	tests := []struct {
		p    Principal
		a    Access
		op   Op
		want string
	}{
		{member, access(ModeTeam, sActive), OpMode, "only the owner can change who may do what here"},
		{member, access(ModeTeam, frozenA), OpDeploy, "this enclave is frozen because its channel is archived: nothing can be deployed until it is unarchived"},
		{member, access(ModeTeamRun, sActive), OpDeploy, "members of this channel can't deploy here: this enclave's mode is rwxr-x--- (team-run), which only lets them look and run tentacles. The owner can change that with /kraken mode"},
		{other, access(ModeOpenRead, sActive), OpRun, "people outside this channel can't run tentacles here: this enclave's mode is rwxrwxr-- (open-read), which only lets them look. The owner can change that with /kraken mode"},
		{owner, access(0o500, sActive), OpDeploy, "even the owner can't deploy here: this enclave's mode is r-x------, which only lets them look and run tentacles. The owner can change that with /kraken mode"},
		{member, access(ModeTeam, sActive), OpDeploy, "this enclave's mode, rwxrwx--- (team), lets members of this channel deploy"},
		{other, access(ModeOpenRun, sActive), OpRun, "this enclave's mode, rwxrwxr-x (open-run), lets people outside this channel run tentacles"},
		{stranger, access(ModeOpenRun, sActive), OpList, "you are not in this channel or its workspace, so you can't do anything in this enclave"},
	}
	for _, tt := range tests {
		if got := Decide(tt.p, tt.a, nil, tt.op).Reason; got != tt.want {
			t.Errorf("%v %v:\n got %q\nwant %q", tt.p.UserID, tt.op, got, tt.want)
		}
	}
}

func TestAccessOf(t *testing.T) {
	e := Enclave{Name: "payments", Channel: Channel{TeamID: "T1", ID: "C1"}, Owner: "UOWNER", Ready: true, Frozen: true,
		Governance: Governance{Members: []string{member.UserID}, Mode: ModeTeamRun, RequireIdentity: true}}
	a := AccessOf(e)
	want := Access{TeamID: "T1", Owner: owner, Members: []Principal{member}, Mode: ModeTeamRun, State: State{Phase: PhaseFrozen, OwnerFrozen: true}, RequireIdentity: true}
	if fmt.Sprint(a) != fmt.Sprint(want) {
		t.Fatalf("AccessOf = %+v, want %+v", a, want)
	}
	signedOwner := owner
	signedOwner.HasIdentity = true
	if got := Decide(signedOwner, a, nil, OpUnfreeze); !got.Allowed {
		t.Errorf("owner can't unfreeze: %+v", got)
	}
	// An enclave read back without an owner refuses everything.
	e.Owner = ""
	e.Mode, e.RequireIdentity = ModeTeam, false
	if got := Decide(member, AccessOf(e), nil, OpList); got.Allowed {
		t.Errorf("an enclave without an owner allowed a list: %+v", got)
	}
}

func TestTentacleAccessOf(t *testing.T) {
	e := Enclave{Channel: Channel{TeamID: "T1"}, Governance: Governance{TentacleModes: map[string]Mode{"billing": ModePrivate}}}
	ta := TentacleAccessOf(e, "billing", "UDEPLOYER")
	if ta.Mode == nil || *ta.Mode != ModePrivate || !ta.Owner.Same(Principal{TeamID: "T1", UserID: "UDEPLOYER"}) {
		t.Errorf("TentacleAccessOf = %+v", ta)
	}
	if ta := TentacleAccessOf(e, "other", ""); ta.Mode != nil || ta.Owner.Valid() {
		t.Errorf("a tentacle without its own mode or deployer got %+v", ta)
	}
}

func TestStateOfGovernance(t *testing.T) {
	ready := Enclave{Ready: true}
	for _, tt := range []struct {
		g      Governance
		frozen bool
		want   State
	}{
		{Governance{}, false, State{Phase: PhaseActive}},
		{Governance{}, true, State{Phase: PhaseFrozen, OwnerFrozen: true}},
		{Governance{Archived: true}, true, State{Phase: PhaseFrozen, Archived: true}},
		{Governance{Archived: true, FrozenByOwner: true}, true, State{Phase: PhaseFrozen, Archived: true, OwnerFrozen: true}},
		{Governance{ChannelDeleted: true}, true, State{Phase: PhaseFlagged, ChannelDeleted: true}},
		{Governance{NeedsOwner: true}, false, State{Phase: PhaseActive, NeedsOwner: true}},
		// A recorded archive wins over a frozen flag the cluster lost.
		{Governance{Archived: true}, false, State{Phase: PhaseFrozen, Archived: true}},
	} {
		e := ready
		e.Governance, e.Frozen = tt.g, tt.frozen
		if got := StateOf(e); got != tt.want || !got.Valid() {
			t.Errorf("StateOf(%+v, frozen=%t) = %s, want %s", tt.g, tt.frozen, got, tt.want)
		}
	}
}

// FuzzDecide checks the rules that must hold whatever the input.
func FuzzDecide(f *testing.F) {
	f.Add("T1", "UOWNER", false, "T1", "UOWNER", uint16(0o770), uint8(PhaseActive), uint8(0), uint8(OpDeploy), false, uint16(0xffff))
	f.Add("T1", "UMEMBER", true, "T1", "UOWNER", uint16(0o750), uint8(PhaseFrozen), uint8(1), uint8(OpRun), true, uint16(0o700))
	f.Add("", "", false, "", "", uint16(0), uint8(0), uint8(0), uint8(OpProvision), false, uint16(0))
	f.Fuzz(func(t *testing.T, team, user string, hasID bool, ownerTeam, ownerUser string, mode uint16, phase, flags, op uint8, requireID bool, tmode uint16) {
		p := Principal{TeamID: team, UserID: user, HasIdentity: hasID}
		a := Access{
			TeamID:          "T1",
			Owner:           Principal{TeamID: ownerTeam, UserID: ownerUser},
			Members:         []Principal{member, {TeamID: team}},
			Mode:            Mode(mode),
			State:           State{Phase: Phase(phase), Archived: flags&1 != 0, OwnerFrozen: flags&2 != 0, ChannelDeleted: flags&4 != 0, NeedsOwner: flags&8 != 0},
			RequireIdentity: requireID,
		}
		var tn *TentacleAccess
		if tmode != 0xffff {
			tn = &TentacleAccess{Name: "t", Mode: ptr(Mode(tmode))}
		}
		o := Op(op)
		d := Decide(p, a, tn, o)
		if d.Reason == "" {
			t.Fatalf("no reason: %+v", d)
		}
		if !d.Allowed {
			return
		}
		switch {
		case !o.Valid():
			t.Fatalf("unknown op %d allowed", op)
		case !p.Valid():
			t.Fatalf("invalid principal %+v allowed %v", p, o)
		case !a.State.Valid():
			t.Fatalf("inconsistent state %+v allowed %v", a.State, o)
		case a.State.Phase == PhaseGone:
			t.Fatalf("gone enclave allowed %v", o)
		case o.OwnerOnly() && !p.Same(a.Owner):
			t.Fatalf("%v allowed to a non-owner %+v (owner %+v)", o, p, a.Owner)
		case o.Changes() && requireID && !hasID:
			t.Fatalf("%v allowed without sign-in", o)
		case o == OpProvision && tn != nil:
			t.Fatalf("provision allowed on a tentacle")
		}
		if !o.OwnerOnly() && o != OpProvision {
			if !a.Mode.Perm(d.Role).Has(o.Need()) {
				t.Fatalf("%v allowed to %v by mode %v", o, d.Role, a.Mode)
			}
			if tn != nil && !tn.Mode.Valid() {
				t.Fatalf("allowed on a tentacle with a damaged mode")
			}
			if a.State.Phase != PhaseActive && o.Changes() && o != OpCancel {
				t.Fatalf("%v allowed in %s", o, a.State)
			}
		}
	})
}
