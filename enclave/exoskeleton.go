package enclave

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Kind names one exoskeleton service: the shared services every enclave
// gets its own space on, and every tentacle its own room in.
type Kind string

// The exoskeleton's services.
const (
	Postgres    Kind = "postgres" // a database per enclave, a schema and login role per tentacle
	ObjectStore Kind = "s3"       // a bucket per enclave, a key prefix and access key per tentacle
	Messaging   Kind = "nats"     // a subject prefix per enclave, a user per tentacle
)

// Network is where a tentacle's egress must be opened for it to reach a
// service: a CIDR, or pods (by labels) in a namespace, on Port (zero
// means the Space's own port).
type Network struct {
	CIDR      string            `json:"cidr,omitempty"`
	Namespace string            `json:"namespace,omitempty"`
	Pods      map[string]string `json:"pods,omitempty"`
	Port      int               `json:"port"`
}

// Space is one tentacle's room on one exoskeleton service: where it is,
// and the credentials that open that room and nothing else. It is what
// ctx.dependency(name) returns to a node (JSON keys as tagged), and what
// the tentacle's credentials Secret holds.
type Space struct {
	Kind     Kind   `json:"-"`
	Protocol string `json:"protocol"` // as written in contracts: postgresql, s3, nats
	Host     string `json:"host"`
	Port     int    `json:"port"`
	TLS      bool   `json:"tls,omitempty"`

	Database string `json:"database,omitempty"` // postgres
	Schema   string `json:"schema,omitempty"`   // postgres: the tentacle's own schema (also its search_path)
	Bucket   string `json:"bucket,omitempty"`   // s3
	Region   string `json:"region,omitempty"`   // s3
	// Prefix is the tentacle's key prefix in the bucket ("reports/"), or
	// the enclave's NATS subject prefix ("kraken.payments").
	Prefix string `json:"prefix,omitempty"`

	User string `json:"user"` // login role, access key id, or NATS user public key
	// Secret is the password, secret access key, or NATS user seed.
	Secret string `json:"secret"`
	// Token is the NATS user JWT; empty elsewhere.
	Token string `json:"token,omitempty"`
	// Subject and Inbox are NATS's: the subjects the user may use
	// ("kraken.payments.>") and the inbox prefix its requests must set.
	Subject string `json:"subject,omitempty"`
	Inbox   string `json:"inboxPrefix,omitempty"`

	// Network is what the tentacle's NetworkPolicy opens for this space.
	Network []Network `json:"-"`
}

// Usage is what an enclave holds on one service, told in plain words
// before it is destroyed.
type Usage struct {
	Kind Kind
	// What names the enclave's space for people: "database kraken_payments".
	What    string
	Exists  bool
	Bytes   int64
	Objects int64 // tables, objects or streams; what the service counts
}

// Backend is one exoskeleton service, shared by all enclaves. Every
// method is idempotent, so a provision or deploy cut short is finished
// by doing it again.
type Backend interface {
	Kind() Kind
	// Open makes the enclave's space (database, bucket, subject prefix).
	Open(ctx context.Context, enclave string) error
	// Grant makes the tentacle's room in the enclave's space and returns
	// the credentials for it. The same enclave and tentacle get the same
	// credentials every time (they are derived, see DeriveSecret), so
	// every replica agrees and a redeploy does not cut running pods off.
	Grant(ctx context.Context, enclave, tentacle string) (Space, error)
	// Revoke makes the tentacle's credentials useless where the service
	// lets the bot do so (a service that cannot says so in its log and
	// documentation); its data stays until the enclave is dropped.
	Revoke(ctx context.Context, enclave, tentacle string) error
	// Usage says what the enclave keeps there, for the deprovision card.
	Usage(ctx context.Context, enclave string) (Usage, error)
	// Drop destroys the enclave's space and everything in it.
	Drop(ctx context.Context, enclave string) error
}

// ErrNoService means the platform has not configured a service a
// tentacle's contract asks for.
var ErrNoService = errors.New("service not available in this cluster")

// DeriveSecret derives a credential from the platform's key and the
// parts that name what it opens (kind, enclave, tentacle). Different
// parts never give the same secret; the same parts always do.
func DeriveSecret(key []byte, parts ...string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("kraken exoskeleton v1"))
	for _, p := range parts {
		// Length-prefixed, so ("ab","c") and ("a","bc") differ.
		m.Write([]byte{0, byte(len(p) >> 8), byte(len(p))})
		m.Write([]byte(p))
	}
	return strings.TrimRight(base64.RawURLEncoding.EncodeToString(m.Sum(nil)), "=")
}

// Exoskeleton is the set of services the platform configured. A nil or
// empty Exoskeleton has no services: enclaves are made without any, and
// a tentacle that asks for one is refused with ErrNoService.
type Exoskeleton struct {
	backends []Backend
}

// NewExoskeleton groups the configured backends, one per kind, opened
// and granted in the order given.
func NewExoskeleton(backends ...Backend) (*Exoskeleton, error) {
	x := &Exoskeleton{}
	seen := map[Kind]bool{}
	for _, b := range backends {
		if seen[b.Kind()] {
			return nil, fmt.Errorf("exoskeleton: two %s services configured", b.Kind())
		}
		seen[b.Kind()] = true
		x.backends = append(x.backends, b)
	}
	return x, nil
}

// Kinds lists the services there are, in order.
func (x *Exoskeleton) Kinds() []Kind {
	if x == nil {
		return nil
	}
	out := make([]Kind, len(x.backends))
	for i, b := range x.backends {
		out[i] = b.Kind()
	}
	return out
}

func (x *Exoskeleton) backend(k Kind) (Backend, bool) {
	if x == nil {
		return nil, false
	}
	for _, b := range x.backends {
		if b.Kind() == k {
			return b, true
		}
	}
	return nil, false
}

// Open makes the enclave's space on every service. It stops at the first
// failure; what it made stays, unusable until a grant (no tentacle has
// credentials yet), and is finished by opening again.
func (x *Exoskeleton) Open(ctx context.Context, enclave string) error {
	if x == nil {
		return nil
	}
	for _, b := range x.backends {
		if err := b.Open(ctx, enclave); err != nil {
			return &ServiceError{Kind: b.Kind(), Op: "open", Err: err}
		}
	}
	return nil
}

// Grant gives a tentacle its room on each service its dependencies ask
// for (dependency name → kind), and returns the spaces by dependency
// name. Nothing is granted when a kind is not configured.
func (x *Exoskeleton) Grant(ctx context.Context, enclave, tentacle string, wants map[string]Kind) (map[string]Space, error) {
	if len(wants) == 0 {
		return nil, nil
	}
	for name, k := range wants {
		if _, ok := x.backend(k); !ok {
			return nil, &ServiceError{Kind: k, Op: "grant", Dependency: name, Err: ErrNoService}
		}
	}
	out := make(map[string]Space, len(wants))
	granted := map[Kind]Space{}
	for _, name := range slices.Sorted(maps.Keys(wants)) {
		k := wants[name]
		if s, ok := granted[k]; ok {
			out[name] = s
			continue
		}
		b, _ := x.backend(k)
		// Open again: an enclave made before this service was configured
		// gets its space on first use.
		if err := b.Open(ctx, enclave); err != nil {
			return nil, &ServiceError{Kind: k, Op: "open", Dependency: name, Err: err}
		}
		s, err := b.Grant(ctx, enclave, tentacle)
		if err != nil {
			return nil, &ServiceError{Kind: k, Op: "grant", Dependency: name, Err: err}
		}
		s.Kind = k
		granted[k] = s
		out[name] = s
	}
	return out, nil
}

// Revoke takes a tentacle's credentials away on the services of the
// kinds given, or on every service when none is given; its data stays.
// Every service is tried; the errors are joined.
func (x *Exoskeleton) Revoke(ctx context.Context, enclave, tentacle string, kinds ...Kind) error {
	if x == nil {
		return nil
	}
	var errs []error
	for _, b := range x.backends {
		if len(kinds) > 0 && !slices.Contains(kinds, b.Kind()) {
			continue
		}
		if err := b.Revoke(ctx, enclave, tentacle); err != nil {
			errs = append(errs, &ServiceError{Kind: b.Kind(), Op: "revoke", Err: err})
		}
	}
	return errors.Join(errs...)
}

// Usage says what the enclave keeps on each service.
func (x *Exoskeleton) Usage(ctx context.Context, enclave string) ([]Usage, error) {
	if x == nil {
		return nil, nil
	}
	out := make([]Usage, 0, len(x.backends))
	for _, b := range x.backends {
		u, err := b.Usage(ctx, enclave)
		if err != nil {
			return nil, &ServiceError{Kind: b.Kind(), Op: "measure", Err: err}
		}
		u.Kind = b.Kind()
		out = append(out, u)
	}
	return out, nil
}

// Drop destroys the enclave's spaces and their data on every service.
// Every service is tried; the errors are joined, and dropping again
// finishes the rest.
func (x *Exoskeleton) Drop(ctx context.Context, enclave string) error {
	if x == nil {
		return nil
	}
	var errs []error
	for _, b := range x.backends {
		if err := b.Drop(ctx, enclave); err != nil {
			errs = append(errs, &ServiceError{Kind: b.Kind(), Op: "drop", Err: err})
		}
	}
	return errors.Join(errs...)
}

// ServiceError is a failure of one exoskeleton service.
type ServiceError struct {
	Kind       Kind
	Op         string // open, grant, revoke, measure, drop
	Dependency string // the contract dependency that asked, when one did
	Err        error
}

func (e *ServiceError) Error() string {
	s := fmt.Sprintf("%s: %s", e.Kind.Title(), e.Op)
	if e.Dependency != "" {
		s += " for dependency " + e.Dependency
	}
	return s + ": " + e.Err.Error()
}

func (e *ServiceError) Unwrap() error { return e.Err }

// Plain says what went wrong as a clause for the people in the channel
// ("I couldn't deploy x: <plain>."); the service's own error, which may
// name hosts and roles, is for the log.
func (e *ServiceError) Plain() string {
	if errors.Is(e.Err, ErrNoService) {
		return fmt.Sprintf("this cluster has no %s for enclaves, so dependency %s can't be given one; ask your platform team to set it up, or remove the dependency",
			e.Kind.Title(), e.Dependency)
	}
	if e.Op == "drop" {
		return fmt.Sprintf("the enclave's %s could not be removed, so the enclave is kept for now; deprovision again in a minute to finish, and if it keeps failing your platform team can see why in the bot's log", e.Kind.Title())
	}
	return fmt.Sprintf("the enclave's %s isn't answering as it should, so nothing was changed; try again in a minute, and if it keeps failing your platform team can see why in the bot's log", e.Kind.Title())
}

// Title names the kind for people: "database", "object storage", "messaging".
func (k Kind) Title() string {
	switch k {
	case Postgres:
		return "database"
	case ObjectStore:
		return "object storage"
	case Messaging:
		return "messaging"
	}
	return string(k)
}
