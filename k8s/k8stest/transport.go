package k8stest

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Transport routes http://<service>.<namespace>.svc.cluster.local:<port>/
// (also <service>.<namespace>.svc and <service>.<namespace>) to a ready
// engine of a pod this kubelet runs that the Service selects, as cluster
// DNS and kube-proxy would: the Service's port, its targetPort, the
// engine's local port. An unknown host fails like a DNS miss; a Service
// with no ready engine behind it refuses the connection.
func (k *Kubelet) Transport() http.RoundTripper { return k.transport }

func (k *Kubelet) dialService(ctx context.Context, network, addr string) (net.Conn, error) {
	host, portText, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Err: err}
	}
	noHost := &net.OpError{Op: "dial", Net: network, Err: &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}}
	refused := &net.OpError{Op: "dial", Net: network, Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	name, ns, ok := serviceHost(host)
	if !ok {
		return nil, noHost
	}
	svc, err := k.cs.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, noHost
	}
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Err: fmt.Errorf("service %s/%s: %w", ns, name, err)}
	}
	port, _ := strconv.Atoi(portText)
	var sp *corev1.ServicePort
	for i := range svc.Spec.Ports {
		if int(svc.Spec.Ports[i].Port) == port {
			sp = &svc.Spec.Ports[i]
		}
	}
	if sp == nil || len(svc.Spec.Selector) == 0 {
		return nil, refused
	}
	target := func(c *container) int { return targetPort(sp, c) }
	selector := labels.SelectorFromSet(svc.Spec.Selector)
	var ports []int
	k.mu.Lock()
	for _, p := range k.pods {
		if p.obj.Namespace == ns && selector.Matches(labels.Set(p.obj.Labels)) {
			if local, ok := p.endpoint(target); ok {
				ports = append(ports, local)
			}
		}
	}
	k.rr++
	rr := k.rr
	k.mu.Unlock()
	if len(ports) == 0 {
		return nil, refused
	}
	var d net.Dialer
	return d.DialContext(ctx, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[rr%len(ports)])))
}

// serviceHost splits a cluster DNS name of a Service.
func serviceHost(host string) (name, namespace string, ok bool) {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	for _, suffix := range []string{".svc.cluster.local", ".svc"} {
		if strings.HasSuffix(host, suffix) {
			host = strings.TrimSuffix(host, suffix)
			break
		}
	}
	name, namespace, ok = strings.Cut(host, ".")
	if !ok || name == "" || namespace == "" || strings.Contains(namespace, ".") {
		return "", "", false
	}
	return name, namespace, true
}

// targetPort is the container port a Service port leads to in c: a
// number, the port of c named so, or the Service port itself.
func targetPort(sp *corev1.ServicePort, c *container) int {
	switch {
	case sp.TargetPort.Type == intstr.String && sp.TargetPort.StrVal != "":
		for _, cp := range c.ports {
			if cp.Name == sp.TargetPort.StrVal {
				return int(cp.ContainerPort)
			}
		}
		return -1
	case sp.TargetPort.IntVal != 0:
		return int(sp.TargetPort.IntVal)
	}
	return int(sp.Port)
}
