package k8s

import (
	"errors"
	"strings"
	"testing"

	"github.com/kraken-ops/kraken/enclave"
)

func TestResolveQuota(t *testing.T) {
	for _, tc := range []struct {
		name           string
		want, platform enclave.Quota
		// expected effective quota, or the text of the error
		got     enclave.Quota
		problem string
		// derived limits
		limitCPU, defLimCPU, defLimMemory string
	}{
		{
			name: "built-in defaults",
			got:  BuiltinQuota, limitCPU: "8", defLimCPU: "200m", defLimMemory: "512Mi",
		},
		{
			name:     "enclave over platform over built-in, field by field",
			want:     enclave.Quota{CPU: "6", Pods: 3},
			platform: enclave.Quota{CPU: "2", Memory: "2Gi", Pods: 10, MaxCPU: "1"},
			got: enclave.Quota{CPU: "6", Memory: "2Gi", Pods: 3, Storage: "20Gi",
				DefaultCPU: "100m", DefaultMemory: "256Mi", MaxCPU: "1", MaxMemory: "4Gi"},
			limitCPU: "12", defLimCPU: "200m", defLimMemory: "512Mi",
		},
		{
			name:      "default limit capped at the maximum",
			want:      enclave.Quota{DefaultCPU: "1500m", MaxCPU: "2", DefaultMemory: "3Gi"},
			got:       enclave.Quota{CPU: "4", Memory: "8Gi", Pods: 20, Storage: "20Gi", DefaultCPU: "1500m", DefaultMemory: "3Gi", MaxCPU: "2", MaxMemory: "4Gi"},
			limitCPU:  "8",
			defLimCPU: "2", defLimMemory: "4Gi",
		},
		{
			name:    "not quantities, all reported",
			want:    enclave.Quota{CPU: "four", Memory: "8 GB"},
			problem: `invalid quota: CPU "four" is not a quantity (like 500m, 2, 512Mi, 4Gi); Memory "8 GB" is not a quantity`,
		},
		{
			name:    "zero and negative",
			want:    enclave.Quota{CPU: "0", MaxMemory: "-1Gi", Pods: -1},
			problem: `invalid quota: CPU "0" must be more than zero; MaxMemory "-1Gi" must be more than zero; Pods -1 must be more than zero`,
		},
		{
			name:    "default above maximum",
			want:    enclave.Quota{DefaultCPU: "3", MaxCPU: "2"},
			problem: "invalid quota: DefaultCPU 3 is more than MaxCPU 2",
		},
		{
			name:    "maximum beyond the enclave's limits",
			want:    enclave.Quota{CPU: "1", MaxCPU: "3"},
			problem: "MaxCPU 3 is more than the enclave's CPU limit (twice its CPU) 2",
		},
		{
			name:     "a bad platform default shows too",
			platform: enclave.Quota{DefaultMemory: "lots"},
			problem:  `DefaultMemory "lots" is not a quantity`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := resolveQuota(tc.want, tc.platform)
			if tc.problem != "" {
				if !errors.Is(err, ErrQuotaInvalid) || !strings.Contains(err.Error(), tc.problem) {
					t.Fatalf("resolveQuota = %v, want ErrQuotaInvalid with %q", err, tc.problem)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.q != tc.got {
				t.Errorf("effective quota = %+v, want %+v", s.q, tc.got)
			}
			for _, c := range []struct{ what, got, want string }{
				{"limits.cpu", s.limitCPU.String(), tc.limitCPU},
				{"default cpu limit", s.defLimCPU.String(), tc.defLimCPU},
				{"default memory limit", s.defLimMemory.String(), tc.defLimMemory},
			} {
				if c.got != c.want {
					t.Errorf("%s = %s, want %s", c.what, c.got, c.want)
				}
			}
		})
	}
}

func TestQuotaAnnotationRoundTrip(t *testing.T) {
	q := enclave.Quota{CPU: "4", Memory: "8Gi", Pods: 20, Storage: "0", DefaultCPU: "100m", DefaultMemory: "256Mi", MaxCPU: "2", MaxMemory: "4Gi"}
	got, err := decodeQuota(encodeQuota(q))
	if err != nil || got != q {
		t.Errorf("round trip = %+v, %v; want %+v", got, err, q)
	}
	if _, err := decodeQuota(""); err == nil {
		t.Error("an absent annotation decodes")
	}
	if _, err := decodeQuota("{"); err == nil {
		t.Error("a broken annotation decodes")
	}
}
