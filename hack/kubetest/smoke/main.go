// Command smoke exercises a real kube-apiserver (started by kube-testenv.sh)
// through client-go the way the chatops bot will: namespace, ResourceQuota,
// ConfigMap, Secret, Deployment, Service, NetworkPolicy, ServiceAccount,
// Role/RoleBinding, then proves RBAC is enforced with a ServiceAccount token
// (TokenRequest API) and with impersonation. With the controller-manager it
// also checks ReplicaSet/Pod creation and quota accounting; with a fake Node
// it simulates a "running" workload by patching pod status, and serves
// pods/log through a fake kubelet on 127.0.0.1.
//
// Usage: go run ./smoke -kubeconfig /path/admin.kubeconfig [-controllers=false]
package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	netv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/retry"
)

var (
	kubeconfig  = flag.String("kubeconfig", os.Getenv("KUBECONFIG"), "admin kubeconfig")
	controllers = flag.Bool("controllers", true, "kube-controller-manager (and kube-scheduler) are running")
	fakeNode    = flag.Bool("fake-node", true, "register a fake Node and simulate running pods (needs -controllers)")
	keep        = flag.Bool("keep", false, "do not delete the test namespace")
)

func must(err error, what string) {
	if err != nil {
		fmt.Printf("FAIL %s: %v\n", what, err)
		os.Exit(1)
	}
	fmt.Printf("ok   %s\n", what)
}

func main() {
	flag.Parse()
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	must(err, "load kubeconfig "+*kubeconfig)
	cs := kubernetes.NewForConfigOrDie(cfg)
	v, err := cs.Discovery().ServerVersion()
	must(err, "server version")
	fmt.Printf("     server %s\n", v.GitVersion)

	ns := fmt.Sprintf("smoke-%d", time.Now().UnixNano()%1000000)
	_, err = cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name: ns, Labels: map[string]string{"app.kubernetes.io/managed-by": "chatops-smoke"}}}, metav1.CreateOptions{})
	must(err, "create namespace "+ns)
	if !*keep {
		defer func() {
			// With the controller-manager, the namespace controller empties the
			// namespace and removes its finalizer; without it, it stays Terminating.
			// Pitfall: a pod bound to a node gets a graceful delete (30 s) that only
			// a kubelet completes, so it would stay Terminating; with no kubelet the
			// test must finish the delete itself (grace period 0), as done here.
			ctx := context.Background()
			err := cs.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{})
			if err == nil && *controllers {
				zero := int64(0)
				err = wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
					if pl, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{}); err == nil {
						for _, p := range pl.Items {
							if p.DeletionTimestamp != nil {
								_ = cs.CoreV1().Pods(ns).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
							}
						}
					}
					_, err := cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
					return apierrors.IsNotFound(err), nil
				})
			}
			fmt.Printf("     delete namespace %s (waited for it to be gone: %v): err=%v\n", ns, *controllers, err)
		}()
	}

	// ResourceQuota. Pitfall: quota admission only enforces what is in
	// status.hard, which the resourcequota controller (kube-controller-manager)
	// copies from spec.hard. Without the controller a quota is stored but never
	// enforced; with it, wait for status.hard before relying on enforcement.
	_, err = cs.CoreV1().ResourceQuotas(ns).Create(ctx, &corev1.ResourceQuota{
		ObjectMeta: metav1.ObjectMeta{Name: "team-quota"},
		Spec: corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{
			corev1.ResourcePods:           resource.MustParse("4"),
			corev1.ResourceRequestsCPU:    resource.MustParse("1"),
			corev1.ResourceRequestsMemory: resource.MustParse("1Gi"),
			corev1.ResourceSecrets:        resource.MustParse("2"),
			"count/deployments.apps":      resource.MustParse("2"),
		}},
	}, metav1.CreateOptions{})
	must(err, "create ResourceQuota")
	if *controllers {
		err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
			q, err := cs.CoreV1().ResourceQuotas(ns).Get(ctx, "team-quota", metav1.GetOptions{})
			return err == nil && len(q.Status.Hard) > 0, nil
		})
		must(err, "resourcequota controller filled status.hard")
	}

	_, err = cs.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "app-config"},
		Data: map[string]string{"LOG_LEVEL": "debug"}}, metav1.CreateOptions{})
	must(err, "create ConfigMap")
	_, err = cs.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "app-secret"},
		StringData: map[string]string{"token": "s3cr3t"}}, metav1.CreateOptions{})
	if *controllers {
		must(err, "create Secret")
		_, err = cs.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s2"}}, metav1.CreateOptions{})
		must(err, "create 2nd Secret")
		_, err = cs.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s3"}}, metav1.CreateOptions{})
		if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "exceeded quota") {
			must(fmt.Errorf("want quota Forbidden, got %v", err), "quota enforced on 3rd Secret")
		}
		fmt.Printf("ok   quota enforced: %v\n", err)
	} else {
		must(err, "create Secret (quota NOT enforced: no resourcequota controller)")
	}

	labels := map[string]string{"app": "web"}
	replicas := int32(2)
	_, err = cs.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				// Only the smoke's own fake Node: other fake Nodes (tests
				// sharing the control plane) may be up at the same time.
				Spec: corev1.PodSpec{NodeSelector: map[string]string{"kubernetes.io/hostname": "fake-node-" + ns}, Containers: []corev1.Container{{
					Name: "web", Image: "example.invalid/web:1.0",
					Ports: []corev1.ContainerPort{{ContainerPort: 8080}},
					Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
						corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("64Mi")}},
					EnvFrom: []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{
						LocalObjectReference: corev1.LocalObjectReference{Name: "app-config"}}}},
				}}},
			},
		},
	}, metav1.CreateOptions{})
	must(err, "create Deployment")

	svc, err := cs.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec:       corev1.ServiceSpec{Selector: labels, Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}}},
	}, metav1.CreateOptions{})
	must(err, "create Service")
	fmt.Printf("     service clusterIP %s (a stored value only: nothing routes to it)\n", svc.Spec.ClusterIP)

	tcp := corev1.ProtocolTCP
	port := intstr.FromInt32(8080)
	_, err = cs.NetworkingV1().NetworkPolicies(ns).Create(ctx, &netv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "web-allow-same-ns"},
		Spec: netv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: labels},
			PolicyTypes: []netv1.PolicyType{netv1.PolicyTypeIngress},
			Ingress: []netv1.NetworkPolicyIngressRule{{
				From:  []netv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{}}},
				Ports: []netv1.NetworkPolicyPort{{Protocol: &tcp, Port: &port}},
			}},
		},
	}, metav1.CreateOptions{})
	must(err, "create NetworkPolicy")

	// RBAC: a ServiceAccount that may only read pods (and their logs/events).
	_, err = cs.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "viewer"}}, metav1.CreateOptions{})
	must(err, "create ServiceAccount viewer")
	_, err = cs.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "pod-reader"},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"pods", "pods/log", "events"}, Verbs: []string{"get", "list", "watch"}},
		},
	}, metav1.CreateOptions{})
	must(err, "create Role pod-reader")
	_, err = cs.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "viewer-pod-reader"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "pod-reader"},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "viewer", Namespace: ns}},
	}, metav1.CreateOptions{})
	must(err, "create RoleBinding")

	exp := int64(600)
	tr, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, "viewer", &authnv1.TokenRequest{
		Spec: authnv1.TokenRequestSpec{ExpirationSeconds: &exp}}, metav1.CreateOptions{})
	must(err, "TokenRequest for viewer")
	saCfg := rest.AnonymousClientConfig(cfg)
	saCfg.BearerToken = tr.Status.Token
	saCS := kubernetes.NewForConfigOrDie(saCfg)
	rev, err := saCS.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authnv1.SelfSubjectReview{}, metav1.CreateOptions{})
	must(err, "SelfSubjectReview with SA token")
	fmt.Printf("     token authenticates as %s\n", rev.Status.UserInfo.Username)
	// RBAC can lag a moment behind the RoleBinding (authorizer cache).
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := saCS.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		return err == nil, nil
	})
	must(err, "SA token: list pods allowed")
	_, err = saCS.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{})
	if !apierrors.IsForbidden(err) {
		must(fmt.Errorf("want Forbidden, got %v", err), "SA token: list secrets forbidden")
	}
	fmt.Printf("ok   SA token: list secrets forbidden: %v\n", err)
	err = saCS.AppsV1().Deployments(ns).Delete(ctx, "web", metav1.DeleteOptions{})
	if !apierrors.IsForbidden(err) {
		must(fmt.Errorf("want Forbidden, got %v", err), "SA token: delete deployment forbidden")
	}
	fmt.Printf("ok   SA token: delete deployment forbidden\n")

	impCfg := rest.CopyConfig(cfg)
	impCfg.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:" + ns + ":viewer"}
	impCS := kubernetes.NewForConfigOrDie(impCfg)
	_, err = impCS.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "x"}}, metav1.CreateOptions{})
	if !apierrors.IsForbidden(err) {
		must(fmt.Errorf("want Forbidden, got %v", err), "impersonated SA: create configmap forbidden")
	}
	fmt.Printf("ok   impersonated SA: create configmap forbidden\n")
	sar, err := cs.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authzv1.SubjectAccessReview{Spec: authzv1.SubjectAccessReviewSpec{
		User: "system:serviceaccount:" + ns + ":viewer", Groups: []string{"system:serviceaccounts"},
		ResourceAttributes: &authzv1.ResourceAttributes{Namespace: ns, Verb: "get", Resource: "pods", Subresource: "log"}}}, metav1.CreateOptions{})
	must(err, "SubjectAccessReview")
	fmt.Printf("     SAR viewer get pods/log allowed=%v\n", sar.Status.Allowed)

	if !*controllers {
		fmt.Printf("PASS (apiserver only) in %s\n", time.Since(start).Round(time.Millisecond))
		return
	}

	// Controllers: Deployment -> ReplicaSet -> Pods (Pending: no nodes/kubelet).
	var pods []corev1.Pod
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		pl, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		if err != nil {
			return false, nil
		}
		pods = pl.Items
		return len(pods) == 2, nil
	})
	rsl, _ := cs.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{})
	must(err, fmt.Sprintf("Deployment created %d ReplicaSet(s) and %d Pods", len(rsl.Items), len(pods)))
	for _, p := range pods {
		fmt.Printf("     pod %s phase=%s node=%q\n", p.Name, p.Status.Phase, p.Spec.NodeName)
	}
	q, _ := cs.CoreV1().ResourceQuotas(ns).Get(ctx, "team-quota", metav1.GetOptions{})
	fmt.Printf("     quota used: pods=%s requests.cpu=%s\n", q.Status.Used.Pods(), q.Status.Used.Name(corev1.ResourceRequestsCPU, resource.DecimalSI))

	if *fakeNode {
		simulateRunning(ctx, cs, ns)
	}
	evs, err := saCS.CoreV1().Events(ns).List(ctx, metav1.ListOptions{})
	must(err, fmt.Sprintf("SA token: list events (%d)", len(evs.Items)))
	for i, e := range evs.Items {
		if i < 6 {
			fmt.Printf("     event %s %s/%s: %s\n", e.Reason, e.InvolvedObject.Kind, e.InvolvedObject.Name, e.Message)
		}
	}
	fmt.Printf("PASS in %s\n", time.Since(start).Round(time.Millisecond))
}

// simulateRunning registers a Node that points at a fake kubelet (an HTTPS
// server in this process on 127.0.0.1), lets the scheduler bind the pods (or
// binds them itself), then writes Running/Ready pod status as a kubelet would.
func simulateRunning(ctx context.Context, cs *kubernetes.Clientset, ns string) {
	kubelet := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The apiserver proxies GET pods/log to /containerLogs/{ns}/{pod}/{container}.
		if strings.HasPrefix(r.URL.Path, "/containerLogs/") {
			fmt.Fprintf(w, "fake log line 1 for %s\nfake log line 2 (query %s)\n", r.URL.Path, r.URL.RawQuery)
			return
		}
		http.NotFound(w, r)
	}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(err, "fake kubelet listen")
	kubelet.Listener = ln
	kubelet.TLS = &tls.Config{}
	kubelet.StartTLS()
	defer kubelet.Close()
	kport, _ := strconv.Atoi(strings.TrimPrefix(kubelet.URL[strings.LastIndex(kubelet.URL, ":"):], ":"))

	nodeName := "fake-node-" + ns
	_, err = cs.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: nodeName,
		Labels: map[string]string{"kubernetes.io/hostname": nodeName, "kubernetes.io/os": "linux"}}}, metav1.CreateOptions{})
	must(err, "create fake Node "+nodeName)
	defer cs.CoreV1().Nodes().Delete(context.Background(), nodeName, metav1.DeleteOptions{})
	// Controllers (ttl, node lifecycle) touch a new Node at once: retry on conflict.
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		node, err := cs.CoreV1().Nodes().Get(ctx, nodeName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		now := metav1.Now()
		alloc := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("4"), corev1.ResourceMemory: resource.MustParse("8Gi"), corev1.ResourcePods: resource.MustParse("110")}
		node.Status = corev1.NodeStatus{
			Capacity: alloc, Allocatable: alloc,
			Conditions:      []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady", LastHeartbeatTime: now, LastTransitionTime: now}},
			Addresses:       []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "127.0.0.1"}},
			DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: int32(kport)}},
			NodeInfo:        corev1.NodeSystemInfo{KubeletVersion: "v1.37.2", OperatingSystem: "linux", Architecture: "amd64"},
		}
		_, err = cs.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{})
		return err
	})
	must(err, "set fake Node Ready (kubelet endpoint 127.0.0.1:"+strconv.Itoa(kport)+")")

	// Wait for the scheduler to bind the pods; bind them ourselves if no scheduler.
	deadline := time.Now().Add(20 * time.Second)
	for {
		pl, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		if err != nil {
			must(err, "list pods")
		}
		bound := 0
		for _, p := range pl.Items {
			if p.Spec.NodeName != "" {
				bound++
			} else if time.Now().After(deadline) {
				err := cs.CoreV1().Pods(ns).Bind(ctx, &corev1.Binding{ObjectMeta: metav1.ObjectMeta{Name: p.Name},
					Target: corev1.ObjectReference{Kind: "Node", Name: nodeName}}, metav1.CreateOptions{})
				must(err, "bind "+p.Name+" by hand (no scheduler)")
			}
		}
		if bound == len(pl.Items) && bound > 0 {
			fmt.Printf("ok   %d pods bound to %s\n", bound, nodeName)
			break
		}
		time.Sleep(200 * time.Millisecond)
	}

	pl, _ := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
	for i := range pl.Items {
		err := retry.RetryOnConflict(retry.DefaultRetry, func() error { return setRunning(ctx, cs, ns, pl.Items[i].Name) })
		must(err, "patch pod "+pl.Items[i].Name+" status Running/Ready")
	}
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		d, err := cs.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
		return err == nil && d.Status.AvailableReplicas == 2, nil
	})
	must(err, "Deployment reports 2/2 available")
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		sl, err := cs.DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{LabelSelector: "kubernetes.io/service-name=web"})
		return err == nil && len(sl.Items) > 0, nil
	})
	must(err, "EndpointSlice created for Service web")

	rc, err := cs.CoreV1().Pods(ns).GetLogs(pl.Items[0].Name, &corev1.PodLogOptions{Container: "web", TailLines: ptr(int64(10))}).Stream(ctx)
	if err != nil {
		fmt.Printf("FAIL pods/log through fake kubelet: %v\n", err)
		os.Exit(1)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	fmt.Printf("ok   pods/log via apiserver -> fake kubelet:\n%s", indent(string(b)))
}

func ptr[T any](v T) *T { return &v }

func indent(s string) string {
	return "     | " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n     | ") + "\n"
}

// setRunning writes the status a kubelet would write for a started, ready pod.
func setRunning(ctx context.Context, cs *kubernetes.Clientset, ns, name string) error {
	p, err := cs.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	t := metav1.Now()
	p.Status.Phase = corev1.PodRunning
	p.Status.StartTime = &t
	p.Status.Conditions = []corev1.PodCondition{
		{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: t},
		{Type: corev1.PodInitialized, Status: corev1.ConditionTrue, LastTransitionTime: t},
		{Type: corev1.ContainersReady, Status: corev1.ConditionTrue, LastTransitionTime: t},
		{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: t},
	}
	started := true
	p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "web", Ready: true, Started: &started,
		Image: "example.invalid/web:1.0", ImageID: "example.invalid/web@sha256:0", ContainerID: "containerd://fake-" + p.Name,
		State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: t}}}}
	_, err = cs.CoreV1().Pods(ns).UpdateStatus(ctx, p, metav1.UpdateOptions{})
	return err
}
