package command

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kraken-ops/kraken/bot/runs"
	"github.com/kraken-ops/kraken/enclave"
	"github.com/kraken-ops/kraken/store"
	"github.com/kraken-ops/kraken/tentacle"
)

// The platform administrators' reads. They answer data rather than
// words (the admin API is for programs), but go through the registry like
// everything else, so each is audited.

// EnclaveView is an enclave as the admin API shows it.
type EnclaveView struct {
	Name          string                  `json:"name"`
	ChannelID     string                  `json:"channel_id"`
	ChannelName   string                  `json:"channel_name"`
	TeamID        string                  `json:"team_id"`
	Owner         string                  `json:"owner"`
	State         string                  `json:"state"`
	Mode          string                  `json:"mode"`
	TentacleModes map[string]enclave.Mode `json:"tentacle_modes,omitempty"`
	Members       []string                `json:"members"`
	NeedsOwner    bool                    `json:"needs_owner"`
	Quota         enclave.Quota           `json:"quota"`
	CreatedAt     time.Time               `json:"created_at"`
}

func viewOf(e enclave.Enclave) EnclaveView {
	return EnclaveView{
		Name: e.Name, ChannelID: e.Channel.ID, ChannelName: e.Channel.Name, TeamID: e.Channel.TeamID,
		Owner: e.Owner, State: stateWords(e), Mode: e.Mode.String(), TentacleModes: e.TentacleModes,
		Members: e.Members, NeedsOwner: e.NeedsOwner, Quota: e.Quota, CreatedAt: e.CreatedAt,
	}
}

// AdminEnclaves lists every enclave.
func (r *Registry) AdminEnclaves(ctx context.Context, a Admin) ([]EnclaveView, error) {
	var out []EnclaveView
	err := r.adminRead(ctx, a, "admin-enclaves", "", func() error {
		all, err := r.cfg.Enclaves.List(ctx)
		for _, e := range all {
			out = append(out, viewOf(e))
		}
		return err
	})
	return out, err
}

// AdminEnclave reads one enclave; enclave.ErrNotFound when there is none.
func (r *Registry) AdminEnclave(ctx context.Context, a Admin, name string) (EnclaveView, error) {
	var out EnclaveView
	err := r.adminRead(ctx, a, "admin-enclave", name, func() error {
		e, err := r.cfg.Enclaves.Get(ctx, name)
		out = viewOf(e)
		return err
	})
	return out, err
}

// AdminTentacles lists an enclave's tentacles.
func (r *Registry) AdminTentacles(ctx context.Context, a Admin, name string) ([]tentacle.Status, error) {
	var out []tentacle.Status
	err := r.adminRead(ctx, a, "admin-tentacles", name, func() error {
		if _, err := r.cfg.Enclaves.Get(ctx, name); err != nil {
			return err
		}
		var err error
		out, err = r.tentacles.List(ctx, name)
		return err
	})
	return out, err
}

// AdminRuns lists an enclave's run records, newest first.
func (r *Registry) AdminRuns(ctx context.Context, a Admin, name string) ([]runs.Record, error) {
	var out []runs.Record
	err := r.adminRead(ctx, a, "admin-runs", name, func() error {
		var err error
		out, err = r.runs.List(ctx, name, "", 200)
		return err
	})
	return out, err
}

// AdminAudit reads the audit log.
func (r *Registry) AdminAudit(ctx context.Context, a Admin, q store.AuditQuery) ([]store.AuditEntry, error) {
	var out []store.AuditEntry
	err := r.adminRead(ctx, a, "admin-audit", q.Enclave, func() error {
		var err error
		out, err = r.cfg.Store.ListAudit(ctx, q)
		return err
	})
	return out, err
}

// adminRead runs a read for an administrator and audits it.
func (r *Registry) adminRead(ctx context.Context, a Admin, verb, enc string, read func() error) error {
	start := r.cfg.Now()
	err := read()
	if err != nil && !errors.Is(err, enclave.ErrNotFound) {
		err = fmt.Errorf("%s: %w", verb, err)
	}
	e := store.AuditEntry{
		At: start, Actor: "admin:" + a.Subject, ActorEmail: a.Email, Issuer: a.Issuer, Subject: a.Subject,
		Enclave: enc, Verb: verb, Decision: store.DecisionAllowed, Reason: "platform administrator",
		Result: store.ResultOK, Duration: r.cfg.Now().Sub(start), Via: ViaAdmin,
	}
	if err != nil {
		e.Result, e.Error = store.ResultError, err.Error()
	}
	if _, aerr := r.cfg.Store.AppendAudit(context.WithoutCancel(ctx), e); aerr != nil {
		r.log.Error("audit entry not written", "verb", verb, "err", aerr)
	}
	return err
}
