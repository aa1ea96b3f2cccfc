package k8s

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kraken-ops/kraken/enclave"
	"github.com/kraken-ops/kraken/k8s/k8stest"
	"github.com/kraken-ops/kraken/tentacle"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// requestCounter counts the API requests a client makes, by kind:
// reads, watches, dry runs, and writes that the API server carried out.
// A dry run is a write on the wire (a PATCH or POST with ?dryRun=All)
// that stores nothing: it is counted as a dry run, not as a write, so
// that "nothing was written" stays checkable; requests() is everything
// sent.
type requestCounter struct {
	mu sync.Mutex
	n  requestCounts
}

type requestCounts struct {
	reads, writes, dryRuns, watches int
	log                             []string
}

// requests is every request sent.
func (c requestCounts) requests() int { return c.reads + c.writes + c.dryRuns + c.watches }

func (c *requestCounter) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(r *http.Request) (*http.Response, error) {
		resp, err := rt.RoundTrip(r)
		c.mu.Lock()
		defer c.mu.Unlock()
		what := r.Method + " " + r.URL.Path
		switch {
		case r.URL.Query().Get("watch") == "true":
			c.n.watches++
		case r.Method == http.MethodGet:
			c.n.reads++
		case r.URL.Query().Has("dryRun"):
			c.n.dryRuns++
			what += " (dry run)"
		case err == nil && resp.StatusCode < 300:
			// A write the API server refused changed nothing.
			c.n.writes++
		}
		c.n.log = append(c.n.log, what)
		return resp, err
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// snapshot returns the counts so far and starts over.
func (c *requestCounter) snapshot() requestCounts {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.n
	c.n = requestCounts{}
	return n
}

// syncBuffer is a log destination tests read while the code writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type harness struct {
	t       testing.TB
	ctx     context.Context
	cs      kubernetes.Interface // the test's own, uncounted
	tc      *Tentacles
	n       *requestCounter
	ns      string
	logs    *syncBuffer
	kubelet *k8stest.Kubelet
}

type harnessOptions struct {
	kubelet      bool   // run pods as real engines
	runtimeClass string // Config.RuntimeClass
	transport    http.RoundTripper
	runTimeout   time.Duration
	// wrap, if set, sits between the Tentacles' API requests and the
	// API server (below the counter), to lose answers or requests.
	wrap func(http.RoundTripper) http.RoundTripper
	// rest, if set, changes the Tentacles' API connection (e.g. to
	// impersonate someone with fewer rights).
	rest func(*rest.Config)
}

// newHarness gives a test an enclave namespace (what the enclave side
// provisions and tentacles rely on: the labels and the tentacle
// ServiceAccount) and a Tentacles whose requests are counted. Without a
// kubelet, pods are pinned to a node that does not exist, so that no
// other test's kubelet runs them.
func newHarness(t testing.TB, o harnessOptions) *harness {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	cfg := k8stest.Config(t)
	h := &harness{t: t, ctx: ctx, cs: k8stest.Clientset(t), n: &requestCounter{}, logs: &syncBuffer{}}
	h.ns = newEnclave(t, h.cs, "tentacle")
	kc := Config{
		Image:        "ghcr.io/kraken-ops/kraken:test",
		NodeSelector: map[string]string{k8stest.LabelTestNode: "nowhere"},
		RuntimeClass: o.runtimeClass,
		RunTransport: o.transport,
		RunTimeout:   o.runTimeout,
		Logger:       slog.New(slog.NewTextHandler(io.MultiWriter(h.logs, testWriter{t}), nil)),
	}
	if _, bench := t.(*testing.B); bench {
		// A benchmark's log would bury its figures.
		kc.Logger = slog.New(slog.NewTextHandler(h.logs, nil))
	}
	if o.kubelet {
		h.kubelet = k8stest.StartKubelet(t, k8stest.Config(t), k8stest.KubeletOptions{})
		kc.NodeSelector = h.kubelet.NodeSelector()
		kc.RunTransport = h.kubelet.Transport()
	}
	cfg.QPS, cfg.Burst = 100, 200
	if o.wrap != nil {
		cfg.Wrap(o.wrap)
	}
	cfg.Wrap(h.n.wrap)
	if o.rest != nil {
		o.rest(cfg)
	}
	kc.Rest = cfg
	c, err := New(kc)
	if err != nil {
		t.Fatal(err)
	}
	if h.tc, err = NewTentacles(c); err != nil {
		t.Fatal(err)
	}
	return h
}

// testWriter sends log output to the test's log, and nowhere once the
// test is over.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// newEnclave makes a namespace look like a provisioned enclave.
func newEnclave(t testing.TB, cs kubernetes.Interface, prefix string) string {
	t.Helper()
	ctx := context.Background()
	ns := k8stest.Namespace(t, prefix)
	labels := enclaveLabels(ns)
	// As the enclave side does: the API server refuses pods that do not
	// meet the restricted Pod Security Standard.
	labels["pod-security.kubernetes.io/enforce"] = "restricted"
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{
		"labels": labels,
		// Provisioned to the end.
		"annotations": map[string]string{AnnotationState: StateActive},
	}})
	if _, err := cs.CoreV1().Namespaces().Patch(ctx, ns, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	sa := &corev1.ServiceAccount{
		ObjectMeta:                   metav1.ObjectMeta{Name: TentacleServiceAccount, Labels: enclaveLabels(ns)},
		AutomountServiceAccountToken: new(false),
	}
	if _, err := cs.CoreV1().ServiceAccounts(ns).Create(ctx, sa, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return ns
}

var prov = enclave.Provenance{Actor: "U123", Channel: "C456", At: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)}

// echoFiles is a small tentacle: one node that imports a helper from
// another directory (so the ConfigMap's key mapping matters), logs its
// input, and reads config and a secret.
func echoFiles(name, greeting string) map[string]string {
	return map[string]string{
		"workflow.yaml": `name: ` + name + `
version: "1.0"
description: Greets.
nodes:
  greet:
    path: ./nodes/greet.ts
config:
  greeting: ` + greeting + `
contract:
  version: "1"
  dependencies:
    api:
      protocol: https
      host: api.example.com
    db:
      protocol: postgresql
      host: 10.20.30.40
      database: app
      user: app
`,
		"nodes/greet.ts": `import { shape } from "../lib/shape.ts";
export default async function run(ctx, input) {
  ctx.log.info("greeting-run", { who: input.name });
  return shape(ctx.config.greeting, input.name, ctx.secrets);
}
`,
		"lib/shape.ts": `export function shape(greeting, name, secrets) {
  return { text: greeting + ", " + name, hasToken: typeof secrets?.api?.token === "string" };
}
`,
		"tests/fixtures/greet.json": `{"input": {}, "expected": {}}`,
		"README.md":                 "not shipped",
	}
}

func writeTentacle(t testing.TB, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for p, content := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const secretToken = "s3cr3t-t0ken-value"

func loadBundle(t testing.TB, files map[string]string) *tentacle.Bundle {
	t.Helper()
	b, err := tentacle.LoadBundle(writeTentacle(t, files), map[string]any{"api": map[string]any{"token": secretToken}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// objectsOf lists every object of the tentacle's kinds in the namespace
// by "Kind/name", to tell that nothing was written.
func (h *harness) objects() []string {
	h.t.Helper()
	var out []string
	cms, err := h.cs.CoreV1().ConfigMaps(h.ns).List(h.ctx, metav1.ListOptions{})
	must(h.t, err)
	for _, o := range cms.Items {
		if o.Name != "kube-root-ca.crt" {
			out = append(out, "ConfigMap/"+o.Name)
		}
	}
	secrets, err := h.cs.CoreV1().Secrets(h.ns).List(h.ctx, metav1.ListOptions{})
	must(h.t, err)
	for _, o := range secrets.Items {
		out = append(out, "Secret/"+o.Name)
	}
	svcs, err := h.cs.CoreV1().Services(h.ns).List(h.ctx, metav1.ListOptions{})
	must(h.t, err)
	for _, o := range svcs.Items {
		out = append(out, "Service/"+o.Name)
	}
	nps, err := h.cs.NetworkingV1().NetworkPolicies(h.ns).List(h.ctx, metav1.ListOptions{})
	must(h.t, err)
	for _, o := range nps.Items {
		out = append(out, "NetworkPolicy/"+o.Name)
	}
	deps, err := h.cs.AppsV1().Deployments(h.ns).List(h.ctx, metav1.ListOptions{})
	must(h.t, err)
	for _, o := range deps.Items {
		out = append(out, "Deployment/"+o.Name)
	}
	return out
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// podsOf lists the tentacle's pods that are not being deleted.
func (h *harness) pods(name string) []corev1.Pod {
	h.t.Helper()
	list, err := h.cs.CoreV1().Pods(h.ns).List(h.ctx, metav1.ListOptions{LabelSelector: revisionSelector(name)})
	must(h.t, err)
	var out []corev1.Pod
	for _, p := range list.Items {
		if p.DeletionTimestamp == nil {
			out = append(out, p)
		}
	}
	return out
}

// waitNoPods watches until the tentacle has no pods left at all.
func (h *harness) waitNoPods(name string) {
	h.t.Helper()
	pods := h.cs.CoreV1().Pods(h.ns)
	opts := metav1.ListOptions{LabelSelector: revisionSelector(name)}
	for {
		list, err := pods.List(h.ctx, opts)
		must(h.t, err)
		if len(list.Items) == 0 {
			return
		}
		opts.ResourceVersion = list.ResourceVersion
		w, err := pods.Watch(h.ctx, opts)
		must(h.t, err)
		for ev := range w.ResultChan() {
			if ev.Type == watch.Deleted || ev.Type == watch.Error {
				break
			}
		}
		w.Stop()
		opts.ResourceVersion = ""
		if h.ctx.Err() != nil {
			h.t.Fatalf("pods of %s still there: %v", name, h.ctx.Err())
		}
	}
}
