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
