package enclave

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
)

// memCluster keeps enclaves in memory, for the service's rules. The real
// clusters (k8s, engine/dev) are tested against the same interface in
// their own packages.
type memCluster struct {
	enclaves map[string]Enclave
}

func (m *memCluster) Provision(_ context.Context, e Enclave, _ Provenance) error {
	if old, ok := m.enclaves[e.Name]; ok {
		if old.Channel.ID != e.Channel.ID {
			return ErrNameTaken
		}
		old.Ready = true
		m.enclaves[e.Name] = old
		return nil
	}
	e.Ready = true
	m.enclaves[e.Name] = e
	return nil
}

func (m *memCluster) Get(_ context.Context, name string) (Enclave, error) {
	e, ok := m.enclaves[name]
	if !ok {
		return Enclave{}, ErrNotFound
	}
	return e, nil
}

func (m *memCluster) List(context.Context) ([]Enclave, error) {
	return slices.Collect(maps.Values(m.enclaves)), nil
}

func (m *memCluster) SetFrozen(_ context.Context, name string, frozen bool, _ Provenance) error {
	e, ok := m.enclaves[name]
	if !ok {
		return ErrNotFound
	}
	e.Frozen = frozen
	m.enclaves[name] = e
	return nil
}

func (m *memCluster) Update(_ context.Context, name string, change func(*Enclave) error, _ Provenance) (Enclave, error) {
	e, ok := m.enclaves[name]
	if !ok {
		return Enclave{}, ErrNotFound
	}
	e.Members = slices.Clone(e.Members)
	e.TentacleModes = maps.Clone(e.TentacleModes)
	if err := change(&e); err != nil {
		return Enclave{}, err
	}
	m.enclaves[name] = e
	return e, nil
}

func (m *memCluster) Deprovision(_ context.Context, name string, _ Provenance) error {
	delete(m.enclaves, name)
	return nil
}

var testChannel = Channel{TeamID: "T1", ID: "C1", Name: "payments"}

func provisioned(t *testing.T) (*Service, Enclave) {
	t.Helper()
	s := &Service{Cluster: &memCluster{enclaves: map[string]Enclave{}}}
	e, err := s.Provision(context.Background(), testChannel, "payments", "UOWNER", []string{"UOWNER", "UB", "UA", "UA", ""}, Provenance{Actor: "UOWNER"})
	if err != nil {
		t.Fatal(err)
	}
	return s, e
}

func TestNameFor(t *testing.T) {
	for in, want := range map[string]string{
		"payments":                    "payments",
		"Team_Payments EU":            "team-payments-eu",
		"--x--":                       "x",
		"données":                     "donn-es",
		"日本":                          "",
		"default":                     "",
		"kube-system":                 "",
		"a" + strings.Repeat("0", 70): "a" + strings.Repeat("0", 62),
	} {
		if got := NameFor(in); got != want {
			t.Errorf("NameFor(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestServiceProvision(t *testing.T) {
	s, e := provisioned(t)
	if e.Mode != DefaultMode || !slices.Equal(e.Members, []string{"UA", "UB", "UOWNER"}) || e.Owner != "UOWNER" {
		t.Fatalf("provisioned %+v", e)
	}
	ctx := context.Background()
	if _, err := s.Provision(ctx, testChannel, "other", "UA", nil, Provenance{}); !errors.Is(err, ErrChannelHasEnclave) {
		t.Errorf("second provision in the channel: %v", err)
	}
	if _, err := s.Provision(ctx, Channel{TeamID: "T1", ID: "C2"}, "payments", "UA", nil, Provenance{}); !errors.Is(err, ErrNameTaken) {
		t.Errorf("another channel taking the name: %v", err)
	}
	if _, err := s.Provision(ctx, Channel{TeamID: "T1", ID: "C3"}, "Bad Name", "UA", nil, Provenance{}); !errors.Is(err, ErrNameInvalid) {
		t.Errorf("bad name: %v", err)
	}
	got, err := s.ByChannel(ctx, testChannel)
	if err != nil || got.Name != "payments" {
		t.Errorf("ByChannel = %v, %v", got.Name, err)
	}
	if _, err := s.ByChannel(ctx, Channel{TeamID: "T2", ID: "C1"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("same channel id in another team: %v", err)
	}
}

func TestServiceLifecycle(t *testing.T) {
	ctx := context.Background()
	s, _ := provisioned(t)
	steps := []struct {
		ev      Event
		want    Phase
		wantErr bool
	}{
		{EventChannelArchived, PhaseFrozen, false},
		{EventOwnerUnfroze, PhaseFrozen, true}, // archived: unarchive to thaw
		{EventOwnerFroze, PhaseFrozen, false},
		{EventChannelUnarchived, PhaseFrozen, false}, // still frozen by the owner
		{EventOwnerUnfroze, PhaseActive, false},
		{EventOwnerUnfroze, PhaseActive, true},
		{EventChannelDeleted, PhaseFlagged, false},
		{EventOwnerUnfroze, PhaseFlagged, true},
	}
	for i, st := range steps {
		e, err := s.Apply(ctx, "payments", st.ev, Provenance{})
		if (err != nil) != st.wantErr {
			t.Fatalf("step %d %s: err %v", i, st.ev, err)
		}
		if err != nil {
			if !errors.Is(err, ErrInvalidTransition) {
				t.Fatalf("step %d: %v is not a transition error", i, err)
			}
			e, _ = s.Cluster.Get(ctx, "payments")
		}
		if got := StateOf(e).Phase; got != st.want {
			t.Fatalf("step %d %s: phase %s, want %s", i, st.ev, got, st.want)
		}
		if e.Frozen != (st.want != PhaseActive) {
			t.Fatalf("step %d: frozen flag %t in %s", i, e.Frozen, st.want)
		}
	}
	if err := s.Deprovision(ctx, "payments", Provenance{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ByChannel(ctx, testChannel); !errors.Is(err, ErrNotFound) {
		t.Errorf("after deprovision: %v", err)
	}
}

func TestServiceMembers(t *testing.T) {
	ctx := context.Background()
	s, _ := provisioned(t)
	e, err := s.MemberJoined(ctx, "payments", "UC", Provenance{})
	if err != nil || !e.IsMember("UC") {
		t.Fatalf("join: %v %v", e.Members, err)
	}
	e, err = s.MemberLeft(ctx, "payments", "UOWNER", Provenance{})
	if err != nil || !e.NeedsOwner || e.IsMember("UOWNER") || StateOf(e).Phase != PhaseActive {
		t.Fatalf("owner left: %+v %v", e, err)
	}
	if _, err := s.Transfer(ctx, "payments", "UNOBODY", Provenance{}); !errors.Is(err, ErrNotMember) {
		t.Errorf("transfer to a non-member: %v", err)
	}
	e, err = s.Transfer(ctx, "payments", "UA", Provenance{})
	if err != nil || e.Owner != "UA" || e.NeedsOwner {
		t.Fatalf("transfer: %+v %v", e, err)
	}
	// A reconcile finds the new owner gone and the old one back.
	e, err = s.SyncMembers(ctx, "payments", []string{"UOWNER", "UB"}, Provenance{})
	if err != nil || !e.NeedsOwner || !slices.Equal(e.Members, []string{"UB", "UOWNER"}) {
		t.Fatalf("sync: %+v %v", e, err)
	}
	e, err = s.MemberJoined(ctx, "payments", "UA", Provenance{})
	if err != nil || e.NeedsOwner {
		t.Fatalf("owner back: %+v %v", e, err)
	}
	e, err = s.Rename(ctx, "payments", "payments-eu", Provenance{})
	if err != nil || e.Channel.Name != "payments-eu" || e.Name != "payments" {
		t.Fatalf("rename: %+v %v", e, err)
	}
}

func TestServiceSetMode(t *testing.T) {
	ctx := context.Background()
	s, _ := provisioned(t)
	priv := ModePrivate
	e, err := s.SetMode(ctx, "payments", "", &priv, Provenance{})
	if err != nil || e.Mode != ModePrivate {
		t.Fatalf("enclave mode: %v %v", e.Mode, err)
	}
	run := ModeTeamRun
	e, err = s.SetMode(ctx, "payments", "billing", &run, Provenance{})
	if err != nil || e.TentacleModes["billing"] != ModeTeamRun {
		t.Fatalf("tentacle mode: %v %v", e.TentacleModes, err)
	}
	e, err = s.SetMode(ctx, "payments", "billing", nil, Provenance{})
	if _, ok := e.TentacleModes["billing"]; err != nil || ok {
		t.Fatalf("clearing tentacle mode: %v %v", e.TentacleModes, err)
	}
	bad := Mode(0o1000)
	for _, tt := range []struct {
		tentacle string
		m        *Mode
	}{{"", &bad}, {"", nil}, {"x", &bad}} {
		if _, err := s.SetMode(ctx, "payments", tt.tentacle, tt.m, Provenance{}); !errors.Is(err, ErrInvalidMode) {
			t.Errorf("SetMode(%q, %v): %v", tt.tentacle, tt.m, err)
		}
	}
}
