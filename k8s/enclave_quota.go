package k8s

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/kraken-ops/kraken/enclave"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// BuiltinQuota is what an enclave gets for every field that neither the
// enclave nor Config.DefaultQuota sets: room for a handful of small
// tentacles, not for batch jobs.
var BuiltinQuota = enclave.Quota{
	CPU:           "4",
	Memory:        "8Gi",
	Pods:          20,
	Storage:       "20Gi",
	DefaultCPU:    "100m",
	DefaultMemory: "256Mi",
	MaxCPU:        "2",
	MaxMemory:     "4Gi",
}

// maxPVCs bounds the number of volume claims; storage is bounded by
// Quota.Storage, this keeps many tiny claims from piling up.
const maxPVCs = 10

// quotaSpec is a resolved, parsed and checked quota.
type quotaSpec struct {
	q enclave.Quota // every field set

	cpu, memory, storage    resource.Quantity // totals of requests
	limitCPU, limitMemory   resource.Quantity // totals of limits
	defCPU, defMemory       resource.Quantity // per-container request when unset
	defLimCPU, defLimMemory resource.Quantity // per-container limit when unset
	maxCPU, maxMemory       resource.Quantity // per-container ceiling
}

// mergeQuota fills each empty field of want from platform, then from
// BuiltinQuota.
func mergeQuota(want, platform enclave.Quota) enclave.Quota {
	pick := func(vals ...string) string {
		for _, v := range vals {
			if v != "" {
				return v
			}
		}
		return ""
	}
	q := enclave.Quota{
		CPU:           pick(want.CPU, platform.CPU, BuiltinQuota.CPU),
		Memory:        pick(want.Memory, platform.Memory, BuiltinQuota.Memory),
		Storage:       pick(want.Storage, platform.Storage, BuiltinQuota.Storage),
		DefaultCPU:    pick(want.DefaultCPU, platform.DefaultCPU, BuiltinQuota.DefaultCPU),
		DefaultMemory: pick(want.DefaultMemory, platform.DefaultMemory, BuiltinQuota.DefaultMemory),
		MaxCPU:        pick(want.MaxCPU, platform.MaxCPU, BuiltinQuota.MaxCPU),
		MaxMemory:     pick(want.MaxMemory, platform.MaxMemory, BuiltinQuota.MaxMemory),
		Pods:          want.Pods,
	}
	if q.Pods == 0 {
		q.Pods = platform.Pods
	}
	if q.Pods == 0 {
		q.Pods = BuiltinQuota.Pods
	}
	return q
}

// resolveQuota merges and checks a quota. Limits are not part of
// enclave.Quota: the enclave's total limits are twice its total requests
// (bursting room), and a container that states no limit gets twice its
// default request, capped at the per-container maximum.
func resolveQuota(want, platform enclave.Quota) (quotaSpec, error) {
	s := quotaSpec{q: mergeQuota(want, platform)}
	var problems []string
	parse := func(field, v string, dst *resource.Quantity, allowZero bool) {
		q, err := resource.ParseQuantity(v)
		switch {
		case err != nil:
			problems = append(problems, fmt.Sprintf("%s %q is not a quantity (like 500m, 2, 512Mi, 4Gi)", field, v))
		case q.Sign() < 0 || q.Sign() == 0 && !allowZero:
			problems = append(problems, fmt.Sprintf("%s %q must be more than zero", field, v))
		default:
			*dst = q
		}
	}
	parse("CPU", s.q.CPU, &s.cpu, false)
	parse("Memory", s.q.Memory, &s.memory, false)
	parse("Storage", s.q.Storage, &s.storage, true)
	parse("DefaultCPU", s.q.DefaultCPU, &s.defCPU, false)
	parse("DefaultMemory", s.q.DefaultMemory, &s.defMemory, false)
	parse("MaxCPU", s.q.MaxCPU, &s.maxCPU, false)
	parse("MaxMemory", s.q.MaxMemory, &s.maxMemory, false)
	if s.q.Pods < 0 {
		problems = append(problems, fmt.Sprintf("Pods %d must be more than zero", s.q.Pods))
	}
	if len(problems) > 0 {
		return s, fmt.Errorf("%w: %s", ErrQuotaInvalid, strings.Join(problems, "; "))
	}

	s.limitCPU, s.limitMemory = twice(s.cpu), twice(s.memory)
	s.defLimCPU, s.defLimMemory = minQ(twice(s.defCPU), s.maxCPU), minQ(twice(s.defMemory), s.maxMemory)
	notAbove := func(small, big resource.Quantity, smallField, bigField string) {
		if small.Cmp(big) > 0 {
			problems = append(problems, fmt.Sprintf("%s %s is more than %s %s", smallField, small.String(), bigField, big.String()))
		}
	}
	notAbove(s.defCPU, s.maxCPU, "DefaultCPU", "MaxCPU")
	notAbove(s.defMemory, s.maxMemory, "DefaultMemory", "MaxMemory")
	notAbove(s.defCPU, s.cpu, "DefaultCPU", "the enclave's CPU")
	notAbove(s.defMemory, s.memory, "DefaultMemory", "the enclave's Memory")
	// One container at its maximum must fit in the enclave's limits, or
	// the maximum is a promise the quota can't keep.
	notAbove(s.maxCPU, s.limitCPU, "MaxCPU", "the enclave's CPU limit (twice its CPU)")
	notAbove(s.maxMemory, s.limitMemory, "MaxMemory", "the enclave's memory limit (twice its Memory)")
	if len(problems) > 0 {
		return s, fmt.Errorf("%w: %s", ErrQuotaInvalid, strings.Join(problems, "; "))
	}
	return s, nil
}

func twice(q resource.Quantity) resource.Quantity {
	d := q.DeepCopy()
	d.Add(q)
	return d
}

func minQ(a, b resource.Quantity) resource.Quantity {
	if a.Cmp(b) <= 0 {
		return a
	}
	return b
}

// hard is the ResourceQuota's spec.hard.
func (s quotaSpec) hard() corev1.ResourceList {
	return corev1.ResourceList{
		corev1.ResourceRequestsCPU:            s.cpu,
		corev1.ResourceRequestsMemory:         s.memory,
		corev1.ResourceLimitsCPU:              s.limitCPU,
		corev1.ResourceLimitsMemory:           s.limitMemory,
		corev1.ResourcePods:                   *resource.NewQuantity(int64(s.q.Pods), resource.DecimalSI),
		corev1.ResourceRequestsStorage:        s.storage,
		corev1.ResourcePersistentVolumeClaims: *resource.NewQuantity(maxPVCs, resource.DecimalSI),
	}
}

// quotaAnnotation is the effective quota as the namespace records it, so
// Get and List read it with the namespace instead of one more request
// per enclave.
type quotaAnnotation struct {
	CPU           string `json:"cpu"`
	Memory        string `json:"memory"`
	Pods          int    `json:"pods"`
	Storage       string `json:"storage"`
	DefaultCPU    string `json:"defaultCPU"`
	DefaultMemory string `json:"defaultMemory"`
	MaxCPU        string `json:"maxCPU"`
	MaxMemory     string `json:"maxMemory"`
}

func encodeQuota(q enclave.Quota) string {
	b, _ := json.Marshal(quotaAnnotation(q)) // plain strings and an int: can't fail
	return string(b)
}

func decodeQuota(s string) (enclave.Quota, error) {
	if s == "" {
		return enclave.Quota{}, errors.New("no quota annotation")
	}
	var a quotaAnnotation
	if err := json.Unmarshal([]byte(s), &a); err != nil {
		return enclave.Quota{}, err
	}
	return enclave.Quota(a), nil
}
