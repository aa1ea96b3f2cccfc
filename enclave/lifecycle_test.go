package enclave

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// Short names for the tables below.
var (
	sNone    = State{}
	sProv    = State{Phase: PhaseProvisioning}
	sFailed  = State{Phase: PhaseProvisionFailed}
	sActive  = State{Phase: PhaseActive}
	sFrozen  = State{Phase: PhaseFrozen} // cause unknown: counts as the owner's
	sFlagged = State{Phase: PhaseFlagged, ChannelDeleted: true}
	sDeprov  = State{Phase: PhaseDeprovisioning}
	sGone    = State{Phase: PhaseGone}

	frozenA   = State{Phase: PhaseFrozen, Archived: true}
	frozenO   = State{Phase: PhaseFrozen, OwnerFrozen: true}
	frozenAO  = State{Phase: PhaseFrozen, Archived: true, OwnerFrozen: true}
	errState  = State{Phase: Phase(250)} // marks "must be an error" in the tables
	allEvents = Events()
)

func TestEvents(t *testing.T) {
	if len(allEvents) != 12 {
		t.Fatalf("Events() has %d events, want 12", len(allEvents))
	}
	seen := map[string]bool{}
	for _, e := range allEvents {
		if seen[e.String()] || strings.HasPrefix(e.String(), "Event(") {
			t.Errorf("event %d has a bad or duplicate name %q", e, e)
		}
		seen[e.String()] = true
	}
	if Event(0).String() != "Event(0)" || Event(99).String() != "Event(99)" {
		t.Errorf("unknown events print as %q, %q", Event(0), Event(99))
	}
}

// TestTransitionMatrix covers every phase (without extra flags) against
// every event: each cell is the state it leads to, or errState for an
// invalid transition. So every invalid pair of phase and event is listed.
func TestTransitionMatrix(t *testing.T) {
	x := errState
	withNO := func(s State) State { s.NeedsOwner = true; return s }
	// Columns: ProvisionStarted, ProvisionDone, ProvisionFailed,
	// ChannelArchived, ChannelUnarchived, ChannelDeleted, OwnerFroze,
	// OwnerUnfroze, DeprovisionConfirmed, DeprovisionDone, OwnerLeft,
	// OwnerTransferred.
	matrix := []struct {
		from State
		to   [12]State
	}{
		{sNone, [12]State{sProv, x, x, x, x, x, x, x, x, x, x, x}},
		{sProv, [12]State{
			sProv, sActive, sFailed,
			{Phase: PhaseProvisioning, Archived: true}, sProv, {Phase: PhaseProvisioning, ChannelDeleted: true},
			x, x,
			sDeprov, x,
			withNO(sProv), sProv}},
		{sFailed, [12]State{
			sProv, x, x,
			{Phase: PhaseProvisionFailed, Archived: true}, sFailed, sFlagged,
			x, x,
			sDeprov, x,
			withNO(sFailed), sFailed}},
		{sActive, [12]State{
			x, x, x,
			frozenA, sActive, sFlagged,
			frozenO, x,
			sDeprov, x,
			withNO(sActive), sActive}},
		{sFrozen, [12]State{
			x, x, x,
			frozenAO, frozenO, {Phase: PhaseFlagged, ChannelDeleted: true, OwnerFrozen: true},
			x, sActive,
			sDeprov, x,
			withNO(frozenO), frozenO}},
		{sFlagged, [12]State{
			x, x, x,
			x, x, sFlagged,
			x, x,
			sDeprov, x,
			withNO(sFlagged), sFlagged}},
		{sDeprov, [12]State{x, x, x, x, x, x, x, x, x, sGone, x, x}},
		{sGone, [12]State{x, x, x, x, x, x, x, x, x, x, x, x}},
	}
	if len(matrix) != int(phaseCount) {
		t.Fatalf("matrix has %d phases, want %d", len(matrix), phaseCount)
	}
	invalid := 0
	for _, row := range matrix {
		for i, ev := range allEvents {
			checkTransition(t, row.from, ev, row.to[i])
			if row.to[i] == errState {
				invalid++
			}
		}
	}
	t.Logf("%d pairs, %d invalid", len(matrix)*len(allEvents), invalid)
}

// TestTransitionFlags covers the cells where the flags beside the phase
// change the outcome.
func TestTransitionFlags(t *testing.T) {
	x := errState
	provA := State{Phase: PhaseProvisioning, Archived: true}
	provD := State{Phase: PhaseProvisioning, ChannelDeleted: true}
	provAD := State{Phase: PhaseProvisioning, Archived: true, ChannelDeleted: true}
	failedA := State{Phase: PhaseProvisionFailed, Archived: true}
	activeNO := State{Phase: PhaseActive, NeedsOwner: true}
	flaggedAll := State{Phase: PhaseFlagged, ChannelDeleted: true, Archived: true, OwnerFrozen: true, NeedsOwner: true}
	tests := []struct {
		from State
		ev   Event
		to   State
	}{
		// Channel facts seen while provisioning decide where it lands.
		{provA, EventProvisionDone, frozenA},
		{provD, EventProvisionDone, sFlagged},
		{provAD, EventProvisionDone, State{Phase: PhaseFlagged, Archived: true, ChannelDeleted: true}},
		{State{Phase: PhaseProvisioning, NeedsOwner: true}, EventProvisionDone, activeNO},
		{provA, EventProvisionFailed, failedA},
		{provD, EventProvisionFailed, sFlagged},
		{provA, EventChannelUnarchived, sProv},
		{provA, EventChannelArchived, provA},
		{provD, EventChannelArchived, x},
		{provD, EventChannelUnarchived, x},
		{provD, EventChannelDeleted, provD},
		{provA, EventDeprovisionConfirmed, sDeprov},
		{failedA, EventProvisionStarted, provA},
		{failedA, EventChannelUnarchived, sFailed},
		{failedA, EventChannelDeleted, State{Phase: PhaseFlagged, Archived: true, ChannelDeleted: true}},
		// Frozen by the archive alone.
		{frozenA, EventChannelArchived, frozenA},
		{frozenA, EventChannelUnarchived, sActive},
		{frozenA, EventOwnerFroze, frozenAO},
		{frozenA, EventOwnerUnfroze, x},
		{frozenA, EventChannelDeleted, State{Phase: PhaseFlagged, Archived: true, ChannelDeleted: true}},
		{frozenA, EventProvisionStarted, x},
		// Frozen by the owner alone.
		{frozenO, EventOwnerFroze, x},
		{frozenO, EventOwnerUnfroze, sActive},
		{frozenO, EventChannelArchived, frozenAO},
		{frozenO, EventChannelUnarchived, frozenO},
		// Frozen for both reasons needs both lifted.
		{frozenAO, EventOwnerFroze, x},
		{frozenAO, EventChannelUnarchived, frozenO},
		{frozenAO, EventOwnerUnfroze, frozenA},
		{frozenAO, EventChannelArchived, frozenAO},
		// A missing owner.
		{activeNO, EventOwnerLeft, activeNO},
		{activeNO, EventOwnerTransferred, sActive},
		{activeNO, EventChannelArchived, State{Phase: PhaseFrozen, Archived: true, NeedsOwner: true}},
		{activeNO, EventDeprovisionConfirmed, sDeprov},
		{flaggedAll, EventOwnerTransferred, State{Phase: PhaseFlagged, ChannelDeleted: true, Archived: true, OwnerFrozen: true}},
		{flaggedAll, EventDeprovisionConfirmed, sDeprov},
		{flaggedAll, EventChannelUnarchived, x},
		{flaggedAll, EventOwnerUnfroze, x},
		{flaggedAll, EventOwnerFroze, x},
	}
	for _, tt := range tests {
		checkTransition(t, tt.from, tt.ev, tt.to)
	}
}

func checkTransition(t *testing.T, from State, ev Event, want State) {
	t.Helper()
	got, err := Transition(from, ev)
	if want == errState {
		var te *TransitionError
		if err == nil {
			t.Errorf("%s + %s = %s, want an error", from, ev, got)
			return
		}
		if !errors.Is(err, ErrInvalidTransition) || !errors.As(err, &te) || te.From != from || te.Event != ev || te.Reason == "" {
			t.Errorf("%s + %s: error %#v, want a *TransitionError with a reason", from, ev, err)
		}
		if got != from {
			t.Errorf("%s + %s: returned %s with its error, want the state unchanged", from, ev, got)
		}
		return
	}
	if err != nil || got != want {
		t.Errorf("%s + %s = %s, %v; want %s", from, ev, got, err, want)
	}
}

// allStates is every combination of phase and flags, valid or not.
func allStates() []State {
	var out []State
	for p := Phase(0); p <= phaseCount; p++ { // one past the end: an unknown phase
		for f := 0; f < 16; f++ {
			out = append(out, State{Phase: p, Archived: f&1 != 0, OwnerFrozen: f&2 != 0, ChannelDeleted: f&4 != 0, NeedsOwner: f&8 != 0})
		}
	}
	return out
}

// TestTransitionProperties applies every event (and two unknown ones) to
// every combination of phase and flags and checks what must hold for all.
func TestTransitionProperties(t *testing.T) {
	events := append([]Event{0, eventCount, 200}, allEvents...)
	valid, pairs, ok := 0, 0, 0
	for _, from := range allStates() {
		if from.Valid() {
			valid++
		}
		for _, ev := range events {
			pairs++
			to, err := Transition(from, ev)
			if err != nil {
				if !errors.Is(err, ErrInvalidTransition) || to != from || err.Error() == "" {
					t.Errorf("%s + %s: %v, returned %s", from, ev, err, to)
				}
				continue
			}
			ok++
			switch {
			case !from.Valid():
				t.Errorf("an inconsistent state %+v took %s", from, ev)
			case ev <= eventInvalid || ev >= eventCount:
				t.Errorf("unknown event %d was applied to %s", ev, from)
			case !to.Valid():
				t.Errorf("%s + %s = %+v, not a valid state", from, ev, to)
			case from.Phase == PhaseGone:
				t.Errorf("gone left for %s", to)
			case from.Phase == PhaseDeprovisioning && to.Phase != PhaseGone:
				t.Errorf("deprovisioning went back to %s", to)
			case to.Phase == PhaseNone:
				t.Errorf("%s + %s went back to no enclave", from, ev)
			}
			// Only the owner events change NeedsOwner, except that leaving
			// the living phases drops every flag.
			if to.Phase != PhaseDeprovisioning && to.Phase != PhaseGone && ev != EventOwnerLeft && ev != EventOwnerTransferred && to.NeedsOwner != from.NeedsOwner {
				t.Errorf("%s + %s changed NeedsOwner: %s", from, ev, to)
			}
			// Only the channel changes Archived; only the owner's freeze
			// and a provisioning that ends change the frozen phase.
			if from.Phase != PhaseNone && to.Phase != PhaseDeprovisioning && to.Phase != PhaseGone && ev != EventChannelArchived && ev != EventChannelUnarchived && to.Archived != from.Archived {
				t.Errorf("%s + %s changed Archived: %s", from, ev, to)
			}
			// A deleted channel stays deleted.
			if from.ChannelDeleted && to.Phase != PhaseDeprovisioning && !to.ChannelDeleted {
				t.Errorf("%s + %s forgot the channel was deleted: %s", from, ev, to)
			}
			// Applying a channel fact twice changes nothing the second time.
			switch ev {
			case EventChannelArchived, EventChannelUnarchived, EventChannelDeleted, EventOwnerLeft:
				if again, err := Transition(to, ev); err != nil || again != to {
					t.Errorf("%s + %s twice: %s, %v; want %s", from, ev, again, err, to)
				}
			}
		}
	}
	if valid != 33 {
		t.Errorf("%d valid states, want 33", valid)
	}
	t.Logf("%d states (%d valid) x %d events = %d pairs, %d transitions allowed", len(allStates()), valid, len(events), pairs, ok)
}

func TestTransitionMessages(t *testing.T) {
	tests := []struct {
		from State
		ev   Event
		msg  string
	}{
		{sActive, EventOwnerUnfroze, `cannot apply "owner unfroze" to an enclave that is active: the enclave is not frozen`},
		{frozenA, EventOwnerUnfroze, "frozen because its channel is archived; unarchive the channel to unfreeze it"},
		{frozenO, EventOwnerFroze, "the enclave is already frozen"},
		{sDeprov, EventDeprovisionConfirmed, "deprovisioning has already begun"},
		{sGone, EventProvisionStarted, "the enclave has been deprovisioned"},
		{sNone, EventChannelArchived, "the channel has no enclave"},
		{sActive, EventProvisionStarted, "already provisioned"},
		{sFlagged, EventProvisionStarted, "its channel was deleted"},
		{State{Phase: PhaseActive, Archived: true}, EventChannelUnarchived, "the state is inconsistent"},
		{sActive, Event(0), "the event is unknown"},
	}
	for _, tt := range tests {
		_, err := Transition(tt.from, tt.ev)
		if err == nil || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("%s + %s: %v, want %q", tt.from, tt.ev, err, tt.msg)
		}
	}
}

func TestStateStrings(t *testing.T) {
	tests := map[State]string{
		sNone:    "not provisioned",
		sActive:  "active",
		frozenA:  "frozen (channel archived)",
		sFlagged: "flagged for deprovision",
		{Phase: PhaseFrozen, Archived: true, OwnerFrozen: true, NeedsOwner: true}: "frozen (channel archived, frozen by the owner, needs a new owner)",
		{Phase: PhaseProvisioning, ChannelDeleted: true}:                          "provisioning (channel deleted)",
		{Phase: Phase(77)}: "Phase(77)",
	}
	for s, want := range tests {
		if s.String() != want {
			t.Errorf("%+v.String() = %q, want %q", s, s.String(), want)
		}
	}
}

func TestStateOf(t *testing.T) {
	tests := []struct {
		e    Enclave
		want State
	}{
		{Enclave{Ready: true}, sActive},
		{Enclave{Ready: true, Frozen: true}, State{Phase: PhaseFrozen, OwnerFrozen: true}},
		{Enclave{}, sProv},
		{Enclave{Frozen: true}, sProv},
		{Enclave{Ready: true, Terminating: true}, sDeprov},
		{Enclave{Terminating: true, Frozen: true}, sDeprov},
	}
	for _, tt := range tests {
		if got := StateOf(tt.e); got != tt.want {
			t.Errorf("StateOf(%+v) = %s, want %s", tt.e, got, tt.want)
		}
	}
}

func ExampleTransition() {
	s := State{Phase: PhaseActive}
	for _, ev := range []Event{EventChannelArchived, EventOwnerFroze, EventChannelUnarchived, EventOwnerUnfroze, EventOwnerUnfroze} {
		next, err := Transition(s, ev)
		if err != nil {
			fmt.Println(err)
			continue
		}
		fmt.Printf("%s → %s\n", ev, next)
		s = next
	}
	// Output:
	// channel archived → frozen (channel archived)
	// owner froze → frozen (channel archived, frozen by the owner)
	// channel unarchived → frozen (frozen by the owner)
	// owner unfroze → active
	// cannot apply "owner unfroze" to an enclave that is active: the enclave is not frozen
}
