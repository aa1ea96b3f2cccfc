package k8s

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kraken-ops/kraken/enclave"
	"github.com/kraken-ops/kraken/k8s/k8stest"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// apiRecorder counts the requests a client sends, and can cut the
// connection after a number of writes the way an API server outage
// would: a cut write and every request after it fail with "connection
// refused" and never reach the server.
type apiRecorder struct {
	next http.RoundTripper

	mu       sync.Mutex
	reads    int
	writes   int
	requests []string // "PATCH /api/v1/namespaces/x", in order
	cutAfter int      // writes allowed before the cut; negative: never cut
	cut      bool
	// beforeWrite, if set, runs before write n (from 1) is sent.
	beforeWrite func(n int)
}

func (r *apiRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	write := req.Method != http.MethodGet && req.Method != http.MethodHead
	r.mu.Lock()
	if write {
		r.writes++
	} else {
		r.reads++
	}
	n := r.writes
	r.requests = append(r.requests, req.Method+" "+req.URL.Path)
	if write && r.cutAfter >= 0 && n > r.cutAfter {
		r.cut = true
	}
	cut, hook := r.cut, r.beforeWrite
	r.mu.Unlock()
	if cut {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	}
	if write && hook != nil {
		hook(n)
	}
	return r.next.RoundTrip(req)
}

// counts returns and resets the counters.
func (r *apiRecorder) counts() (reads, writes int, requests []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	reads, writes, requests = r.reads, r.writes, r.requests
	r.reads, r.writes, r.requests = 0, 0, nil
	return reads, writes, requests
}

// recordedConfig wraps rc's transport with a fresh apiRecorder.
func recordedConfig(rc *rest.Config) (*rest.Config, *apiRecorder) {
	rc = rest.CopyConfig(rc)
	rec := &apiRecorder{cutAfter: -1}
	rc.Wrap(func(next http.RoundTripper) http.RoundTripper {
		rec.next = next
		return rec
	})
	return rc, rec
}

// newEnclaveClient is a Client on rc that logs to the test's output.
func newEnclaveClient(t testing.TB, rc *rest.Config, tweak func(*Config)) *Client {
	t.Helper()
	cfg := Config{Rest: rc, Logger: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))}
	if tweak != nil {
		tweak(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// enclaveName is a unique enclave name whose namespace is deleted when
// the test ends, whatever the test did with it.
func enclaveName(t testing.TB, prefix string) string {
	t.Helper()
	name := k8stest.UniqueName(prefix)
	k8stest.CleanupNamespace(t, name)
	return name
}

// testEnclave is an enclave with every field the cluster records set
// (the false flags aside).
func testEnclave(name string) enclave.Enclave {
	return enclave.Enclave{
		Name:       name,
		Channel:    enclave.Channel{TeamID: "T0001", ID: "C0001", Name: "data-team"},
		Owner:      "U0001",
		Quota:      enclave.Quota{CPU: "2", Memory: "4Gi", Pods: 5},
		Governance: testGovernance(),
	}
}

// testGovernance is testEnclave's governance, a new copy each call.
func testGovernance() enclave.Governance {
	return enclave.Governance{
		Members:       []string{"U0002", "U0003"},
		Mode:          enclave.ModeTeam,
		TentacleModes: map[string]enclave.Mode{"greeter": enclave.ModeTeamRun},
	}
}

var testProvenance = enclave.Provenance{Actor: "U0001", Channel: "C0001", At: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}

func enclaveCtx(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

// enclaveObjects are the resource versions of everything Provision
// writes, by kind/name; a missing object has no entry.
func enclaveObjects(t testing.TB, cs kubernetes.Interface, ns string) map[string]string {
	t.Helper()
	ctx := enclaveCtx(t, 30*time.Second)
	out := map[string]string{}
	if n, err := cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); err == nil {
		out["Namespace/"+ns] = n.ResourceVersion
	}
	rq, err := cs.CoreV1().ResourceQuotas(ns).List(ctx, metav1.ListOptions{})
	noErr(t, err)
	for _, o := range rq.Items {
		out["ResourceQuota/"+o.Name] = o.ResourceVersion
	}
	lr, err := cs.CoreV1().LimitRanges(ns).List(ctx, metav1.ListOptions{})
	noErr(t, err)
	for _, o := range lr.Items {
		out["LimitRange/"+o.Name] = o.ResourceVersion
	}
	np, err := cs.NetworkingV1().NetworkPolicies(ns).List(ctx, metav1.ListOptions{})
	noErr(t, err)
	for _, o := range np.Items {
		out["NetworkPolicy/"+o.Name] = o.ResourceVersion
	}
	if sa, err := cs.CoreV1().ServiceAccounts(ns).Get(ctx, TentacleServiceAccount, metav1.GetOptions{}); err == nil {
		out["ServiceAccount/"+sa.Name] = sa.ResourceVersion
	}
	rb, err := cs.RbacV1().RoleBindings(ns).List(ctx, metav1.ListOptions{})
	noErr(t, err)
	for _, o := range rb.Items {
		out["RoleBinding/"+o.Name] = o.ResourceVersion
	}
	return out
}

// wantObjects are the keys enclaveObjects has for a whole enclave.
func wantObjects(ns string) []string {
	return []string{
		"Namespace/" + ns,
		"ResourceQuota/" + EnclaveQuota,
		"LimitRange/" + EnclaveLimitRange,
		"NetworkPolicy/" + EnclavePolicyDefaultDeny,
		"NetworkPolicy/" + EnclavePolicyAllowDNS,
		"NetworkPolicy/" + EnclavePolicyAllowBot,
		"ServiceAccount/" + TentacleServiceAccount,
		"RoleBinding/" + EnclaveBotRoleBinding,
	}
}

func assertWholeEnclave(t testing.TB, cs kubernetes.Interface, ns string) {
	t.Helper()
	got := enclaveObjects(t, cs, ns)
	for _, k := range wantObjects(ns) {
		if _, ok := got[k]; !ok {
			t.Errorf("enclave %s has no %s; it has %v", ns, k, got)
		}
	}
	if len(got) != len(wantObjects(ns)) {
		t.Errorf("enclave %s has %d objects, want %d: %v", ns, len(got), len(wantObjects(ns)), got)
	}
}

// waitQuotaEnforced watches the enclave's quota until the resourcequota
// controller has copied spec.hard to status.hard: only then does quota
// admission enforce it (kubetest.md, pitfall 2).
func waitQuotaEnforced(t testing.TB, cs kubernetes.Interface, ns string) {
	t.Helper()
	ctx := enclaveCtx(t, 60*time.Second)
	w, err := cs.CoreV1().ResourceQuotas(ns).Watch(ctx, metav1.ListOptions{
		FieldSelector: fields.OneTermEqualSelector("metadata.name", EnclaveQuota).String(),
	})
	noErr(t, err)
	defer w.Stop()
	for ev := range w.ResultChan() {
		if ev.Type == watch.Error {
			t.Fatalf("watch quota: %v", ev.Object)
		}
		if q, ok := ev.Object.(*corev1.ResourceQuota); ok {
			if _, set := q.Status.Hard[corev1.ResourcePods]; set {
				return
			}
		}
	}
	t.Fatalf("quota of %s never enforced (status.hard unset): is kube-controller-manager running? %v", ns, ctx.Err())
}

func noErr(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
