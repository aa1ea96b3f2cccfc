package engine

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/kraken-ops/kraken/tentacle"
)

func TestNetAllowList(t *testing.T) {
	wf := &tentacle.Workflow{
		Contract: &tentacle.Contract{
			DependencyNames: []string{"api", "db", "evil", "nets", "wide"},
			Dependencies: map[string]tentacle.Dependency{
				"api":  {Host: "api.example.com", Port: 443},
				"db":   {Host: "10.0.0.5", Port: 5432},
				"evil": {Host: "api.example.com,169.254.169.254", Port: 443},
				"nets": {Type: "dynamic-target", CIDR: "192.168.1.0/30", DynPorts: []string{"8443/TCP"}},
				"wide": {Type: "dynamic-target", CIDR: "10.0.0.0/8", DynPorts: []string{"443/TCP"}},
			},
		},
		Sidecars: []tentacle.Sidecar{{Name: "ffmpeg", Port: 9000}},
	}
	hosts, warnings := NetAllowList(wf, nil)
	want := []string{"10.0.0.5:5432", "127.0.0.1:9000", "192.168.1.0:8443", "192.168.1.1:8443", "192.168.1.2:8443", "192.168.1.3:8443", "api.example.com:443", "localhost:9000"}
	if !reflect.DeepEqual(hosts, want) {
		t.Fatalf("hosts = %v, want %v", hosts, want)
	}
	joined := strings.Join(warnings, "\n")
	for _, frag := range []string{"dependency evil: host left out", "10.0.0.0/8 is too large"} {
		if !strings.Contains(joined, frag) {
			t.Errorf("warnings lack %q: %v", frag, warnings)
		}
	}
}

func TestSecretRedactorBlanksLongestFirst(t *testing.T) {
	r := secretRedactor(map[string]any{
		"a": map[string]any{"short": "abcdef", "long": "abcdefgh"},
		"n": map[string]any{"pin": json.Number("12345678")},
		"x": "tiny",
	})
	got := r.Replace("abcdefgh abcdef 12345678 tiny")
	if want := "[redacted] [redacted] [redacted] tiny"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}
