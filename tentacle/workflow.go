// Package tentacle is the tentacle domain: the workflow.yaml spec, its parser
// and validator, the contract a tentacle declares, its secrets and its test
// fixtures.
package tentacle

import (
	"time"

	"github.com/kraken-ops/kraken/enclave"
)

// FileName is the name of a tentacle's spec inside its directory.
const FileName = "workflow.yaml"

// DefaultTimeout is how long one attempt of a node may take when the
// workflow's config does not say.
const DefaultTimeout = 30 * time.Second

// Workflow is a parsed and validated workflow.yaml.
type Workflow struct {
	Name        string
	Version     string
	Description string
	// Triggers is never empty after parsing: a workflow without triggers
	// gets one manual trigger (see Warnings).
	Triggers []Trigger
	// Nodes by id; NodeIDs lists the ids sorted, for deterministic output.
	Nodes   map[string]Node
	NodeIDs []string
	Edges   []Edge
	Config  Config
	// Contract is nil when the workflow declares none.
	Contract *Contract
	Sidecars []Sidecar
	// Deployment and Metadata are accepted for compatibility and carried
	// along; the bot decides where a tentacle runs.
	Deployment map[string]any
	Metadata   map[string]any

	// Dir is the absolute directory the workflow was loaded from; empty
	// when parsed from bytes alone.
	Dir string
	// Warnings are things worth telling the author that do not stop the
	// workflow from running.
	Warnings []Problem
}

// TriggerType says what starts a run.
type TriggerType string

const (
	TriggerManual  TriggerType = "manual"
	TriggerCron    TriggerType = "cron"
	TriggerQueue   TriggerType = "queue"
	TriggerWebhook TriggerType = "webhook"
)

// Trigger is one way a run starts. Named triggers pass {"trigger": name}
// as the run input.
type Trigger struct {
	Type     TriggerType
	Name     string
	Schedule string   // cron
	Timezone string   // cron; IANA name, empty means UTC
	Subject  string   // queue
	Path     string   // webhook
	Provider string   // webhook, e.g. "github"
	Event    string   // webhook filter
	Actions  []string // webhook filter
}

// Node is one TypeScript file whose default export runs a step.
type Node struct {
	ID string
	// Path is as written in workflow.yaml, relative to the tentacle dir.
	Path        string
	Description string
	// Capabilities is a legacy field real tentacles still carry; unused.
	Capabilities map[string]string
}

// Edge says To runs after From and receives its output.
type Edge struct {
	From string
	To   string
}

// Config is the open config block: Timeout and Retries are typed, every
// other key is preserved in Extras and handed to nodes as ctx.config.
type Config struct {
	Timeout time.Duration // zero means DefaultTimeout
	Retries int
	Extras  map[string]any
}

// NodeTimeout is the per-attempt timeout a node gets.
func (c Config) NodeTimeout() time.Duration {
	if c.Timeout <= 0 {
		return DefaultTimeout
	}
	return c.Timeout
}

// ToMap is the config as nodes see it: the extras plus timeout and
// retries when they were set.
func (c Config) ToMap() map[string]any {
	m := make(map[string]any, len(c.Extras)+2)
	for k, v := range c.Extras {
		m[k] = v
	}
	if c.Timeout > 0 {
		m["timeout"] = c.Timeout.String()
	}
	if c.Retries > 0 {
		m["retries"] = c.Retries
	}
	return m
}

// Contract declares what a tentacle talks to. Nothing else is reachable.
type Contract struct {
	Version string
	// Dependencies by name; DependencyNames lists them sorted.
	Dependencies    map[string]Dependency
	DependencyNames []string
}

// Protocols a dependency can speak.
const (
	ProtocolHTTPS      = "https"
	ProtocolHTTP       = "http"
	ProtocolPostgreSQL = "postgresql"
	ProtocolNATS       = "nats"
	ProtocolBlob       = "blob"
	ProtocolS3         = "s3"
)

// Dependency is one service in the contract.
type Dependency struct {
	Name      string
	Protocol  string
	Host      string
	Port      int // defaulted from the protocol when omitted
	Auth      *Auth
	Database  string
	User      string
	Subject   string
	Container string
	Version   string
	// Type "dynamic-target" means the host is chosen at run time inside
	// CIDR on DynPorts ("443/TCP").
	Type             string
	CIDR             string
	DynPorts         []string
	AdditionalEgress []Egress
	// Extra keeps keys this version does not interpret (e.g. channels),
	// so they survive a round trip.
	Extra map[string]any
}

// Exoskeleton reports whether the dependency is a platform service
// (tentacular-postgres, tentacular-nats, ...) filled in at deploy time.
func (d Dependency) Exoskeleton() bool {
	return len(d.Name) > len(exoskeletonPrefix) && d.Name[:len(exoskeletonPrefix)] == exoskeletonPrefix
}

const exoskeletonPrefix = "tentacular-"

// exoskeletonKinds maps the protocols an exoskeleton dependency may speak
// to the service that answers it.
var exoskeletonKinds = map[string]enclave.Kind{
	ProtocolPostgreSQL: enclave.Postgres,
	ProtocolS3:         enclave.ObjectStore,
	ProtocolNATS:       enclave.Messaging,
}

// Services lists the exoskeleton services the contract asks for, by
// dependency name: what a deploy must grant before the tentacle can run.
// (The parser refuses an exoskeleton dependency no service speaks.)
func (w *Workflow) Services() map[string]enclave.Kind {
	if w == nil || w.Contract == nil {
		return nil
	}
	var out map[string]enclave.Kind
	for _, name := range w.Contract.DependencyNames {
		d := w.Contract.Dependencies[name]
		if !d.Exoskeleton() {
			continue
		}
		k, ok := exoskeletonKinds[d.Protocol]
		if !ok {
			continue
		}
		if out == nil {
			out = map[string]enclave.Kind{}
		}
		out[name] = k
	}
	return out
}

// Auth says how a dependency authenticates: Type "token" sends a Bearer
// header, "api_key" an X-API-Key header; Secret is "name.key" in the
// tentacle's secrets.
type Auth struct {
	Type   string
	Secret string
}

// Egress is an extra network opening a dependency asks for.
type Egress struct {
	ToCIDR string
	Ports  []string
	Reason string
}

// Sidecar is an extra container in the tentacle's pod, reachable from
// nodes on localhost:Port and sharing /shared.
type Sidecar struct {
	Name       string
	Image      string
	Command    []string
	Args       []string
	Port       int
	Protocol   string // http or grpc
	HealthPath string // default /health
	Env        map[string]string
	Resources  map[string]any
}
