package k8s

import (
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/kraken-ops/kraken/engine"
	"github.com/kraken-ops/kraken/tentacle"
)

func TestEgressRules(t *testing.T) {
	exact := func(cidrs ...string) []ipBlock {
		var out []ipBlock
		for _, c := range cidrs {
			out = append(out, ipBlock{cidr: c})
		}
		return out
	}
	// A host name opens its port to public addresses only: never the
	// metadata service, private networks, CGNAT, loopback or IPv6 ULA and
	// link-local.
	public := []ipBlock{
		{"0.0.0.0/0", []string{"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16", "127.0.0.0/8"}},
		{"::/0", []string{"fc00::/7", "fe80::/10"}},
	}
	tests := []struct {
		name  string
		allow []string
		want  []egressRule
	}{
		{"nothing", nil, nil},
		{"one address", []string{"10.1.2.3:5432"}, []egressRule{{5432, exact("10.1.2.3/32")}}},
		{"host name opens the port to public addresses", []string{"api.example.com:443"}, []egressRule{{443, public}}},
		{"name and public address on one port", []string{"api.example.com:443", "8.8.8.8:443"}, []egressRule{{443, public}}},
		{"name and private addresses on one port", []string{"api.example.com:443", "10.0.0.1:443", "10.0.0.2:443", "192.168.1.1:443", "[fd00::1]:443"},
			[]egressRule{{443, append(slices.Clone(public), exact("10.0.0.1/32", "10.0.0.2/32", "192.168.1.1/32", "fd00::1/128")...)}}},
		{"ports sorted", []string{"10.0.0.1:8080", "10.0.0.1:443"}, []egressRule{{443, exact("10.0.0.1/32")}, {8080, exact("10.0.0.1/32")}}},
		{"loopback and localhost need no rule", []string{"localhost:9000", "127.0.0.1:9000", "[::1]:9000"}, nil},
		{"ipv6", []string{"[2001:db8::1]:443"}, []egressRule{{443, exact("2001:db8::1/128")}}},
		{"garbage dropped", []string{"no-port", "host:0", "host:x"}, nil},
		{"enumerated /30 merges back", []string{"10.0.0.4:443", "10.0.0.5:443", "10.0.0.6:443", "10.0.0.7:443"}, []egressRule{{443, exact("10.0.0.4/30")}}},
		{"unaligned run", []string{"10.0.0.3:443", "10.0.0.4:443", "10.0.0.5:443"}, []egressRule{{443, exact("10.0.0.3/32", "10.0.0.4/31")}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := egressRules(tt.allow); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("egressRules(%q) = %v, want %v", tt.allow, got, tt.want)
			}
		})
	}
}

// The policy opens exactly the addresses the node runtime may reach:
// the union of the CIDRs is the enumerated set, no more, no less.
func TestEgressMatchesNetAllowList(t *testing.T) {
	wf := &tentacle.Workflow{
		Contract: &tentacle.Contract{
			Dependencies: map[string]tentacle.Dependency{
				"db":    {Name: "db", Host: "10.9.8.7", Port: 5432},
				"range": {Name: "range", Type: "dynamic-target", CIDR: "192.168.10.0/27", DynPorts: []string{"443/TCP"}},
				"api":   {Name: "api", Host: "api.example.com", Port: 443},
				"extra": {Name: "extra", AdditionalEgress: []tentacle.Egress{{ToCIDR: "172.16.0.0/29", Ports: []string{"8443/TCP"}}}},
				"huge":  {Name: "huge", Type: "dynamic-target", CIDR: "10.0.0.0/8", DynPorts: []string{"9000/TCP"}},
			},
			DependencyNames: []string{"api", "db", "extra", "huge", "range"},
		},
		Sidecars: []tentacle.Sidecar{{Name: "cache", Port: 6379}},
	}
	allow, _ := engine.NetAllowList(wf, nil)
	rules := egressRules(allow)
	// anywhere stands for "every public address"; the excepted ranges
	// are checked in TestEgressRules.
	opened := map[int]map[netip.Addr]bool{}
	for _, r := range rules {
		opened[r.port] = map[netip.Addr]bool{}
		for _, b := range r.to {
			p := netip.MustParsePrefix(b.cidr)
			if p.Bits() == 0 {
				opened[r.port][netip.Addr{}] = true
				continue
			}
			for a := p.Addr(); p.Contains(a); a = a.Next() {
				opened[r.port][a] = true
			}
		}
	}
	want := map[int]map[netip.Addr]bool{5432: {}, 443: {}, 8443: {}}
	for _, hp := range allow {
		ap, err := netip.ParseAddrPort(hp)
		if err != nil || ap.Addr().IsLoopback() {
			continue
		}
		want[int(ap.Port())][ap.Addr()] = true
	}
	// api.example.com makes 443 open to every public address; the
	// private addresses of the range on 443 are opened one by one.
	for a := range want[443] {
		if !isExcepted(a) {
			delete(want[443], a)
		}
	}
	want[443][netip.Addr{}] = true
	if !reflect.DeepEqual(opened, want) {
		t.Errorf("opened %v\nwant %v\nrules %v", opened, want, rules)
	}
	if _, ok := opened[9000]; ok {
		t.Errorf("a range too large for the node runtime was opened: %v", rules)
	}
	if _, ok := opened[6379]; ok {
		t.Errorf("a sidecar port was opened: %v", rules)
	}
}

func TestParseResources(t *testing.T) {
	m := func(kv ...any) map[string]any {
		out := map[string]any{}
		for i := 0; i < len(kv); i += 2 {
			out[kv[i].(string)] = kv[i+1]
		}
		return out
	}
	tests := []struct {
		name    string
		raw     any
		want    [4]string // requests cpu, memory, limits cpu, memory
		wantErr string
	}{
		{name: "defaults", raw: nil, want: [4]string{"100m", "128Mi", "500m", "256Mi"}},
		{name: "all set", raw: m("requests", m("cpu", "200m", "memory", "256Mi"), "limits", m("cpu", 1, "memory", "1Gi")), want: [4]string{"200m", "256Mi", "1", "1Gi"}},
		{name: "request raises limit", raw: m("requests", m("memory", "512Mi")), want: [4]string{"100m", "512Mi", "500m", "512Mi"}},
		{name: "limit lowers request", raw: m("limits", m("cpu", "50m")), want: [4]string{"50m", "128Mi", "50m", "256Mi"}},
		{name: "request over limit", raw: m("requests", m("cpu", "1"), "limits", m("cpu", "500m")), wantErr: "request 1 is more than its limit 500m"},
		{name: "too much memory", raw: m("limits", m("memory", "8Gi")), wantErr: "deployment.resources.limits.memory: 8Gi is outside the range"},
		{name: "too little cpu", raw: m("requests", m("cpu", "1m")), wantErr: "outside the range"},
		{name: "not a quantity", raw: m("limits", m("cpu", "lots")), wantErr: `"lots" is not a quantity`},
		{name: "unknown resource", raw: m("limits", m("gpu", "1")), wantErr: "only cpu and memory"},
		{name: "unknown key", raw: m("request", m("cpu", "1")), wantErr: "unknown key"},
		{name: "not a map", raw: "big", wantErr: "must be a map"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := parseResources(tt.raw, engineDefaults, "deployment.resources")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := [4]string{r.reqCPU.String(), r.reqMemory.String(), r.limCPU.String(), r.limMemory.String()}
			if got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestFileKeys(t *testing.T) {
	files := map[string][]byte{
		"workflow.yaml": nil, "nodes/a.ts": nil, "nodes__a.ts": nil, "lib/deep/x.json": nil,
		"with space.ts": nil, "ünïcode.ts": nil,
	}
	keys := fileKeys(files)
	seen := map[string]string{}
	for p, k := range keys {
		if !configMapKey.MatchString(k) || len(k) > 253 {
			t.Errorf("%s: invalid key %q", p, k)
		}
		if other, dup := seen[k]; dup {
			t.Errorf("%s and %s share key %q", p, other, k)
		}
		seen[k] = p
	}
	if keys["nodes/a.ts"] != "nodes__a.ts" || keys["lib/deep/x.json"] != "lib__deep__x.json" || keys["workflow.yaml"] != "workflow.yaml" {
		t.Errorf("readable keys expected: %v", keys)
	}
	if again := fileKeys(files); !reflect.DeepEqual(again, keys) {
		t.Errorf("keys not deterministic: %v then %v", keys, again)
	}
}

func TestSecretData(t *testing.T) {
	got, err := secretData(map[string]any{
		"weather": map[string]any{"token": "abc"},
		"plain":   "xyz",
		"number":  42,
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"weather": `{"token":"abc"}`, "plain": `"xyz"`, "number": "42"}
	for k, v := range want {
		if string(got[k]) != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
}

// TestSecretDataRoundTrip: what the cluster mounts, the engine reads back
// as the same secrets a developer had locally.
func TestSecretDataRoundTrip(t *testing.T) {
	secrets := map[string]any{
		"weather": map[string]any{"token": "abc", "region": "eu"},
		"api-key": "xyz-123",
		"list":    []any{"a", "b"},
	}
	data, err := secretData(secrets)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for k, v := range data {
		if err := os.WriteFile(filepath.Join(dir, k), v, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	got, err := tentacle.LoadSecrets(t.TempDir(), dir, "")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, secrets) {
		t.Fatalf("read back %#v, want %#v", got, secrets)
	}
}

func TestSecretDataRefusesBadNames(t *testing.T) {
	for _, bad := range []string{".hidden", "a/b", "sp ace", ""} {
		_, err := secretData(map[string]any{bad: "top secret value"})
		if err == nil {
			t.Errorf("%q accepted", bad)
		} else if strings.Contains(err.Error(), "top secret value") {
			t.Errorf("error echoes the value: %v", err)
		}
	}
}
