package k8stest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kraken-ops/kraken/engine"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/retry"
)

// KubeletOptions configures StartKubelet.
type KubeletOptions struct {
	Kraken string // the kraken binary; "" means BuildKraken
	Deno   string // the Deno binary passed to engines; "" means engine.FindDeno("", os.Getenv)
}

// Kubelet is a fake Node and the kubelet behind it: it runs the `kraken
// engine` containers of the pods the scheduler binds to it as local
// processes, and writes their status as a kubelet would.
type Kubelet struct {
	t         testing.TB
	cs        kubernetes.Interface
	name      string
	kraken    string
	deno      string
	dir       string // one subdirectory per pod
	logs      *httptest.Server
	transport *http.Transport
	ipBase    int

	ctx    context.Context // done when the test ends
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	pods   map[string]*pod // by namespace/name
	nextIP int
	rr     int // round robin over a Service's endpoints
}

// StartKubelet registers a fake Ready Node with a unique name, labelled
// kraken.dev/test-node=<name> so that the code under test can be given
// NodeSelector and parallel test processes never run each other's pods,
// serves the kubelet's log endpoint for pods/log, and runs the pods bound
// to the node until the test ends. It returns once the scheduler can
// place pods on the node.
func StartKubelet(t testing.TB, cfg *rest.Config, opts KubeletOptions) *Kubelet {
	t.Helper()
	if opts.Kraken == "" {
		opts.Kraken = BuildKraken(t)
	}
	if opts.Deno == "" {
		d, err := engine.FindDeno("", os.Getenv)
		if err != nil {
			t.Fatal(err)
		}
		opts.Deno = d
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	k := &Kubelet{
		t: t, cs: cs, name: UniqueName("k8stest-node"),
		kraken: opts.Kraken, deno: opts.Deno, dir: t.TempDir(),
		ipBase: 64 + rand.IntN(128),
		ctx:    ctx, cancel: cancel,
		pods: map[string]*pod{},
	}
	k.transport = &http.Transport{
		Proxy:       nil, // the cluster's names mean nothing to a proxy
		DialContext: k.dialService,
		// A pooled connection would outlive the engine that a later
		// request should be routed to (after a restart or rollout).
		DisableKeepAlives: true,
	}
	k.logs = httptest.NewUnstartedServer(k.logHandler())
	k.logs.StartTLS()
	t.Cleanup(k.stop)

	if err := k.register(); err != nil {
		t.Fatal(err)
	}
	if err := k.watch(); err != nil {
		t.Fatal(err)
	}
	return k
}

// NodeName is the fake Node's name.
func (k *Kubelet) NodeName() string { return k.name }

// NodeSelector selects this kubelet's Node and no other.
func (k *Kubelet) NodeSelector() map[string]string {
	return map[string]string{LabelTestNode: k.name}
}

// register creates the Node, marks it Ready with the log endpoint's
// address, and waits until the controller-manager has lifted the
// not-ready taint that admission put on it, so the scheduler uses it.
func (k *Kubelet) register() error {
	ctx, cancel := context.WithTimeout(k.ctx, 60*time.Second)
	defer cancel()
	_, port, err := net.SplitHostPort(k.logs.Listener.Addr().String())
	if err != nil {
		return err
	}
	kubeletPort, _ := strconv.Atoi(port)
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{
		Name: k.name,
		Labels: map[string]string{
			LabelTest:              "true",
			LabelTestNode:          k.name,
			corev1.LabelHostname:   k.name,
			corev1.LabelOSStable:   "linux",
			corev1.LabelArchStable: runtime.GOARCH,
		},
		Annotations: map[string]string{AnnotationFor: k.t.Name(), AnnotationOwner: owner()},
	}}
	sweep(k.cs)
	if _, err := k.cs.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("kubelet: create node %s: %w", k.name, err)
	}
	room := corev1.ResourceList{
		corev1.ResourceCPU:              resource.MustParse("64"),
		corev1.ResourceMemory:           resource.MustParse("256Gi"),
		corev1.ResourcePods:             resource.MustParse("250"),
		corev1.ResourceEphemeralStorage: resource.MustParse("1Ti"),
	}
	now := metav1.Now()
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		n, err := k.cs.CoreV1().Nodes().Get(ctx, k.name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		n.Status.Capacity, n.Status.Allocatable = room, room
		n.Status.Conditions = []corev1.NodeCondition{
			{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady", Message: "k8stest kubelet is posting ready status", LastHeartbeatTime: now, LastTransitionTime: now},
			{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasSufficientMemory", LastHeartbeatTime: now, LastTransitionTime: now},
			{Type: corev1.NodeDiskPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasNoDiskPressure", LastHeartbeatTime: now, LastTransitionTime: now},
			{Type: corev1.NodePIDPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasSufficientPID", LastHeartbeatTime: now, LastTransitionTime: now},
		}
		// The apiserver reaches the log endpoint here (pods/log). No
		// Hostname address: the apiserver would prefer it, and the node's
		// name does not resolve.
		n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "127.0.0.1"}}
		n.Status.DaemonEndpoints.KubeletEndpoint.Port = int32(kubeletPort)
		n.Status.NodeInfo = corev1.NodeSystemInfo{
			KubeletVersion: "v1.37.2-k8stest", OperatingSystem: "linux", Architecture: runtime.GOARCH,
			ContainerRuntimeVersion: "k8stest://1",
		}
		_, err = k.cs.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return fmt.Errorf("kubelet: mark node %s ready: %w", k.name, err)
	}
	for {
		n, err := k.cs.CoreV1().Nodes().Get(ctx, k.name, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("kubelet: node %s: %w", k.name, err)
		}
		tainted := false
		for _, taint := range n.Spec.Taints {
			tainted = tainted || taint.Effect == corev1.TaintEffectNoSchedule || taint.Effect == corev1.TaintEffectNoExecute
		}
		if !tainted {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kubelet: node %s still has taints %v after 60 s: is kube-controller-manager running?", k.name, n.Spec.Taints)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// watch follows the pods bound to the node.
func (k *Kubelet) watch() error {
	factory := informers.NewSharedInformerFactoryWithOptions(k.cs, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.FieldSelector = "spec.nodeName=" + k.name }))
	inf := factory.Core().V1().Pods().Informer()
	_, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { k.sync(obj) },
		UpdateFunc: func(_, obj any) { k.sync(obj) },
		DeleteFunc: func(obj any) {
			if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			if p, ok := obj.(*corev1.Pod); ok {
				k.forget(p, false)
			}
		},
	})
	if err != nil {
		return fmt.Errorf("kubelet: %w", err)
	}
	factory.Start(k.ctx.Done())
	k.wg.Go(func() {
		<-k.ctx.Done()
		factory.Shutdown()
	})
	for typ, ok := range factory.WaitForCacheSync(k.ctx.Done()) {
		if !ok {
			return fmt.Errorf("kubelet: %v informer did not sync", typ)
		}
	}
	return nil
}

// sync starts the pod if it is new, and stops it and finishes its
// deletion once it is being deleted.
func (k *Kubelet) sync(obj any) {
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	if p.DeletionTimestamp != nil {
		k.forget(p, true)
		return
	}
	if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
		return
	}
	key := p.Namespace + "/" + p.Name
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.ctx.Err() != nil {
		return
	}
	old := k.pods[key]
	if old != nil && old.uid == p.UID {
		return
	}
	if old != nil { // same name, new pod (a StatefulSet's)
		k.wg.Go(old.stop)
	}
	k.nextIP++
	ip := fmt.Sprintf("10.%d.%d.%d", k.ipBase, k.nextIP/250, k.nextIP%250+1)
	np := newPod(k, p.DeepCopy(), ip)
	k.pods[key] = np
	np.start()
}

// forget stops the pod's processes; when the pod is being deleted, it
// then deletes it with grace 0, as a kubelet confirms a graceful delete.
func (k *Kubelet) forget(p *corev1.Pod, finishDelete bool) {
	key := p.Namespace + "/" + p.Name
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.ctx.Err() != nil {
		return // stop takes care of the pods
	}
	old := k.pods[key]
	if old != nil && old.uid == p.UID {
		delete(k.pods, key)
	} else {
		old = nil
	}
	// Under mu, so that stop, which takes mu before it waits, waits for it.
	k.wg.Go(func() {
		if old != nil {
			old.stop()
		}
		if finishDelete {
			k.finishDelete(p)
		}
	})
}

func (k *Kubelet) finishDelete(p *corev1.Pod) {
	var zero int64
	opts := metav1.DeleteOptions{GracePeriodSeconds: &zero, Preconditions: &metav1.Preconditions{UID: &p.UID}}
	err := retry.OnError(retry.DefaultBackoff, func(err error) bool {
		return !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) && k.ctx.Err() == nil
	}, func() error {
		return k.cs.CoreV1().Pods(p.Namespace).Delete(k.ctx, p.Name, opts)
	})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) && k.ctx.Err() == nil {
		k.t.Logf("kubelet %s: finish deleting pod %s/%s: %v", k.name, p.Namespace, p.Name, err)
	}
}

// stop ends everything at test end: processes, the node, the log server.
func (k *Kubelet) stop() {
	k.mu.Lock()
	k.cancel()
	pods := k.pods
	k.pods = map[string]*pod{}
	k.mu.Unlock()
	for _, p := range pods {
		k.wg.Go(p.stop)
	}
	k.wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := k.cs.CoreV1().Nodes().Delete(ctx, k.name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		k.t.Errorf("kubelet: delete node %s: %v", k.name, err)
	}
	k.transport.CloseIdleConnections()
	k.logs.Close()
}

// lookup returns the running pod namespace/name.
func (k *Kubelet) lookup(namespace, name string) *pod {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.pods[namespace+"/"+name]
}

// PodState is a pod's status as a test sets it with SetPodStatus. It
// applies to the pod's engine container (or its first container).
type PodState struct {
	Ready    bool
	Restarts int32
	// WaitingReason and WaitingMessage, if set, make the container
	// waiting (e.g. CrashLoopBackOff, ImagePullBackOff) instead of running.
	WaitingReason, WaitingMessage string
	// TerminatedReason and ExitCode describe the last termination
	// (lastState.terminated) when waiting, else the current state, e.g.
	// "Error" with 1 or "OOMKilled" with 137.
	TerminatedReason string
	ExitCode         int32
}

// SetPodStatus writes a pod's status by hand, for states a real engine
// cannot easily produce. The pod must be bound to this kubelet; it keeps
// this state (and routes no traffic to it unless Ready) until the pod is
// deleted. It returns once the status is written.
func (k *Kubelet) SetPodStatus(ctx context.Context, namespace, name string, s PodState) error {
	p, err := k.waitPod(ctx, namespace, name)
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.override, p.overrideAt = &s, metav1.Now()
	p.mu.Unlock()
	return p.writeStatus(ctx)
}

// KillEngine kills the pod's engine process with SIGKILL, as an OOM kill
// or a crash would; the kubelet restarts it (restartCount + 1).
func (k *Kubelet) KillEngine(ctx context.Context, namespace, name string) error {
	p, err := k.waitPod(ctx, namespace, name)
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.containers {
		if c.engine && c.proc != nil {
			signalGroup(c.proc, syscall.SIGKILL)
			return nil
		}
	}
	return fmt.Errorf("kubelet: pod %s/%s has no engine process running", namespace, name)
}

// waitPod finds a pod of this kubelet, waiting for the informer to catch
// up with a pod that was only just bound.
func (k *Kubelet) waitPod(ctx context.Context, namespace, name string) (*pod, error) {
	for {
		if p := k.lookup(namespace, name); p != nil {
			return p, nil
		}
		cur, err := k.cs.CoreV1().Pods(namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return nil, fmt.Errorf("kubelet: %w", err)
		}
		if cur.Spec.NodeName != k.name {
			return nil, fmt.Errorf("kubelet: pod %s/%s is bound to node %q, not %s", namespace, name, cur.Spec.NodeName, k.name)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("kubelet: pod %s/%s: %w", namespace, name, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// logHandler answers the apiserver's pods/log requests, which it proxies
// to the node's kubelet endpoint.
func (k *Kubelet) logHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /containerLogs/{namespace}/{pod}/{container}", func(w http.ResponseWriter, r *http.Request) {
		ns, name := r.PathValue("namespace"), r.PathValue("pod")
		q, err := parseLogQuery(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		p := k.lookup(ns, name)
		if p == nil {
			http.Error(w, fmt.Sprintf("pod %s/%s is not running on node %s", ns, name, k.name), http.StatusNotFound)
			return
		}
		buf, err := p.logs(r.PathValue("container"), q.previous)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		serveLog(w, r, buf, q, k.ctx.Done())
	})
	return mux
}
