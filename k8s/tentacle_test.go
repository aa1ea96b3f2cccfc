package k8s

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kraken-ops/kraken/enclave"
	"github.com/kraken-ops/kraken/k8s/k8stest"
	"github.com/kraken-ops/kraken/tentacle"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	nodev1 "k8s.io/api/node/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/watch"
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
	reads, writes, watches, log := h.n.snapshot()
	t.Logf("first deploy: %d reads, %d writes, %d watches: %q", reads, writes, watches, log)
	// ConfigMap, Secret, Service, NetworkPolicy, Deployment: one each.
	if writes != 5 || watches != 0 || reads > 7 {
		t.Errorf("first deploy took %d reads, %d writes, %d watches; want <= 7 reads (namespace, RuntimeClass, 4 objects, revisions), 5 writes: %q", reads, writes, watches, log)
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
	// port anywhere (the node runtime's allow-list restricts the host).
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
				to = append(to, p.IPBlock.CIDR+strings.Join(p.IPBlock.Except, "!"))
			default:
				to = append(to, "ns="+p.NamespaceSelector.MatchLabels[corev1.LabelMetadataName]+"/pod="+p.PodSelector.MatchLabels["k8s-app"])
			}
		}
		for _, p := range r.Ports {
			ports = append(ports, string(*p.Protocol)+"/"+p.Port.String())
		}
		rules = append(rules, strings.Join(to, ",")+" "+strings.Join(ports, ","))
	}
	wantRules := []string{"ns=kube-system/pod=kube-dns UDP/53,TCP/53", "0.0.0.0/0,::/0 TCP/443", "10.20.30.40/32 TCP/5432"}
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
	reads, writes, watches, log = h.n.snapshot()
	t.Logf("redeploy: %d reads, %d writes, %d watches", reads, writes, watches)
	if writes != 5 || reads > 6 || watches != 0 {
		t.Errorf("redeploy took %d reads, %d writes, %d watches: %q", reads, writes, watches, log)
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
	if _, err := h.tc.Deploy(h.ctx, h.ns, b, prov); err != nil {
		t.Fatal(err)
	}
	if rc := runtimeClassOf(); rc != nil {
		t.Errorf("runtimeClassName = %q before the RuntimeClass exists", *rc)
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
	if _, err := h.tc.Deploy(h.ctx, h.ns, b, prov); err != nil {
		t.Fatal(err)
	}
	if _, _, _, log := h.n.snapshot(); slices.ContainsFunc(log, func(s string) bool { return strings.Contains(s, "runtimeclasses") }) {
		t.Errorf("RuntimeClass looked up again within the cache's lifetime: %q", log)
	}
	if rc := runtimeClassOf(); rc != nil {
		t.Errorf("runtimeClassName = %q from a cached miss", *rc)
	}

	fresh, err := NewTentacles(h.tc.c)
	must(t, err)
	if _, err := fresh.Deploy(h.ctx, h.ns, b, prov); err != nil {
		t.Fatal(err)
	}
	if rc := runtimeClassOf(); rc == nil || *rc != name {
		t.Errorf("runtimeClassName = %v, want %s", rc, name)
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
			if _, writes, _, log := h.n.snapshot(); writes != 0 {
				t.Errorf("%d writes: %q", writes, log)
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
	reads, _, watches, log := h.n.snapshot()
	if watches != 2 || reads > 4 {
		t.Errorf("WaitReady made %d reads and %d watches, want 2 lists and 2 watches (no polling): %q", reads, watches, log)
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

	events, err := tc.Events(ctx, ns, "echo")
	must(t, err)
	reasons := map[string]bool{}
	for _, e := range events {
		reasons[e.Reason] = true
	}
	if !reasons["ScalingReplicaSet"] || !reasons["SuccessfulCreate"] || !reasons["Scheduled"] {
		t.Errorf("events = %+v", events)
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
	if _, writes, _, log := h.n.snapshot(); writes != 1 {
		t.Errorf("restart made %d writes: %q", writes, log)
	}
	if st, err = tc.WaitReady(ctx, ns, "echo"); err != nil || st.Revision != 3 {
		t.Fatalf("WaitReady after restart: %v %+v", err, st)
	}
	if pods := h.pods("echo"); len(pods) != 1 || pods[0].Name == before || pods[0].Annotations[AnnotationRestartedAt] == "" {
		t.Errorf("pods after restart: %v (before %s)", podNames(pods), before)
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
	if _, err := h.cs.AppsV1().Deployments(h.ns).Get(h.ctx, "web", metav1.GetOptions{}); err != nil {
		t.Errorf("the foreign Deployment is gone: %v", err)
	}
}

// TestRun: what comes back from the engine, and the ways of not reaching it.
func TestRun(t *testing.T) {
	var mu sync.Mutex
	var status int
	var body string
	var lastInput string
	engine := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		in, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		lastInput = r.Method + " " + r.Host + r.URL.Path + " " + r.Header.Get("Content-Type") + " " + string(in)
		if status == 0 {
			<-r.Context().Done() // never answers
			return
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
		input     string
		transport http.RoundTripper
		want      string
		wantErr   error
		wantMsg   string
	}{
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
			status, body = tt.status, tt.body
			mu.Unlock()
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
	if want := "POST echo." + h.ns + ".svc.cluster.local:8080/run application/json {}"; lastInput != want {
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
