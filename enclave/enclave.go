// Package enclave is the enclave domain: a Slack channel's namespace,
// quota, network isolation, shared services and members governed as one,
// with its lifecycle and the rights people have in it.
package enclave

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"time"
)

// Enclave is what the cluster holds for one enclave. The namespace is
// named after the enclave.
type Enclave struct {
	Name string
	// Channel is the Slack channel the enclave belongs to.
	Channel Channel
	// Owner is the person who provisioned it or was given it.
	Owner string
	Quota Quota
	// Frozen enclaves keep their tentacles running but take no deploys
	// and fire no schedules.
	Frozen bool
	// Terminating means deprovisioning has begun.
	Terminating bool
	// Ready means every object the enclave needs has been provisioned.
	// It is false while provisioning, after a provision that failed part
	// way (provisioning again finishes it), and while terminating.
	Ready     bool
	CreatedAt time.Time

	Governance
}

// Governance is who may do what in an enclave, and what the bot knows of
// its channel that the cluster cannot see. The cluster records it beside
// the enclave, so every replica of the bot reads the same.
type Governance struct {
	// Members are the people (Slack user ids in the enclave's workspace)
	// the enclave counts as members besides its owner: its channel's
	// members, kept in step by the bot, and anyone added by hand.
	Members []string
	// Mode says who may do what. A recorded enclave always has one; an
	// enclave whose record lost it reads as an invalid Mode, which allows
	// nothing but the owner-only ops.
	Mode Mode
	// TentacleModes are tentacles' own modes, by tentacle name; a
	// tentacle without one follows the enclave's mode alone.
	TentacleModes map[string]Mode
	// RequireIdentity: people must sign in before changing or running
	// anything here.
	RequireIdentity bool
	// Archived: the channel is archived, and the enclave frozen for it.
	Archived bool
	// FrozenByOwner: the owner froze the enclave.
	FrozenByOwner bool
	// ChannelDeleted: the channel was deleted; the enclave waits for its
	// owner to confirm deprovisioning.
	ChannelDeleted bool
	// NeedsOwner: the owner left the channel.
	NeedsOwner bool
}

// IsMember reports whether user is among the members.
func (g Governance) IsMember(user string) bool {
	for _, m := range g.Members {
		if m == user && m != "" {
			return true
		}
	}
	return false
}

// Channel identifies a Slack channel.
type Channel struct {
	TeamID string
	ID     string
	Name   string
}

// Quota bounds what an enclave's tentacles may use together. Empty fields
// take the platform's defaults.
type Quota struct {
	CPU     string // total CPU requests, e.g. "4"
	Memory  string // total memory requests, e.g. "8Gi"
	Pods    int
	Storage string
	// Per-container defaults and limits, applied when a tentacle says
	// nothing.
	DefaultCPU    string
	DefaultMemory string
	MaxCPU        string
	MaxMemory     string
}

// Provenance says who asked for a change, when and from where; the
// cluster objects carry it so an operator can trace every one.
type Provenance struct {
	Actor   string // Slack user id, or "system" for reconciles
	Channel string // Slack channel id
	At      time.Time
}

// Cluster is what the enclave service needs from the orchestrator.
type Cluster interface {
	// Provision creates or converges everything the enclave needs. It is
	// idempotent: running it again after a crash half way finishes the job.
	// A ready enclave keeps its recorded owner and frozen state (transfer
	// and SetFrozen change those); an enclave of that name belonging to
	// another channel is ErrNameTaken.
	Provision(ctx context.Context, e Enclave, p Provenance) error
	// Get reads an enclave back; ErrNotFound when there is none.
	Get(ctx context.Context, name string) (Enclave, error)
	// List returns every enclave the bot manages.
	List(ctx context.Context) ([]Enclave, error)
	// SetFrozen records the frozen state on the enclave.
	SetFrozen(ctx context.Context, name string, frozen bool, p Provenance) error
	// Update records a change to an enclave's owner, channel name, frozen
	// state and Governance. change gets the enclave as recorded now and
	// edits it; Update writes those fields back and returns what it
	// wrote. When another writer came in between, change runs again on
	// the fresh record, so it must depend on nothing but its argument. An
	// error from change is returned as it is and nothing is written.
	// Changing anything else (name, channel or team id, quota,
	// readiness) is refused. A terminating enclave is ErrNotFound's
	// sibling: the cluster's ErrTerminating.
	Update(ctx context.Context, name string, change func(e *Enclave) error, p Provenance) (Enclave, error)
	// Deprovision removes the enclave and everything in it and waits for
	// it to be gone, up to the context's deadline (five minutes when it
	// has none).
	Deprovision(ctx context.Context, name string, p Provenance) error
}

// Errors callers branch on.
var (
	ErrNotFound    = errors.New("enclave not found")
	ErrNameInvalid = errors.New("invalid enclave name")
	ErrNameTaken   = errors.New("enclave name taken")
	ErrFrozen      = errors.New("enclave is frozen")
)

var dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// ValidateName checks that name can be an enclave (and namespace) name
// and is not one the cluster reserves.
func ValidateName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: the name is empty", ErrNameInvalid)
	case len(name) > 63:
		return fmt.Errorf("%w: %q is longer than 63 characters", ErrNameInvalid, name)
	case !dnsLabel.MatchString(name):
		return fmt.Errorf("%w: %q must be lower-case letters, digits and dashes, starting and ending with a letter or digit", ErrNameInvalid, name)
	case name == "default" || len(name) >= 5 && name[:5] == "kube-" || name == "kraken-system":
		return fmt.Errorf("%w: %q is reserved by the cluster", ErrNameInvalid, name)
	}
	return nil
}
