package dev

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/kraken-ops/kraken/enclave"
)

// Enclaves keeps enclaves as records in the data directory; it
// implements enclave.Cluster. It is a type of its own, not methods of
// Runtime, because enclave.Cluster and tentacle.Cluster both have a List.
type Enclaves struct{ r *Runtime }

var _ enclave.Cluster = (*Enclaves)(nil)

// enclaveRecord is enclave.json: the enclave and who did what to it,
// which a cluster keeps in the namespace's annotations.
type enclaveRecord struct {
	Enclave       enclave.Enclave
	ProvisionedBy string    `json:",omitempty"`
	ProvisionedAt time.Time `json:",omitzero"`
	FrozenBy      string    `json:",omitempty"`
	FrozenAt      time.Time `json:",omitzero"`
	UpdatedBy     string    `json:",omitempty"`
	UpdatedAt     time.Time `json:",omitzero"`
}

// ErrNotUpdatable means an Update's change edited something Update does
// not record: the enclave's name, channel or team id, quota, readiness,
// termination or creation time. It is the stand-in for the cluster's
// error of the same name.
var ErrNotUpdatable = errors.New("not something an enclave update can change")

// Provision records the enclave as ready. An enclave of that name made
// by another channel (team and channel id) is enclave.ErrNameTaken and is
// left alone. On an enclave that is already ready it is a reconcile:
// the channel's name and the quota are taken from e, but the recorded
// owner, frozen state and governance are kept, as transfer, SetFrozen and
// Update own those.
func (c *Enclaves) Provision(ctx context.Context, e enclave.Enclave, p enclave.Provenance) error {
	if err := enclave.ValidateName(e.Name); err != nil {
		return err
	}
	op := "provision enclave " + e.Name
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	r := c.r
	r.mu.Lock()
	defer r.mu.Unlock()
	rec, err := r.readEnclave(e.Name)
	existed := err == nil
	switch {
	case errors.Is(err, enclave.ErrNotFound):
		rec = enclaveRecord{ProvisionedBy: cmp.Or(p.Actor, "system"), ProvisionedAt: at(p)}
	case err != nil:
		return fmt.Errorf("%s: %w", op, err)
	case rec.Enclave.Terminating:
		return fmt.Errorf("%s: %w", op, ErrTerminating)
	case rec.Enclave.Channel.ID != e.Channel.ID || rec.Enclave.Channel.TeamID != e.Channel.TeamID:
		r.log.Warn("enclave name asked for by another channel", "enclave", e.Name,
			"channel", e.Channel.ID, "team", e.Channel.TeamID,
			"owner_channel", rec.Enclave.Channel.ID, "owner_team", rec.Enclave.Channel.TeamID, "actor", p.Actor)
		return fmt.Errorf("%s: %w: the enclave name %s is already used by another channel; pick another name", op, enclave.ErrNameTaken, e.Name)
	}
	next := cloneEnclave(e)
	if existed && rec.Enclave.Ready {
		next.Owner = rec.Enclave.Owner
		next.Frozen = rec.Enclave.Frozen
		next.Governance = cloneEnclave(rec.Enclave).Governance
	}
	next.CreatedAt = rec.Enclave.CreatedAt
	if next.CreatedAt.IsZero() {
		next.CreatedAt = time.Now().UTC().Truncate(time.Second)
	}
	next.Ready, next.Terminating = true, false
	rec.Enclave = next
	if err := os.MkdirAll(r.enclaveDir(e.Name), 0o700); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if err := r.writeEnclave(rec); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	r.log.Info("enclave provisioned", "enclave", e.Name, "frozen", next.Frozen, "actor", p.Actor, "channel", p.Channel, "new", !existed)
	return nil
}

// Get reads an enclave back; enclave.ErrNotFound when there is none.
func (c *Enclaves) Get(ctx context.Context, name string) (enclave.Enclave, error) {
	op := "get enclave " + name
	if err := ctx.Err(); err != nil {
		return enclave.Enclave{}, fmt.Errorf("%s: %w", op, err)
	}
	c.r.mu.Lock()
	defer c.r.mu.Unlock()
	rec, err := c.r.readEnclave(name)
	if err != nil {
		return enclave.Enclave{}, fmt.Errorf("%s: %w", op, err)
	}
	return rec.Enclave, nil
}

// List returns every enclave, sorted by name.
func (c *Enclaves) List(ctx context.Context) ([]enclave.Enclave, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("list enclaves: %w", err)
	}
	r := c.r
	r.mu.Lock()
	defer r.mu.Unlock()
	names, err := listDirs(r.enclavesDir())
	if err != nil {
		return nil, fmt.Errorf("list enclaves: %w", err)
	}
	var out []enclave.Enclave
	for _, name := range names {
		rec, err := r.readEnclave(name)
		if errors.Is(err, enclave.ErrNotFound) {
			continue // a directory whose first provision stopped before its record
		}
		if err != nil {
			return nil, fmt.Errorf("list enclaves: %w", err)
		}
		out = append(out, rec.Enclave)
	}
	return out, nil
}

// SetFrozen records the frozen state and who set it.
func (c *Enclaves) SetFrozen(ctx context.Context, name string, frozen bool, p enclave.Provenance) error {
	op := fmt.Sprintf("set enclave %s frozen=%t", name, frozen)
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	r := c.r
	r.mu.Lock()
	defer r.mu.Unlock()
	rec, err := r.readEnclave(name)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if rec.Enclave.Terminating {
		return fmt.Errorf("%s: %w", op, ErrTerminating)
	}
	rec.Enclave.Frozen = frozen
	rec.FrozenBy, rec.FrozenAt = cmp.Or(p.Actor, "system"), at(p)
	if err := r.writeEnclave(rec); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	r.log.Info("enclave frozen state set", "enclave", name, "frozen", frozen, "actor", p.Actor, "channel", p.Channel)
	return nil
}

// Update lets change edit the enclave's owner, channel name, frozen state
// and governance, and writes them. change runs on a copy while the
// runtime holds its lock, so no other writer can come in between and it
// runs once. Its error comes back as it is, with nothing written; a
// change to anything else (name, channel or team id, quota, readiness,
// creation time) is ErrNotUpdatable. A terminating enclave is
// ErrTerminating.
func (c *Enclaves) Update(ctx context.Context, name string, change func(e *enclave.Enclave) error, p enclave.Provenance) (enclave.Enclave, error) {
	op := "update enclave " + name
	if err := ctx.Err(); err != nil {
		return enclave.Enclave{}, fmt.Errorf("%s: %w", op, err)
	}
	r := c.r
	r.mu.Lock()
	defer r.mu.Unlock()
	rec, err := r.readEnclave(name)
	if err != nil {
		return enclave.Enclave{}, fmt.Errorf("%s: %w", op, err)
	}
	if rec.Enclave.Terminating {
		return enclave.Enclave{}, fmt.Errorf("%s: %w", op, ErrTerminating)
	}
	before := rec.Enclave
	next := cloneEnclave(before)
	if err := change(&next); err != nil {
		return enclave.Enclave{}, err
	}
	var fixed []string
	if next.Name != before.Name {
		fixed = append(fixed, "name")
	}
	if next.Channel.ID != before.Channel.ID || next.Channel.TeamID != before.Channel.TeamID {
		fixed = append(fixed, "channel")
	}
	if next.Quota != before.Quota {
		fixed = append(fixed, "quota")
	}
	if next.Ready != before.Ready || next.Terminating != before.Terminating {
		fixed = append(fixed, "readiness or termination")
	}
	if !next.CreatedAt.Equal(before.CreatedAt) {
		fixed = append(fixed, "creation time")
	}
	if len(fixed) > 0 {
		return enclave.Enclave{}, fmt.Errorf("%s: %w: the change edited its %s; only the owner, channel name, frozen state and governance can be updated",
			op, ErrNotUpdatable, strings.Join(fixed, ", "))
	}
	// A copy is kept: change may hold on to next's slices and maps.
	rec.Enclave = cloneEnclave(next)
	if next.Frozen != before.Frozen {
		rec.FrozenBy, rec.FrozenAt = cmp.Or(p.Actor, "system"), at(p)
	}
	rec.UpdatedBy, rec.UpdatedAt = cmp.Or(p.Actor, "system"), at(p)
	if err := r.writeEnclave(rec); err != nil {
		return enclave.Enclave{}, fmt.Errorf("%s: %w", op, err)
	}
	r.log.Info("enclave updated", "enclave", name, "actor", p.Actor, "channel", p.Channel)
	return next, nil
}

// Deprovision removes the enclave, its tentacles and their workers. It
// is marked terminating first, so that a crash part way is finished by
// the next Open.
func (c *Enclaves) Deprovision(ctx context.Context, name string, p enclave.Provenance) error {
	op := "deprovision enclave " + name
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	r := c.r
	r.mu.Lock()
	defer r.mu.Unlock()
	rec, err := r.readEnclave(name)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if !rec.Enclave.Terminating {
		rec.Enclave.Terminating, rec.Enclave.Ready = true, false
		if err := r.writeEnclave(rec); err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
	}
	// Workers stop in the background once their runs are done; none
	// starts meanwhile, as the record says terminating.
	for k := range r.workers {
		if k.enclave == name {
			r.retire(k)
		}
	}
	for k := range r.live {
		if k.enclave == name {
			delete(r.live, k)
		}
	}
	if err := r.trash(r.enclaveDir(name)); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	r.log.Info("enclave deprovisioned", "enclave", name, "actor", p.Actor, "channel", p.Channel)
	return nil
}

// readEnclave reads enclave.json; enclave.ErrNotFound when the name is
// not an enclave's or it has no record. r.mu must be held.
func (r *Runtime) readEnclave(name string) (enclaveRecord, error) {
	if err := enclave.ValidateName(name); err != nil {
		// Never a path: the name may come from anyone.
		return enclaveRecord{}, fmt.Errorf("%w: %w", enclave.ErrNotFound, err)
	}
	data, err := os.ReadFile(filepath.Join(r.enclaveDir(name), "enclave.json"))
	if errors.Is(err, os.ErrNotExist) {
		return enclaveRecord{}, enclave.ErrNotFound
	}
	if err != nil {
		return enclaveRecord{}, err
	}
	var rec enclaveRecord
	if err := json.Unmarshal(data, &rec); err != nil {
		return enclaveRecord{}, fmt.Errorf("the record of enclave %s is damaged: %w", name, err)
	}
	if rec.Enclave.Name != name {
		return enclaveRecord{}, fmt.Errorf("the record of enclave %s names enclave %q", name, rec.Enclave.Name)
	}
	return rec, nil
}

// writeEnclave writes enclave.json. r.mu must be held.
func (r *Runtime) writeEnclave(rec enclaveRecord) error {
	data, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(r.enclaveDir(rec.Enclave.Name), "enclave.json"), append(data, '\n'), 0o600)
}

// cloneEnclave copies e with slices and maps of its own.
func cloneEnclave(e enclave.Enclave) enclave.Enclave {
	e.Members = slices.Clone(e.Members)
	e.TentacleModes = maps.Clone(e.TentacleModes)
	return e
}

// at is when the provenance says, or now.
func at(p enclave.Provenance) time.Time {
	if p.At.IsZero() {
		return time.Now().UTC()
	}
	return p.At.UTC()
}
