package k8s

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/kraken-ops/kraken/enclave"
	"github.com/kraken-ops/kraken/k8s/k8stest"
	"github.com/kraken-ops/kraken/tentacle"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	nodev1 "k8s.io/api/node/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"
)

// TestDeployObjects checks every field of every object a deploy writes,
// as the API server stored them, and the requests it took.
func TestDeployObjects(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	files := echoFiles("echo", "hello")
	files["workflow.yaml"] += `sidecars:
  - name: cache_box
    image: redis:7
    port: 6379
    args: ["--save", ""]
    env: {B: "2", A: "1"}
    resources: {limits: {memory: 64Mi}}
  - name: grpc
    image: example/grpc:1
    port: 9000
    protocol: grpc
deployment:
  resources:
    requests: {cpu: 200m}
    limits: {memory: 512Mi}
`
	b := loadBundle(t, files)
	h.n.snapshot()
	rev, err := h.tc.Deploy(h.ctx, h.ns, b, prov)
	if err != nil {
		t.Fatalf("Deploy: %v", err)
	}
	n := h.n.snapshot()
	t.Logf("first deploy: %d requests: %d reads, %d writes, %d dry runs, %d watches: %q", n.requests(), n.reads, n.writes, n.dryRuns, n.watches, n.log)
	// ConfigMap, Secret, Service, NetworkPolicy, Deployment: one write
	// each. The four applies go first as dry runs: four more requests, so
	// that an object the API server refuses is refused before anything
	// is written, rather than after the Secret and egress policy changed
	// under the running revision (TestDeployRefusedByDryRun).
	if n.writes != 5 || n.dryRuns != 4 || n.watches != 0 || n.reads > 7 {
		t.Errorf("first deploy took %d reads, %d writes, %d dry runs, %d watches; want <= 7 reads (namespace, RuntimeClass, 4 objects, revisions), 4 dry runs, 5 writes: %q", n.reads, n.writes, n.dryRuns, n.watches, n.log)
	}
	if len(rev.Warnings) != 1 || rev.Warnings[0] != NoGVisorWarning {
		t.Errorf("warnings = %q, want only that gVisor is missing", rev.Warnings)
	}
	if rev.Number != 1 || rev.Digest != b.Digest() || rev.Version != "1.0" || rev.DeployedBy != "U123" || !rev.DeployedAt.Equal(prov.At) {
		t.Errorf("revision = %+v", rev)
	}
	ctx, cs, ns := h.ctx, h.cs, h.ns
	wantLabels := map[string]string{
		LabelManagedBy: ManagedBy, LabelEnclave: ns, LabelTentacle: "echo", LabelName: "echo",
	}
	checkMeta := func(kind string, m metav1.ObjectMeta) {
		t.Helper()
		for k, v := range wantLabels {
			if m.Labels[k] != v {
				t.Errorf("%s labels = %v, want %s=%s", kind, m.Labels, k, v)
			}
		}
		for k, v := range map[string]string{AnnotationRevision: "1", AnnotationDigest: b.Digest(), AnnotationActor: "U123", AnnotationChannel: "C456", AnnotationAt: "2026-11-23T10:00:00Z"} {
			if m.Annotations[k] != v {
				t.Errorf("%s annotation %s = %q, want %q", kind, k, m.Annotations[k], v)
			}
		}
		if len(m.ManagedFields) == 0 || m.ManagedFields[0].Manager != FieldManager {
			t.Errorf("%s managed by %v, want %s", kind, m.ManagedFields, FieldManager)
		}
	}

	// The revision: immutable, every file under a key the volume maps back.
	cm, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, "echo-r1", metav1.GetOptions{})
	must(t, err)
	checkMeta("ConfigMap", cm.ObjectMeta)
	if cm.Labels[LabelRevision] != "1" || cm.Immutable == nil || !*cm.Immutable || cm.Annotations[AnnotationVersion] != "1.0" {
		t.Errorf("revision ConfigMap: labels %v immutable %v annotations %v", cm.Labels, cm.Immutable, cm.Annotations)
	}
	if got := slices.Sorted(maps.Keys(cm.Data)); !slices.Equal(got, []string{"lib__shape.ts", "nodes__greet.ts", "workflow.yaml"}) {
		t.Errorf("ConfigMap keys = %v (tests/ and README.md must stay out)", got)
	}
	if cm.Data["nodes__greet.ts"] != files["nodes/greet.ts"] {
		t.Errorf("nodes__greet.ts = %q", cm.Data["nodes__greet.ts"])
	}

	// The Secret: one entry per top-level name, objects as JSON.
	sec, err := cs.CoreV1().Secrets(ns).Get(ctx, "echo-secrets", metav1.GetOptions{})
	must(t, err)
	checkMeta("Secret", sec.ObjectMeta)
	if string(sec.Data["api"]) != `{"token":"`+secretToken+`"}` || len(sec.Data) != 1 || sec.Type != corev1.SecretTypeOpaque {
		t.Errorf("Secret data = %q type %s", sec.Data, sec.Type)
	}
	if strings.Contains(h.logs.String(), secretToken) {
		t.Errorf("a secret value was logged: %s", h.logs.String())
	}

	svc, err := cs.CoreV1().Services(ns).Get(ctx, "echo", metav1.GetOptions{})
	must(t, err)
	checkMeta("Service", svc.ObjectMeta)
	if svc.Spec.Type != corev1.ServiceTypeClusterIP || len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != 8080 ||
		svc.Spec.Ports[0].TargetPort != intstr.FromInt32(8080) || svc.Spec.Ports[0].Protocol != corev1.ProtocolTCP ||
		!maps.Equal(svc.Spec.Selector, map[string]string{LabelManagedBy: ManagedBy, LabelTentacle: "echo"}) {
		t.Errorf("Service spec = %+v", svc.Spec)
	}

	// The egress policy: DNS, the IP dependency by /32, the named host's
	// port to public addresses only (the node runtime's allow-list
	// restricts the host; the policy keeps sidecars off the metadata
	// service and in-cluster addresses).
	np, err := cs.NetworkingV1().NetworkPolicies(ns).Get(ctx, "echo-egress", metav1.GetOptions{})
	must(t, err)
	checkMeta("NetworkPolicy", np.ObjectMeta)
	if !slices.Equal(np.Spec.PolicyTypes, []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}) ||
		!maps.Equal(np.Spec.PodSelector.MatchLabels, map[string]string{LabelManagedBy: ManagedBy, LabelTentacle: "echo"}) {
		t.Errorf("policy types %v selector %v", np.Spec.PolicyTypes, np.Spec.PodSelector)
	}
	if got, want := np.Annotations[AnnotationEgress], "10.20.30.40:5432,api.example.com:443"; got != want {
		t.Errorf("egress annotation = %q, want %q", got, want)
	}
	var rules []string
	for _, r := range np.Spec.Egress {
		var to, ports []string
		for _, p := range r.To {
			switch {
			case p.IPBlock != nil:
				block := p.IPBlock.CIDR
				if len(p.IPBlock.Except) > 0 {
					block += " except " + strings.Join(p.IPBlock.Except, " ")
				}
				to = append(to, block)
			default:
				to = append(to, "ns="+p.NamespaceSelector.MatchLabels[corev1.LabelMetadataName]+"/pod="+p.PodSelector.MatchLabels["k8s-app"])
			}
		}
		for _, p := range r.Ports {
			ports = append(ports, string(*p.Protocol)+"/"+p.Port.String())
		}
		rules = append(rules, strings.Join(to, ",")+" "+strings.Join(ports, ","))
	}
	wantRules := []string{
		"ns=kube-system/pod=kube-dns UDP/53,TCP/53",
		"0.0.0.0/0 except 10.0.0.0/8 172.16.0.0/12 192.168.0.0/16 100.64.0.0/10 169.254.0.0/16 127.0.0.0/8,::/0 except fc00::/7 fe80::/10 TCP/443",
		"10.20.30.40/32 TCP/5432",
	}
	if !slices.Equal(rules, wantRules) {
		t.Errorf("egress rules = %q, want %q", rules, wantRules)
	}

	dep, err := cs.AppsV1().Deployments(ns).Get(ctx, "echo", metav1.GetOptions{})
	must(t, err)
	checkMeta("Deployment", dep.ObjectMeta)
	if *dep.Spec.Replicas != 1 || !maps.Equal(dep.Spec.Selector.MatchLabels, map[string]string{LabelManagedBy: ManagedBy, LabelTentacle: "echo"}) {
		t.Errorf("replicas %d selector %v", *dep.Spec.Replicas, dep.Spec.Selector)
	}
	tpl := dep.Spec.Template
	// Their defect: labels mis-indented so pods carried only one.
	if !maps.Equal(tpl.Labels, wantLabels) {
		t.Errorf("pod template labels = %v, want %v", tpl.Labels, wantLabels)
	}
	if tpl.Annotations[AnnotationRevision] != "1" || tpl.Annotations[AnnotationDigest] != b.Digest() {
		t.Errorf("pod template annotations = %v", tpl.Annotations)
	}
	pod := tpl.Spec
	// Their defect: pods ran as the default ServiceAccount.
	if pod.ServiceAccountName != "tentacle" || pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Errorf("service account %q automount %v", pod.ServiceAccountName, pod.AutomountServiceAccountToken)
	}
	if pod.RuntimeClassName != nil {
		t.Errorf("runtimeClassName = %q without a gvisor RuntimeClass", *pod.RuntimeClassName)
	}
	if !maps.Equal(pod.NodeSelector, map[string]string{k8stest.LabelTestNode: "nowhere"}) {
		t.Errorf("nodeSelector = %v", pod.NodeSelector)
	}
	if pod.EnableServiceLinks == nil || *pod.EnableServiceLinks {
		t.Errorf("enableServiceLinks = %v", pod.EnableServiceLinks)
	}
	psc := pod.SecurityContext
	if psc == nil || !*psc.RunAsNonRoot || *psc.RunAsUser != 65534 || *psc.RunAsGroup != 65534 || *psc.FSGroup != 65534 ||
		psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod securityContext = %+v", psc)
	}
	if len(pod.Containers) != 3 {
		t.Fatalf("containers = %d, want engine and two sidecars", len(pod.Containers))
	}
	for _, c := range pod.Containers {
		sc := c.SecurityContext
		if sc == nil || !*sc.ReadOnlyRootFilesystem || *sc.AllowPrivilegeEscalation || *sc.Privileged || !*sc.RunAsNonRoot ||
			sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) != 0 {
			t.Errorf("container %s securityContext = %+v", c.Name, sc)
		}
		if c.ReadinessProbe == nil || c.LivenessProbe == nil {
			t.Errorf("container %s has no readiness or liveness probe", c.Name)
		}
	}
	engine := pod.Containers[0]
	if engine.Name != "engine" || engine.Image != "ghcr.io/kraken-ops/kraken:test" ||
		!slices.Equal(append(engine.Command, engine.Args...), []string{"kraken", "engine", "--workflow", "/app/workflow", "--port", "8080", "--mounted-secrets", "/app/secrets", "--memory", "256"}) {
		t.Errorf("engine %s image %s command %q args %q", engine.Name, engine.Image, engine.Command, engine.Args)
	}
	for _, p := range []*corev1.Probe{engine.StartupProbe, engine.ReadinessProbe, engine.LivenessProbe} {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/health" || p.HTTPGet.Port != intstr.FromInt32(8080) {
			t.Errorf("engine probe = %+v", p)
		}
	}
	wantRes := corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("200m"), corev1.ResourceMemory: resource.MustParse("128Mi")},
		Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m"), corev1.ResourceMemory: resource.MustParse("512Mi")},
	}
	if !equalResources(engine.Resources, wantRes) {
		t.Errorf("engine resources = %v, want %v", engine.Resources, wantRes)
	}
	mounts := map[string]corev1.VolumeMount{}
	for _, m := range engine.VolumeMounts {
		mounts[m.MountPath] = m
	}
	if !mounts["/app/workflow"].ReadOnly || !mounts["/app/secrets"].ReadOnly || mounts["/tmp"].Name != "tmp" || mounts["/shared"].Name != "shared" {
		t.Errorf("engine mounts = %+v", engine.VolumeMounts)
	}
	volumes := map[string]corev1.Volume{}
	for _, v := range pod.Volumes {
		volumes[v.Name] = v
	}
	wf := volumes["workflow"].ConfigMap
	if wf == nil || wf.Name != "echo-r1" {
		t.Fatalf("workflow volume = %+v", volumes["workflow"])
	}
	items := map[string]string{}
	for _, it := range wf.Items {
		items[it.Key] = it.Path
	}
	if want := map[string]string{"lib__shape.ts": "lib/shape.ts", "nodes__greet.ts": "nodes/greet.ts", "workflow.yaml": "workflow.yaml"}; !maps.Equal(items, want) {
		t.Errorf("workflow items = %v, want %v", items, want)
	}
	if s := volumes["secrets"].Secret; s == nil || s.SecretName != "echo-secrets" {
		t.Errorf("secrets volume = %+v", volumes["secrets"])
	}
	for _, v := range []string{"tmp", "shared", "tmp-cache-box", "tmp-grpc"} {
		if volumes[v].EmptyDir == nil {
			t.Errorf("volume %s = %+v, want an emptyDir", v, volumes[v])
		}
	}

	cache, grpc := pod.Containers[1], pod.Containers[2]
	if cache.Name != "cache-box" || cache.Image != "redis:7" || !slices.Equal(cache.Args, []string{"--save", ""}) ||
		len(cache.Ports) != 1 || cache.Ports[0].ContainerPort != 6379 ||
		len(cache.Env) != 2 || cache.Env[0].Name != "A" || cache.Env[1].Name != "B" {
		t.Errorf("sidecar cache_box = %+v", cache)
	}
	if p := cache.ReadinessProbe; p.HTTPGet == nil || p.HTTPGet.Path != "/health" || p.HTTPGet.Port != intstr.FromInt32(6379) {
		t.Errorf("sidecar probe = %+v", p)
	}
	if got := cache.Resources.Limits[corev1.ResourceMemory]; got.String() != "64Mi" {
		t.Errorf("sidecar memory limit = %s", got.String())
	}
	if p := grpc.ReadinessProbe; p.TCPSocket == nil || p.TCPSocket.Port != intstr.FromInt32(9000) {
		t.Errorf("grpc sidecar probe = %+v", p)
	}
	sideMounts := map[string]string{}
	for _, m := range cache.VolumeMounts {
		sideMounts[m.MountPath] = m.Name
	}
	if !maps.Equal(sideMounts, map[string]string{"/shared": "shared", "/tmp": "tmp-cache-box"}) {
		t.Errorf("sidecar mounts = %v", sideMounts)
	}

	// The pod passes the restricted Pod Security admission (sidecars too):
	// what stops it is only that no node matches its nodeSelector.
	st, err := h.tc.WaitReady(ctx, ns, "echo")
	if !errors.Is(err, ErrNotReady) || !strings.HasPrefix(st.LastError, "there is no room for it in the cluster") {
		t.Errorf("WaitReady = %v, %+v; want the pod admitted and unschedulable", err, st)
	}
	h.n.snapshot()

	// A redeploy is one write per object again, and the revision ConfigMap
	// lookup does not read file contents.
	b2 := loadBundle(t, echoFiles("echo", "hi"))
	if _, err := h.tc.Deploy(ctx, ns, b2, prov); err != nil {
		t.Fatal(err)
	}
	n = h.n.snapshot()
	t.Logf("redeploy: %d requests: %d reads, %d writes, %d dry runs, %d watches", n.requests(), n.reads, n.writes, n.dryRuns, n.watches)
	if n.writes != 5 || n.dryRuns != 4 || n.reads > 6 || n.watches != 0 {
		t.Errorf("redeploy took %d reads, %d writes, %d dry runs, %d watches: %q", n.reads, n.writes, n.dryRuns, n.watches, n.log)
	}
	dep, err = cs.AppsV1().Deployments(ns).Get(ctx, "echo", metav1.GetOptions{})
	must(t, err)
	if dep.Spec.Template.Annotations[AnnotationRevision] != "2" || len(dep.Spec.Template.Spec.Containers) != 1 {
		t.Errorf("after redeploy without sidecars: annotations %v, %d containers", dep.Spec.Template.Annotations, len(dep.Spec.Template.Spec.Containers))
	}
	for _, v := range dep.Spec.Template.Spec.Volumes {
		if v.Name == "shared" || strings.HasPrefix(v.Name, "tmp-") {
			t.Errorf("volume %s outlived its sidecars", v.Name)
		}
	}
}

func equalResources(a, b corev1.ResourceRequirements) bool {
	eq := func(x, y corev1.ResourceList) bool {
		if len(x) != len(y) {
			return false
		}
		for k, v := range x {
			w, ok := y[k]
			if !ok || v.Cmp(w) != 0 {
				return false
			}
		}
		return true
	}
	return eq(a.Requests, b.Requests) && eq(a.Limits, b.Limits)
}

// TestDeployRuntimeClass uses a RuntimeClass name of its own, so that no
// other test sees a cluster with gVisor.
func TestDeployRuntimeClass(t *testing.T) {
	name := k8stest.UniqueName("gvisor-test")
	h := newHarness(t, harnessOptions{runtimeClass: name})
	b := loadBundle(t, echoFiles("echo", "hello"))
	runtimeClassOf := func() *string {
		dep, err := h.cs.AppsV1().Deployments(h.ns).Get(h.ctx, "echo", metav1.GetOptions{})
		must(t, err)
		return dep.Spec.Template.Spec.RuntimeClassName
	}
	rev, err := h.tc.Deploy(h.ctx, h.ns, b, prov)
	if err != nil {
		t.Fatal(err)
	}
	if rc := runtimeClassOf(); rc != nil {
		t.Errorf("runtimeClassName = %q before the RuntimeClass exists", *rc)
	}
	if !slices.Equal(rev.Warnings, []string{NoGVisorWarning}) {
		t.Errorf("warnings = %q, want that gVisor is missing", rev.Warnings)
	}
	if !strings.Contains(h.logs.String(), "tentacles run without gVisor") {
		t.Errorf("no warning logged: %s", h.logs.String())
	}

	rc := &nodev1.RuntimeClass{ObjectMeta: metav1.ObjectMeta{Name: name}, Handler: "runsc"}
	if _, err := h.cs.NodeV1().RuntimeClasses().Create(h.ctx, rc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.cs.NodeV1().RuntimeClasses().Delete(context.Background(), name, metav1.DeleteOptions{}) })

	// The answer is cached: the same Tentacles keeps deploying without it,
	// and looks it up only once.
	h.n.snapshot()
	if rev, err = h.tc.Deploy(h.ctx, h.ns, b, prov); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rev.Warnings, []string{NoGVisorWarning}) {
		t.Errorf("warnings from a cached miss = %q, want that gVisor is missing", rev.Warnings)
	}
	if log := h.n.snapshot().log; slices.ContainsFunc(log, func(s string) bool { return strings.Contains(s, "runtimeclasses") }) {
		t.Errorf("RuntimeClass looked up again within the cache's lifetime: %q", log)
	}
	if rc := runtimeClassOf(); rc != nil {
		t.Errorf("runtimeClassName = %q from a cached miss", *rc)
	}

	fresh, err := NewTentacles(h.tc.c)
	must(t, err)
	if rev, err = fresh.Deploy(h.ctx, h.ns, b, prov); err != nil {
		t.Fatal(err)
	}
	if rc := runtimeClassOf(); rc == nil || *rc != name {
		t.Errorf("runtimeClassName = %v, want %s", rc, name)
	}
	if len(rev.Warnings) != 0 {
		t.Errorf("warnings with gVisor = %q", rev.Warnings)
	}
}

// TestDeployRefused covers every reason to write nothing.
func TestDeployRefused(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	cs, ctx := h.cs, h.ctx
	big := loadBundle(t, echoFiles("big", "hello"))
	big.Files["data/blob.json"] = make([]byte, tentacle.MaxBundleSize)

	frozen := newEnclave(t, cs, "frozen")
	patch := []byte(`{"metadata":{"annotations":{"` + AnnotationFrozen + `":"true"}}}`)
	_, err := cs.CoreV1().Namespaces().Patch(ctx, frozen, types.MergePatchType, patch, metav1.PatchOptions{})
	must(t, err)
	notEnclave := k8stest.Namespace(t, "plain")

	foreign := func(obj func(name string) error) func() {
		return func() { must(t, obj("clash")) }
	}
	meta := func(name string, labels map[string]string) metav1.ObjectMeta {
		return metav1.ObjectMeta{Name: name, Labels: labels}
	}
	enclaveOnly := enclaveLabels(h.ns) // the enclave's, not a tentacle's
	tests := []struct {
		name    string
		enclave string
		bundle  *tentacle.Bundle
		setup   func()
		want    error
		wantMsg string
	}{
		{name: "too large", enclave: h.ns, bundle: big, want: tentacle.ErrTooLarge, wantMsg: "data/blob.json"},
		{name: "no such enclave", enclave: "no-such-enclave", bundle: loadBundle(t, echoFiles("echo", "x")), want: enclave.ErrNotFound},
		{name: "namespace is not an enclave", enclave: notEnclave, bundle: loadBundle(t, echoFiles("echo", "x")), want: enclave.ErrNotFound},
		{name: "frozen", enclave: frozen, bundle: loadBundle(t, echoFiles("echo", "x")), want: enclave.ErrFrozen},
		{name: "foreign Service", enclave: h.ns, bundle: loadBundle(t, echoFiles("clash", "x")), want: ErrNameClash, wantMsg: "Service named clash",
			setup: foreign(func(n string) error {
				_, err := cs.CoreV1().Services(h.ns).Create(ctx, &corev1.Service{ObjectMeta: meta(n, nil),
					Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}}}, metav1.CreateOptions{})
				return err
			})},
		{name: "foreign ConfigMap revision", enclave: h.ns, bundle: loadBundle(t, echoFiles("clash2", "x")), want: ErrNameClash, wantMsg: "ConfigMap named clash2-r1",
			setup: func() {
				_, err := cs.CoreV1().ConfigMaps(h.ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: meta("clash2-r1", nil)}, metav1.CreateOptions{})
				must(t, err)
			}},
		{name: "enclave policy with the egress name", enclave: h.ns, bundle: loadBundle(t, echoFiles("default-deny", "x")), want: ErrNameClash, wantMsg: "NetworkPolicy named default-deny-egress",
			setup: func() {
				_, err := cs.NetworkingV1().NetworkPolicies(h.ns).Create(ctx, &networkingv1.NetworkPolicy{ObjectMeta: meta("default-deny-egress", enclaveOnly)}, metav1.CreateOptions{})
				must(t, err)
			}},
		{name: "another tentacle's Secret name", enclave: h.ns, bundle: loadBundle(t, echoFiles("other", "x")), want: ErrNameClash, wantMsg: "Secret named other-secrets",
			setup: func() {
				l := tentacleLabels(h.ns, "someone-else")
				_, err := cs.CoreV1().Secrets(h.ns).Create(ctx, &corev1.Secret{ObjectMeta: meta("other-secrets", l)}, metav1.CreateOptions{})
				must(t, err)
			}},
		{name: "name not usable as a Service", enclave: h.ns, bundle: loadBundle(t, echoFiles("9lives", "x")), wantMsg: "must start with a letter"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.setup != nil {
				tt.setup()
			}
			before := h.objects()
			h.n.snapshot()
			_, err := h.tc.Deploy(ctx, tt.enclave, tt.bundle, prov)
			if err == nil || tt.want != nil && !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Fatalf("err = %v, want %v containing %q", err, tt.want, tt.wantMsg)
			}
			t.Logf("error: %v", err)
			if n := h.n.snapshot(); n.writes != 0 {
				t.Errorf("%d writes: %q", n.writes, n.log)
			}
			if after := h.objects(); !slices.Equal(before, after) {
				t.Errorf("objects changed: %v -> %v", before, after)
			}
		})
	}
}

// TestConcurrentDeploys races two deploys of one tentacle, several
// times: each succeeds or fails with ErrConflict, and what is left is one
// whole revision, never a mix.
func TestConcurrentDeploys(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	succeeded := map[int]string{} // revision -> digest
	for round := range 6 {
		bundles := [2]*tentacle.Bundle{
			loadBundle(t, echoFiles("race", "a"+strconv.Itoa(round))),
			loadBundle(t, echoFiles("race", "b"+strconv.Itoa(round))),
		}
		var wg sync.WaitGroup
		var revs [2]tentacle.Revision
		var errs [2]error
		start := make(chan struct{})
		for i := range 2 {
			wg.Go(func() {
				<-start
				revs[i], errs[i] = h.tc.Deploy(h.ctx, h.ns, bundles[i], prov)
			})
		}
		close(start)
		wg.Wait()
		ok := 0
		for i, err := range errs {
			switch {
			case err == nil:
				ok++
				succeeded[revs[i].Number] = bundles[i].Digest()
			case errors.Is(err, ErrConflict):
				t.Logf("round %d: %v", round, err)
			default:
				t.Fatalf("round %d: deploy %d: %v", round, i, err)
			}
		}
		if ok == 0 {
			t.Fatalf("round %d: both deploys failed: %v", round, errs)
		}
		latest := slices.Max(slices.Collect(maps.Keys(succeeded)))
		h.checkWhole("race", latest, succeeded[latest], latest)
		revisions, err := h.tc.Revisions(h.ctx, h.ns, "race")
		must(t, err)
		for _, r := range revisions {
			if d, ok := succeeded[r.Number]; !ok || d != r.Digest {
				t.Errorf("round %d: revision %d (%s) is not one a successful deploy made: %v", round, r.Number, r.Digest, succeeded)
			}
		}
	}
}

// checkWhole checks that every object of the tentacle belongs to
// revision rev, whose files have digest.
// A rollback leaves the Secret as it was: secretRev says from which
// revision it should be.
func (h *harness) checkWhole(name string, rev int, digest string, secretRev int) {
	h.t.Helper()
	want := strconv.Itoa(rev)
	dep, err := h.cs.AppsV1().Deployments(h.ns).Get(h.ctx, name, metav1.GetOptions{})
	must(h.t, err)
	svc, err := h.cs.CoreV1().Services(h.ns).Get(h.ctx, name, metav1.GetOptions{})
	must(h.t, err)
	sec, err := h.cs.CoreV1().Secrets(h.ns).Get(h.ctx, secretName(name), metav1.GetOptions{})
	must(h.t, err)
	np, err := h.cs.NetworkingV1().NetworkPolicies(h.ns).Get(h.ctx, policyName(name), metav1.GetOptions{})
	must(h.t, err)
	cm, err := h.cs.CoreV1().ConfigMaps(h.ns).Get(h.ctx, revisionName(name, rev), metav1.GetOptions{})
	must(h.t, err)
	if got := sec.Annotations[AnnotationRevision]; got != strconv.Itoa(secretRev) {
		h.t.Errorf("Secret is from revision %s, want %d", got, secretRev)
	}
	for kind, m := range map[string]metav1.ObjectMeta{"Deployment": dep.ObjectMeta, "Service": svc.ObjectMeta, "NetworkPolicy": np.ObjectMeta, "ConfigMap": cm.ObjectMeta} {
		if m.Annotations[AnnotationRevision] != want || m.Annotations[AnnotationDigest] != digest {
			h.t.Errorf("%s is from revision %s (%s), want %s (%s)", kind, m.Annotations[AnnotationRevision], m.Annotations[AnnotationDigest], want, digest)
		}
	}
	tpl := dep.Spec.Template
	if tpl.Annotations[AnnotationRevision] != want || tpl.Annotations[AnnotationDigest] != digest {
		h.t.Errorf("pod template is from revision %s", tpl.Annotations[AnnotationRevision])
	}
	for _, v := range tpl.Spec.Volumes {
		if v.ConfigMap != nil && v.ConfigMap.Name != revisionName(name, rev) {
			h.t.Errorf("pods mount %s, want %s", v.ConfigMap.Name, revisionName(name, rev))
		}
	}
}

// TestRevisions: ten kept, rollback targets, errors.
func TestRevisions(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	ctx, ns := h.ctx, h.ns
	if _, err := h.tc.Revisions(ctx, ns, "echo"); !errors.Is(err, tentacle.ErrNotDeployed) {
		t.Errorf("Revisions before any deploy: %v", err)
	}
	if _, err := h.tc.Rollback(ctx, ns, "echo", 0, prov); !errors.Is(err, tentacle.ErrNotDeployed) {
		t.Errorf("Rollback before any deploy: %v", err)
	}
	digests := map[int]string{}
	for i := 1; i <= 12; i++ {
		b := loadBundle(t, echoFiles("echo", "v"+strconv.Itoa(i)))
		rev, err := h.tc.Deploy(ctx, ns, b, prov)
		must(t, err)
		if rev.Number != i {
			t.Fatalf("deploy %d made revision %d", i, rev.Number)
		}
		digests[i] = b.Digest()
		if i == 1 {
			if _, err := h.tc.Rollback(ctx, ns, "echo", 0, prov); !errors.Is(err, tentacle.ErrNoRevision) {
				t.Errorf("Rollback with one revision: %v", err)
			}
		}
	}
	revs, err := h.tc.Revisions(ctx, ns, "echo")
	must(t, err)
	var nums []int
	for _, r := range revs {
		nums = append(nums, r.Number)
		if r.Digest != digests[r.Number] || r.Version != "1.0" || r.DeployedBy != "U123" || !r.DeployedAt.Equal(prov.At) {
			t.Errorf("revision %+v", r)
		}
	}
	if want := []int{12, 11, 10, 9, 8, 7, 6, 5, 4, 3}; !slices.Equal(nums, want) {
		t.Errorf("revisions = %v, want %v", nums, want)
	}
	if _, err := h.tc.Rollback(ctx, ns, "echo", 2, prov); !errors.Is(err, tentacle.ErrNoRevision) {
		t.Errorf("Rollback to a pruned revision: %v", err)
	}
	rev, err := h.tc.Rollback(ctx, ns, "echo", 0, enclave.Provenance{Actor: "U999"})
	must(t, err)
	if rev.Number != 13 || rev.Digest != digests[11] || rev.DeployedBy != "U999" {
		t.Errorf("rollback to the previous = %+v, want revision 13 with revision 11's digest", rev)
	}
	cm, err := h.cs.CoreV1().ConfigMaps(ns).Get(ctx, "echo-r13", metav1.GetOptions{})
	must(t, err)
	if cm.Annotations[AnnotationRollbackOf] != "11" {
		t.Errorf("rollback-of = %q", cm.Annotations[AnnotationRollbackOf])
	}
	// Rolling back again goes back to before the rollback (12), not to 11.
	rev, err = h.tc.Rollback(ctx, ns, "echo", 0, prov)
	must(t, err)
	if rev.Digest != digests[12] {
		t.Errorf("second rollback has digest %s, want revision 12's", rev.Digest)
	}
	h.checkWhole("echo", 14, digests[12], 12)
}

// TestLifecycle runs a tentacle for real: deploy, wait, run, logs,
// events, redeploy, rollback, restart, undeploy.
func TestLifecycle(t *testing.T) {
	h := newHarness(t, harnessOptions{kubelet: true})
	ctx, ns, tc := h.ctx, h.ns, h.tc

	if _, err := tc.Run(ctx, ns, "echo", nil); !errors.Is(err, tentacle.ErrNotDeployed) {
		t.Errorf("Run before deploy: %v", err)
	}
	v1 := loadBundle(t, echoFiles("echo", "hello"))
	rev, err := tc.Deploy(ctx, ns, v1, prov)
	must(t, err)
	h.n.snapshot()
	st, err := tc.WaitReady(ctx, ns, "echo")
	if err != nil {
		t.Fatalf("WaitReady: %v (status %+v)", err, st)
	}
	if n := h.n.snapshot(); n.watches != 2 || n.reads > 4 {
		t.Errorf("WaitReady made %d reads and %d watches, want 2 lists and 2 watches (no polling): %q", n.reads, n.watches, n.log)
	}
	if !st.Ready || st.Revision != rev.Number || st.ReadyReplicas != 1 || st.LastError != "" || st.Name != "echo" || st.Version != "1.0" {
		t.Errorf("status after WaitReady = %+v", st)
	}

	run := func(name string) (text string, hasToken bool) {
		t.Helper()
		out, err := tc.Run(ctx, ns, "echo", json.RawMessage(`{"name":"`+name+`"}`))
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
		var res struct {
			Success bool
			Outputs map[string]struct {
				Text     string
				HasToken bool
			}
		}
		if err := json.Unmarshal(out, &res); err != nil || !res.Success {
			t.Fatalf("run result %s (%v)", out, err)
		}
		return res.Outputs["greet"].Text, res.Outputs["greet"].HasToken
	}
	if text, tok := run("octopus"); text != "hello, octopus" || !tok {
		t.Errorf("run = %q (secret seen: %v)", text, tok)
	}

	logs, err := tc.Logs(ctx, ns, "echo", tentacle.LogOptions{})
	must(t, err)
	got, err := io.ReadAll(logs)
	logs.Close()
	must(t, err)
	if !strings.Contains(string(got), "greeting-run") || !strings.Contains(string(got), "octopus") {
		t.Errorf("logs lack the run's line:\n%s", got)
	}
	if strings.Contains(string(got), secretToken) {
		t.Errorf("the secret shows in the logs")
	}

	// Controllers send their events asynchronously (the recorder batches
	// them), so the ones a deploy causes may lag the pod being ready.
	var events []tentacle.Event
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		events, err = tc.Events(ctx, ns, "echo")
		must(t, err)
		reasons := map[string]bool{}
		for _, e := range events {
			reasons[e.Reason] = true
		}
		if reasons["ScalingReplicaSet"] && reasons["SuccessfulCreate"] && reasons["Scheduled"] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("events = %+v", events)
		}
	}
	if !slices.IsSortedFunc(events, func(a, b tentacle.Event) int { return b.Time.Compare(a.Time) }) {
		t.Errorf("events not newest first: %+v", events)
	}

	// A changed bundle: revision 2, the pod is replaced and serves it.
	oldPod := h.pods("echo")[0].Name
	rev, err = tc.Deploy(ctx, ns, loadBundle(t, echoFiles("echo", "ahoy")), prov)
	must(t, err)
	if rev.Number != 2 {
		t.Errorf("redeploy made revision %d", rev.Number)
	}
	if st, err = tc.WaitReady(ctx, ns, "echo"); err != nil || st.Revision != 2 {
		t.Fatalf("WaitReady after redeploy: %v %+v", err, st)
	}
	pods := h.pods("echo")
	if len(pods) != 1 || pods[0].Name == oldPod || pods[0].Annotations[AnnotationRevision] != "2" {
		t.Errorf("pods after redeploy: %v (old %s)", podNames(pods), oldPod)
	}
	if text, _ := run("squid"); text != "ahoy, squid" {
		t.Errorf("run after redeploy = %q", text)
	}

	// Rollback: revision 3 runs revision 1's files.
	rev, err = tc.Rollback(ctx, ns, "echo", 1, prov)
	must(t, err)
	if rev.Number != 3 || rev.Digest != v1.Digest() {
		t.Errorf("rollback = %+v", rev)
	}
	if _, err = tc.WaitReady(ctx, ns, "echo"); err != nil {
		t.Fatal(err)
	}
	if text, tok := run("kraken"); text != "hello, kraken" || !tok {
		t.Errorf("run after rollback = %q, secret %v", text, tok)
	}

	// Restart: one patch, a new pod of the same revision.
	before := h.pods("echo")[0].Name
	h.n.snapshot()
	must(t, tc.Restart(ctx, ns, "echo", prov))
	if n := h.n.snapshot(); n.writes != 1 {
		t.Errorf("restart made %d writes: %q", n.writes, n.log)
	}
	if st, err = tc.WaitReady(ctx, ns, "echo"); err != nil || st.Revision != 3 {
		t.Fatalf("WaitReady after restart: %v %+v", err, st)
	}
	if pods := h.pods("echo"); len(pods) != 1 || pods[0].Name == before || pods[0].Annotations[AnnotationRestartedAt] == "" {
		t.Errorf("pods after restart: %v (before %s)", podNames(pods), before)
	}
	// Again with the same provenance: the pods roll again all the same.
	before = h.pods("echo")[0].Name
	must(t, tc.Restart(ctx, ns, "echo", prov))
	if _, err = tc.WaitReady(ctx, ns, "echo"); err != nil {
		t.Fatalf("WaitReady after the second restart: %v", err)
	}
	if pods := h.pods("echo"); len(pods) != 1 || pods[0].Name == before {
		t.Errorf("pods after a second restart with the same provenance: %v (before %s)", podNames(pods), before)
	}

	list, err := tc.List(ctx, ns)
	must(t, err)
	if len(list) != 1 || list[0].Name != "echo" || !list[0].Ready || list[0].Revision != 3 {
		t.Errorf("List = %+v", list)
	}

	// Undeploy removes everything, pods included.
	must(t, tc.Undeploy(ctx, ns, "echo", prov))
	if objs := h.objects(); len(objs) != 0 {
		t.Errorf("left after undeploy: %v", objs)
	}
	h.waitNoPods("echo")
	for name, err := range map[string]error{
		"Undeploy": tc.Undeploy(ctx, ns, "echo", prov),
		"Restart":  tc.Restart(ctx, ns, "echo", prov),
		"Status":   second(tc.Status(ctx, ns, "echo")),
		"Run":      second(tc.Run(ctx, ns, "echo", nil)),
		"Logs":     second(tc.Logs(ctx, ns, "echo", tentacle.LogOptions{})),
	} {
		if !errors.Is(err, tentacle.ErrNotDeployed) {
			t.Errorf("%s after undeploy: %v", name, err)
		}
	}
}

func second[T any](_ T, err error) error { return err }

func podNames(pods []corev1.Pod) []string {
	var out []string
	for _, p := range pods {
		out = append(out, p.Name)
	}
	return out
}

// TestLogsFollow streams lines written after the stream was opened.
func TestLogsFollow(t *testing.T) {
	h := newHarness(t, harnessOptions{kubelet: true})
	_, err := h.tc.Deploy(h.ctx, h.ns, loadBundle(t, echoFiles("echo", "hello")), prov)
	must(t, err)
	if _, err := h.tc.WaitReady(h.ctx, h.ns, "echo"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(h.ctx)
	defer cancel()
	stream, err := h.tc.Logs(ctx, h.ns, "echo", tentacle.LogOptions{TailLines: 1, Follow: true})
	must(t, err)
	defer stream.Close()
	if _, err := h.tc.Run(h.ctx, h.ns, "echo", json.RawMessage(`{"name":"followed-name"}`)); err != nil {
		t.Fatal(err)
	}
	var seen strings.Builder
	buf := make([]byte, 4096)
	for !strings.Contains(seen.String(), "followed-name") {
		n, err := stream.Read(buf)
		seen.Write(buf[:n])
		if err != nil {
			t.Fatalf("stream ended before the run's line: %v\n%s", err, seen.String())
		}
	}
}

// TestStatusWording sets the pod states a person has to act on and reads
// the words Status and WaitReady give for them.
func TestStatusWording(t *testing.T) {
	h := newHarness(t, harnessOptions{kubelet: true})
	_, err := h.tc.Deploy(h.ctx, h.ns, loadBundle(t, echoFiles("echo", "hello")), prov)
	must(t, err)
	if _, err := h.tc.WaitReady(h.ctx, h.ns, "echo"); err != nil {
		t.Fatal(err)
	}
	pod := h.pods("echo")[0].Name
	tests := []struct {
		name     string
		state    k8stest.PodState
		want     string
		terminal bool
		restarts int
	}{
		{"crash loop", k8stest.PodState{Restarts: 4, WaitingReason: "CrashLoopBackOff", WaitingMessage: "back-off 40s", TerminatedReason: "Error", ExitCode: 3},
			"it keeps crashing: exit code 3", true, 4},
		{"crash loop out of memory", k8stest.PodState{Restarts: 5, WaitingReason: "CrashLoopBackOff", TerminatedReason: "OOMKilled", ExitCode: 137},
			"it keeps crashing: it ran out of memory", true, 5},
		{"image pull", k8stest.PodState{WaitingReason: "ImagePullBackOff", WaitingMessage: "Back-off pulling image"},
			"the engine image cannot be pulled (ghcr.io/kraken-ops/kraken:test)", true, 0},
		{"first pull failure", k8stest.PodState{WaitingReason: "ErrImagePull"},
			"the engine image cannot be pulled (ghcr.io/kraken-ops/kraken:test)", false, 0},
		{"not ready yet", k8stest.PodState{},
			"starting", false, 0},
		{"out of memory", k8stest.PodState{Restarts: 1, TerminatedReason: "OOMKilled", ExitCode: 137},
			"it ran out of memory", false, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			must(t, h.kubelet.SetPodStatus(h.ctx, h.ns, pod, tt.state))
			st, err := h.tc.Status(h.ctx, h.ns, "echo")
			must(t, err)
			if st.LastError != tt.want || st.Restarts != tt.restarts || st.Ready {
				t.Errorf("status = %+v, want LastError %q, %d restarts, not ready", st, tt.want, tt.restarts)
			}
			if !tt.terminal {
				return
			}
			st, err = h.tc.WaitReady(h.ctx, h.ns, "echo")
			if !errors.Is(err, ErrNotReady) || !strings.Contains(err.Error(), tt.want) || st.LastError != tt.want {
				t.Errorf("WaitReady = %v, %+v; want ErrNotReady saying %q", err, st, tt.want)
			}
		})
	}
	list, err := h.tc.List(h.ctx, h.ns)
	must(t, err)
	if len(list) != 1 || list[0].LastError != tests[len(tests)-1].want {
		t.Errorf("List = %+v", list)
	}
}

// TestStatusUnschedulable: no node matches the tentacle's nodeSelector.
func TestStatusUnschedulable(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	_, err := h.tc.Deploy(h.ctx, h.ns, loadBundle(t, echoFiles("echo", "hello")), prov)
	must(t, err)
	st, err := h.tc.WaitReady(h.ctx, h.ns, "echo")
	if !errors.Is(err, ErrNotReady) || !strings.HasPrefix(st.LastError, "there is no room for it in the cluster: ") || st.Ready {
		t.Errorf("WaitReady = %v, %+v", err, st)
	}
}

// TestStatusQuota: the enclave's quota has no room for the pod.
func TestStatusQuota(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	quotas := h.cs.CoreV1().ResourceQuotas(h.ns)
	q := &corev1.ResourceQuota{
		ObjectMeta: metav1.ObjectMeta{Name: "enclave-quota"},
		Spec:       corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{corev1.ResourceRequestsCPU: resource.MustParse("50m")}},
	}
	_, err := quotas.Create(h.ctx, q, metav1.CreateOptions{})
	must(t, err)
	// Quota admission enforces only once the controller has filled in
	// status.hard.
	sel := fields.OneTermEqualSelector("metadata.name", q.Name).String()
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.FieldSelector = sel
			return quotas.List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = sel
			return quotas.Watch(ctx, o)
		},
	}
	_, err = watchtools.UntilWithSync(h.ctx, lw, &corev1.ResourceQuota{}, nil, func(ev watch.Event) (bool, error) {
		rq, ok := ev.Object.(*corev1.ResourceQuota)
		return ok && len(rq.Status.Hard) > 0, nil
	})
	must(t, err)

	_, err = h.tc.Deploy(h.ctx, h.ns, loadBundle(t, echoFiles("echo", "hello")), prov)
	must(t, err)
	st, err := h.tc.WaitReady(h.ctx, h.ns, "echo")
	want := "the enclave's quota is used up: requests.cpu (asked for 100m, 0 of 50m in use)"
	if !errors.Is(err, ErrNotReady) || st.LastError != want {
		t.Errorf("WaitReady = %v, %+v; want LastError %q", err, st, want)
	}
}

// TestRestartForeign: a Deployment of the tentacle's name that is not
// the tentacle's is not touched.
func TestRestartForeign(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	labels := map[string]string{"app": "web"}
	dep, err := h.cs.AppsV1().Deployments(h.ns).Create(h.ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: map[string]string{"a": "b"}},
				Spec: corev1.PodSpec{
					NodeSelector: map[string]string{k8stest.LabelTestNode: "nowhere"},
					Containers:   []corev1.Container{{Name: "web", Image: "nginx"}},
				},
			},
		},
	}, metav1.CreateOptions{})
	must(t, err)
	err = h.tc.Restart(h.ctx, h.ns, "web", prov)
	if !errors.Is(err, tentacle.ErrNotDeployed) {
		t.Errorf("Restart of a foreign Deployment: %v", err)
	}
	after, err := h.cs.AppsV1().Deployments(h.ns).Get(h.ctx, "web", metav1.GetOptions{})
	must(t, err)
	if after.Generation != dep.Generation || after.Annotations[AnnotationRestartedBy] != "" {
		t.Errorf("the foreign Deployment was changed")
	}
	if err := h.tc.Undeploy(h.ctx, h.ns, "web", prov); !errors.Is(err, tentacle.ErrNotDeployed) {
		t.Errorf("Undeploy of a foreign Deployment: %v", err)
	}
	if _, err := h.tc.Logs(h.ctx, h.ns, "web", tentacle.LogOptions{}); !errors.Is(err, tentacle.ErrNotDeployed) {
		t.Errorf("Logs of a foreign Deployment: %v", err)
	}
	if _, err := h.cs.AppsV1().Deployments(h.ns).Get(h.ctx, "web", metav1.GetOptions{}); err != nil {
		t.Errorf("the foreign Deployment is gone: %v", err)
	}
}

// TestRun: what comes back from the engine, and the ways of not reaching it.
func TestRun(t *testing.T) {
	var mu sync.Mutex
	var status int
	var body, location string
	var lastInput string
	var hits int
	engine := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		in, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		hits++
		lastInput = r.Method + " " + r.Host + r.URL.Path + " " + r.Header.Get("Content-Type") + " " + string(in)
		if status == 0 {
			<-r.Context().Done() // never answers
			return
		}
		if location != "" {
			w.Header().Set("Location", location)
		}
		w.WriteHeader(status)
		io.WriteString(w, body)
	}))
	defer engine.Close()
	toEngine := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "tcp", engine.Listener.Addr().String())
	}}
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	refusedAddr := closed.Addr().String()
	closed.Close()
	refused := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "tcp", refusedAddr)
	}}

	h := newHarness(t, harnessOptions{transport: toEngine, runTimeout: 200 * time.Millisecond})
	_, err = h.tc.Deploy(h.ctx, h.ns, loadBundle(t, echoFiles("echo", "hello")), prov)
	must(t, err)

	tests := []struct {
		name      string
		status    int
		body      string
		location  string
		input     string
		transport http.RoundTripper
		want      string
		wantErr   error
		wantMsg   string
	}{
		// A sidecar answering /run with a redirect to another enclave's
		// tentacle must not get the bot to replay the run there.
		{name: "redirect", status: 307, location: "http://other.other-enclave.svc:8080/run", input: `{"a":1}`,
			wantMsg: `the tentacle answered with a redirect (307 Temporary Redirect to "http://other.other-enclave.svc:8080/run"), which is refused`},
		{name: "permanent redirect", status: 308, location: "/elsewhere", wantMsg: "redirect"},
		{name: "success", status: 200, body: `{"success":true}`, input: `{"a":1}`, want: `{"success":true}`},
		{name: "failed run is a result", status: 500, body: `{"success":false,"errors":{"n":"boom"}}`, want: `{"success":false,"errors":{"n":"boom"}}`},
		{name: "executor failure is a result", status: 500, body: `{"error":"no worker"}`, want: `{"error":"no worker"}`},
		{name: "not JSON", status: 200, body: `<html>`, wantMsg: "not JSON"},
		{name: "unavailable", status: 503, body: "no endpoints", wantErr: ErrNotAnswering},
		{name: "other status", status: 404, body: "nope", wantMsg: "404"},
		{name: "timeout", status: 0, wantErr: ErrNotAnswering, wantMsg: "no result within 200ms"},
		{name: "refused", transport: refused, wantErr: ErrNotAnswering, wantMsg: "connection refused"},
		{name: "bad input", input: `{`, wantMsg: "not valid JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mu.Lock()
			status, body, location, hits = tt.status, tt.body, tt.location, 0
			mu.Unlock()
			defer func() {
				mu.Lock()
				defer mu.Unlock()
				if tt.transport == nil && tt.input != "{" && hits != 1 {
					t.Errorf("the engine got %d requests, want 1", hits)
				}
			}()
			h.tc.c.cfg.RunTransport = cmp.Or[http.RoundTripper](tt.transport, toEngine)
			out, err := h.tc.Run(h.ctx, h.ns, "echo", json.RawMessage(tt.input))
			if tt.want != "" {
				if err != nil || string(out) != tt.want {
					t.Fatalf("Run = %s, %v; want %s", out, err, tt.want)
				}
				return
			}
			if err == nil || tt.wantErr != nil && !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Fatalf("err = %v, want %v containing %q", err, tt.wantErr, tt.wantMsg)
			}
			if errors.Is(err, ErrNotAnswering) && !strings.Contains(err.Error(), "check its status") {
				t.Errorf("err = %v", err)
			}
		})
	}
	mu.Lock()
	defer mu.Unlock()
	if want := "POST echo." + h.ns + ".svc:8080/run application/json {}"; lastInput != want {
		t.Errorf("last request = %q, want %q", lastInput, want)
	}
}

// TestDeployLongName: the longest name the spec allows fits every object
// name and label of the tentacle.
func TestDeployLongName(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	name := "t" + strings.Repeat("-x", 31) // 63 characters
	if _, err := h.tc.Deploy(h.ctx, h.ns, loadBundle(t, echoFiles(name, "hello")), prov); err != nil {
		t.Fatalf("Deploy: %v", err)
	}
	st, err := h.tc.Status(h.ctx, h.ns, name)
	if err != nil || st.Name != name || st.Revision != 1 {
		t.Errorf("Status = %+v, %v", st, err)
	}
}

// deploymentApply tells the real (not dry-run) apply of a Deployment.
func deploymentApply(r *http.Request) bool {
	return r.Method == http.MethodPatch && strings.Contains(r.URL.Path, "/deployments/") && !r.URL.Query().Has("dryRun")
}

var (
	errReset   = &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}
	errRefused = &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
)

// TestDeployAnswerLost: the Deployment's apply reaches the API server
// but its answer never comes back (a reset connection, an API server
// restart, the deploy's deadline). The Deployment then runs the new
// revision, whose ConfigMap must stay.
func TestDeployAnswerLost(t *testing.T) {
	type fault int
	const (
		none         fault = iota
		loseAnswer         // the apply is carried out, its answer lost
		loseAndBlind       // the same, and the Deployment cannot be read back
		refuse             // the apply never reaches the server
	)
	var mode atomic.Int32
	var blind atomic.Bool
	wrap := func(next http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(r *http.Request) (*http.Response, error) {
			if blind.Load() && r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/deployments/") {
				return nil, errRefused
			}
			if !deploymentApply(r) {
				return next.RoundTrip(r)
			}
			switch f := fault(mode.Swap(int32(none))); f {
			case loseAnswer, loseAndBlind:
				blind.Store(f == loseAndBlind)
				resp, err := next.RoundTrip(r)
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				return nil, errReset
			case refuse:
				return nil, errRefused
			}
			return next.RoundTrip(r)
		})
	}
	h := newHarness(t, harnessOptions{wrap: wrap})
	bundle := func(greeting string) *tentacle.Bundle { return loadBundle(t, echoFiles("echo", greeting)) }
	revisionExists := func(n int) bool {
		_, err := h.cs.CoreV1().ConfigMaps(h.ns).Get(h.ctx, revisionName("echo", n), metav1.GetOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			t.Fatal(err)
		}
		return err == nil
	}

	// The answer is lost, the apply went through: the deploy did too.
	b1 := bundle("one")
	mode.Store(int32(loseAnswer))
	rev, err := h.tc.Deploy(h.ctx, h.ns, b1, prov)
	if err != nil || rev.Number != 1 {
		t.Fatalf("Deploy with its answer lost = %+v, %v; want revision 1, applied", rev, err)
	}
	h.checkWhole("echo", 1, b1.Digest(), 1)
	if !strings.Contains(h.logs.String(), "answer was lost") {
		t.Errorf("the lost answer was not logged")
	}

	// The answer is lost and the Deployment cannot be read back: the
	// deploy fails, but the revision the Deployment may use stays.
	b2 := bundle("two")
	mode.Store(int32(loseAndBlind))
	_, err = h.tc.Deploy(h.ctx, h.ns, b2, prov)
	blind.Store(false)
	if !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), "may have taken revision 2 all the same") {
		t.Fatalf("Deploy with its answer lost and the API blind = %v, want ErrUnreachable saying revision 2 may be in", err)
	}
	t.Logf("error: %v", err)
	if !revisionExists(2) {
		t.Fatalf("revision 2 was removed although the Deployment runs it")
	}
	h.checkWhole("echo", 2, b2.Digest(), 2)

	// The apply never reached the server: its revision goes, and does
	// not hold the next deploy back.
	mode.Store(int32(refuse))
	if _, err := h.tc.Deploy(h.ctx, h.ns, bundle("three"), prov); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("Deploy with its apply refused: %v, want ErrUnreachable", err)
	}
	if revisionExists(3) {
		t.Errorf("revision 3 was kept although nothing runs it")
	}
	b4 := bundle("four")
	if rev, err := h.tc.Deploy(h.ctx, h.ns, b4, prov); err != nil || rev.Number != 3 {
		t.Fatalf("the next deploy = %+v, %v; want revision 3", rev, err)
	}
	h.checkWhole("echo", 3, b4.Digest(), 3)
}

// TestDeployRefusedByDryRun: an object the API server refuses (here a
// sidecar environment variable named "A=B", which the spec allows and
// the API server's validation does not) fails the deploy before anything
// is written: the running revision keeps its Secret, Service and egress
// policy.
func TestDeployRefusedByDryRun(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	b1 := loadBundle(t, echoFiles("echo", "one"))
	if _, err := h.tc.Deploy(h.ctx, h.ns, b1, prov); err != nil {
		t.Fatal(err)
	}
	files := echoFiles("echo", "two")
	files["workflow.yaml"] = strings.Replace(files["workflow.yaml"], "    db:\n      protocol: postgresql\n      host: 10.20.30.40\n", "    db:\n      protocol: postgresql\n      host: 10.99.99.99\n", 1) + `sidecars:
  - name: cache
    image: redis:7
    port: 6379
    env: {"A=B": "1"}
`
	b2 := loadBundle(t, files)
	b2.Secrets = map[string]any{"api": map[string]any{"token": "a-new-token"}}
	before := h.objects()
	h.n.snapshot()
	_, err := h.tc.Deploy(h.ctx, h.ns, b2, prov)
	if err == nil || !strings.Contains(err.Error(), "dry run") || !strings.Contains(err.Error(), "Deployment echo") {
		t.Fatalf("Deploy = %v, want the Deployment refused by the dry run", err)
	}
	t.Logf("error: %v", err)
	if n := h.n.snapshot(); n.writes != 0 || n.dryRuns != 4 {
		t.Errorf("%d writes, %d dry runs; want none and 4: %q", n.writes, n.dryRuns, n.log)
	}
	if after := h.objects(); !slices.Equal(before, after) {
		t.Errorf("objects changed: %v -> %v", before, after)
	}
	h.checkWhole("echo", 1, b1.Digest(), 1)
	sec, err := h.cs.CoreV1().Secrets(h.ns).Get(h.ctx, "echo-secrets", metav1.GetOptions{})
	must(t, err)
	if string(sec.Data["api"]) != `{"token":"`+secretToken+`"}` {
		t.Errorf("the Secret changed to %q", sec.Data["api"])
	}
	// The next good deploy is not held back.
	if rev, err := h.tc.Deploy(h.ctx, h.ns, loadBundle(t, echoFiles("echo", "three")), prov); err != nil || rev.Number != 2 {
		t.Errorf("the next deploy = %+v, %v; want revision 2", rev, err)
	}
}

// TestDeployTooLargeForTheCluster: bundles within tentacle.MaxBundleSize
// whose revision or Secret the cluster would refuse, or whose paths
// would leave the tentacle's directory, are refused before any request
// that writes, dry runs included.
func TestDeployTooLargeForTheCluster(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	longPaths := func(b *tentacle.Bundle, n int) {
		for i := range n {
			b.Files[fmt.Sprintf("data/%03d-%s.json", i, strings.Repeat("p", 210))] = nil
		}
	}
	manyPaths := loadBundle(t, echoFiles("many", "x"))
	longPaths(manyPaths, 600)
	bigRevision := loadBundle(t, echoFiles("big", "x"))
	longPaths(bigRevision, 200)
	bigRevision.Files["data/blob.bin"] = make([]byte, tentacle.MaxBundleSize-bigRevision.Size())
	if err := bigRevision.CheckSize(); err != nil {
		t.Fatalf("the bundle itself must be within its limit: %v", err)
	}
	bigSecrets := loadBundle(t, echoFiles("secretive", "x"))
	bigSecrets.Secrets = map[string]any{"small": "x", "blob": strings.Repeat("s", 1<<20)}
	escape := loadBundle(t, echoFiles("escape", "x"))
	escape.Files["../outside.ts"] = []byte("export const x = 1;")
	provisioning := newEnclave(t, h.cs, "half-made")
	patch := []byte(`{"metadata":{"annotations":{"` + AnnotationState + `":"` + StateProvisioning + `"}}}`)
	_, err := h.cs.CoreV1().Namespaces().Patch(h.ctx, provisioning, types.MergePatchType, patch, metav1.PatchOptions{})
	must(t, err)

	// The API server does refuse such a revision: its index of files is
	// over the 256 KiB annotations may take.
	d := &deployment{enclave: h.ns, name: "many", revision: 1, files: manyPaths.Files, keys: fileKeys(manyPaths.Files), at: prov.At, by: "U1"}
	cm, err := d.revisionConfigMap()
	must(t, err)
	_, err = h.cs.CoreV1().ConfigMaps(h.ns).Create(h.ctx, cm, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "annotations") {
		t.Fatalf("the API server took a revision with %d files of long paths: %v", len(manyPaths.Files), err)
	}

	tests := []struct {
		name    string
		enclave string
		bundle  *tentacle.Bundle
		want    error
		wantMsg string
	}{
		{"index of files over the annotations' limit", h.ns, manyPaths, tentacle.ErrTooLarge, "annotations"},
		{"files, names and index over 1 MiB", h.ns, bigRevision, tentacle.ErrTooLarge, "more than the 1 MiB a revision may hold"},
		{"secrets over 1 MiB", h.ns, bigSecrets, tentacle.ErrTooLarge, "the biggest are blob (1.00 MiB), small (3 bytes)"},
		{"a path out of the tentacle's directory", h.ns, escape, nil, `"../outside.ts" cannot be used`},
		{"enclave still provisioning", provisioning, loadBundle(t, echoFiles("echo", "x")), ErrEnclaveNotReady, "provision it again"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := h.objects()
			h.n.snapshot()
			_, err := h.tc.Deploy(h.ctx, tt.enclave, tt.bundle, prov)
			if err == nil || tt.want != nil && !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Fatalf("err = %v, want %v containing %q", err, tt.want, tt.wantMsg)
			}
			t.Logf("error: %v", err)
			if n := h.n.snapshot(); n.writes != 0 || n.dryRuns != 0 {
				t.Errorf("%d writes, %d dry runs: %q", n.writes, n.dryRuns, n.log)
			}
			if strings.Contains(err.Error(), strings.Repeat("s", 20)) {
				t.Errorf("the error shows a secret value")
			}
			if after := h.objects(); !slices.Equal(before, after) {
				t.Errorf("objects changed: %v -> %v", before, after)
			}
		})
	}
}

// TestUndeployDuringDeploy: an undeploy while a deploy is between its
// revision and its Deployment is refused, and the deploy finishes whole.
func TestUndeployDuringDeploy(t *testing.T) {
	held := make(chan struct{})
	release := make(chan struct{})
	var hold atomic.Bool
	wrap := func(next http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(r *http.Request) (*http.Response, error) {
			if deploymentApply(r) && hold.CompareAndSwap(true, false) {
				close(held)
				<-release
			}
			return next.RoundTrip(r)
		})
	}
	h := newHarness(t, harnessOptions{wrap: wrap})
	if _, err := h.tc.Deploy(h.ctx, h.ns, loadBundle(t, echoFiles("echo", "one")), prov); err != nil {
		t.Fatal(err)
	}
	b2 := loadBundle(t, echoFiles("echo", "two"))
	hold.Store(true)
	done := make(chan error, 1)
	go func() {
		_, err := h.tc.Deploy(h.ctx, h.ns, b2, prov)
		done <- err
	}()
	<-held
	before := h.objects()
	err := h.tc.Undeploy(h.ctx, h.ns, "echo", prov)
	close(release)
	if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "revision 2") {
		t.Errorf("Undeploy during a deploy = %v, want ErrConflict naming revision 2", err)
	}
	if after := h.objects(); !slices.Equal(before, after) {
		t.Errorf("Undeploy changed objects: %v -> %v", before, after)
	}
	if err := <-done; err != nil {
		t.Fatalf("the deploy: %v", err)
	}
	h.checkWhole("echo", 2, b2.Digest(), 2)
	must(t, h.tc.Undeploy(h.ctx, h.ns, "echo", prov))
	if objs := h.objects(); len(objs) != 0 {
		t.Errorf("left after undeploy: %v", objs)
	}
}

// TestWaitReadyDefaultTimeout: without a deadline, WaitReady still
// gives up on a tentacle that keeps starting.
func TestWaitReadyDefaultTimeout(t *testing.T) {
	h := newHarness(t, harnessOptions{kubelet: true})
	_, err := h.tc.Deploy(h.ctx, h.ns, loadBundle(t, echoFiles("echo", "hello")), prov)
	must(t, err)
	if _, err := h.tc.WaitReady(h.ctx, h.ns, "echo"); err != nil {
		t.Fatal(err)
	}
	must(t, h.kubelet.SetPodStatus(h.ctx, h.ns, h.pods("echo")[0].Name, k8stest.PodState{}))

	defer func(d time.Duration) { waitTimeout = d }(waitTimeout)
	waitTimeout = 2 * time.Second
	type result struct {
		st  tentacle.Status
		err error
	}
	done := make(chan result, 1)
	start := time.Now()
	go func() {
		st, err := h.tc.WaitReady(context.Background(), h.ns, "echo")
		done <- result{st, err}
	}()
	select {
	case r := <-done:
		if !errors.Is(r.err, context.DeadlineExceeded) || r.st.LastError != Starting || !strings.Contains(r.err.Error(), "at most 2s") {
			t.Errorf("WaitReady = %+v, %v; want the last status (starting) and the deadline it gave itself", r.st, r.err)
		}
		t.Logf("WaitReady gave up after %s: %v", time.Since(start).Round(time.Millisecond), r.err)
	case <-time.After(30 * time.Second):
		t.Fatalf("WaitReady without a deadline still waiting after 30s")
	}
	if DefaultWaitTimeout != 5*time.Minute {
		t.Errorf("DefaultWaitTimeout = %s", DefaultWaitTimeout)
	}
}

// TestRunTransport: without Config.RunTransport, runs go straight to the
// tentacle's Service, never through an HTTP(S)_PROXY.
func TestRunTransport(t *testing.T) {
	c, err := New(Config{Rest: k8stest.Config(t)})
	must(t, err)
	tc, err := NewTentacles(c)
	must(t, err)
	tr, ok := tc.runTransport.(*http.Transport)
	if !ok || tr == http.DefaultTransport || tr.Proxy != nil {
		t.Errorf("run transport = %T (default: %v), want an *http.Transport of its own with no proxy", tc.runTransport, tr == http.DefaultTransport)
	}
	if got := RunURL("ops", "echo"); got != "http://echo.ops.svc:8080/run" {
		t.Errorf("RunURL = %s", got)
	}
}

// TestDeployRuntimeClassForbidden: when the bot may not read the
// RuntimeClass, the deploy fails rather than run the tentacle without
// gVisor, and writes nothing.
func TestDeployRuntimeClassForbidden(t *testing.T) {
	user := k8stest.UniqueName("no-runtimeclass")
	h := newHarness(t, harnessOptions{rest: func(c *rest.Config) { c.Impersonate = rest.ImpersonationConfig{UserName: user} }})
	admin, ctx, ns := h.cs, h.ctx, h.ns
	// Everything a deploy needs but reading RuntimeClasses.
	cr := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: user},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"namespaces"}, Verbs: []string{"get"}}},
	}
	_, err := admin.RbacV1().ClusterRoles().Create(ctx, cr, metav1.CreateOptions{})
	must(t, err)
	t.Cleanup(func() { _ = admin.RbacV1().ClusterRoles().Delete(context.Background(), user, metav1.DeleteOptions{}) })
	subject := []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}}
	crb := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: user},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: user},
		Subjects:   subject,
	}
	_, err = admin.RbacV1().ClusterRoleBindings().Create(ctx, crb, metav1.CreateOptions{})
	must(t, err)
	t.Cleanup(func() {
		_ = admin.RbacV1().ClusterRoleBindings().Delete(context.Background(), user, metav1.DeleteOptions{})
	})
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "deployer"},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"configmaps", "secrets", "services"}, Verbs: []string{"*"}},
			{APIGroups: []string{"apps"}, Resources: []string{"deployments"}, Verbs: []string{"*"}},
			{APIGroups: []string{"networking.k8s.io"}, Resources: []string{"networkpolicies"}, Verbs: []string{"*"}},
		},
	}
	_, err = admin.RbacV1().Roles(ns).Create(ctx, role, metav1.CreateOptions{})
	must(t, err)
	rb := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "deployer"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "deployer"},
		Subjects:   subject,
	}
	_, err = admin.RbacV1().RoleBindings(ns).Create(ctx, rb, metav1.CreateOptions{})
	must(t, err)

	as := rest.CopyConfig(k8stest.Config(t))
	as.Impersonate = rest.ImpersonationConfig{UserName: user}
	userCS, err := kubernetes.NewForConfig(as)
	must(t, err)
	// RBAC takes bindings from a cache, which has new ones a moment later.
	for {
		_, err := userCS.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{})
		if err == nil {
			if _, err = userCS.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); err == nil {
				break
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("the test user's rights never took effect: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}

	before := h.objects()
	h.n.snapshot()
	_, err = h.tc.Deploy(ctx, ns, loadBundle(t, echoFiles("echo", "hello")), prov)
	var forbidden *ForbiddenError
	if !errors.As(err, &forbidden) || forbidden.Resource != "runtimeclasses" || !strings.Contains(err.Error(), "sandboxed") {
		t.Fatalf("Deploy = %v, want the RuntimeClass lookup forbidden", err)
	}
	t.Logf("error: %v", err)
	if n := h.n.snapshot(); n.writes != 0 || n.dryRuns != 0 {
		t.Errorf("%d writes, %d dry runs: %q", n.writes, n.dryRuns, n.log)
	}
	if after := h.objects(); !slices.Equal(before, after) {
		t.Errorf("objects changed: %v -> %v", before, after)
	}
}

// TestDeployWarnings: what the person who deployed should know comes
// back with the revision, not only in the bot's log.
func TestDeployWarnings(t *testing.T) {
	h := newHarness(t, harnessOptions{runtimeClass: NoRuntimeClass})
	files := echoFiles("echo", "hello")
	files["workflow.yaml"] = strings.Replace(files["workflow.yaml"], "  dependencies:\n", `  dependencies:
    scan:
      type: dynamic-target
      cidr: 10.30.0.0/16
      dynPorts: ["443/TCP"]
`, 1)
	h.n.snapshot()
	rev, err := h.tc.Deploy(h.ctx, h.ns, loadBundle(t, files), prov)
	must(t, err)
	if len(rev.Warnings) != 1 || !strings.Contains(rev.Warnings[0], "dependency scan: the range 10.30.0.0/16 is too large") {
		t.Errorf("warnings = %q, want the range the tentacle cannot reach, and nothing about gVisor (turned off)", rev.Warnings)
	}
	// gVisor turned off: not looked up, not asked for, not warned about.
	if log := h.n.snapshot().log; slices.ContainsFunc(log, func(s string) bool { return strings.Contains(s, "runtimeclasses") }) {
		t.Errorf("RuntimeClass looked up with gVisor turned off: %q", log)
	}
	dep, err := h.cs.AppsV1().Deployments(h.ns).Get(h.ctx, "echo", metav1.GetOptions{})
	must(t, err)
	if rc := dep.Spec.Template.Spec.RuntimeClassName; rc != nil {
		t.Errorf("runtimeClassName = %q with gVisor turned off", *rc)
	}
	if strings.Contains(h.logs.String(), "without gVisor") {
		t.Errorf("a warning about gVisor was logged with gVisor turned off")
	}
}
