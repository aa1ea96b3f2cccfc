// Package k8stest gives tests a real control plane's clients, per-test
// namespaces, and a fake kubelet that runs tentacle pods as local
// `kraken engine` processes.
//
// The control plane is hack/kubetest's etcd, kube-apiserver,
// kube-controller-manager and kube-scheduler on 127.0.0.1; `make test`
// starts it and exports KUBECONFIG. Without it, tests fail (never skip)
// and say how to start it.
package k8stest

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// NotRunning is the message tests fail with when there is no control plane.
const NotRunning = "the test control plane is not running: run `make test`, or `make cluster` and export KUBECONFIG"

// Labels and annotations k8stest puts on what it creates.
const (
	LabelTest       = "kraken.dev/k8stest"       // "true" on test namespaces and nodes
	LabelTestNode   = "kraken.dev/test-node"     // a fake node's name, for nodeSelectors
	AnnotationFor   = "kraken.dev/k8stest-for"   // the test's name
	AnnotationOwner = "kraken.dev/k8stest-owner" // host/pid of the test process
)

// testenvCA is the common name of hack/kubetest's CA. Checking it keeps a
// stray KUBECONFIG (a developer's real cluster) from getting fake Nodes,
// which its scheduler would then place real pods on.
const testenvCA = "kube-testenv-ca"

var connect struct {
	sync.Mutex
	path string
	cfg  *rest.Config
	err  error
}

// Config returns the admin rest.Config from $KUBECONFIG. It fails the test
// with NotRunning when KUBECONFIG is unset, is not the test control plane,
// or does not answer.
func Config(t testing.TB) *rest.Config {
	t.Helper()
	path := os.Getenv("KUBECONFIG")
	if path == "" {
		t.Fatal(NotRunning + " (KUBECONFIG is not set)")
	}
	cfg, err := connectTo(path)
	if err != nil {
		t.Fatalf("%s (%v)", NotRunning, err)
	}
	return rest.CopyConfig(cfg)
}

// connectTo loads and checks a kubeconfig once per test process: every
// test asks for it, and the answer does not change during a run.
func connectTo(path string) (*rest.Config, error) {
	connect.Lock()
	defer connect.Unlock()
	if connect.path == path && (connect.cfg != nil || connect.err != nil) {
		return connect.cfg, connect.err
	}
	connect.path = path
	connect.cfg, connect.err = load(path)
	return connect.cfg, connect.err
}

func load(path string) (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules() // reads $KUBECONFIG, a list of files
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, nil).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("KUBECONFIG=%s: %w", path, err)
	}
	if err := checkTestenv(cfg); err != nil {
		return nil, fmt.Errorf("KUBECONFIG=%s: %w", path, err)
	}
	// The default 5 QPS would make tests wait on the client, not the server.
	cfg.QPS, cfg.Burst = 200, 400
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("KUBECONFIG=%s: %w", path, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cs.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx); err != nil {
		return nil, fmt.Errorf("%s does not answer: %w", cfg.Host, err)
	}
	return cfg, nil
}

func checkTestenv(cfg *rest.Config) error {
	pemData := cfg.CAData
	if len(pemData) == 0 && cfg.CAFile != "" {
		b, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return err
		}
		pemData = b
	}
	if block, _ := pem.Decode(pemData); block != nil {
		if ca, err := x509.ParseCertificate(block.Bytes); err == nil && ca.Subject.CommonName == testenvCA {
			return nil
		}
	}
	return fmt.Errorf("%s is not the test control plane (hack/kubetest); refusing to create test namespaces and nodes there", cfg.Host)
}

// Clientset returns a clientset for Config.
func Clientset(t testing.TB) kubernetes.Interface {
	t.Helper()
	cs, err := kubernetes.NewForConfig(Config(t))
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// UniqueName returns prefix-<random> as a DNS label: lower case, at most
// 63 characters, the prefix cleaned of anything a label cannot hold.
func UniqueName(prefix string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(prefix) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		case b.Len() > 0 && !strings.HasSuffix(b.String(), "-"):
			b.WriteByte('-')
		}
	}
	p := strings.Trim(b.String(), "-")
	if len(p) > 54 {
		p = strings.TrimRight(p[:54], "-")
	}
	if p == "" {
		p = "t"
	}
	// rand.Text is base32 (A-Z, 2-7): lower-cased, 8 of them are 40 bits.
	return p + "-" + strings.ToLower(rand.Text()[:8])
}

// Namespace creates a uniquely named namespace for the test and deletes it
// at test end (see CleanupNamespace). It returns once the namespace's
// "default" ServiceAccount exists, since the controller-manager creates it
// asynchronously and Pods created directly are refused until then.
func Namespace(t testing.TB, prefix string) string {
	t.Helper()
	cs := Clientset(t)
	name := UniqueName(prefix)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sweep(cs)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name:        name,
		Labels:      map[string]string{LabelTest: "true"},
		Annotations: map[string]string{AnnotationFor: t.Name(), AnnotationOwner: owner()},
	}}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create namespace %s: %v", name, err)
	}
	CleanupNamespace(t, name)
	for {
		_, err := cs.CoreV1().ServiceAccounts(name).Get(ctx, "default", metav1.GetOptions{})
		if err == nil {
			return name
		}
		if !apierrors.IsNotFound(err) {
			t.Fatalf("namespace %s: %v", name, err)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("namespace %s: no default ServiceAccount after 30 s: is kube-controller-manager running? (%v)", name, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// CleanupNamespace deletes the namespace at test end, if it exists then:
// workload controllers first (so nothing recreates pods), then its pods
// with grace 0 (pods bound to a fake node would otherwise wait for a
// kubelet to confirm), then the namespace, without waiting for it to go.
func CleanupNamespace(t testing.TB, name string) {
	t.Helper()
	cs := Clientset(t)
	t.Cleanup(func() {
		if err := deleteNamespace(cs, name); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
}

func deleteNamespace(cs kubernetes.Interface, name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	bg := metav1.DeletePropagationBackground
	opts := metav1.DeleteOptions{PropagationPolicy: &bg}
	all := metav1.ListOptions{}
	apps := cs.AppsV1()
	errs := []error{
		apps.Deployments(name).DeleteCollection(ctx, opts, all),
		apps.StatefulSets(name).DeleteCollection(ctx, opts, all),
		apps.DaemonSets(name).DeleteCollection(ctx, opts, all),
		apps.ReplicaSets(name).DeleteCollection(ctx, opts, all),
		cs.BatchV1().CronJobs(name).DeleteCollection(ctx, opts, all),
		cs.BatchV1().Jobs(name).DeleteCollection(ctx, opts, all),
	}
	var zero int64
	errs = append(errs,
		cs.CoreV1().Pods(name).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: &zero}, all),
		cs.CoreV1().Namespaces().Delete(ctx, name, metav1.DeleteOptions{}))
	var kept []error
	for _, err := range errs {
		if err != nil && !apierrors.IsNotFound(err) {
			kept = append(kept, err)
		}
	}
	if err := errors.Join(kept...); err != nil {
		return fmt.Errorf("delete namespace %s: %w", name, err)
	}
	return nil
}

// owner names this test process, so that another one can tell whether
// what it left behind is still in use.
func owner() string {
	host, _ := os.Hostname()
	return host + "/" + strconv.Itoa(os.Getpid())
}

var sweepOnce sync.Once

// sweep deletes, once per test process, the test namespaces and fake
// nodes that test processes on this machine left when they were killed
// before their cleanup ran: the control plane is shared and long-lived,
// and a stale Ready node would take pods that select no node.
func sweep(cs kubernetes.Interface) {
	sweepOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		host, _ := os.Hostname()
		stale := func(m metav1.ObjectMeta) bool {
			h, pid, ok := strings.Cut(m.Annotations[AnnotationOwner], "/")
			n, err := strconv.Atoi(pid)
			return ok && err == nil && h == host && !processAlive(n)
		}
		sel := metav1.ListOptions{LabelSelector: LabelTest + "=true"}
		if nodes, err := cs.CoreV1().Nodes().List(ctx, sel); err == nil {
			for _, n := range nodes.Items {
				if stale(n.ObjectMeta) {
					_ = cs.CoreV1().Nodes().Delete(ctx, n.Name, metav1.DeleteOptions{})
				}
			}
		}
		if nss, err := cs.CoreV1().Namespaces().List(ctx, sel); err == nil {
			for _, ns := range nss.Items {
				if ns.DeletionTimestamp == nil && stale(ns.ObjectMeta) {
					_ = deleteNamespace(cs, ns.Name)
				}
			}
		}
	})
}

var kraken struct {
	once sync.Once
	path string
	err  error
}

// BuildKraken builds ./cmd/kraken once per test process and returns the
// binary's path.
func BuildKraken(t testing.TB) string {
	t.Helper()
	kraken.once.Do(func() { kraken.path, kraken.err = buildKraken() })
	if kraken.err != nil {
		t.Fatal(kraken.err)
	}
	return kraken.path
}

// buildKraken builds into a directory named after this process, and
// removes those of processes that have exited: there is no hook at the
// end of a test process (without TestMain) to remove its own.
func buildKraken() (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	const prefix = "kraken-k8stest-"
	if old, err := filepath.Glob(filepath.Join(os.TempDir(), prefix+"*")); err == nil {
		for _, dir := range old {
			pid, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(dir), prefix))
			if err == nil && pid != os.Getpid() && !processAlive(pid) {
				_ = os.RemoveAll(dir)
			}
		}
	}
	dir := filepath.Join(os.TempDir(), prefix+strconv.Itoa(os.Getpid()))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("build kraken: %w", err)
	}
	bin := filepath.Join(dir, "kraken")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/kraken")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build kraken: %w\n%s", err, out)
	}
	return bin, nil
}

// moduleRoot walks up from the working directory (the package under
// test) to the directory holding go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("build kraken: no go.mod above the working directory")
		}
		dir = parent
	}
}
