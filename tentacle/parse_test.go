package tentacle

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kraken-ops/kraken/enclave"
)

// fullSpec uses every field the parser knows, the way a real tentacle
// would.
const fullSpec = `name: github-digest
version: "1.2.0"
description: Daily digest of GitHub activity, archived and published.
triggers:
  - type: manual
    name: by-hand
  - type: cron
    name: nightly
    schedule: "0 6 * * 1-5"
    timezone: Europe/Paris
  - type: cron
    schedule: "@every 15m"
  - type: queue
    name: from-bus
    subject: digest.requests.>
  - type: webhook
    name: on-pr
    path: /hooks/github
    provider: github
    event: pull_request
    actions: [opened, synchronize]
nodes:
  fetch:
    path: nodes/fetch.ts
    description: Fetch recent events
    capabilities:
      net: api.github.com
  summarize:
    path: ./nodes/summarize.ts
  store:
    path: nodes/store.mts
  notify:
    path: nodes/notify.js
    capabilities:
      net: true
edges:
  - from: fetch
    to: summarize
  - from: summarize
    to: store
  - from: summarize
    to: notify
config:
  timeout: 45s
  retries: 2
  repos: [kraken-ops/kraken, kraken-ops/docs]
  maxItems: 50
  ratio: 0.5
  dryRun: false
  nothing: null
  labels:
    team: platform
contract:
  version: "1"
  dependencies:
    github:
      protocol: https
      host: api.github.com
      auth:
        type: token
        secret: github.token
      channels: [events, pulls]
    archive:
      protocol: postgresql
      host: db.internal
      port: 6432
      database: digest
      user: digest_writer
      auth:
        type: password
        secret: archive.password
    bus:
      protocol: nats
      host: nats.internal
      subject: digest.results
      auth:
        type: none
    scanner:
      type: dynamic-target
      cidr: 10.20.0.0/16
      dynPorts: ["443/TCP", "53/UDP"]
      networkPolicy:
        additionalEgress:
          - toCIDR: 192.168.0.0/24
            ports: ["8443/TCP"]
            reason: internal mirror
    tentacular-postgres:
      protocol: postgresql
sidecars:
  - name: renderer
    image: ghcr.io/kraken-ops/renderer:1.4
    command: [/bin/renderer]
    args: ["--listen", ":9000"]
    port: 9000
    env:
      LOG_LEVEL: info
      WORKERS: 4
    resources:
      limits:
        memory: 128Mi
        cpu: 250m
  - name: grpc-cache
    image: cache:2
    port: 9100
    protocol: grpc
    healthPath: /healthz
deployment:
  namespace: digests
metadata:
  group: platform
  environment: prod
  tags: [github, daily]
`

func fullWorkflow() *Workflow {
	return &Workflow{
		Name:        "github-digest",
		Version:     "1.2.0",
		Description: "Daily digest of GitHub activity, archived and published.",
		Triggers: []Trigger{
			{Type: TriggerManual, Name: "by-hand"},
			{Type: TriggerCron, Name: "nightly", Schedule: "0 6 * * 1-5", Timezone: "Europe/Paris"},
			{Type: TriggerCron, Schedule: "@every 15m"},
			{Type: TriggerQueue, Name: "from-bus", Subject: "digest.requests.>"},
			{Type: TriggerWebhook, Name: "on-pr", Path: "/hooks/github", Provider: "github", Event: "pull_request", Actions: []string{"opened", "synchronize"}},
		},
		Nodes: map[string]Node{
			"fetch":     {ID: "fetch", Path: "nodes/fetch.ts", Description: "Fetch recent events", Capabilities: map[string]string{"net": "api.github.com"}},
			"summarize": {ID: "summarize", Path: "./nodes/summarize.ts"},
			"store":     {ID: "store", Path: "nodes/store.mts"},
			"notify":    {ID: "notify", Path: "nodes/notify.js", Capabilities: map[string]string{"net": "true"}},
		},
		NodeIDs: []string{"fetch", "notify", "store", "summarize"},
		Edges: []Edge{
			{From: "fetch", To: "summarize"},
			{From: "summarize", To: "store"},
			{From: "summarize", To: "notify"},
		},
		Config: Config{
			Timeout: 45 * time.Second,
			Retries: 2,
			Extras: map[string]any{
				"repos":    []any{"kraken-ops/kraken", "kraken-ops/docs"},
				"maxItems": 50,
				"ratio":    0.5,
				"dryRun":   false,
				"nothing":  nil,
				"labels":   map[string]any{"team": "platform"},
			},
		},
		Contract: &Contract{
			Version: "1",
			Dependencies: map[string]Dependency{
				"github": {
					Name: "github", Protocol: ProtocolHTTPS, Host: "api.github.com", Port: 443,
					Auth:  &Auth{Type: "token", Secret: "github.token"},
					Extra: map[string]any{"channels": []any{"events", "pulls"}},
				},
				"archive": {
					Name: "archive", Protocol: ProtocolPostgreSQL, Host: "db.internal", Port: 6432,
					Database: "digest", User: "digest_writer",
					Auth: &Auth{Type: "password", Secret: "archive.password"},
				},
				"bus": {
					Name: "bus", Protocol: ProtocolNATS, Host: "nats.internal", Port: 4222,
					Subject: "digest.results", Auth: &Auth{Type: "none"},
				},
				"scanner": {
					Name: "scanner", Type: "dynamic-target", CIDR: "10.20.0.0/16",
					DynPorts: []string{"443/TCP", "53/UDP"},
					AdditionalEgress: []Egress{
						{ToCIDR: "192.168.0.0/24", Ports: []string{"8443/TCP"}, Reason: "internal mirror"},
					},
				},
				"tentacular-postgres": {Name: "tentacular-postgres", Protocol: ProtocolPostgreSQL, Port: 5432},
			},
			DependencyNames: []string{"archive", "bus", "github", "scanner", "tentacular-postgres"},
		},
		Sidecars: []Sidecar{
			{
				Name: "renderer", Image: "ghcr.io/kraken-ops/renderer:1.4",
				Command: []string{"/bin/renderer"}, Args: []string{"--listen", ":9000"},
				Port: 9000, Protocol: "http", HealthPath: "/health",
				Env: map[string]string{"LOG_LEVEL": "info", "WORKERS": "4"},
				Resources: map[string]any{
					"limits": map[string]any{"memory": "128Mi", "cpu": "250m"},
				},
			},
			{Name: "grpc-cache", Image: "cache:2", Port: 9100, Protocol: "grpc", HealthPath: "/healthz"},
		},
		Deployment: map[string]any{"namespace": "digests"},
		Metadata: map[string]any{
			"group": "platform", "environment": "prod", "tags": []any{"github", "daily"},
		},
	}
}

func TestParseFullSpec(t *testing.T) {
	got, err := Parse("workflow.yaml", []byte(fullSpec))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if len(got.Warnings) > 0 {
		t.Errorf("unexpected warnings: %v", got.Warnings)
	}
	want := fullWorkflow()
	// Compare field by field for readable failures.
	gv, wv := reflect.ValueOf(*got), reflect.ValueOf(*want)
	for i := range gv.NumField() {
		name := gv.Type().Field(i).Name
		if name == "Warnings" {
			continue
		}
		if !reflect.DeepEqual(gv.Field(i).Interface(), wv.Field(i).Interface()) {
			t.Errorf("%s:\n got  %#v\n want %#v", name, gv.Field(i).Interface(), wv.Field(i).Interface())
		}
	}
	if d := got.Contract.Dependencies["tentacular-postgres"]; !d.Exoskeleton() {
		t.Errorf("tentacular-postgres should be an exoskeleton dependency")
	}
	// Only the exoskeleton dependency needs a service granted at deploy.
	if s := got.Services(); !reflect.DeepEqual(s, map[string]enclave.Kind{"tentacular-postgres": enclave.Postgres}) {
		t.Errorf("Services() = %v", s)
	}
	if m := got.Config.ToMap(); m["timeout"] != "45s" || m["retries"] != 2 || m["maxItems"] != 50 {
		t.Errorf("Config.ToMap() = %v", m)
	}
}

func TestGraphHelpers(t *testing.T) {
	w, err := Parse("workflow.yaml", []byte(fullSpec))
	if err != nil {
		t.Fatal(err)
	}
	if got := w.Roots(); !reflect.DeepEqual(got, []string{"fetch"}) {
		t.Errorf("Roots() = %v", got)
	}
	if got := w.Dependencies("store"); !reflect.DeepEqual(got, []string{"summarize"}) {
		t.Errorf("Dependencies(store) = %v", got)
	}
	if got := w.Dependencies("fetch"); len(got) != 0 {
		t.Errorf("Dependencies(fetch) = %v", got)
	}
}

// base is a minimal valid spec; cases append to it from line 8.
const base = `name: t
version: "1.0"
nodes:
  a:
    path: a.ts
  b:
    path: b.ts
`

// specProblems parses src and returns its problems, failing unless Parse
// returned a *SpecError.
func specProblems(t *testing.T, src string) []Problem {
	t.Helper()
	w, err := Parse("wf.yaml", []byte(src))
	var se *SpecError
	if !errors.As(err, &se) {
		t.Fatalf("Parse error = %v (workflow %v), want *SpecError", err, w)
	}
	if w != nil {
		t.Errorf("Parse returned a workflow along with an error")
	}
	return se.Problems
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name      string
		src       string
		line, col int
		field     string
		msg       string
		count     int // problems expected; 0 means 1
	}{
		// Document.
		{"empty file", "", 0, 0, "", "the file is empty", 0},
		{"only comments", "# nothing\n", 0, 0, "", "the file is empty", 0},
		{"list document", "- a\n- b\n", 1, 1, "", "must be a mapping of fields (name, version, nodes, ...), got a list", 0},
		{"scalar document", "hello\n", 1, 1, "", "got a string", 0},
		{"null document", "~\n", 1, 1, "", "got nothing (null)", 0},
		{"two documents", base + "---\nname: u\n", 8, 1, "", "more than one YAML document", 0},
		{"syntax error", "name: t\nnodes:\n  a: [\n", 3, 0, "", "invalid YAML: did not find expected node content", 0},
		{"bad indentation", "name: t\nnodes:\n  a: 1\n b: 2\n", 3, 0, "", "invalid YAML: did not find expected key", 0},
		{"duplicate key", base + "name: u\n", 8, 1, "name", "duplicate key; first defined at line 1", 0},
		{"duplicate node", base + "  a:\n    path: c.ts\n", 8, 3, "nodes.a", "duplicate key; first defined at line 4", 0},
		{"alias", base + "config:\n  x: &x [1]\n  y: *x\n", 10, 6, "config.y", "aliases (*name) are not allowed", 0},
		{"merge key", base + "config:\n  <<: {a: 1}\n", 9, 3, "config", "merge keys (<<) are not supported", 0},
		{"complex key", base + "config:\n  ? [a]\n  : 1\n", 9, 5, "config", "keys must be plain strings, not a list", 0},
		{"oversized", base + "description: " + strings.Repeat("x", MaxSpecSize) + "\n", 0, 0, "", "larger than 1024 KiB", 0},
		{"unknown top-level key", base + "nodez: {}\n", 8, 1, "nodez", `unknown field "nodez"; did you mean "nodes"?`, 0},
		{"unknown top-level key without suggestion", base + "colour: red\n", 8, 1, "colour", "unknown field \"colour\" (known fields: config, contract,", 0},

		// name, version, description.
		{"name missing", "version: \"1.0\"\nnodes:\n  a:\n    path: a.ts\n", 1, 1, "name", `missing required field "name"`, 0},
		{"name empty", strings.Replace(base, "name: t", "name: \"\"", 1), 1, 7, "name", "must not be empty", 0},
		{"name not kebab-case", strings.Replace(base, "name: t", "name: My_Tentacle", 1), 1, 7, "name", "must be kebab-case", 0},
		{"name double dash", strings.Replace(base, "name: t", "name: a--b", 1), 1, 7, "name", "must be kebab-case", 0},
		{"name too long", strings.Replace(base, "name: t", "name: "+strings.Repeat("a", 64), 1), 1, 7, "name", "at most 63 characters", 0},
		{"name a list", strings.Replace(base, "name: t", "name: [t]", 1), 1, 7, "name", "must be a string, got a list", 0},
		{"version missing", strings.Replace(base, "version: \"1.0\"\n", "", 1), 1, 1, "version", `missing required field "version"`, 0},
		{"version integer", strings.Replace(base, `"1.0"`, "1", 1), 2, 10, "version", `"1" must be N.N or N.N.N`, 0},
		{"version prefixed", strings.Replace(base, `"1.0"`, "v1.0", 1), 2, 10, "version", "must be N.N or N.N.N", 0},
		{"version four parts", strings.Replace(base, `"1.0"`, "1.0.0.0", 1), 2, 10, "version", "must be N.N or N.N.N", 0},
		{"description a mapping", base + "description: {a: 1}\n", 8, 14, "description", "must be a string, got a mapping", 0},

		// triggers.
		{"triggers a mapping", base + "triggers:\n  type: manual\n", 9, 3, "triggers", "must be a list of triggers, got a mapping", 0},
		{"trigger a string", base + "triggers:\n  - manual\n", 9, 5, "triggers[0]", "must be a mapping, got a string", 0},
		{"trigger type missing", base + "triggers:\n  - name: x\n", 9, 5, "triggers[0].type", `missing required field "type"`, 0},
		{"trigger type unknown", base + "triggers:\n  - type: cronn\n", 9, 11, "triggers[0].type", `unknown trigger type "cronn"; did you mean "cron"?`, 0},
		{"cron without schedule", base + "triggers:\n  - type: manual\n  - type: cron\n", 10, 5, "triggers[1].schedule", `missing required field "schedule"`, 0},
		{"cron empty schedule", base + "triggers:\n  - type: cron\n    schedule: \"\"\n", 10, 15, "triggers[0].schedule", "must not be empty", 0},
		{"cron bad schedule", base + "triggers:\n  - type: cron\n    schedule: \"* * *\"\n", 10, 15, "triggers[0].schedule", "invalid cron schedule \"* * *\": expected exactly 5 fields, found 3", 0},
		{"cron bad field", base + "triggers:\n  - type: cron\n    schedule: \"61 * * * *\"\n", 10, 15, "triggers[0].schedule", "end of range (61) above maximum (59)", 0},
		{"cron bad descriptor", base + "triggers:\n  - type: cron\n    schedule: \"@fortnightly\"\n", 10, 15, "triggers[0].schedule", "unrecognized descriptor", 0},
		{"cron zone in schedule", base + "triggers:\n  - type: cron\n    schedule: \"TZ=UTC\"\n", 10, 15, "triggers[0].schedule", "timezone field", 0},
		{"cron bad timezone", base + "triggers:\n  - type: cron\n    schedule: \"@daily\"\n    timezone: Mars/Olympus\n", 11, 15, "triggers[0].timezone", `unknown time zone "Mars/Olympus"`, 0},
		{"cron Local timezone", base + "triggers:\n  - type: cron\n    schedule: \"@daily\"\n    timezone: Local\n", 11, 15, "triggers[0].timezone", "depends on the host", 0},
		{"queue without subject", base + "triggers:\n  - type: queue\n", 9, 5, "triggers[0].subject", `missing required field "subject"`, 0},
		{"queue empty token", base + "triggers:\n  - type: queue\n    subject: a..b\n", 10, 14, "triggers[0].subject", "empty token", 0},
		{"queue trailing dot", base + "triggers:\n  - type: queue\n    subject: a.b.\n", 10, 14, "triggers[0].subject", "empty token", 0},
		{"queue space", base + "triggers:\n  - type: queue\n    subject: a b\n", 10, 14, "triggers[0].subject", "must not contain spaces", 0},
		{"queue partial wildcard", base + "triggers:\n  - type: queue\n    subject: a.b*\n", 10, 14, "triggers[0].subject", "must be whole tokens", 0},
		{"queue > not last", base + "triggers:\n  - type: queue\n    subject: a.>.b\n", 10, 14, "triggers[0].subject", "'>' wildcard may only be the last token", 0},
		{"webhook without path", base + "triggers:\n  - type: webhook\n", 9, 5, "triggers[0].path", `missing required field "path"`, 0},
		{"webhook relative path", base + "triggers:\n  - type: webhook\n    path: hooks\n", 10, 11, "triggers[0].path", "must start with '/'", 0},
		{"webhook dotdot", base + "triggers:\n  - type: webhook\n    path: /a/../b\n", 10, 11, "triggers[0].path", "must not contain '..'", 0},
		{"webhook bad char", base + "triggers:\n  - type: webhook\n    path: /a?b=1\n", 10, 11, "triggers[0].path", "may only contain", 0},
		{"webhook provider", base + "triggers:\n  - type: webhook\n    path: /h\n    provider: gitlab\n", 11, 15, "triggers[0].provider", `unknown provider "gitlab"`, 0},
		{"webhook actions not list", base + "triggers:\n  - type: webhook\n    path: /h\n    actions: opened\n", 11, 14, "triggers[0].actions", "must be a list of strings, got a string", 0},
		{"trigger name invalid", base + "triggers:\n  - type: manual\n    name: Nightly\n", 10, 11, "triggers[0].name", `trigger name "Nightly" must start with a lowercase letter`, 0},
		{"trigger name duplicate", base + "triggers:\n  - type: manual\n    name: go\n  - type: manual\n    name: go\n", 12, 11, "triggers[1].name", `duplicate trigger name "go"; first used at line 10`, 0},
		{"trigger unknown key", base + "triggers:\n  - type: cron\n    schedule: \"@daily\"\n    shedule: x\n", 11, 5, "triggers[0].shedule", `unknown field "shedule"; did you mean "schedule"?`, 0},

		// nodes.
		{"nodes missing", "name: t\nversion: \"1.0\"\n", 1, 1, "nodes", `missing required field "nodes"`, 0},
		{"nodes a list", "name: t\nversion: \"1.0\"\nnodes:\n  - a.ts\n", 4, 3, "nodes", "must be a mapping, got a list", 0},
		{"nodes empty", "name: t\nversion: \"1.0\"\nnodes: {}\n", 3, 8, "nodes", "must declare at least one node", 0},
		{"nodes null", "name: t\nversion: \"1.0\"\nnodes:\n", 3, 7, "nodes", "must declare at least one node", 0},
		{"node id invalid", base + "  Fetch:\n    path: f.ts\n", 8, 3, "nodes.Fetch", `node id "Fetch" must start with a lowercase letter`, 0},
		{"node a string", base + "  c: c.ts\n", 8, 6, "nodes.c", "must be a mapping, got a string", 0},
		{"node without path", base + "  c:\n    description: x\n", 8, 3, "nodes.c.path", `missing required field "path"`, 0},
		{"node path absolute", base + "  c:\n    path: /etc/c.ts\n", 9, 11, "nodes.c.path", "must be relative", 0},
		{"node path traversal", base + "  c:\n    path: ../x.ts\n", 9, 11, "nodes.c.path", "must stay inside the tentacle directory", 0},
		{"node path hidden traversal", base + "  c:\n    path: nodes/../../x.ts\n", 9, 11, "nodes.c.path", "must stay inside the tentacle directory", 0},
		{"node path backslash", base + "  c:\n    path: 'nodes\\c.ts'\n", 9, 11, "nodes.c.path", "must use '/'", 0},
		{"node path extension", base + "  c:\n    path: c.py\n", 9, 11, "nodes.c.path", "must be a TypeScript or JavaScript file", 0},
		{"node unknown key", base + "  c:\n    path: c.ts\n    descripton: x\n", 10, 5, "nodes.c.descripton", `unknown field "descripton"; did you mean "description"?`, 0},
		{"node capabilities list", base + "  c:\n    path: c.ts\n    capabilities: [net]\n", 10, 19, "nodes.c.capabilities", "must be a mapping, got a list", 0},
		{"node capability mapping", base + "  c:\n    path: c.ts\n    capabilities:\n      net: {a: 1}\n", 11, 12, "nodes.c.capabilities.net", "must be a string, got a mapping", 0},

		// edges.
		{"edges a mapping", base + "edges:\n  from: a\n", 9, 3, "edges", "must be a list of edges, got a mapping", 0},
		{"edge a string", base + "edges:\n  - a -> b\n", 9, 5, "edges[0]", "must be a mapping, got a string", 0},
		{"edge unknown node", base + "edges:\n  - from: a\n    to: bb\n", 10, 9, "edges[0].to", `unknown node "bb"; did you mean "b"?`, 0},
		{"edge unknown node far", base + "edges:\n  - from: zzzz\n    to: b\n", 9, 11, "edges[0].from", `unknown node "zzzz"`, 0},
		{"edge missing to", base + "edges:\n  - from: a\n", 9, 5, "edges[0].to", `missing required field "to"`, 0},
		{"edge self-loop", base + "edges:\n  - from: a\n    to: a\n", 9, 5, "edges[0]", `node "a" cannot depend on itself`, 0},
		{"edge duplicate", base + "edges:\n  - {from: a, to: b}\n  - {from: a, to: b}\n", 10, 5, "edges[1]", "duplicate edge a → b; first at line 9", 0},
		{"edge unknown key", base + "edges:\n  - {form: a, to: b}\n", 9, 6, "edges[0].form", `unknown field "form"; did you mean "from"?`, 2},

		// config.
		{"config a list", base + "config: [1]\n", 8, 9, "config", "must be a mapping, got a list", 0},
		{"timeout not a duration", base + "config:\n  timeout: soon\n", 9, 12, "config.timeout", `"soon" must be a duration such as 30s or 5m`, 0},
		{"timeout without unit", base + "config:\n  timeout: 30\n", 9, 12, "config.timeout", `"30" must be a duration`, 0},
		{"timeout zero", base + "config:\n  timeout: 0s\n", 9, 12, "config.timeout", "must be positive", 0},
		{"timeout too long", base + "config:\n  timeout: 2h\n", 9, 12, "config.timeout", "must be at most 1h", 0},
		{"retries too many", base + "config:\n  retries: 11\n", 9, 12, "config.retries", "must be between 0 and 10, got 11", 0},
		{"retries negative", base + "config:\n  retries: -1\n", 9, 12, "config.retries", "must be between 0 and 10, got -1", 0},
		{"retries a string", base + "config:\n  retries: \"3\"\n", 9, 12, "config.retries", "must be an integer, got a string", 0},
		{"retries huge", base + "config:\n  retries: 99999999999999999999\n", 9, 12, "config.retries", "must be an integer, got a number", 0},

		// contract.
		{"contract a list", base + "contract: [1]\n", 8, 11, "contract", "must be a mapping, got a list", 0},
		{"contract version missing", base + "contract:\n  dependencies: {}\n", 8, 1, "contract.version", `missing required field "version"`, 0},
		{"contract version 2", base + "contract:\n  version: \"2\"\n", 9, 12, "contract.version", `unsupported contract version "2"; must be "1"`, 0},
		{"contract version 1.0", base + "contract:\n  version: 1.0\n", 9, 12, "contract.version", `unsupported contract version "1.0"`, 0},
		{"dependencies a list", base + "contract:\n  version: 1\n  dependencies: [a]\n", 10, 17, "contract.dependencies", "must be a mapping, got a list", 0},
		{"dependency name invalid", base + "contract:\n  version: 1\n  dependencies:\n    GitHub:\n      protocol: https\n      host: x\n", 11, 5, "contract.dependencies.GitHub", `dependency name "GitHub" must start`, 0},
		{"dependency not a mapping", base + "contract:\n  version: 1\n  dependencies:\n    gh: https\n", 11, 9, "contract.dependencies.gh", "must be a mapping, got a string", 0},
		{"dependency protocol missing", base + "contract:\n  version: 1\n  dependencies:\n    gh:\n      host: x\n", 11, 5, "contract.dependencies.gh.protocol", `missing required field "protocol"`, 0},
		{"exoskeleton protocol no service speaks", base + "contract:\n  version: 1\n  dependencies:\n    tentacular-cache:\n      protocol: redis\n", 12, 17, "contract.dependencies.tentacular-cache.protocol", `tentacular-cache is one of the enclave's services, which speak postgresql, s3 or nats, not "redis"`, 0},
		{"https host missing", base + "contract:\n  version: 1\n  dependencies:\n    gh:\n      protocol: https\n", 11, 5, "contract.dependencies.gh.host", `missing required field "host"`, 0},
		{"host with a second host", base + "contract:\n  version: 1\n  dependencies:\n    gh:\n      protocol: https\n      host: api.example.com,169.254.169.254\n", 13, 13, "contract.dependencies.gh.host", "must be a host name", 0},
		{"host as a range", base + "contract:\n  version: 1\n  dependencies:\n    gh:\n      protocol: https\n      host: 0.0.0.0/0\n", 13, 13, "contract.dependencies.gh.host", "without a scheme, port, path or range", 0},
		{"host with a scheme", base + "contract:\n  version: 1\n  dependencies:\n    gh:\n      protocol: https\n      host: https://api.github.com\n", 13, 13, "contract.dependencies.gh.host", "must be a host name", 0},
		{"host with a port", base + "contract:\n  version: 1\n  dependencies:\n    gh:\n      protocol: https\n      host: api.github.com:8443\n", 13, 13, "contract.dependencies.gh.host", "must be a host name", 0},
		{"host with a space", base + "contract:\n  version: 1\n  dependencies:\n    gh:\n      protocol: https\n      host: \"api .github.com\"\n", 13, 13, "contract.dependencies.gh.host", "must be a host name", 0},
		{"http host missing", base + "contract:\n  version: 1\n  dependencies:\n    gh:\n      protocol: http\n", 11, 5, "contract.dependencies.gh.host", `missing required field "host"`, 0},
		{"postgresql user missing", base + "contract:\n  version: 1\n  dependencies:\n    db:\n      protocol: postgresql\n      host: h\n      database: d\n", 11, 5, "contract.dependencies.db.user", `missing required field "user"`, 0},
		{"postgresql database missing", base + "contract:\n  version: 1\n  dependencies:\n    db:\n      protocol: postgresql\n      host: h\n      user: u\n", 11, 5, "contract.dependencies.db.database", `missing required field "database"`, 0},
		{"nats subject missing", base + "contract:\n  version: 1\n  dependencies:\n    bus:\n      protocol: nats\n      host: h\n", 11, 5, "contract.dependencies.bus.subject", `missing required field "subject"`, 0},
		{"nats subject invalid", base + "contract:\n  version: 1\n  dependencies:\n    bus:\n      protocol: nats\n      host: h\n      subject: a..b\n", 14, 16, "contract.dependencies.bus.subject", "empty token", 0},
		{"blob container missing", base + "contract:\n  version: 1\n  dependencies:\n    files:\n      protocol: blob\n      host: h\n", 11, 5, "contract.dependencies.files.container", `missing required field "container"`, 0},
		{"s3 host missing", base + "contract:\n  version: 1\n  dependencies:\n    files:\n      protocol: s3\n", 11, 5, "contract.dependencies.files.host", `missing required field "host"`, 0},
		{"port zero", base + "contract:\n  version: 1\n  dependencies:\n    gh:\n      protocol: https\n      host: h\n      port: 0\n", 14, 13, "contract.dependencies.gh.port", "must be between 1 and 65535, got 0", 0},
		{"port too big", base + "contract:\n  version: 1\n  dependencies:\n    gh:\n      protocol: https\n      host: h\n      port: 70000\n", 14, 13, "contract.dependencies.gh.port", "must be between 1 and 65535, got 70000", 0},
		{"port a string", base + "contract:\n  version: 1\n  dependencies:\n    gh:\n      protocol: https\n      host: h\n      port: \"443\"\n", 14, 13, "contract.dependencies.gh.port", "must be an integer, got a string", 0},
		{"auth type unknown", base + "contract:\n  version: 1\n  dependencies:\n    gh:\n      protocol: https\n      host: h\n      auth:\n        type: bearer\n        secret: gh.token\n", 15, 15, "contract.dependencies.gh.auth.type", `unknown auth type "bearer"`, 0},
		{"auth type typo", base + "contract:\n  version: 1\n  dependencies:\n    gh:\n      protocol: https\n      host: h\n      auth:\n        type: tokn\n        secret: gh.token\n", 15, 15, "contract.dependencies.gh.auth.type", `did you mean "token"?`, 0},
		{"auth secret not name.key", base + "contract:\n  version: 1\n  dependencies:\n    gh:\n      protocol: https\n      host: h\n      auth:\n        type: token\n        secret: github\n", 16, 17, "contract.dependencies.gh.auth.secret", `must be "name.key"`, 0},
		{"auth secret missing", base + "contract:\n  version: 1\n  dependencies:\n    gh:\n      protocol: https\n      host: h\n      auth:\n        type: token\n", 14, 7, "contract.dependencies.gh.auth.secret", `missing required field "secret"`, 0},
		{"auth unknown key", base + "contract:\n  version: 1\n  dependencies:\n    gh:\n      protocol: https\n      host: h\n      auth:\n        type: none\n        secert: gh.token\n", 16, 9, "contract.dependencies.gh.auth.secert", `unknown field "secert"; did you mean "secret"?`, 0},
		{"auth a string", base + "contract:\n  version: 1\n  dependencies:\n    gh:\n      protocol: https\n      host: h\n      auth: token\n", 14, 13, "contract.dependencies.gh.auth", "must be a mapping, got a string", 0},
		{"dynamic-target without cidr", base + "contract:\n  version: 1\n  dependencies:\n    scan:\n      type: dynamic-target\n      dynPorts: [\"443/TCP\"]\n", 11, 5, "contract.dependencies.scan.cidr", `missing required field "cidr"`, 0},
		{"dynamic-target bad cidr", base + "contract:\n  version: 1\n  dependencies:\n    scan:\n      type: dynamic-target\n      cidr: 10.0.0.0/33\n      dynPorts: [\"443/TCP\"]\n", 13, 13, "contract.dependencies.scan.cidr", `invalid CIDR "10.0.0.0/33"`, 0},
		{"dynamic-target without ports", base + "contract:\n  version: 1\n  dependencies:\n    scan:\n      type: dynamic-target\n      cidr: 10.0.0.0/8\n", 11, 5, "contract.dependencies.scan.dynPorts", `missing required field "dynPorts"`, 0},
		{"dynamic-target empty ports", base + "contract:\n  version: 1\n  dependencies:\n    scan:\n      type: dynamic-target\n      cidr: 10.0.0.0/8\n      dynPorts: []\n", 14, 17, "contract.dependencies.scan.dynPorts", "needs at least one port", 0},
		{"dynPorts without protocol", base + "contract:\n  version: 1\n  dependencies:\n    scan:\n      type: dynamic-target\n      cidr: 10.0.0.0/8\n      dynPorts: [\"443\"]\n", 14, 18, "contract.dependencies.scan.dynPorts[0]", `"443" must be PORT/PROTOCOL`, 0},
		{"dynPorts bad protocol", base + "contract:\n  version: 1\n  dependencies:\n    scan:\n      type: dynamic-target\n      cidr: 10.0.0.0/8\n      dynPorts: [\"443/TCP\", \"9/SCTP\"]\n", 14, 29, "contract.dependencies.scan.dynPorts[1]", "must be PORT/PROTOCOL", 0},
		{"dynPorts port range", base + "contract:\n  version: 1\n  dependencies:\n    scan:\n      type: dynamic-target\n      cidr: 10.0.0.0/8\n      dynPorts: [\"70000/TCP\"]\n", 14, 18, "contract.dependencies.scan.dynPorts[0]", "port must be between 1 and 65535", 0},
		{"egress bad cidr", base + "contract:\n  version: 1\n  dependencies:\n    gh:\n      protocol: https\n      host: h\n      networkPolicy:\n        additionalEgress:\n          - toCIDR: nowhere\n", 16, 21, "contract.dependencies.gh.networkPolicy.additionalEgress[0].toCIDR", `invalid CIDR "nowhere"`, 0},
		{"egress without cidr", base + "contract:\n  version: 1\n  dependencies:\n    gh:\n      protocol: https\n      host: h\n      networkPolicy:\n        additionalEgress:\n          - reason: x\n", 16, 13, "contract.dependencies.gh.networkPolicy.additionalEgress[0].toCIDR", `missing required field "toCIDR"`, 0},

		// sidecars.
		{"sidecars a mapping", base + "sidecars:\n  name: x\n", 9, 3, "sidecars", "must be a list of sidecars, got a mapping", 0},
		{"sidecar name missing", base + "sidecars:\n  - image: i\n    port: 9000\n", 9, 5, "sidecars[0].name", `missing required field "name"`, 0},
		{"sidecar name invalid", base + "sidecars:\n  - name: Cache\n    image: i\n    port: 9000\n", 9, 11, "sidecars[0].name", `sidecar name "Cache" must start`, 0},
		{"sidecar name duplicate", base + "sidecars:\n  - {name: c, image: i, port: 9000}\n  - {name: c, image: i, port: 9001}\n", 10, 12, "sidecars[1].name", `duplicate sidecar name "c"; first used at line 9`, 0},
		{"sidecar image missing", base + "sidecars:\n  - name: c\n    port: 9000\n", 9, 5, "sidecars[0].image", `missing required field "image"`, 0},
		{"sidecar port missing", base + "sidecars:\n  - name: c\n    image: i\n", 9, 5, "sidecars[0].port", `missing required field "port"`, 0},
		{"sidecar port privileged", base + "sidecars:\n  - {name: c, image: i, port: 80}\n", 9, 31, "sidecars[0].port", "must be between 1024 and 65535, got 80", 0},
		{"sidecar port 8080", base + "sidecars:\n  - {name: c, image: i, port: 8080}\n", 9, 31, "sidecars[0].port", "8080 is the tentacle engine's own port", 0},
		{"sidecar port duplicate", base + "sidecars:\n  - {name: c, image: i, port: 9000}\n  - {name: d, image: i, port: 9000}\n", 10, 31, "sidecars[1].port", "duplicate sidecar port 9000; first used at line 9", 0},
		{"sidecar protocol", base + "sidecars:\n  - {name: c, image: i, port: 9000, protocol: tcp}\n", 9, 47, "sidecars[0].protocol", `unknown protocol "tcp" (one of http, grpc)`, 0},
		{"sidecar healthPath", base + "sidecars:\n  - {name: c, image: i, port: 9000, healthPath: health}\n", 9, 49, "sidecars[0].healthPath", `"health" must start with '/'`, 0},
		{"sidecar newline in env", base + "sidecars:\n  - name: c\n    image: i\n    port: 9000\n    env:\n      A: |\n        x\n        y\n", 13, 10, "sidecars[0].env.A", "must not contain newlines", 0},
		{"sidecar newline in args", base + "sidecars:\n  - name: c\n    image: i\n    port: 9000\n    args: [\"a\\nb\"]\n", 12, 12, "sidecars[0].args[0]", "must not contain newlines", 0},
		{"sidecar env value mapping", base + "sidecars:\n  - name: c\n    image: i\n    port: 9000\n    env:\n      A: {b: 1}\n", 13, 10, "sidecars[0].env.A", "must be a string, got a mapping", 0},
		{"sidecar unknown key", base + "sidecars:\n  - {name: c, image: i, port: 9000, imagePullPolicy: Always}\n", 9, 37, "sidecars[0].imagePullPolicy", `unknown field "imagePullPolicy"`, 0},
		{"sidecar command a string", base + "sidecars:\n  - {name: c, image: i, port: 9000, command: run}\n", 9, 46, "sidecars[0].command", "must be a list of strings, got a string", 0},

		// deployment, metadata.
		{"deployment a list", base + "deployment: [ns]\n", 8, 13, "deployment", "must be a mapping, got a list", 0},
		{"metadata a string", base + "metadata: x\n", 8, 11, "metadata", "must be a mapping, got a string", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			problems := specProblems(t, tt.src)
			want := max(tt.count, 1)
			if len(problems) != want {
				t.Errorf("got %d problems, want %d:\n%s", len(problems), want, (&SpecError{problems}).Error())
			}
			for _, p := range problems {
				if p.File == "wf.yaml" && p.Line == tt.line && p.Column == tt.col && p.Field == tt.field && strings.Contains(p.Msg, tt.msg) {
					return
				}
			}
			t.Errorf("problems:\n%s\nwant wf.yaml:%d:%d: %s: …%s…", &SpecError{problems}, tt.line, tt.col, tt.field, tt.msg)
		})
	}
}

func TestParseWarnings(t *testing.T) {
	tests := []struct {
		name      string
		src       string
		line, col int
		field     string
		msg       string
	}{
		{"no triggers", base, 1, 1, "triggers", "no triggers declared; the workflow gets one manual trigger"},
		{"empty triggers", base + "triggers: []\n", 8, 11, "triggers", "one manual trigger"},
		{"null triggers", base + "triggers:\n", 8, 10, "triggers", "one manual trigger"},
		{"field of another trigger type", base + "triggers:\n  - type: manual\n    schedule: \"@daily\"\n", 10, 5, "triggers[0].schedule", "ignored: only cron triggers use schedule"},
		{"unknown protocol", base + "contract:\n  version: 1\n  dependencies:\n    api:\n      protocol: grpc\n      host: h\n", 12, 17, "contract.dependencies.api.protocol", `unknown protocol "grpc"; the dependency is kept but not checked`},
		{"protocol typo", base + "contract:\n  version: 1\n  dependencies:\n    api:\n      protocol: htps\n      host: h\n", 12, 17, "contract.dependencies.api.protocol", `did you mean "https"?`},
		{"unknown dependency type", base + "contract:\n  version: 1\n  dependencies:\n    api:\n      protocol: https\n      host: h\n      type: static\n", 14, 13, "contract.dependencies.api.type", `unknown dependency type "static"`},
		{"unknown contract key", base + "contract:\n  version: 1\n  owner: me\n", 10, 3, "contract.owner", `unknown field "owner" is ignored`},
		{"unknown egress key", base + "contract:\n  version: 1\n  dependencies:\n    gh:\n      protocol: https\n      host: h\n      networkPolicy:\n        additionalEgress:\n          - toCIDR: 10.0.0.0/8\n            port: 443\n", 17, 13, "contract.dependencies.gh.networkPolicy.additionalEgress[0].port", `did you mean "ports"?`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := Parse("wf.yaml", []byte(tt.src))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			var found bool
			for _, p := range w.Warnings {
				if p.Line == tt.line && p.Column == tt.col && p.Field == tt.field && strings.Contains(p.Msg, tt.msg) {
					found = true
				}
			}
			if !found {
				t.Errorf("warnings = %v\nwant wf.yaml:%d:%d: %s: …%s…", w.Warnings, tt.line, tt.col, tt.field, tt.msg)
			}
		})
	}
}

func TestDefaultTrigger(t *testing.T) {
	w, err := Parse("wf.yaml", []byte(base))
	if err != nil {
		t.Fatal(err)
	}
	if want := []Trigger{{Type: TriggerManual}}; !reflect.DeepEqual(w.Triggers, want) {
		t.Errorf("Triggers = %v, want %v", w.Triggers, want)
	}
	if len(w.Edges) != 0 || w.Edges == nil {
		t.Errorf("Edges = %#v, want empty", w.Edges)
	}
	if w.Contract != nil || w.Sidecars != nil || w.Config.Extras != nil {
		t.Errorf("absent blocks should stay empty: %+v", w)
	}
}

func TestExtraDependencyKeysAreKept(t *testing.T) {
	src := base + `contract:
  version: 1
  dependencies:
    slack:
      protocol: https
      host: slack.com
      channels: ["#ops", "#alerts"]
      rateLimit: {perMinute: 20}
    tentacular-nats:
      protocol: nats
`
	w, err := Parse("wf.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	got := w.Contract.Dependencies["slack"].Extra
	want := map[string]any{"channels": []any{"#ops", "#alerts"}, "rateLimit": map[string]any{"perMinute": 20}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Extra = %#v, want %#v", got, want)
	}
	if nats := w.Contract.Dependencies["tentacular-nats"]; nats.Port != 4222 || nats.Host != "" {
		t.Errorf("exoskeleton nats = %+v", nats)
	}
}

func TestVersionForms(t *testing.T) {
	tests := []struct {
		yaml string
		want string // "" means an error
	}{
		{`"1.0"`, "1.0"},
		{`1.0`, "1.0"},
		{`'1.0'`, "1.0"},
		{`1.10`, "1.10"},
		{`"1.10"`, "1.10"},
		{`1.2.3`, "1.2.3"},
		{`"1.2.3"`, "1.2.3"},
		{`10.0.1`, "10.0.1"},
		{`1`, ""},
		{`"1"`, ""},
		{`1.0.0.0`, ""},
		{`v1.0`, ""},
		{`1.0-beta`, ""},
		{`1e3`, ""},
		{`[1.0]`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.yaml, func(t *testing.T) {
			src := strings.Replace(base, `"1.0"`, tt.yaml, 1)
			w, err := Parse("wf.yaml", []byte(src))
			if tt.want == "" {
				if err == nil {
					t.Fatalf("version %s accepted as %q", tt.yaml, w.Version)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if w.Version != tt.want {
				t.Errorf("Version = %q, want %q", w.Version, tt.want)
			}
		})
	}
}

func TestContractVersionForms(t *testing.T) {
	for _, v := range []string{`"1"`, `1`, `'1'`} {
		w, err := Parse("wf.yaml", []byte(base+"contract:\n  version: "+v+"\n"))
		if err != nil {
			t.Errorf("contract version %s: %v", v, err)
			continue
		}
		if w.Contract.Version != "1" {
			t.Errorf("contract version %s read as %q", v, w.Contract.Version)
		}
	}
}

func TestAllProblemsAtOnce(t *testing.T) {
	src := `name: Bad_Name
version: "1.0"
nodes:
  fetch:
    path: ../fetch.ts
  store:
    path: store.ts
triggers:
  - type: cron
    schedule: "every day"
edges:
  - from: fetch
    to: stor
config:
  retries: 99
`
	problems := specProblems(t, src)
	want := []struct {
		line  int
		field string
	}{
		{1, "name"},
		{5, "nodes.fetch.path"},
		{10, "triggers[0].schedule"},
		{13, "edges[0].to"},
		{15, "config.retries"},
	}
	if len(problems) != len(want) {
		t.Fatalf("got %d problems, want %d:\n%s", len(problems), len(want), (&SpecError{problems}).Error())
	}
	for i, w := range want {
		if problems[i].Line != w.line || problems[i].Field != w.field {
			t.Errorf("problem %d = %s, want line %d field %s", i, problems[i], w.line, w.field)
		}
	}
}

func TestProblemsAreSortedAndStable(t *testing.T) {
	// Two problems on one node, found in a fixed order.
	src := base + "sidecars:\n  - {name: C, image: i, port: 80, command: x}\n"
	first := specProblems(t, src)
	for range 5 {
		again := specProblems(t, src)
		if !reflect.DeepEqual(first, again) {
			t.Fatalf("problems differ between runs:\n%v\n%v", first, again)
		}
	}
	for i := 1; i < len(first); i++ {
		a, b := first[i-1], first[i]
		if a.Line > b.Line || a.Line == b.Line && a.Column > b.Column {
			t.Errorf("problems out of order: %s before %s", a, b)
		}
	}
}

func TestCycles(t *testing.T) {
	nodes := func(ids ...string) string {
		var b strings.Builder
		b.WriteString("name: t\nversion: \"1.0\"\nnodes:\n")
		for _, id := range ids {
			fmt.Fprintf(&b, "  %s: {path: %s.ts}\n", id, id)
		}
		b.WriteString("edges:\n")
		return b.String()
	}
	tests := []struct {
		name  string
		src   string
		wants []string // "line field message"
	}{
		{
			name: "three-node cycle",
			src: nodes("a", "b", "c") +
				"  - {from: a, to: b}\n" +
				"  - {from: b, to: c}\n" +
				"  - {from: c, to: a}\n",
			wants: []string{"10 edges[2] cycle: a → b → c → a"},
		},
		{
			name: "cycle written backwards is still named from its smallest node",
			src: nodes("a", "b", "c") +
				"  - {from: c, to: a}\n" +
				"  - {from: b, to: c}\n" +
				"  - {from: a, to: b}\n",
			wants: []string{"8 edges[0] cycle: a → b → c → a"},
		},
		{
			name: "two separate cycles",
			src: nodes("a", "b", "c", "d", "e", "f") +
				"  - {from: a, to: b}\n" +
				"  - {from: b, to: a}\n" +
				"  - {from: b, to: c}\n" +
				"  - {from: c, to: d}\n" +
				"  - {from: d, to: e}\n" +
				"  - {from: e, to: c}\n" +
				"  - {from: e, to: f}\n",
			wants: []string{
				"12 edges[1] cycle: a → b → a",
				"16 edges[5] cycle: c → d → e → c",
			},
		},
		{
			name: "shortest cycle through the smallest node",
			src: nodes("a", "b", "c", "d") +
				"  - {from: a, to: b}\n" +
				"  - {from: b, to: c}\n" +
				"  - {from: c, to: d}\n" +
				"  - {from: d, to: a}\n" +
				"  - {from: b, to: a}\n",
			wants: []string{"13 edges[4] cycle: a → b → a"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			problems := specProblems(t, tt.src)
			var got []string
			for _, p := range problems {
				got = append(got, fmt.Sprintf("%d %s %s", p.Line, p.Field, p.Msg))
			}
			if !reflect.DeepEqual(got, tt.wants) {
				t.Errorf("got  %q\nwant %q", got, tt.wants)
			}
		})
	}
}

func TestSuggest(t *testing.T) {
	tests := []struct {
		in   string
		want string // "" means no suggestion
	}{
		{"nodez", "nodes"},
		{"node", "nodes"},
		{"trigers", "triggers"},
		{"egdes", "edges"},  // transposition: one edit
		{"Nodes", "nodes"},  // case
		{"NODES", "nodes"},  // case, more than two edits otherwise
		{"confg", "config"}, // deletion
		{"sidecar", "sidecars"},
		{"colour", ""},
		{"x", ""},
		{"zzzzzz", ""},
	}
	for _, tt := range tests {
		got, ok := suggest(tt.in, topLevelKeys)
		if got != tt.want || ok != (tt.want != "") {
			t.Errorf("suggest(%q) = %q, %v; want %q", tt.in, got, ok, tt.want)
		}
	}
	if got, _ := suggest("x", []string{"to"}); got != "" {
		t.Errorf("a one-letter word should not be taken for a typo of %q", got)
	}
}

func TestEditDistance(t *testing.T) {
	tests := []struct {
		a, b  string
		limit int
		want  int
	}{
		{"", "", 10, 0},
		{"abc", "abc", 10, 0},
		{"", "abc", 10, 3},
		{"abc", "acb", 10, 1},
		{"kitten", "sitting", 10, 3},
		{"nodez", "nodes", 10, 1},
		{"ca", "abc", 10, 3}, // optimal string alignment, not full Damerau
		{"héllo", "hello", 10, 1},
		{"Nodes", "nodes", 10, 0},
		{"abcdefgh", "badcfehg", 10, 4},
		{"flaw", "lawn", 10, 2},
		// Cut off past the limit.
		{"kitten", "sitting", 2, 3},
		{"kitten", "sitting", 1, 2},
		{"abcdef", "uvwxyz", 2, 3},
		{"a", "abcdef", 2, 3},
		{"nodez", "nodes", 1, 1},
		{"flaw", "lawn", 2, 2},
		{"abcdefgh", "badcfehg", 3, 4},
		{strings.Repeat("a", 1000) + "x", strings.Repeat("a", 1000) + "y", 2, 1},
		{strings.Repeat("ab", 500), strings.Repeat("ba", 500), 2, 2}, // drop one a, append one
		{strings.Repeat("ab", 500), strings.Repeat("ba", 500), 1, 2},
	}
	for _, tt := range tests {
		if got := editDistance(tt.a, tt.b, tt.limit); got != tt.want {
			t.Errorf("editDistance(%.10q, %.10q, %d) = %d, want %d", tt.a, tt.b, tt.limit, got, tt.want)
		}
	}
}

// TestEditDistanceBand checks the banded computation against the plain
// full matrix on random words.
func TestEditDistanceBand(t *testing.T) {
	full := func(a, b []rune) int {
		d := make([][]int, len(a)+1)
		for i := range d {
			d[i] = make([]int, len(b)+1)
			d[i][0] = i
		}
		for j := range d[0] {
			d[0][j] = j
		}
		for i := 1; i <= len(a); i++ {
			for j := 1; j <= len(b); j++ {
				cost := 1
				if a[i-1] == b[j-1] {
					cost = 0
				}
				d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
				if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
					d[i][j] = min(d[i][j], d[i-2][j-2]+1)
				}
			}
		}
		return d[len(a)][len(b)]
	}
	rng := rand.New(rand.NewPCG(1, 2))
	word := func() string {
		b := make([]byte, rng.IntN(8))
		for i := range b {
			b[i] = "abc"[rng.IntN(3)]
		}
		return string(b)
	}
	for range 20000 {
		a, b, limit := word(), word(), rng.IntN(4)
		want := min(full([]rune(a), []rune(b)), limit+1)
		if got := editDistance(a, b, limit); got != want {
			t.Fatalf("editDistance(%q, %q, %d) = %d, want %d", a, b, limit, got, want)
		}
	}
}

func TestNodeHintsAreBounded(t *testing.T) {
	var b strings.Builder
	b.WriteString("name: t\nversion: \"1.0\"\nnodes:\n")
	for i := range 2000 {
		fmt.Fprintf(&b, "  n%05d: {path: a.ts}\n", i)
	}
	b.WriteString("edges:\n")
	for i := range 2000 {
		fmt.Fprintf(&b, "  - {from: m%05d, to: n00000}\n", i)
	}
	problems := specProblems(t, b.String())
	var hinted int
	for _, p := range problems {
		if strings.Contains(p.Msg, "did you mean") {
			hinted++
		}
	}
	if len(problems) != 2000 || hinted != maxNodeHints {
		t.Errorf("got %d problems, %d with a hint; want 2000 and %d", len(problems), hinted, maxNodeHints)
	}
}

func TestProblemString(t *testing.T) {
	tests := []struct {
		p    Problem
		want string
	}{
		{Problem{File: "w.yaml", Line: 3, Column: 5, Field: "name", Msg: "bad"}, "w.yaml:3:5: name: bad"},
		{Problem{File: "w.yaml", Line: 3, Msg: "invalid YAML"}, "w.yaml:3: invalid YAML"},
		{Problem{File: "w.yaml", Msg: "the file is empty"}, "w.yaml: the file is empty"},
	}
	for _, tt := range tests {
		if got := tt.p.String(); got != tt.want {
			t.Errorf("String() = %q, want %q", got, tt.want)
		}
	}
}

func TestHostsThatAreAccepted(t *testing.T) {
	for _, host := range []string{"api.github.com", "localhost", "127.0.0.1", "10.1.2.3", "2001:db8::1", "API.Example.COM", "a-b.c", "svc.enclave.svc.cluster.local."} {
		if err := CheckHost(host); err != nil {
			t.Errorf("CheckHost(%q) = %v", host, err)
		}
	}
	for _, host := range []string{"", "-a.com", "a..b", "a_b.com", "fe80::1%eth0", "a.com/x", "a.com@b", strings.Repeat("a.", 130) + "com"} {
		if err := CheckHost(host); err == nil {
			t.Errorf("CheckHost(%q) accepted", host)
		}
	}
}
