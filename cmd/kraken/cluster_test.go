package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kraken-ops/kraken/k8s/k8stest"
)

func TestClusterCheck(t *testing.T) {
	k8stest.Config(t) // fails with how to start the control plane when it is not up
	code, out, errs := kraken(t, "cluster", "check")
	for _, want := range []string{"✓ Kubernetes API at https://127.0.0.1", "RuntimeClass gvisor", "default enclave quota"} {
		if !strings.Contains(out, want) {
			t.Errorf("checklist lacks %q:\n%s%s", want, out, errs)
		}
	}
	if failed := strings.Contains(out, "✗"); failed != (code == 1) {
		t.Errorf("exit %d does not match the checklist:\n%s", code, out)
	}

	if _, out, _ := kraken(t, "cluster", "check", "--runtime-class", "none"); !strings.Contains(out, "! gVisor is turned off") {
		t.Errorf("with the sandbox turned off the checklist should warn:\n%s", out)
	}

	// A cluster that does not answer is a failed check with a fix, not a crash.
	bad := filepath.Join(t.TempDir(), "kubeconfig")
	_ = os.WriteFile(bad, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: x}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`), 0o600)
	code, out, _ = kraken(t, "cluster", "check", "--kubeconfig", bad)
	if code != 1 || !strings.Contains(out, "✗") || !strings.Contains(out, "fix:") {
		t.Fatalf("unreachable cluster: exit %d\n%s", code, out)
	}
	if code, _, _ := kraken(t, "cluster", "frobnicate"); code != 2 {
		t.Fatalf("unknown cluster command: exit %d", code)
	}
}
