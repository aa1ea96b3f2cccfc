package enclave

import (
	"errors"
	"strings"
	"testing"
)

func TestValidateName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
		msg  string
	}{
		{"payments", true, ""},
		{"team-42", true, ""},
		{"a", true, ""},
		{strings.Repeat("a", 63), true, ""},
		{"", false, "empty"},
		{strings.Repeat("a", 64), false, "longer than 63"},
		{"Payments", false, "lower-case"},
		{"-payments", false, "starting and ending"},
		{"payments-", false, "starting and ending"},
		{"pay_ments", false, "lower-case"},
		{"pay.ments", false, "lower-case"},
		{"default", false, "reserved"},
		{"kube-system", false, "reserved"},
		{"kube-public", false, "reserved"},
		{"kraken-system", false, "reserved"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateName(tt.name)
			if tt.ok {
				if err != nil {
					t.Fatalf("ValidateName(%q) = %v", tt.name, err)
				}
				return
			}
			if !errors.Is(err, ErrNameInvalid) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("ValidateName(%q) = %v, want ErrNameInvalid mentioning %q", tt.name, err, tt.msg)
			}
		})
	}
}
