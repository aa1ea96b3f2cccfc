package enclave

import (
	"errors"
	"fmt"
	"strings"
)

// Phase is where an enclave is in its life:
//
//	none ─ProvisionStarted→ provisioning ─ProvisionDone→ active ⇄ frozen
//	                            │ ProvisionFailed            │
//	                            ↓                            │ ChannelDeleted
//	                    provisioning failed                  ↓
//	                                               flagged for deprovision
//	provisioning, provisioning failed, active, frozen or flagged
//	  ─DeprovisionConfirmed→ deprovisioning ─DeprovisionDone→ gone
//
// The zero Phase is PhaseNone: the channel has no enclave.
type Phase uint8

const (
	// PhaseNone: the channel has no enclave (yet).
	PhaseNone Phase = iota
	// PhaseProvisioning: the namespace and everything in it are being
	// made. Only looking is possible.
	PhaseProvisioning
	// PhaseProvisionFailed: provisioning stopped part way. Provisioning
	// again finishes it; the owner may also deprovision it.
	PhaseProvisionFailed
	// PhaseActive: normal work.
	PhaseActive
	// PhaseFrozen: the channel is archived or the owner froze the
	// enclave. Tentacles keep running, nothing new is deployed, cron is
	// paused.
	PhaseFrozen
	// PhaseFlagged: the channel was deleted. The enclave is frozen and
	// waits for its owner to confirm deprovisioning.
	PhaseFlagged
	// PhaseDeprovisioning: everything is being removed.
	PhaseDeprovisioning
	// PhaseGone: everything was removed. Nothing leaves this phase.
	PhaseGone

	phaseCount
)

var phaseNames = [...]string{
	PhaseNone:            "not provisioned",
	PhaseProvisioning:    "provisioning",
	PhaseProvisionFailed: "provisioning failed",
	PhaseActive:          "active",
	PhaseFrozen:          "frozen",
	PhaseFlagged:         "flagged for deprovision",
	PhaseDeprovisioning:  "deprovisioning",
	PhaseGone:            "gone",
}

func (p Phase) String() string {
	if p < phaseCount {
		return phaseNames[p]
	}
	return fmt.Sprintf("Phase(%d)", uint8(p))
}

// State is an enclave's phase and the facts beside it that decide where
// the next event leads. The zero State is "no enclave".
//
// Why an enclave is frozen matters: an enclave frozen because its channel
// is archived thaws when the channel is unarchived, one the owner froze
// thaws when the owner says so, and one frozen for both reasons needs
// both. A frozen State with neither reason set (the cause is unknown,
// e.g. read back from the cluster's single frozen flag) is treated as
// frozen by the owner.
type State struct {
	Phase Phase
	// Archived: the Slack channel is archived. Kept while provisioning
	// (so ProvisionDone lands in frozen) and while frozen or flagged.
	Archived bool
	// OwnerFrozen: the owner froze the enclave (/kraken freeze).
	OwnerFrozen bool
	// ChannelDeleted: the Slack channel was deleted. Always set when
	// flagged; set while provisioning so ProvisionDone lands in flagged.
	ChannelDeleted bool
	// NeedsOwner: the owner left the channel. The enclave keeps working;
	// it needs the owner to be transferred to someone else.
	NeedsOwner bool
}

// Valid reports whether s is a state Transition can produce (or start
// from): a known phase and flags that belong to it.
func (s State) Valid() bool {
	switch s.Phase {
	case PhaseNone, PhaseDeprovisioning, PhaseGone:
		return s == State{Phase: s.Phase}
	case PhaseProvisioning:
		return !s.OwnerFrozen
	case PhaseProvisionFailed:
		return !s.OwnerFrozen && !s.ChannelDeleted
	case PhaseActive:
		return !s.Archived && !s.OwnerFrozen && !s.ChannelDeleted
	case PhaseFrozen:
		return !s.ChannelDeleted
	case PhaseFlagged:
		return s.ChannelDeleted
	}
	return false
}

// String says the phase and what else is true, e.g.
// "frozen (channel archived, needs a new owner)".
func (s State) String() string {
	var why []string
	if s.ChannelDeleted && s.Phase != PhaseFlagged {
		why = append(why, "channel deleted")
	}
	if s.Archived {
		why = append(why, "channel archived")
	}
	if s.OwnerFrozen {
		why = append(why, "frozen by the owner")
	}
	if s.NeedsOwner {
		why = append(why, "needs a new owner")
	}
	if len(why) == 0 {
		return s.Phase.String()
	}
	return s.Phase.String() + " (" + strings.Join(why, ", ") + ")"
}

// StateOf reads the lifecycle state from what the cluster records on an
// Enclave: readiness and termination, the frozen flag, and the channel
// facts and freeze reasons in its Governance. An enclave that is not
// ready reads as provisioning, whether a provisioning is running or one
// failed: both allow the same things. A freeze with no recorded reason
// counts as the owner's.
func StateOf(e Enclave) State {
	g := e.Governance
	switch {
	case e.Terminating:
		return State{Phase: PhaseDeprovisioning}
	case !e.Ready:
		return State{Phase: PhaseProvisioning, Archived: g.Archived, ChannelDeleted: g.ChannelDeleted, NeedsOwner: g.NeedsOwner}
	case g.ChannelDeleted:
		return State{Phase: PhaseFlagged, ChannelDeleted: true, Archived: g.Archived, OwnerFrozen: g.FrozenByOwner, NeedsOwner: g.NeedsOwner}
	case e.Frozen || g.Archived || g.FrozenByOwner:
		return State{Phase: PhaseFrozen, Archived: g.Archived, OwnerFrozen: g.FrozenByOwner || !g.Archived, NeedsOwner: g.NeedsOwner}
	}
	return State{Phase: PhaseActive, NeedsOwner: g.NeedsOwner}
}

// Event is something that happens to an enclave.
type Event uint8

const (
	eventInvalid Event = iota
	// EventProvisionStarted: someone asked for an enclave, or asked again
	// to finish one whose provisioning failed or was cut short.
	EventProvisionStarted
	// EventProvisionDone: every object exists.
	EventProvisionDone
	// EventProvisionFailed: provisioning stopped part way.
	EventProvisionFailed
	// EventChannelArchived: the Slack channel was archived.
	EventChannelArchived
	// EventChannelUnarchived: the Slack channel was unarchived.
	EventChannelUnarchived
	// EventChannelDeleted: the Slack channel was deleted.
	EventChannelDeleted
	// EventOwnerFroze: the owner froze the enclave (/kraken freeze).
	EventOwnerFroze
	// EventOwnerUnfroze: the owner unfroze it (/kraken unfreeze).
	EventOwnerUnfroze
	// EventDeprovisionConfirmed: the owner confirmed deprovisioning.
	EventDeprovisionConfirmed
	// EventDeprovisionDone: everything was removed.
	EventDeprovisionDone
	// EventOwnerLeft: the owner left the channel.
	EventOwnerLeft
	// EventOwnerTransferred: the enclave was given a new owner.
	EventOwnerTransferred

	eventCount
)

var eventNames = [...]string{
	eventInvalid:              "invalid event",
	EventProvisionStarted:     "provision started",
	EventProvisionDone:        "provision done",
	EventProvisionFailed:      "provision failed",
	EventChannelArchived:      "channel archived",
	EventChannelUnarchived:    "channel unarchived",
	EventChannelDeleted:       "channel deleted",
	EventOwnerFroze:           "owner froze",
	EventOwnerUnfroze:         "owner unfroze",
	EventDeprovisionConfirmed: "deprovision confirmed",
	EventDeprovisionDone:      "deprovision done",
	EventOwnerLeft:            "owner left",
	EventOwnerTransferred:     "owner transferred",
}

func (e Event) String() string {
	if e > eventInvalid && e < eventCount {
		return eventNames[e]
	}
	return fmt.Sprintf("Event(%d)", uint8(e))
}

// Events lists every event, in declaration order.
func Events() []Event {
	out := make([]Event, 0, eventCount-1)
	for e := eventInvalid + 1; e < eventCount; e++ {
		out = append(out, e)
	}
	return out
}

// ErrInvalidTransition is what every *TransitionError matches with
// errors.Is.
var ErrInvalidTransition = errors.New("invalid enclave transition")

// TransitionError says why an event cannot happen in a state.
type TransitionError struct {
	From  State
	Event Event
	// Reason is plain language, e.g. "the enclave is not frozen".
	Reason string
}

func (e *TransitionError) Error() string {
	return fmt.Sprintf("cannot apply %q to an enclave that is %s: %s", e.Event, e.From, e.Reason)
}

// Is makes errors.Is(err, ErrInvalidTransition) true.
func (e *TransitionError) Is(target error) bool { return target == ErrInvalidTransition }

// Transition returns the state an event leads to, or a *TransitionError.
//
// Events that report a fact about the Slack channel or its people
// (ChannelArchived, ChannelUnarchived, ChannelDeleted, OwnerLeft) are
// idempotent where the fact is already known: Slack redelivers events and
// reconciles replay them, so seeing one twice changes nothing and is not
// an error. Events that are someone's decision or a milestone
// (ProvisionDone, OwnerFroze, DeprovisionConfirmed, …) are strict: one
// that changes nothing is an error, so the person is told ("the enclave
// is already frozen").
//
// Leaving deprovisioning and gone is impossible, and neither takes any
// event but DeprovisionDone (in deprovisioning).
func Transition(from State, ev Event) (State, error) {
	fail := func(format string, args ...any) (State, error) {
		return from, &TransitionError{From: from, Event: ev, Reason: fmt.Sprintf(format, args...)}
	}
	if !from.Valid() {
		return fail("the state is inconsistent, so no event can be applied to it")
	}
	if ev <= eventInvalid || ev >= eventCount {
		return fail("the event is unknown")
	}
	switch from.Phase {
	case PhaseNone:
		if ev == EventProvisionStarted {
			return State{Phase: PhaseProvisioning}, nil
		}
		return fail("the channel has no enclave")
	case PhaseDeprovisioning:
		if ev == EventDeprovisionDone {
			return State{Phase: PhaseGone}, nil
		}
		if ev == EventDeprovisionConfirmed {
			return fail("deprovisioning has already begun")
		}
		return fail("the enclave is being deprovisioned, which cannot be undone")
	case PhaseGone:
		return fail("the enclave has been deprovisioned")
	}

	// From here on: provisioning, provisioning failed, active, frozen or
	// flagged. A freeze of unknown cause counts as the owner's.
	to := from
	if to.Phase == PhaseFrozen && !to.Archived && !to.OwnerFrozen {
		to.OwnerFrozen = true
	}
	switch ev {
	case EventProvisionStarted:
		switch from.Phase {
		case PhaseProvisioning:
			return from, nil // a restart picks up a provisioning cut short
		case PhaseProvisionFailed:
			to.Phase = PhaseProvisioning
			return to, nil
		case PhaseFlagged:
			return fail("its channel was deleted; it can only be deprovisioned")
		}
		return fail("the enclave is already provisioned")

	case EventProvisionDone:
		if from.Phase != PhaseProvisioning {
			return fail("the enclave is not being provisioned")
		}
		to.Phase = settled(to)
		return to, nil

	case EventProvisionFailed:
		if from.Phase != PhaseProvisioning {
			return fail("the enclave is not being provisioned")
		}
		if to.ChannelDeleted {
			to.Phase = PhaseFlagged
		} else {
			to.Phase = PhaseProvisionFailed
		}
		return to, nil

	case EventChannelArchived:
		if to.ChannelDeleted {
			return fail("its channel was deleted")
		}
		to.Archived = true
		if from.Phase == PhaseActive {
			to.Phase = PhaseFrozen
		}
		return to, nil

	case EventChannelUnarchived:
		if to.ChannelDeleted {
			return fail("its channel was deleted")
		}
		to.Archived = false
		if to.Phase == PhaseFrozen && !to.OwnerFrozen {
			to.Phase = PhaseActive
		}
		return to, nil

	case EventChannelDeleted:
		to.ChannelDeleted = true
		if from.Phase != PhaseProvisioning {
			to.Phase = PhaseFlagged
		}
		return to, nil

	case EventOwnerFroze:
		switch {
		case from.Phase == PhaseFrozen && to.OwnerFrozen:
			return fail("the enclave is already frozen")
		case from.Phase == PhaseActive || from.Phase == PhaseFrozen:
			to.Phase = PhaseFrozen
			to.OwnerFrozen = true
			return to, nil
		case from.Phase == PhaseFlagged:
			return fail("its channel was deleted, so it is already frozen")
		}
		return fail("the enclave is not provisioned yet")

	case EventOwnerUnfroze:
		switch {
		case from.Phase == PhaseFrozen && !to.OwnerFrozen && to.Archived:
			return fail("it is frozen because its channel is archived; unarchive the channel to unfreeze it")
		case from.Phase == PhaseFrozen:
			to.OwnerFrozen = false
			if !to.Archived {
				to.Phase = PhaseActive
			}
			return to, nil
		case from.Phase == PhaseActive:
			return fail("the enclave is not frozen")
		case from.Phase == PhaseFlagged:
			return fail("its channel was deleted; it can only be deprovisioned")
		}
		return fail("the enclave is not provisioned yet")

	case EventDeprovisionConfirmed:
		// Also while provisioning: the owner may abandon a provisioning
		// that is stuck; the cluster refuses to provision into a
		// namespace being deleted, so the two cannot interleave.
		return State{Phase: PhaseDeprovisioning}, nil

	case EventDeprovisionDone:
		return fail("deprovisioning has not begun")

	case EventOwnerLeft:
		to.NeedsOwner = true
		return to, nil

	case EventOwnerTransferred:
		to.NeedsOwner = false
		return to, nil
	}
	return fail("the event is unknown")
}

// settled is the phase a provisioned enclave is in given its flags.
func settled(s State) Phase {
	switch {
	case s.ChannelDeleted:
		return PhaseFlagged
	case s.Archived || s.OwnerFrozen:
		return PhaseFrozen
	}
	return PhaseActive
}
