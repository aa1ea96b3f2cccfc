package k8s

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// TestPlainWords checks that every error people can meet offers words for
// them through the wrapping, and that those words name no cluster object.
func TestPlainWords(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{fmt.Errorf("deploy hello: %w (dial tcp 10.0.0.1:443: refused)", ErrUnreachable), "can't be reached"},
		{fmt.Errorf("deploy: %w", ErrTerminating), "being removed"},
		{fmt.Errorf("x: %w", &ForbiddenError{Op: "deploy", User: "system:serviceaccount:kraken-system:kraken", Verb: "create", Resource: "deployments", Namespace: "payments"}), "platform team"},
		{&QuotaExceededError{Op: "deploy", Quota: EnclaveQuota, Resources: []QuotaUse{{Name: "pods"}}}, "quota is used up (pods)"},
		{&StuckTerminatingError{Namespace: "payments"}, "platform team"},
	}
	for _, tt := range tests {
		var p interface{ Plain() string }
		if !errors.As(tt.err, &p) {
			t.Errorf("%v offers no plain words", tt.err)
			continue
		}
		got := p.Plain()
		if !strings.Contains(got, tt.want) {
			t.Errorf("Plain() = %q, want it to contain %q", got, tt.want)
		}
		for _, leak := range []string{"namespace", "serviceaccount", "10.0.0.1", EnclaveQuota} {
			if strings.Contains(got, leak) {
				t.Errorf("Plain() = %q names %q", got, leak)
			}
		}
	}
	if !errors.Is(fmt.Errorf("a: %w", ErrUnreachable), ErrUnreachable) {
		t.Error("ErrUnreachable no longer matches with errors.Is")
	}
}
