package k8s

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kraken-ops/kraken/enclave"
	"github.com/kraken-ops/kraken/k8s/k8stest"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/rest"
)

func TestProvisionCreatesEveryObject(t *testing.T) {
	t.Parallel()
	cs := k8stest.Clientset(t)
	c := newEnclaveClient(t, k8stest.Config(t), nil)
	name := enclaveName(t, "enc-create")
	ctx := enclaveCtx(t, time.Minute)

	noErr(t, c.Provision(ctx, testEnclave(name), testProvenance))

	ns, err := cs.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
	noErr(t, err)
	wantLabels := map[string]string{
		LabelManagedBy:           ManagedBy,
		LabelEnclave:             name,
		LabelPodSecurity:         "restricted",
		corev1.LabelMetadataName: name, // set by the API server
	}
	if !maps.Equal(ns.Labels, wantLabels) {
		t.Errorf("namespace labels = %v, want %v", ns.Labels, wantLabels)
	}
	wantAnn := map[string]string{
		AnnotationOwner:   "U0001",
		AnnotationChannel: "C0001",
		AnnotationName:    "data-team",
		AnnotationTeam:    "T0001",
		AnnotationActor:   "U0001",
		AnnotationAt:      "2026-01-02T03:04:05Z",
		AnnotationFrozen:  "false",
		AnnotationState:   StateActive,
		AnnotationQuota:   `{"cpu":"2","memory":"4Gi","pods":5,"storage":"20Gi","defaultCPU":"100m","defaultMemory":"256Mi","maxCPU":"2","maxMemory":"4Gi"}`,

		AnnotationMembers:         `["U0002","U0003"]`,
		AnnotationMode:            "rwxrwx---",
		AnnotationTentacleModes:   `{"greeter":"rwxr-x---"}`,
		AnnotationRequireIdentity: "false",
		AnnotationArchived:        "false",
		AnnotationFrozenByOwner:   "false",
		AnnotationChannelDeleted:  "false",
		AnnotationNeedsOwner:      "false",
	}
	if !maps.Equal(ns.Annotations, wantAnn) {
		t.Errorf("namespace annotations = %v, want %v", ns.Annotations, wantAnn)
	}
	objLabels := map[string]string{LabelManagedBy: ManagedBy, LabelEnclave: name}
	checkLabels := func(kind string, m metav1.ObjectMeta) {
		t.Helper()
		if !maps.Equal(m.Labels, objLabels) {
			t.Errorf("%s %s labels = %v, want %v", kind, m.Name, m.Labels, objLabels)
		}
	}

	q, err := cs.CoreV1().ResourceQuotas(name).Get(ctx, EnclaveQuota, metav1.GetOptions{})
	noErr(t, err)
	checkLabels("ResourceQuota", q.ObjectMeta)
	wantHard := corev1.ResourceList{
		corev1.ResourceRequestsCPU:            resource.MustParse("2"),
		corev1.ResourceRequestsMemory:         resource.MustParse("4Gi"),
		corev1.ResourceLimitsCPU:              resource.MustParse("4"),
		corev1.ResourceLimitsMemory:           resource.MustParse("8Gi"),
		corev1.ResourcePods:                   resource.MustParse("5"),
		corev1.ResourceRequestsStorage:        resource.MustParse("20Gi"),
		corev1.ResourcePersistentVolumeClaims: resource.MustParse("10"),
	}
	if !equality.Semantic.DeepEqual(q.Spec, corev1.ResourceQuotaSpec{Hard: wantHard}) {
		t.Errorf("quota spec = %v, want hard %v", q.Spec, wantHard)
	}

	lr, err := cs.CoreV1().LimitRanges(name).Get(ctx, EnclaveLimitRange, metav1.GetOptions{})
	noErr(t, err)
	checkLabels("LimitRange", lr.ObjectMeta)
	wantLR := corev1.LimitRangeSpec{Limits: []corev1.LimitRangeItem{{
		Type:           corev1.LimitTypeContainer,
		DefaultRequest: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("256Mi")},
		Default:        corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("200m"), corev1.ResourceMemory: resource.MustParse("512Mi")},
		Max:            corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2"), corev1.ResourceMemory: resource.MustParse("4Gi")},
	}}}
	if !equality.Semantic.DeepEqual(lr.Spec, wantLR) {
		t.Errorf("limit range spec = %+v, want %+v", lr.Spec, wantLR)
	}

	dns, tcp, udp := intstr.FromInt32(53), corev1.ProtocolTCP, corev1.ProtocolUDP
	http := intstr.FromInt32(EnginePort)
	wantPolicies := map[string]networkingv1.NetworkPolicySpec{
		EnclavePolicyDefaultDeny: {
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress},
		},
		EnclavePolicyAllowDNS: {
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress},
			Egress: []networkingv1.NetworkPolicyEgressRule{{
				To: []networkingv1.NetworkPolicyPeer{{
					NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{corev1.LabelMetadataName: "kube-system"}},
					PodSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"k8s-app": "kube-dns"}},
				}},
				Ports: []networkingv1.NetworkPolicyPort{{Protocol: &udp, Port: &dns}, {Protocol: &tcp, Port: &dns}},
			}},
		},
		EnclavePolicyAllowBot: {
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				From: []networkingv1.NetworkPolicyPeer{{
					NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{corev1.LabelMetadataName: "kraken-system"}},
					PodSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"app.kubernetes.io/name": "kraken"}},
				}},
				Ports: []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: &http}},
			}},
		},
	}
	policies, err := cs.NetworkingV1().NetworkPolicies(name).List(ctx, metav1.ListOptions{})
	noErr(t, err)
	if len(policies.Items) != len(wantPolicies) {
		t.Errorf("%d network policies, want %d", len(policies.Items), len(wantPolicies))
	}
	for _, p := range policies.Items {
		checkLabels("NetworkPolicy", p.ObjectMeta)
		want, ok := wantPolicies[p.Name]
		if !ok {
			t.Errorf("unexpected network policy %s", p.Name)
			continue
		}
		if !equality.Semantic.DeepEqual(p.Spec, want) {
			t.Errorf("network policy %s spec = %+v, want %+v", p.Name, p.Spec, want)
		}
	}

	sa, err := cs.CoreV1().ServiceAccounts(name).Get(ctx, TentacleServiceAccount, metav1.GetOptions{})
	noErr(t, err)
	checkLabels("ServiceAccount", sa.ObjectMeta)
	if sa.AutomountServiceAccountToken == nil || *sa.AutomountServiceAccountToken {
		t.Errorf("tentacle ServiceAccount automounts its token: %v", sa.AutomountServiceAccountToken)
	}

	// The bot's binding is the only one: the tentacle account has no
	// rights at all.
	rbs, err := cs.RbacV1().RoleBindings(name).List(ctx, metav1.ListOptions{})
	noErr(t, err)
	if len(rbs.Items) != 1 {
		t.Fatalf("%d RoleBindings in the enclave, want only %s", len(rbs.Items), EnclaveBotRoleBinding)
	}
	rb := rbs.Items[0]
	checkLabels("RoleBinding", rb.ObjectMeta)
	wantRef := rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "kraken-enclave"}
	wantSubjects := []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "kraken", Namespace: "kraken-system"}}
	if rb.Name != EnclaveBotRoleBinding || rb.RoleRef != wantRef || !slices.Equal(rb.Subjects, wantSubjects) {
		t.Errorf("RoleBinding %s = %+v %+v, want %s %+v %+v", rb.Name, rb.RoleRef, rb.Subjects, EnclaveBotRoleBinding, wantRef, wantSubjects)
	}

	// Every object is owned by the bot's field manager, through apply.
	for _, m := range []metav1.ObjectMeta{ns.ObjectMeta, q.ObjectMeta, lr.ObjectMeta, sa.ObjectMeta, rb.ObjectMeta} {
		if !slices.ContainsFunc(m.ManagedFields, func(f metav1.ManagedFieldsEntry) bool {
			return f.Manager == FieldManager && f.Operation == metav1.ManagedFieldsOperationApply
		}) {
			t.Errorf("%s is not applied by field manager %q: %+v", m.Name, FieldManager, m.ManagedFields)
		}
	}

	got, err := c.Get(ctx, name)
	noErr(t, err)
	want := enclave.Enclave{
		Name:    name,
		Channel: enclave.Channel{TeamID: "T0001", ID: "C0001", Name: "data-team"},
		Owner:   "U0001",
		Quota: enclave.Quota{CPU: "2", Memory: "4Gi", Pods: 5, Storage: "20Gi",
			DefaultCPU: "100m", DefaultMemory: "256Mi", MaxCPU: "2", MaxMemory: "4Gi"},
		Ready:      true,
		CreatedAt:  ns.CreationTimestamp.Time,
		Governance: testGovernance(),
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Get = %+v\nwant  %+v", got, want)
	}
}

// Re-running Provision must be free of side effects: no object changes
// (same resourceVersions), one read and one apply per object, no polling.
func TestProvisionTwiceChangesNothing(t *testing.T) {
	t.Parallel()
	cs := k8stest.Clientset(t)
	rc, rec := recordedConfig(k8stest.Config(t))
	c := newEnclaveClient(t, rc, nil)
	name := enclaveName(t, "enc-twice")
	ctx := enclaveCtx(t, time.Minute)
	e := testEnclave(name)

	noErr(t, c.Provision(ctx, e, testProvenance))
	reads, writes, reqs := rec.counts()
	t.Logf("first Provision: %d reads, %d writes: %s", reads, writes, strings.Join(reqs, ", "))
	// One read (is the name free?), the namespace twice (provisioning,
	// then active) and each of the 7 other objects once.
	if reads != 1 || writes != 9 {
		t.Errorf("first Provision made %d reads and %d writes, want 1 and 9", reads, writes)
	}
	before := enclaveObjects(t, cs, name)

	// A reconcile by someone else, later, changes nothing either: the
	// namespace keeps the provenance of the provision that made it.
	later := enclave.Provenance{Actor: "system", At: testProvenance.At.Add(time.Hour)}
	for _, p := range []enclave.Provenance{testProvenance, later} {
		noErr(t, c.Provision(ctx, e, p))
		reads, writes, reqs := rec.counts()
		t.Logf("Provision again as %s: %d reads, %d writes: %s", p.Actor, reads, writes, strings.Join(reqs, ", "))
		if reads != 1 || writes != 8 {
			t.Errorf("Provision of a ready enclave made %d reads and %d writes, want 1 and 8 (no provisioning state)", reads, writes)
		}
		if after := enclaveObjects(t, cs, name); !maps.Equal(before, after) {
			t.Errorf("Provision again changed objects:\nbefore %v\nafter  %v", before, after)
		}
	}

	// A real change converges in place and the enclave stays ready; the
	// owner is not the reconcile's to change (TestProvisionKeepsTheOwner).
	e.Quota.Pods = 7
	e.Owner = "U0002"
	noErr(t, c.Provision(ctx, e, later))
	got, err := c.Get(ctx, name)
	noErr(t, err)
	if got.Quota.Pods != 7 || got.Owner != "U0001" || !got.Ready {
		t.Errorf("after changing pods (and asking for another owner): %+v", got)
	}
	q, err := cs.CoreV1().ResourceQuotas(name).Get(ctx, EnclaveQuota, metav1.GetOptions{})
	noErr(t, err)
	if p := q.Spec.Hard[corev1.ResourcePods]; p.Value() != 7 {
		t.Errorf("quota pods = %s, want 7", p.String())
	}
}

func TestProvisionConcurrently(t *testing.T) {
	t.Parallel()
	cs := k8stest.Clientset(t)
	name := enclaveName(t, "enc-race")
	ctx := enclaveCtx(t, time.Minute)
	e := testEnclave(name)

	// Two bot replicas, each with its own client and connection.
	const replicas = 2
	errs := make([]error, replicas)
	var wg sync.WaitGroup
	for i := range replicas {
		c := newEnclaveClient(t, k8stest.Config(t), nil)
		wg.Go(func() { errs[i] = c.Provision(ctx, e, testProvenance) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("replica %d: %v", i, err)
		}
	}
	assertWholeEnclave(t, cs, name)
	got, err := newEnclaveClient(t, k8stest.Config(t), nil).Get(ctx, name)
	noErr(t, err)
	if !got.Ready || got.Frozen {
		t.Errorf("after concurrent provisions: %+v", got)
	}
}

func TestProvisionRefusesBadNames(t *testing.T) {
	t.Parallel()
	rc, rec := recordedConfig(k8stest.Config(t))
	c := newEnclaveClient(t, rc, nil)
	ctx := enclaveCtx(t, time.Minute)
	for _, name := range []string{
		"",
		"Data_Team",
		"-data",
		"data-",
		"data.team",
		strings.Repeat("a", 64),
		"default",
		"kube-system",
		"kube-public",
		"kraken-system",
	} {
		t.Run(name, func(t *testing.T) {
			err := c.Provision(ctx, testEnclave(name), testProvenance)
			if !errors.Is(err, enclave.ErrNameInvalid) {
				t.Fatalf("Provision(%q) = %v, want ErrNameInvalid", name, err)
			}
			t.Logf("%v", err)
		})
	}
	// Nothing was even asked of the API server.
	if reads, writes, reqs := rec.counts(); reads+writes != 0 {
		t.Errorf("bad names made %d requests: %v", reads+writes, reqs)
	}
}

func TestProvisionRefusesBadQuota(t *testing.T) {
	t.Parallel()
	rc, rec := recordedConfig(k8stest.Config(t))
	c := newEnclaveClient(t, rc, nil)
	// Deleted at the end should Provision ever create it regardless.
	e := testEnclave(enclaveName(t, "enc-badquota"))
	e.Quota.CPU = "lots"
	err := c.Provision(enclaveCtx(t, time.Minute), e, testProvenance)
	if !errors.Is(err, ErrQuotaInvalid) || !strings.Contains(err.Error(), `CPU "lots"`) {
		t.Fatalf("Provision with CPU %q = %v, want ErrQuotaInvalid naming it", e.Quota.CPU, err)
	}
	if reads, writes, _ := rec.counts(); reads+writes != 0 {
		t.Errorf("a bad quota made %d requests", reads+writes)
	}
}

// A namespace the bot did not make is never taken over, even when its
// name is a valid enclave name, or when it carries one of our labels.
func TestProvisionRefusesUnmanagedNamespace(t *testing.T) {
	t.Parallel()
	cs := k8stest.Clientset(t)
	c := newEnclaveClient(t, k8stest.Config(t), nil)
	ctx := enclaveCtx(t, time.Minute)
	for _, tc := range []struct {
		name   string
		labels map[string]string
	}{
		{"plain", nil},
		{"managed-by-kraken-but-no-enclave-label", map[string]string{LabelManagedBy: ManagedBy}},
		{"someone-elses-enclave-label", map[string]string{LabelManagedBy: ManagedBy, LabelEnclave: "other"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			name := k8stest.Namespace(t, "enc-taken")
			if tc.labels != nil {
				ns, err := cs.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
				noErr(t, err)
				maps.Copy(ns.Labels, tc.labels)
				_, err = cs.CoreV1().Namespaces().Update(ctx, ns, metav1.UpdateOptions{})
				noErr(t, err)
			}
			before := enclaveObjects(t, cs, name)

			err := c.Provision(ctx, testEnclave(name), testProvenance)
			if !errors.Is(err, enclave.ErrNameTaken) {
				t.Fatalf("Provision over an unmanaged namespace = %v, want ErrNameTaken", err)
			}
			t.Logf("%v", err)
			if after := enclaveObjects(t, cs, name); !maps.Equal(before, after) {
				t.Errorf("the unmanaged namespace was touched:\nbefore %v\nafter  %v", before, after)
			}
			// Nor is it an enclave for any other operation.
			if _, err := c.Get(ctx, name); !errors.Is(err, enclave.ErrNotFound) {
				t.Errorf("Get = %v, want ErrNotFound", err)
			}
			if err := c.SetFrozen(ctx, name, true, testProvenance); !errors.Is(err, enclave.ErrNotFound) {
				t.Errorf("SetFrozen = %v, want ErrNotFound", err)
			}
			if err := c.Deprovision(ctx, name, testProvenance); !errors.Is(err, enclave.ErrNotFound) {
				t.Errorf("Deprovision = %v, want ErrNotFound", err)
			}
			all, err := c.List(ctx)
			noErr(t, err)
			if slices.ContainsFunc(all, func(e enclave.Enclave) bool { return e.Name == name }) {
				t.Errorf("List includes the unmanaged namespace %s", name)
			}
			if after := enclaveObjects(t, cs, name); !maps.Equal(before, after) {
				t.Errorf("the unmanaged namespace was touched:\nbefore %v\nafter  %v", before, after)
			}
		})
	}
}

func TestSetFrozenRoundTrip(t *testing.T) {
	t.Parallel()
	cs := k8stest.Clientset(t)
	rc, rec := recordedConfig(k8stest.Config(t))
	c := newEnclaveClient(t, rc, nil)
	name := enclaveName(t, "enc-frozen")
	ctx := enclaveCtx(t, time.Minute)
	e := testEnclave(name)
	noErr(t, c.Provision(ctx, e, testProvenance))
	nsBefore, err := cs.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
	noErr(t, err)

	for _, frozen := range []bool{true, true, false} {
		rec.counts()
		noErr(t, c.SetFrozen(ctx, name, frozen, enclave.Provenance{Actor: "U0009", At: testProvenance.At.Add(time.Minute)}))
		if reads, writes, reqs := rec.counts(); reads != 1 || writes != 1 {
			t.Errorf("SetFrozen made %d reads and %d writes, want 1 and 1: %v", reads, writes, reqs)
		}
		got, err := c.Get(ctx, name)
		noErr(t, err)
		if got.Frozen != frozen || !got.Ready {
			t.Errorf("after SetFrozen(%t): Frozen=%t Ready=%t", frozen, got.Frozen, got.Ready)
		}
		ns, err := cs.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
		noErr(t, err)
		wantState := map[bool]string{true: StateFrozen, false: StateActive}[frozen]
		if ns.Annotations[AnnotationState] != wantState || ns.Annotations[AnnotationFrozenBy] != "U0009" {
			t.Errorf("after SetFrozen(%t): annotations %v", frozen, ns.Annotations)
		}
		// Applying only the frozen annotations kept every other label and
		// annotation the bot wrote.
		for k, v := range nsBefore.Labels {
			if ns.Labels[k] != v {
				t.Errorf("label %s = %q after SetFrozen, was %q", k, ns.Labels[k], v)
			}
		}
		for _, k := range []string{AnnotationOwner, AnnotationChannel, AnnotationTeam, AnnotationName, AnnotationQuota, AnnotationActor, AnnotationAt} {
			if ns.Annotations[k] != nsBefore.Annotations[k] {
				t.Errorf("annotation %s = %q after SetFrozen, was %q", k, ns.Annotations[k], nsBefore.Annotations[k])
			}
		}
	}

	// Provision, which applies the state too, re-applies the recorded one
	// without conflict, whatever e.Frozen says
	// (TestProvisionKeepsTheFrozenState).
	e.Frozen = true
	noErr(t, c.Provision(ctx, e, testProvenance))
	if got, err := c.Get(ctx, name); err != nil || got.Frozen || !got.Ready {
		t.Errorf("Provision with Frozen=true after SetFrozen(false): %+v, %v", got, err)
	}

	absent := enclaveName(t, "enc-absent") // deleted at the end should SetFrozen make it
	if err := c.SetFrozen(ctx, absent, true, testProvenance); !errors.Is(err, enclave.ErrNotFound) {
		t.Errorf("SetFrozen of an absent enclave = %v, want ErrNotFound", err)
	}
	// And it did not create one.
	if _, err := cs.CoreV1().Namespaces().Get(ctx, absent, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("SetFrozen of an absent enclave left a namespace: %v", err)
	}
}

func TestGetAndList(t *testing.T) {
	t.Parallel()
	c := newEnclaveClient(t, k8stest.Config(t), nil)
	ctx := enclaveCtx(t, time.Minute)
	a, b := enclaveName(t, "enc-list"), enclaveName(t, "enc-list")
	ea, eb := testEnclave(a), testEnclave(b)
	eb.Frozen, eb.Owner, eb.Channel.Name = true, "U0002", "other"
	noErr(t, c.Provision(ctx, ea, testProvenance))
	noErr(t, c.Provision(ctx, eb, testProvenance))

	all, err := c.List(ctx)
	noErr(t, err)
	if !slices.IsSortedFunc(all, func(x, y enclave.Enclave) int { return strings.Compare(x.Name, y.Name) }) {
		t.Errorf("List is not sorted by name")
	}
	for _, want := range []enclave.Enclave{ea, eb} {
		i := slices.IndexFunc(all, func(e enclave.Enclave) bool { return e.Name == want.Name })
		if i < 0 {
			t.Errorf("List has no %s", want.Name)
			continue
		}
		got := all[i]
		one, err := c.Get(ctx, want.Name)
		noErr(t, err)
		if !reflect.DeepEqual(got, one) {
			t.Errorf("List and Get disagree on %s:\n%+v\n%+v", want.Name, got, one)
		}
		if got.Owner != want.Owner || got.Channel != want.Channel || got.Frozen != want.Frozen || !got.Ready || got.Terminating || got.CreatedAt.IsZero() || got.Quota.CPU != want.Quota.CPU {
			t.Errorf("List %s = %+v, want from %+v", want.Name, got, want)
		}
	}
	if _, err := c.Get(ctx, k8stest.UniqueName("enc-absent")); !errors.Is(err, enclave.ErrNotFound) {
		t.Errorf("Get of an absent enclave = %v, want ErrNotFound", err)
	}
	if _, err := c.Get(ctx, "kube-system"); !errors.Is(err, enclave.ErrNotFound) {
		t.Errorf("Get(kube-system) = %v, want ErrNotFound", err)
	}
}

func TestDeprovisionWaitsUntilGone(t *testing.T) {
	t.Parallel()
	cs := k8stest.Clientset(t)
	rc, rec := recordedConfig(k8stest.Config(t))
	c := newEnclaveClient(t, rc, nil)
	name := enclaveName(t, "enc-deprov")
	ctx := enclaveCtx(t, 2*time.Minute)
	noErr(t, c.Provision(ctx, testEnclave(name), testProvenance))
	rec.counts()

	noErr(t, c.Deprovision(ctx, name, testProvenance))
	reads, writes, reqs := rec.counts()
	t.Logf("Deprovision: %d reads (including watches), %d writes: %s", reads, writes, strings.Join(reqs, ", "))
	if writes != 1 {
		t.Errorf("Deprovision made %d writes, want 1 (the delete)", writes)
	}
	// It returned only once the namespace controller had finished.
	if _, err := cs.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("namespace still there after Deprovision returned: %v", err)
	}
	if err := c.Deprovision(ctx, name, testProvenance); !errors.Is(err, enclave.ErrNotFound) {
		t.Errorf("Deprovision again = %v, want ErrNotFound", err)
	}
	if _, err := c.Get(ctx, name); !errors.Is(err, enclave.ErrNotFound) {
		t.Errorf("Get after Deprovision = %v, want ErrNotFound", err)
	}
}

// holdFinalizer keeps an object, and so its namespace, from being
// deleted until the test removes it.
const holdFinalizer = "kraken.dev/test-hold"

func TestDeprovisionStuckTerminating(t *testing.T) {
	t.Parallel()
	cs := k8stest.Clientset(t)
	c := newEnclaveClient(t, k8stest.Config(t), nil)
	name := enclaveName(t, "enc-stuck")
	ctx := enclaveCtx(t, 2*time.Minute)
	noErr(t, c.Provision(ctx, testEnclave(name), testProvenance))
	_, err := cs.CoreV1().ConfigMaps(name).Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "held", Finalizers: []string{holdFinalizer}},
	}, metav1.CreateOptions{})
	noErr(t, err)
	release := func() {
		// Also runs as a cleanup, after the test's context is cancelled.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cm, err := cs.CoreV1().ConfigMaps(name).Get(ctx, "held", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return
		}
		noErr(t, err)
		cm.Finalizers = nil
		_, err = cs.CoreV1().ConfigMaps(name).Update(ctx, cm, metav1.UpdateOptions{})
		noErr(t, err)
	}
	t.Cleanup(release)

	// A deadline passes while the ConfigMap holds the namespace.
	short := enclaveCtx(t, 2*time.Second)
	err = c.Deprovision(short, name, testProvenance)
	var stuck *StuckTerminatingError
	if !errors.As(err, &stuck) || stuck.Namespace != name {
		t.Fatalf("Deprovision of a held namespace = %v, want *StuckTerminatingError", err)
	}
	t.Logf("%v", err)

	// Meanwhile the enclave reads as terminating and takes no changes.
	got, err := c.Get(ctx, name)
	noErr(t, err)
	if !got.Terminating || got.Ready {
		t.Errorf("a terminating enclave reads %+v", got)
	}
	if err := c.Provision(ctx, testEnclave(name), testProvenance); !errors.Is(err, ErrTerminating) {
		t.Errorf("Provision while terminating = %v, want ErrTerminating", err)
	}
	if err := c.SetFrozen(ctx, name, true, testProvenance); !errors.Is(err, ErrTerminating) {
		t.Errorf("SetFrozen while terminating = %v, want ErrTerminating", err)
	}

	// Once the namespace controller has said what holds it, the error
	// names the finalizer. Waiting for its condition is the test's own
	// watch, so the assertion does not depend on how fast it reports.
	waitNamespaceCondition(t, name, corev1.NamespaceFinalizersRemaining)
	err = c.Deprovision(enclaveCtx(t, time.Second), name, testProvenance)
	if !errors.As(err, &stuck) || !strings.Contains(err.Error(), holdFinalizer) {
		t.Fatalf("Deprovision = %v, want a stuck error naming %s", err, holdFinalizer)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("the stuck error does not wrap the deadline: %v", err)
	}
	t.Logf("%v", err)

	// Released, a second Deprovision (the namespace is already
	// terminating) waits for the end.
	release()
	noErr(t, c.Deprovision(ctx, name, testProvenance))
	if _, err := cs.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("namespace still there after Deprovision returned: %v", err)
	}
}

// waitNamespaceCondition watches the namespace until cond is true.
func waitNamespaceCondition(t *testing.T, name string, cond corev1.NamespaceConditionType) {
	t.Helper()
	cs := k8stest.Clientset(t)
	ctx := enclaveCtx(t, time.Minute)
	w, err := cs.CoreV1().Namespaces().Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + name})
	noErr(t, err)
	defer w.Stop()
	for ev := range w.ResultChan() {
		ns, ok := ev.Object.(*corev1.Namespace)
		if !ok {
			continue
		}
		for _, c := range ns.Status.Conditions {
			if c.Type == cond && c.Status == corev1.ConditionTrue {
				return
			}
		}
	}
	t.Fatalf("namespace %s never got condition %s: %v", name, cond, ctx.Err())
}

func TestQuotaExceededSaysWhichResource(t *testing.T) {
	t.Parallel()
	cs := k8stest.Clientset(t)
	c := newEnclaveClient(t, k8stest.Config(t), nil)
	name := enclaveName(t, "enc-quota")
	ctx := enclaveCtx(t, time.Minute)
	e := testEnclave(name)
	e.Quota.Pods = 1
	noErr(t, c.Provision(ctx, e, testProvenance))
	waitQuotaEnforced(t, cs, name)

	var errs []error
	for i := range 2 {
		_, err := cs.CoreV1().Pods(name).Create(ctx, restrictedPod(fmt.Sprintf("p%d", i)), metav1.CreateOptions{})
		errs = append(errs, err)
	}
	if errs[0] != nil {
		t.Fatalf("first pod, within quota: %v", errs[0])
	}
	err := apiError("start tentacle", errs[1])
	var q *QuotaExceededError
	if !errors.As(err, &q) {
		t.Fatalf("second pod over a quota of 1: %v, want *QuotaExceededError (from %v)", err, errs[1])
	}
	if q.Quota != EnclaveQuota || !slices.Equal(q.ExceededResources(), []string{"pods"}) {
		t.Errorf("quota %q resources %v, want %s [pods]", q.Quota, q.ExceededResources(), EnclaveQuota)
	}
	if !strings.Contains(err.Error(), "pods (asked for 1 more, 1 of 1 in use)") {
		t.Errorf("message does not say which resource ran out: %v", err)
	}
	t.Logf("%v", err)
}

// restrictedPod meets the restricted Pod Security Standard the enclave
// enforces, and names no node selector any fake node has, so it stays
// Pending and is deleted at once with its namespace.
func restrictedPod(name string) *corev1.Pod {
	yes, no := true, false
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PodSpec{
			ServiceAccountName: TentacleServiceAccount,
			NodeSelector:       map[string]string{"kraken.dev/no-such-node": "true"},
			SecurityContext: &corev1.PodSecurityContext{
				RunAsNonRoot:   &yes,
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			},
			Containers: []corev1.Container{{
				Name:  "c",
				Image: "example.invalid/none:1",
				SecurityContext: &corev1.SecurityContext{
					AllowPrivilegeEscalation: &no,
					Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
				},
			}},
		},
	}
}

// An outage after each number of writes leaves an enclave that reads as
// not ready, and the next Provision finishes it.
func TestProvisionFailsPartWayThenConverges(t *testing.T) {
	t.Parallel()
	const total = 9 // writes of a fresh Provision, see TestProvisionTwiceChangesNothing
	for cut := range total {
		t.Run(fmt.Sprintf("after %d writes", cut), func(t *testing.T) {
			t.Parallel()
			cs := k8stest.Clientset(t)
			rc, rec := recordedConfig(k8stest.Config(t))
			rec.cutAfter = cut
			broken := newEnclaveClient(t, rc, nil)
			c := newEnclaveClient(t, k8stest.Config(t), nil)
			name := enclaveName(t, "enc-cut")
			ctx := enclaveCtx(t, time.Minute)

			err := broken.Provision(ctx, testEnclave(name), testProvenance)
			if !errors.Is(err, ErrUnreachable) {
				t.Fatalf("Provision through an outage = %v, want ErrUnreachable", err)
			}
			if strings.Contains(err.Error(), "https://") {
				t.Errorf("the error repeats the request URL: %v", err)
			}
			t.Logf("%v", err)

			got, err := c.Get(ctx, name)
			switch {
			case cut == 0:
				if !errors.Is(err, enclave.ErrNotFound) {
					t.Fatalf("nothing was written, yet Get = %+v, %v", got, err)
				}
			case err != nil:
				t.Fatal(err)
			case got.Ready:
				t.Fatalf("half-made enclave reads as ready: %+v", got)
			}
			if cut > 0 {
				all, err := c.List(ctx)
				noErr(t, err)
				i := slices.IndexFunc(all, func(e enclave.Enclave) bool { return e.Name == name })
				if i < 0 || all[i].Ready {
					t.Fatalf("List shows the half-made enclave as %+v", all[i])
				}
				// Freezing it does not make it look ready.
				noErr(t, c.SetFrozen(ctx, name, true, testProvenance))
				if got, _ := c.Get(ctx, name); got.Ready || !got.Frozen {
					t.Fatalf("half-made enclave after SetFrozen: %+v", got)
				}
			}

			noErr(t, c.Provision(ctx, testEnclave(name), testProvenance))
			assertWholeEnclave(t, cs, name)
			got, err = c.Get(ctx, name)
			noErr(t, err)
			if !got.Ready || got.Frozen {
				t.Errorf("after provisioning again: %+v", got)
			}
		})
	}
}

func TestProvisionForbiddenSaysWhichPermission(t *testing.T) {
	t.Parallel()
	rc := k8stest.Config(t)
	rc.Impersonate = rest.ImpersonationConfig{UserName: k8stest.UniqueName("nobody")}
	c := newEnclaveClient(t, rc, nil)
	name := enclaveName(t, "enc-forbidden") // deleted at the end should the refusal come too late
	err := c.Provision(enclaveCtx(t, time.Minute), testEnclave(name), testProvenance)
	var f *ForbiddenError
	if !errors.As(err, &f) {
		t.Fatalf("Provision without rights = %v, want *ForbiddenError", err)
	}
	if f.User != rc.Impersonate.UserName || f.Verb != "get" || f.Resource != "namespaces" || f.Namespace != name {
		t.Errorf("ForbiddenError = %+v, want %s may not get namespaces", f, rc.Impersonate.UserName)
	}
	if !apierrors.IsForbidden(err) {
		t.Errorf("the API error is not reachable through %v", err)
	}
	if want := "is not allowed to get namespace " + name; !strings.Contains(err.Error(), want) {
		t.Errorf("%v\ndoes not say %q", err, want)
	}
	t.Logf("%v", err)
}
