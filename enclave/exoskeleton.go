package enclave

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
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
// service: a CIDR, or pods (by labels) in a namespace. Port is required.
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
	// Revoke makes the tentacle's credentials useless; its data stays
	// until the enclave is dropped.
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
