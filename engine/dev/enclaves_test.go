package dev

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/kraken-ops/kraken/enclave"
	"github.com/kraken-ops/kraken/tentacle"
)

func TestProvisionAndGet(t *testing.T) {
	r, _ := open(t, t.TempDir())
	c := r.Enclaves()
	want := enc("team-a")
	want.Frozen = true // a new enclave may start frozen
	if err := c.Provision(ctx(t), want, alice); err != nil {
		t.Fatal(err)
	}
	got, err := c.Get(ctx(t), "team-a")
	if err != nil {
		t.Fatal(err)
	}
	if !got.Ready || got.Terminating || got.CreatedAt.IsZero() {
		t.Fatalf("want a ready enclave with a creation time: %+v", got)
	}
	want.Ready, want.CreatedAt = true, got.CreatedAt
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %+v\nwant %+v", got, want)
	}

	// Provisioning a ready enclave again is a reconcile: the channel's
	// name and the quota follow, the owner, frozen state and governance
	// stay as recorded.
	again := enc("team-a")
	again.Owner, again.Frozen = "U-mallory", false
	again.Channel.Name = "renamed"
	again.Quota = enclave.Quota{CPU: "8"}
	again.Governance = enclave.Governance{Members: []string{"U-mallory"}, Mode: enclave.ModeOpenRun, RequireIdentity: true}
	if err := c.Provision(ctx(t), again, bob); err != nil {
		t.Fatal(err)
	}
	got, err = c.Get(ctx(t), "team-a")
	if err != nil {
		t.Fatal(err)
	}
	want.Channel.Name, want.Quota = "renamed", enclave.Quota{CPU: "8"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("after a reconcile got  %+v\nwant %+v", got, want)
	}
}

func TestProvisionRefuses(t *testing.T) {
	r, _ := open(t, t.TempDir())
	provision(t, r, "taken")
	otherChannel := enc("taken")
	otherChannel.Channel.ID = "C2"
	otherTeam := enc("taken")
	otherTeam.Channel.TeamID = "T2"
	tests := []struct {
		name string
		e    enclave.Enclave
		want error
	}{
		{"another channel's name", otherChannel, enclave.ErrNameTaken},
		{"another team's name", otherTeam, enclave.ErrNameTaken},
		{"empty name", enc(""), enclave.ErrNameInvalid},
		{"upper case", enc("Team"), enclave.ErrNameInvalid},
		{"a path", enc("../x"), enclave.ErrNameInvalid},
		{"reserved", enc("kube-system"), enclave.ErrNameInvalid},
		{"too long", enc(strings.Repeat("a", 64)), enclave.ErrNameInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := r.Enclaves().Provision(ctx(t), tt.e, bob); !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
	got, err := r.Enclaves().Get(ctx(t), "taken")
	if err != nil || got.Channel != enc("taken").Channel {
		t.Fatalf("the enclave changed: %+v %v", got, err)
	}
}

func TestGetList(t *testing.T) {
	r, _ := open(t, t.TempDir())
	c := r.Enclaves()
	if l, err := c.List(ctx(t)); err != nil || len(l) != 0 {
		t.Fatalf("want no enclaves: %v %v", l, err)
	}
	for _, n := range []string{"zeta", "alpha", "mid"} {
		provision(t, r, n)
	}
	l, err := c.List(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range l {
		names = append(names, e.Name)
	}
	if !slices.Equal(names, []string{"alpha", "mid", "zeta"}) {
		t.Fatalf("list = %v", names)
	}
	for _, name := range []string{"missing", "../enclaves", "", "UPPER"} {
		if _, err := c.Get(ctx(t), name); !errors.Is(err, enclave.ErrNotFound) {
			t.Errorf("Get(%q) = %v, want ErrNotFound", name, err)
		}
	}
}

func TestSetFrozen(t *testing.T) {
	r, _ := open(t, t.TempDir())
	c := r.Enclaves()
	provision(t, r, "cold")
	for _, frozen := range []bool{true, false, true} {
		if err := c.SetFrozen(ctx(t), "cold", frozen, bob); err != nil {
			t.Fatal(err)
		}
		if e, err := c.Get(ctx(t), "cold"); err != nil || e.Frozen != frozen || !e.Ready {
			t.Fatalf("frozen=%t: %+v %v", frozen, e, err)
		}
	}
	// A reconcile can't thaw it.
	if err := c.Provision(ctx(t), enc("cold"), alice); err != nil {
		t.Fatal(err)
	}
	if e, _ := c.Get(ctx(t), "cold"); !e.Frozen {
		t.Fatal("provisioning again thawed the enclave")
	}
	if err := c.SetFrozen(ctx(t), "missing", true, bob); !errors.Is(err, enclave.ErrNotFound) {
		t.Fatalf("got %v, want ErrNotFound", err)
	}
}

func TestUpdate(t *testing.T) {
	errMine := errors.New("not today")
	tests := []struct {
		name    string
		change  func(e *enclave.Enclave) error
		wantErr error // nil: the change is written
		check   func(e enclave.Enclave) bool
	}{
		{"owner", func(e *enclave.Enclave) error { e.Owner = "U-bob"; return nil }, nil,
			func(e enclave.Enclave) bool { return e.Owner == "U-bob" }},
		{"channel name", func(e *enclave.Enclave) error { e.Channel.Name = "new-name"; return nil }, nil,
			func(e enclave.Enclave) bool { return e.Channel.Name == "new-name" }},
		{"frozen", func(e *enclave.Enclave) error { e.Frozen = true; return nil }, nil,
			func(e enclave.Enclave) bool { return e.Frozen }},
		{"governance", func(e *enclave.Enclave) error {
			e.Members = append(e.Members, "U-carol")
			e.Mode = enclave.ModeTeamRun
			e.TentacleModes = map[string]enclave.Mode{"hello-fanout": enclave.ModePrivate}
			e.Archived, e.FrozenByOwner, e.NeedsOwner = true, true, true
			return nil
		}, nil, func(e enclave.Enclave) bool {
			return slices.Equal(e.Members, []string{"U-bob", "U-carol"}) && e.Mode == enclave.ModeTeamRun &&
				e.TentacleModes["hello-fanout"] == enclave.ModePrivate && e.Archived && e.FrozenByOwner && e.NeedsOwner
		}},
		{"change fails", func(e *enclave.Enclave) error { e.Owner = "U-bob"; return errMine }, errMine, nil},
		{"name", func(e *enclave.Enclave) error { e.Name = "other"; return nil }, ErrNotUpdatable, nil},
		{"channel id", func(e *enclave.Enclave) error { e.Channel.ID = "C9"; return nil }, ErrNotUpdatable, nil},
		{"team id", func(e *enclave.Enclave) error { e.Channel.TeamID = "T9"; return nil }, ErrNotUpdatable, nil},
		{"quota", func(e *enclave.Enclave) error { e.Quota.Pods = 100; return nil }, ErrNotUpdatable, nil},
		{"readiness", func(e *enclave.Enclave) error { e.Ready = false; return nil }, ErrNotUpdatable, nil},
		{"terminating", func(e *enclave.Enclave) error { e.Terminating = true; return nil }, ErrNotUpdatable, nil},
	}
	r, _ := open(t, t.TempDir())
	c := r.Enclaves()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			provision(t, r, "upd")
			t.Cleanup(func() { c.Deprovision(context.Background(), "upd", alice) })
			before, _ := c.Get(ctx(t), "upd")
			got, err := c.Update(ctx(t), "upd", tt.change, bob)
			after, gerr := c.Get(ctx(t), "upd")
			if gerr != nil {
				t.Fatal(gerr)
			}
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("got %v, want %v", err, tt.wantErr)
				}
				if !reflect.DeepEqual(after, before) {
					t.Fatalf("a refused update wrote:\n%+v\nwas\n%+v", after, before)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(got) || !tt.check(after) || !reflect.DeepEqual(got, after) {
				t.Fatalf("returned %+v\nrecorded %+v", got, after)
			}
		})
	}
	if _, err := c.Update(ctx(t), "missing", func(*enclave.Enclave) error { return nil }, bob); !errors.Is(err, enclave.ErrNotFound) {
		t.Fatalf("got %v, want ErrNotFound", err)
	}
}

// The change gets a copy: what it keeps of it can't alter the record.
func TestUpdateKeepsNoAlias(t *testing.T) {
	r, _ := open(t, t.TempDir())
	c := r.Enclaves()
	provision(t, r, "alias")
	var kept *enclave.Enclave
	if _, err := c.Update(ctx(t), "alias", func(e *enclave.Enclave) error { kept = e; return nil }, bob); err != nil {
		t.Fatal(err)
	}
	kept.Members[0] = "U-eve"
	if e, _ := c.Get(ctx(t), "alias"); e.Members[0] != "U-bob" {
		t.Fatal("the record shares the change's slice")
	}
}

func TestDeprovision(t *testing.T) {
	dir := t.TempDir()
	r, _ := open(t, dir)
	c := r.Enclaves()
	provision(t, r, "doomed")
	provision(t, r, "kept")
	b := bundle(t, "hello-fanout", nil)
	deploy(t, r, "doomed", b, alice)
	deploy(t, r, "kept", b, alice)
	run(t, r, "doomed", "hello-fanout", `{}`) // a worker is running

	if err := c.Deprovision(ctx(t), "doomed", alice); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(ctx(t), "doomed"); !errors.Is(err, enclave.ErrNotFound) {
		t.Fatalf("got %v, want ErrNotFound", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "enclaves", "doomed")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the enclave's directory is still there: %v", err)
	}
	if _, err := r.Tentacles().Run(ctx(t), "doomed", "hello-fanout", nil); !errors.Is(err, tentacle.ErrNotDeployed) {
		t.Fatalf("run in a removed enclave: %v", err)
	}
	if err := c.Deprovision(ctx(t), "doomed", alice); !errors.Is(err, enclave.ErrNotFound) {
		t.Fatalf("again: got %v, want ErrNotFound", err)
	}
	if res := run(t, r, "kept", "hello-fanout", `{}`); !res.Success {
		t.Fatalf("the other enclave's tentacle broke: %+v", res)
	}
	// The name is free again, and starts from nothing.
	provision(t, r, "doomed")
	if l, err := r.Tentacles().List(ctx(t), "doomed"); err != nil || len(l) != 0 {
		t.Fatalf("a new enclave has tentacles: %v %v", l, err)
	}
}

// A deprovision that a crash stopped part way is finished by Open.
func TestOpenFinishesDeprovision(t *testing.T) {
	dir := t.TempDir()
	r, _ := open(t, dir)
	provision(t, r, "half-gone")
	r.Close()
	p := filepath.Join(dir, "enclaves", "half-gone", "enclave.json")
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	data = []byte(strings.Replace(string(data), `"Terminating": false`, `"Terminating": true`, 1))
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	r2, _ := open(t, dir)
	if _, err := r2.Enclaves().Get(ctx(t), "half-gone"); !errors.Is(err, enclave.ErrNotFound) {
		t.Fatalf("got %v, want ErrNotFound", err)
	}
}
