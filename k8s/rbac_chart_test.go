package k8s_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"text/template"
	"time"

	"github.com/kraken-ops/kraken/k8s"
	"github.com/kraken-ops/kraken/k8s/k8stest"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"
	"sigs.k8s.io/yaml"
)

const chartDir = "../deploy/helm/kraken"

// TestChartRBACUpToDate keeps the chart's RBAC the Go objects: the
// committed rbac.yaml must be what ChartRBAC generates now.
func TestChartRBACUpToDate(t *testing.T) {
	want, err := k8s.ChartRBAC()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(chartDir, "templates", "rbac.yaml")
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		g, w := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
		i := 0
		for i < len(g) && i < len(w) && g[i] == w[i] {
			i++
		}
		at := func(l []string) string {
			if i < len(l) {
				return l[i]
			}
			return "(end of file)"
		}
		t.Fatalf("%s is stale: run `go generate ./k8s` and commit the result\nline %d is %q, want %q", path, i+1, at(g), at(w))
	}
}

// TestChartRendersBotRBAC renders the chart as Helm would and checks that
// what it installs is BotRBAC for the release's names, and that the
// Deployment tells the bot the names the RBAC uses.
func TestChartRendersBotRBAC(t *testing.T) {
	for _, tc := range []struct {
		release, namespace string
		values             map[string]any
		opts               k8s.RBACOptions
	}{
		{
			release: "kraken", namespace: "kraken-system",
			opts: k8s.RBACOptions{Name: "kraken", Namespace: "kraken-system", ServiceAccount: "kraken"},
		},
		{
			release: "prod", namespace: "chatops",
			values: map[string]any{"serviceAccount": map[string]any{"name": "bot"}},
			opts:   k8s.RBACOptions{Name: "prod-kraken", Namespace: "chatops", ServiceAccount: "bot"},
		},
	} {
		t.Run(tc.release, func(t *testing.T) {
			objs := renderChart(t, tc.release, tc.namespace, tc.values)
			tc.opts.Labels = map[string]string{"app.kubernetes.io/name": "kraken", "app.kubernetes.io/instance": tc.release}
			want := k8s.BotRBAC(tc.opts)
			var got []*unstructured.Unstructured
			for _, o := range objs {
				if o.source == "rbac.yaml" {
					got = append(got, o.Unstructured)
				}
			}
			if len(got) != len(want) {
				t.Fatalf("rbac.yaml rendered %d objects, BotRBAC has %d", len(got), len(want))
			}
			for i := range want {
				w := toUnstructured(t, want[i])
				if !reflect.DeepEqual(got[i].Object, w.Object) {
					gy, _ := yaml.Marshal(got[i].Object)
					wy, _ := yaml.Marshal(w.Object)
					t.Errorf("rendered %s %s differs from BotRBAC:\n--- rendered\n%s--- BotRBAC\n%s", w.GetKind(), w.GetName(), gy, wy)
				}
			}

			dep := findObject[appsv1.Deployment](t, objs, "Deployment", tc.opts.Name)
			spec := dep.Spec.Template.Spec
			if spec.ServiceAccountName != tc.opts.ServiceAccount {
				t.Errorf("Deployment runs as %q, the RBAC grants %q", spec.ServiceAccountName, tc.opts.ServiceAccount)
			}
			findObject[corev1.ServiceAccount](t, objs, "ServiceAccount", tc.opts.ServiceAccount)
			env := map[string]string{}
			for _, e := range spec.Containers[0].Env {
				env[e.Name] = e.Value
			}
			if env["KRAKEN_ENCLAVE_ROLE"] != tc.opts.EnclaveRole() {
				t.Errorf("KRAKEN_ENCLAVE_ROLE = %q, the RBAC's enclave role is %q", env["KRAKEN_ENCLAVE_ROLE"], tc.opts.EnclaveRole())
			}
			if env["KRAKEN_SERVICE_ACCOUNT"] != tc.opts.ServiceAccount {
				t.Errorf("KRAKEN_SERVICE_ACCOUNT = %q, want %q", env["KRAKEN_SERVICE_ACCOUNT"], tc.opts.ServiceAccount)
			}
			// The enclaves' network policies let in the bot by these labels.
			for _, kv := range strings.Split(env["KRAKEN_POD_LABELS"], ",") {
				k, v, _ := strings.Cut(kv, "=")
				if dep.Spec.Template.Labels[k] != v {
					t.Errorf("KRAKEN_POD_LABELS has %s=%s, the pod has %q", k, v, dep.Spec.Template.Labels[k])
				}
			}
		})
	}
}

// TestChartHardening checks the promises deploy/README.md makes about the
// bot's pod, so a template edit cannot drop one unnoticed.
func TestChartHardening(t *testing.T) {
	objs := renderChart(t, "kraken", "kraken-system", nil)
	dep := findObject[appsv1.Deployment](t, objs, "Deployment", "kraken")
	pod := dep.Spec.Template.Spec
	c := pod.Containers[0]
	psc, sc := pod.SecurityContext, c.SecurityContext
	switch {
	case psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot:
		t.Error("pod does not set runAsNonRoot")
	case psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault:
		t.Error("pod does not use the RuntimeDefault seccomp profile")
	case sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
		t.Error("root filesystem is writable")
	case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
		t.Error("privilege escalation is allowed")
	case sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0:
		t.Error("capabilities are not all dropped")
	case dep.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType:
		t.Error("the Deployment must Recreate: two pods cannot share the bbolt file")
	case c.LivenessProbe == nil || c.LivenessProbe.HTTPGet == nil || c.LivenessProbe.HTTPGet.Path != "/healthz":
		t.Error("no /healthz liveness probe")
	case c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz":
		t.Error("no /readyz readiness probe")
	}
	var data bool
	for _, v := range pod.Volumes {
		if v.Name == "data" && v.PersistentVolumeClaim != nil && v.PersistentVolumeClaim.ClaimName == "kraken" {
			data = true
		}
	}
	if !data {
		t.Error("the data volume is not the chart's PVC")
	}
	findObject[corev1.PersistentVolumeClaim](t, objs, "PersistentVolumeClaim", "kraken")
	for _, e := range c.Env {
		if strings.Contains(e.Name, "TOKEN") || strings.Contains(e.Name, "SECRET") || strings.Contains(e.Name, "API_KEY") {
			if e.Value != "" || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
				t.Errorf("%s does not come from a Secret", e.Name)
			}
		}
	}
	// Secrets are referenced, never carried: the one Secret the chart
	// renders is the sign-ins' (the bot may not create it), empty, and
	// kept when the release goes, so that no upgrade or uninstall signs
	// everyone out.
	for _, o := range objs {
		if o.GetKind() != "Secret" {
			continue
		}
		if o.GetName() != "kraken-identities" {
			t.Errorf("the chart renders Secret %s; it must only reference existing ones", o.GetName())
		}
		if o.Object["data"] != nil || o.Object["stringData"] != nil {
			t.Errorf("the chart renders Secret %s with data", o.GetName())
		}
		if o.GetAnnotations()["helm.sh/resource-policy"] != "keep" {
			t.Errorf("the chart's Secret %s is not kept by Helm (helm.sh/resource-policy: keep)", o.GetName())
		}
	}
	if objs := renderChart(t, "kraken", "kraken-system", map[string]any{"persistence": map[string]any{"enabled": false}, "networkPolicy": map[string]any{"enabled": false}, "rbac": map[string]any{"create": false}}); len(objs) != 5 {
		var kinds []string
		for _, o := range objs {
			kinds = append(kinds, o.GetKind())
		}
		t.Errorf("with persistence, network policy and RBAC off the chart renders %v, want Deployment, Service, ServiceAccount, the schedules' ConfigMap and the sign-ins' Secret", kinds)
	}
}

// TestChartInstallsOnTheAPIServer sends everything the chart renders, and
// the gVisor RuntimeClass, to the real API server as a server-side dry
// run with strict field validation: a misspelt field or an invalid value
// in a template fails here rather than at helm install. The namespace
// enforces the restricted Pod Security level, so any warning about the
// bot's pod fails the test too.
func TestChartInstallsOnTheAPIServer(t *testing.T) {
	t.Parallel()
	cfg := k8stest.Config(t)
	warnings := &warningRecorder{}
	cfg.WarningHandler = warnings
	ctx := testCtx(t, time.Minute)
	ns := k8stest.Namespace(t, "kraken-chart")
	admin := k8stest.Clientset(t)
	patch := []byte(`{"metadata":{"labels":{"pod-security.kubernetes.io/enforce":"restricted","pod-security.kubernetes.io/warn":"restricted"}}}`)
	if _, err := admin.CoreV1().Namespaces().Patch(ctx, ns, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}

	// A release name holding "kraken" is the full name, so the
	// cluster-scoped objects are unique to this run.
	objs := renderChart(t, k8stest.UniqueName("kraken"), ns, map[string]any{
		"llm":       map[string]any{"existingSecret": "kraken-llm", "baseURL": "https://llm.example.com/v1", "model": "m"},
		"tentacles": map[string]any{"nodeSelector": map[string]any{"kraken.dev/gvisor": "true"}},
		"networkPolicy": map[string]any{
			"ingressFrom": []any{map[string]any{"namespaceSelector": map[string]any{"matchLabels": map[string]any{"kubernetes.io/metadata.name": "ingress"}}}},
			"adminFrom":   []any{map[string]any{"podSelector": map[string]any{"matchLabels": map[string]any{"app": "prometheus"}}}},
			"apiServer":   map[string]any{"cidrs": []any{"10.0.0.1/32"}},
		},
	})
	// Several replicas with persistence: the StatefulSet, with its claims.
	for _, o := range renderChart(t, k8stest.UniqueName("kraken"), ns, map[string]any{"replicaCount": 3}) {
		if o.GetKind() == "StatefulSet" {
			objs = append(objs, o)
		}
	}
	if !slices.ContainsFunc(objs, func(o renderedObject) bool { return o.GetKind() == "StatefulSet" }) {
		t.Error("replicaCount 3 rendered no StatefulSet")
	}
	raw, err := os.ReadFile("../deploy/gvisor/runtimeclass.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var rc unstructured.Unstructured
	if err := yaml.Unmarshal(raw, &rc.Object); err != nil {
		t.Fatalf("runtimeclass.yaml: %v", err)
	}
	if rc.GetName() != "gvisor" || rc.Object["handler"] != "runsc" {
		t.Errorf("runtimeclass.yaml: RuntimeClass %s with handler %v, want gvisor with runsc", rc.GetName(), rc.Object["handler"])
	}
	rc.SetName(k8stest.UniqueName("gvisor")) // a dry run still collides with an existing name
	objs = append(objs, renderedObject{&rc, "runtimeclass.yaml"})

	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		gvk := o.GroupVersionKind()
		m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			t.Errorf("%s: %s %s: %v", o.source, gvk.Kind, o.GetName(), err)
			continue
		}
		var ri dynamic.ResourceInterface = dyn.Resource(m.Resource)
		if m.Scope.Name() == meta.RESTScopeNameNamespace {
			if o.GetNamespace() != "" && o.GetNamespace() != ns {
				t.Errorf("%s: %s %s is in namespace %s, not the release's", o.source, gvk.Kind, o.GetName(), o.GetNamespace())
			}
			ri = dyn.Resource(m.Resource).Namespace(ns)
		}
		_, err = ri.Create(ctx, o.Unstructured, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}, FieldValidation: "Strict"})
		if err != nil {
			t.Errorf("%s: the API server refuses %s %s: %v", o.source, gvk.Kind, o.GetName(), err)
		}
	}
	for _, w := range warnings.all() {
		t.Errorf("the API server warns: %s", w)
	}
}

type warningRecorder struct {
	mu sync.Mutex
	w  []string
}

func (r *warningRecorder) HandleWarningHeader(code int, agent, text string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.w = append(r.w, text)
}

func (r *warningRecorder) all() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.w)
}

// renderedObject is a manifest the chart renders and the template it came
// from.
type renderedObject struct {
	*unstructured.Unstructured
	source string
}

func findObject[T any](t *testing.T, objs []renderedObject, kind, name string) *T {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			var v T
			if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(o.Object, &v, true); err != nil {
				t.Fatalf("%s %s: %v", kind, name, err)
			}
			return &v
		}
	}
	t.Fatalf("the chart renders no %s %s", kind, name)
	return nil
}

func toUnstructured(t *testing.T, obj runtime.Object) *unstructured.Unstructured {
	t.Helper()
	b, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	var u unstructured.Unstructured
	if err := u.UnmarshalJSON(b); err != nil {
		t.Fatal(err)
	}
	// The server fills status; the chart leaves it out.
	unstructured.RemoveNestedField(u.Object, "status")
	return &u
}

// renderChart renders the chart the way `helm template` does, for the
// subset of Helm the chart uses: Go templates with missingkey=zero, the
// sprig functions below, include, and values merged over values.yaml.
// No helm binary can be fetched where the tests run; keeping the chart to
// this subset keeps it checkable here.
func renderChart(t *testing.T, release, namespace string, overrides map[string]any) []renderedObject {
	t.Helper()
	objs, err := renderChartError(t, release, namespace, overrides)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

// renderChartError is renderChart, returning the error of a template
// that fails (Helm's fail, required).
func renderChartError(t *testing.T, release, namespace string, overrides map[string]any) ([]renderedObject, error) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(chartDir, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var values map[string]any
	if err := yaml.Unmarshal(raw, &values); err != nil {
		t.Fatalf("values.yaml: %v", err)
	}
	mergeValues(values, overrides)
	raw, err = os.ReadFile(filepath.Join(chartDir, "Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var chart struct {
		Name       string `json:"name"`
		Version    string `json:"version"`
		AppVersion string `json:"appVersion"`
	}
	if err := yaml.Unmarshal(raw, &chart); err != nil {
		t.Fatalf("Chart.yaml: %v", err)
	}
	data := map[string]any{
		"Values":  values,
		"Release": map[string]any{"Name": release, "Namespace": namespace, "Service": "Helm", "IsInstall": true},
		"Chart":   map[string]any{"Name": chart.Name, "Version": chart.Version, "AppVersion": chart.AppVersion},
	}

	root := template.New("chart").Option("missingkey=zero")
	root.Funcs(helmFuncs(root))
	files, err := filepath.Glob(filepath.Join(chartDir, "templates", "*"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := root.New(filepath.Base(f)).Parse(string(b)); err != nil {
			t.Fatalf("parse %s: %v", f, err)
		}
	}
	var objs []renderedObject
	for _, f := range files {
		name := filepath.Base(f)
		if strings.HasPrefix(name, "_") {
			continue
		}
		var out bytes.Buffer
		if err := root.ExecuteTemplate(&out, name, data); err != nil {
			return nil, fmt.Errorf("render %s: %w", name, err)
		}
		if strings.Contains(out.String(), "<no value>") {
			t.Fatalf("%s prints a value that is not set (a typo in a values path?):\n%s", name, out.String())
		}
		if name == "NOTES.txt" {
			continue
		}
		dec := utilyaml.NewYAMLOrJSONDecoder(&out, 4096)
		for {
			var u unstructured.Unstructured
			if err := dec.Decode(&u.Object); err != nil {
				if errors.Is(err, io.EOF) {
					break
				}
				t.Fatalf("%s does not render to valid YAML: %v", name, err)
			}
			if u.Object == nil {
				continue
			}
			objs = append(objs, renderedObject{&u, name})
		}
	}
	return objs, nil
}

func mergeValues(dst, src map[string]any) {
	for k, v := range src {
		if sub, ok := v.(map[string]any); ok {
			if d, ok := dst[k].(map[string]any); ok {
				mergeValues(d, sub)
				continue
			}
		}
		dst[k] = v
	}
}

// helmFuncs are the sprig and Helm functions the chart may use, with
// their semantics.
func helmFuncs(root *template.Template) template.FuncMap {
	indent := func(n int, s string) string {
		pad := strings.Repeat(" ", n)
		return pad + strings.ReplaceAll(s, "\n", "\n"+pad)
	}
	return template.FuncMap{
		"include": func(name string, data any) (string, error) {
			var b bytes.Buffer
			err := root.ExecuteTemplate(&b, name, data)
			return b.String(), err
		},
		"default": func(d any, given ...any) any {
			if len(given) == 0 || helmEmpty(given[0]) {
				return d
			}
			return given[0]
		},
		"fail": func(msg string) (string, error) { return "", fmt.Errorf("%s", msg) },
		// sprig's int: values.yaml numbers are float64, --set ones int64.
		"int": func(v any) (int, error) {
			switch n := v.(type) {
			case nil:
				return 0, nil
			case int:
				return n, nil
			case int64:
				return int(n), nil
			case float64:
				return int(n), nil
			}
			return 0, fmt.Errorf("int of %T", v)
		},
		"required": func(msg string, v any) (any, error) {
			if v == nil || v == "" {
				return nil, fmt.Errorf("%s", msg)
			}
			return v, nil
		},
		"quote": func(vs ...any) string {
			var out []string
			for _, v := range vs {
				if v != nil {
					out = append(out, fmt.Sprintf("%q", fmt.Sprint(v)))
				}
			}
			return strings.Join(out, " ")
		},
		"toYaml": func(v any) string {
			b, err := yaml.Marshal(v)
			if err != nil {
				return ""
			}
			return strings.TrimSuffix(string(b), "\n")
		},
		"toJson": func(v any) string {
			b, err := json.Marshal(v)
			if err != nil {
				return ""
			}
			return string(b)
		},
		"indent":  indent,
		"nindent": func(n int, s string) string { return "\n" + indent(n, s) },
		"trunc": func(n int, s string) string {
			switch {
			case n < 0 && len(s)+n > 0:
				return s[len(s)+n:]
			case n >= 0 && len(s) > n:
				return s[:n]
			}
			return s
		},
		"trimSuffix": func(suffix, s string) string { return strings.TrimSuffix(s, suffix) },
		"contains":   func(sub, s string) bool { return strings.Contains(s, sub) },
	}
}

// helmEmpty is sprig's empty: what `default` replaces.
func helmEmpty(v any) bool {
	if v == nil {
		return true
	}
	r := reflect.ValueOf(v)
	switch r.Kind() {
	case reflect.Array, reflect.Map, reflect.Slice, reflect.String:
		return r.Len() == 0
	case reflect.Bool:
		return !r.Bool()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return r.Int() == 0
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return r.Uint() == 0
	case reflect.Float32, reflect.Float64:
		return r.Float() == 0
	case reflect.Pointer, reflect.Interface:
		return r.IsNil()
	}
	return false
}
