package k8stest

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"
)

// The tiny tentacle of the engine tests: one node that returns its input.
const (
	echoWorkflow = "name: echo\nversion: \"1.0\"\ntriggers:\n  - type: manual\nnodes:\n  a:\n    path: ./nodes/a.ts\n"
	echoNode     = "export default async function run(ctx, input) { ctx.log.info(\"echoing\"); return input; }\n"
)

// waitFor polls cond until it holds, failing the test with what it last
// saw after a minute: generous, since a loaded CI machine is slow, and
// never a performance assertion.
func waitFor(t *testing.T, what string, cond func(ctx context.Context) (bool, string, error)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	last := ""
	for {
		ok, seen, err := cond(ctx)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if ok {
			return
		}
		last = seen
		select {
		case <-ctx.Done():
			t.Fatalf("%s: not after a minute; last seen: %s", what, last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// deployTentacle creates what the bot would for the echo tentacle: its
// ConfigMap, a Deployment running `kraken engine` with a sidecar, and a
// Service. The ConfigMap key nodes__a.ts becomes nodes/a.ts through items.
func deployTentacle(t *testing.T, cs kubernetes.Interface, ns string, k *Kubelet, name, workflow string) {
	t.Helper()
	ctx := t.Context()
	labels := map[string]string{"app": name}
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: name + "-workflow"},
		Data:       map[string]string{"workflow.yaml": workflow, "nodes__a.ts": echoNode},
	}
	if _, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	one := int32(1)
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: &one,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					NodeSelector: k.NodeSelector(),
					Containers: []corev1.Container{{
						Name:    "engine",
						Image:   "ghcr.io/kraken-ops/kraken:test", // never pulled
						Command: []string{"kraken", "engine", "--workflow", "/app/workflow", "--port", "8080"},
						Ports:   []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
						VolumeMounts: []corev1.VolumeMount{
							{Name: "workflow", MountPath: "/app/workflow", ReadOnly: true},
						},
					}, {
						Name:    "proxy",
						Image:   "ghcr.io/kraken-ops/egress-proxy:test",
						Command: []string{"proxy", "--listen", ":3128"},
					}},
					Volumes: []corev1.Volume{{
						Name: "workflow",
						VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
							LocalObjectReference: corev1.LocalObjectReference{Name: cm.Name},
							Items: []corev1.KeyToPath{
								{Key: "workflow.yaml", Path: "workflow.yaml"},
								{Key: "nodes__a.ts", Path: "nodes/a.ts"},
							},
						}},
					}},
				},
			},
		},
	}
	if _, err := cs.AppsV1().Deployments(ns).Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.ServiceSpec{
			Selector: labels,
			Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http")}},
		},
	}
	if _, err := cs.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// onlyPod returns the one pod of the app, waiting until there is one.
func onlyPod(t *testing.T, cs kubernetes.Interface, ns, app string) *corev1.Pod {
	t.Helper()
	var pod *corev1.Pod
	waitFor(t, "one pod of "+app, func(ctx context.Context) (bool, string, error) {
		pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=" + app})
		if err != nil {
			return false, "", err
		}
		if len(pods.Items) != 1 {
			return false, fmt.Sprintf("%d pods", len(pods.Items)), nil
		}
		pod = &pods.Items[0]
		return true, "", nil
	})
	return pod
}

func containerStatus(p *corev1.Pod, name string) corev1.ContainerStatus {
	for _, s := range p.Status.ContainerStatuses {
		if s.Name == name {
			return s
		}
	}
	return corev1.ContainerStatus{}
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// run posts input to the tentacle's Service through the kubelet.
func run(t *testing.T, client *http.Client, url, input string) engineResult {
	t.Helper()
	res, err := client.Post(url, "application/json", strings.NewReader(input))
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	var out engineResult
	if err := json.Unmarshal(body, &out); err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("POST %s: %s: %s (%v)", url, res.Status, body, err)
	}
	return out
}

type engineResult struct {
	Success bool                       `json:"success"`
	Outputs map[string]json.RawMessage `json:"outputs"`
}

func logs(t *testing.T, cs kubernetes.Interface, ns, pod string, opts corev1.PodLogOptions) string {
	t.Helper()
	b, err := cs.CoreV1().Pods(ns).GetLogs(pod, &opts).DoRaw(t.Context())
	if err != nil {
		t.Fatalf("logs of %s/%s: %v", ns, pod, err)
	}
	return string(b)
}

// TestKubeletRunsTentacle follows one tentacle through its life: it
// becomes Available, answers runs through its Service, logs through the
// API, is restarted after a crash, takes a status set by hand, and stops
// when its Deployment is deleted.
func TestKubeletRunsTentacle(t *testing.T) {
	cfg := Config(t)
	cs := Clientset(t)
	ns := Namespace(t, "k8stest")
	k := StartKubelet(t, cfg, KubeletOptions{})
	deployTentacle(t, cs, ns, k, "echo", echoWorkflow)
	client := &http.Client{Transport: k.Transport(), Timeout: time.Minute}
	url := "http://echo." + ns + ".svc.cluster.local/run"

	waitFor(t, "deployment available", func(ctx context.Context) (bool, string, error) {
		d, err := cs.AppsV1().Deployments(ns).Get(ctx, "echo", metav1.GetOptions{})
		if err != nil {
			return false, "", err
		}
		for _, c := range d.Status.Conditions {
			if c.Type == appsv1.DeploymentAvailable && c.Status == corev1.ConditionTrue && d.Status.AvailableReplicas == 1 {
				return true, "", nil
			}
		}
		return false, fmt.Sprintf("%+v", d.Status), nil
	})
	pod := onlyPod(t, cs, ns, "echo")
	if pod.Spec.NodeName != k.NodeName() || pod.Status.Phase != corev1.PodRunning || !podReady(pod) || pod.Status.PodIP == "" {
		t.Fatalf("pod %s: node %q, phase %s, ready %v, IP %q; want node %s, Running, ready, an IP",
			pod.Name, pod.Spec.NodeName, pod.Status.Phase, podReady(pod), pod.Status.PodIP, k.NodeName())
	}
	if s := containerStatus(pod, "proxy"); s.State.Running == nil || !s.Ready {
		t.Errorf("sidecar status %+v, want running and ready", s)
	}

	t.Run("run through the Service", func(t *testing.T) {
		out := run(t, client, url, `{"hello":"kraken"}`)
		if !out.Success || string(out.Outputs["a"]) != `{"hello":"kraken"}` {
			t.Fatalf("run returned %+v, want success with a = the input", out)
		}
		for _, host := range []string{"echo." + ns + ".svc", "echo." + ns} {
			if out := run(t, client, "http://"+host+"/run", `{"n":1}`); !out.Success {
				t.Errorf("via %s: %+v", host, out)
			}
		}
	})

	t.Run("unknown hosts fail like a DNS miss", func(t *testing.T) {
		for _, host := range []string{"nope." + ns + ".svc.cluster.local", "example.com", "echo.no-such-namespace.svc"} {
			_, err := client.Get("http://" + host + "/health")
			var dnsErr *net.DNSError
			if !errors.As(err, &dnsErr) || !dnsErr.IsNotFound {
				t.Errorf("GET %s: %v, want a DNS not-found error", host, err)
			}
		}
	})

	t.Run("pods/log through the API", func(t *testing.T) {
		all := logs(t, cs, ns, pod.Name, corev1.PodLogOptions{Container: "engine"})
		if !strings.Contains(all, "serving tentacle") || !strings.Contains(all, "run finished") {
			t.Fatalf("logs lack the engine's start and run lines:\n%s", all)
		}
		tail := int64(1)
		last := logs(t, cs, ns, pod.Name, corev1.PodLogOptions{Container: "engine", TailLines: &tail})
		if strings.Count(last, "\n") != 1 || !strings.HasSuffix(all, last) {
			t.Fatalf("tailLines=1 gave %q, want the last line of:\n%s", last, all)
		}

		// Follow: a run made after the stream opened shows up in it.
		stream, err := cs.CoreV1().Pods(ns).GetLogs(pod.Name, &corev1.PodLogOptions{Container: "engine", Follow: true, TailLines: &tail}).Stream(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		defer stream.Close()
		lines := make(chan string)
		go func() {
			defer close(lines)
			sc := bufio.NewScanner(stream)
			for sc.Scan() {
				lines <- sc.Text()
			}
		}()
		<-lines // the tail: the stream is open
		run(t, client, url, `{"follow":"me"}`)
		timeout := time.After(time.Minute)
		for found := false; !found; {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatal("the follow stream ended before the run's log line")
				}
				found = strings.Contains(l, "run finished")
			case <-timeout:
				t.Fatal("no run finished line in the follow stream after a minute")
			}
		}
	})

	t.Run("a killed engine is restarted", func(t *testing.T) {
		if err := k.KillEngine(t.Context(), ns, pod.Name); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "restartCount 1 and ready again", func(ctx context.Context) (bool, string, error) {
			p, err := cs.CoreV1().Pods(ns).Get(ctx, pod.Name, metav1.GetOptions{})
			if err != nil {
				return false, "", err
			}
			s := containerStatus(p, "engine")
			term := s.LastTerminationState.Terminated
			ok := s.RestartCount == 1 && s.Ready && podReady(p) && term != nil && term.ExitCode == 137 && term.Reason == "Error"
			return ok, fmt.Sprintf("%+v", s), nil
		})
		if out := run(t, client, url, `{"again":true}`); !out.Success {
			t.Fatalf("run after restart: %+v", out)
		}
		prev := logs(t, cs, ns, pod.Name, corev1.PodLogOptions{Container: "engine", Previous: true})
		if !strings.Contains(prev, "serving tentacle") {
			t.Errorf("previous=true gave %q, want the first instance's log", prev)
		}
	})

	t.Run("SetPodStatus", func(t *testing.T) {
		want := PodState{Restarts: 4, WaitingReason: "CrashLoopBackOff", WaitingMessage: "back-off 40s", TerminatedReason: "Error", ExitCode: 3}
		if err := k.SetPodStatus(t.Context(), ns, pod.Name, want); err != nil {
			t.Fatal(err)
		}
		p, err := cs.CoreV1().Pods(ns).Get(t.Context(), pod.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		s := containerStatus(p, "engine")
		if s.Ready || podReady(p) || s.RestartCount != 4 || s.State.Waiting == nil || s.State.Waiting.Reason != "CrashLoopBackOff" ||
			s.State.Waiting.Message != "back-off 40s" || s.LastTerminationState.Terminated == nil || s.LastTerminationState.Terminated.ExitCode != 3 {
			t.Fatalf("status %+v, pod ready %v; want %+v", s, podReady(p), want)
		}
		// Not ready: no traffic, as kube-proxy would have no endpoint.
		_, err = client.Get("http://echo." + ns + ".svc.cluster.local/health")
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("GET through the Service of a pod set not ready: %v, want connection refused", err)
		}
	})

	t.Run("deleting the Deployment stops the engine", func(t *testing.T) {
		p := k.lookup(ns, pod.Name)
		if p == nil {
			t.Fatal("the kubelet no longer runs the pod")
		}
		p.mu.Lock()
		proc := p.containers[p.main].proc
		p.mu.Unlock()
		if proc == nil {
			t.Fatal("no engine process")
		}
		if err := cs.AppsV1().Deployments(ns).Delete(t.Context(), "echo", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "pod gone and process ended", func(ctx context.Context) (bool, string, error) {
			_, err := cs.CoreV1().Pods(ns).Get(ctx, pod.Name, metav1.GetOptions{})
			if err != nil && !apierrors.IsNotFound(err) {
				return false, "", err
			}
			alive := processAlive(proc.Pid)
			return apierrors.IsNotFound(err) && !alive, fmt.Sprintf("pod get: %v, process alive: %v", err, alive), nil
		})
	})
}

// TestKubeletCrashLoop: an engine that cannot start (its workflow is
// invalid) is restarted with a back-off, and its status says so.
func TestKubeletCrashLoop(t *testing.T) {
	cfg := Config(t)
	cs := Clientset(t)
	ns := Namespace(t, "k8stest-crash")
	k := StartKubelet(t, cfg, KubeletOptions{})
	deployTentacle(t, cs, ns, k, "broken", "name: Not A Valid Name\nnodes: {}\n")
	pod := onlyPod(t, cs, ns, "broken")
	waitFor(t, "CrashLoopBackOff", func(ctx context.Context) (bool, string, error) {
		p, err := cs.CoreV1().Pods(ns).Get(ctx, pod.Name, metav1.GetOptions{})
		if err != nil {
			return false, "", err
		}
		s := containerStatus(p, "engine")
		term := s.LastTerminationState.Terminated
		ok := s.RestartCount >= 2 && !s.Ready && s.State.Waiting != nil && s.State.Waiting.Reason == "CrashLoopBackOff" &&
			term != nil && term.ExitCode == 1 && term.Reason == "Error"
		return ok, fmt.Sprintf("%+v", s), nil
	})
	prev := logs(t, cs, ns, pod.Name, corev1.PodLogOptions{Container: "engine", Previous: true})
	if !strings.Contains(prev, "workflow.yaml") {
		t.Errorf("the crashed engine's log does not say what is wrong with workflow.yaml:\n%s", prev)
	}
}

// fatalRecorder stands in for a test that Config fails.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (r *fatalRecorder) Helper() {}
func (r *fatalRecorder) Fatal(args ...any) {
	r.msg = fmt.Sprint(args...)
	runtime.Goexit()
}
func (r *fatalRecorder) Fatalf(format string, args ...any) {
	r.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func TestConfigFailsWithoutTheControlPlane(t *testing.T) {
	elsewhere := filepath.Join(t.TempDir(), "kubeconfig")
	err := os.WriteFile(elsewhere, []byte(`apiVersion: v1
kind: Config
clusters: [{name: prod, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: me, user: {token: secret}}]
contexts: [{name: prod, context: {cluster: prod, user: me}}]
current-context: prod
`), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, kubeconfig, want string
	}{
		{"unset", "", "KUBECONFIG is not set"},
		{"another cluster", elsewhere, "is not the test control plane"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("KUBECONFIG", tt.kubeconfig)
			r := &fatalRecorder{TB: t}
			done := make(chan struct{})
			go func() {
				defer close(done)
				Config(r)
			}()
			<-done
			if !strings.Contains(r.msg, NotRunning) || !strings.Contains(r.msg, tt.want) {
				t.Errorf("Config failed with %q, want %q and %q", r.msg, NotRunning, tt.want)
			}
		})
	}
}

func TestUniqueName(t *testing.T) {
	for _, prefix := range []string{"k8stest", "TestDeploy/with_sub-test", "", "---", strings.Repeat("x", 100)} {
		a, b := UniqueName(prefix), UniqueName(prefix)
		if errs := validation.IsDNS1123Label(a); len(errs) > 0 {
			t.Errorf("UniqueName(%q) = %q: %v", prefix, a, errs)
		}
		if a == b {
			t.Errorf("UniqueName(%q) twice gave %q", prefix, a)
		}
	}
}
