package k8s

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"syscall"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// The API errors here are built the way the API server builds them; the
// tests against the control plane show the real ones map the same way.
func TestAPIError(t *testing.T) {
	refused := &url.Error{Op: "Patch", URL: "https://10.0.0.1:6443/api/v1/namespaces/x?fieldManager=kraken",
		Err: &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}}
	terminating := apierrors.NewForbidden(schema.GroupResource{Resource: "configmaps"}, "c", errors.New("unable to create new content in namespace x because it is being terminated"))
	terminating.ErrStatus.Details.Causes = []metav1.StatusCause{{Type: corev1.NamespaceTerminatingCause, Message: "namespace x is being terminated", Field: "metadata.namespace"}}
	for _, tc := range []struct {
		name string
		err  error
		is   error  // errors.Is target, if any
		as   any    // errors.As target type, if any
		text string // in the message
		not  string // not in the message
	}{
		{name: "refused", err: refused, is: ErrUnreachable, text: "op: the cluster can't be reached (dial tcp: connect: connection refused)", not: "https://"},
		{name: "EOF", err: &url.Error{Op: "Get", URL: "https://x", Err: io.EOF}, is: ErrUnreachable},
		{name: "apiserver starting", err: apierrors.NewServiceUnavailable("not ready"), is: ErrUnreachable, text: "the API server is not ready"},
		{name: "deadline", err: fmt.Errorf("wait: %w", context.DeadlineExceeded), is: context.DeadlineExceeded},
		{name: "terminating", err: terminating, is: ErrTerminating, text: "being removed, try again shortly"},
		{
			name: "forbidden",
			err: apierrors.NewForbidden(schema.GroupResource{Group: "apps", Resource: "deployments"}, "d",
				errors.New(`User "system:serviceaccount:kraken-system:kraken" cannot patch resource "deployments" in API group "apps" in the namespace "enc"`)),
			as:   new(*ForbiddenError),
			text: `op: the bot (system:serviceaccount:kraken-system:kraken) is not allowed to patch deployments.apps in namespace enc; grant "patch" on "deployments.apps"`,
		},
		{
			name: "forbidden at cluster scope",
			err: apierrors.NewForbidden(schema.GroupResource{Resource: "namespaces"}, "",
				errors.New(`User "bob" cannot list resource "namespaces" in API group "" at the cluster scope`)),
			as:   new(*ForbiddenError),
			text: "is not allowed to list namespaces at cluster scope",
		},
		{
			name: "quota, several resources",
			err: apierrors.NewForbidden(schema.GroupResource{Resource: "pods"}, "p",
				errors.New("exceeded quota: enclave-quota, requested: limits.cpu=2,requests.cpu=1, used: limits.cpu=7,requests.cpu=3, limited: limits.cpu=8,requests.cpu=4")),
			as:   new(*QuotaExceededError),
			text: "op: the enclave's quota is used up: limits.cpu (asked for 2 more, 7 of 8 in use), requests.cpu (asked for 1 more, 3 of 4 in use)",
		},
		{
			name: "admission refusal keeps its words",
			err: apierrors.NewForbidden(schema.GroupResource{Resource: "pods"}, "p",
				errors.New(`violates PodSecurity "restricted:latest": runAsNonRoot != true`)),
			text: `op: refused: pods "p" is forbidden: violates PodSecurity`,
		},
		{name: "other", err: apierrors.NewConflict(schema.GroupResource{Resource: "namespaces"}, "x", errors.New("boom")), text: "op: Operation cannot be fulfilled"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := apiError("op", tc.err)
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("%v is not %v", err, tc.is)
			}
			if tc.as != nil && !errors.As(err, tc.as) {
				t.Errorf("%v is not a %T", err, tc.as)
			}
			if !errors.Is(err, tc.err) && !errors.Is(err, ErrUnreachable) {
				t.Errorf("%v does not wrap the original error", err)
			}
			if !strings.Contains(err.Error(), tc.text) {
				t.Errorf("%q\ndoes not contain %q", err, tc.text)
			}
			if tc.not != "" && strings.Contains(err.Error(), tc.not) {
				t.Errorf("%q\ncontains %q", err, tc.not)
			}
		})
	}
	if apiError("op", nil) != nil {
		t.Error("apiError(nil) is not nil")
	}
}

func TestStuckTerminatingError(t *testing.T) {
	ns := &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{Name: "enc", Finalizers: []string{"example.com/x"}},
		Spec:       corev1.NamespaceSpec{Finalizers: []corev1.FinalizerName{corev1.FinalizerKubernetes}},
		Status: corev1.NamespaceStatus{Conditions: []corev1.NamespaceCondition{
			{Type: corev1.NamespaceDeletionDiscoveryFailure, Status: corev1.ConditionFalse, Message: "all good"},
			{Type: corev1.NamespaceFinalizersRemaining, Status: corev1.ConditionTrue, Message: "Some content in the namespace has finalizers remaining: kraken.dev/test-hold in 1 resource instances"},
		}},
	}
	err := fmt.Errorf("deprovision: %w", stuckTerminating(ns, context.DeadlineExceeded))
	var stuck *StuckTerminatingError
	if !errors.As(err, &stuck) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("%v is not a stuck error wrapping the deadline", err)
	}
	for _, want := range []string{
		"namespace enc is stuck terminating: NamespaceFinalizersRemaining: Some content in the namespace has finalizers remaining: kraken.dev/test-hold",
		"(namespace finalizers left: kubernetes, example.com/x)",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q\ndoes not contain %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "all good") {
		t.Errorf("a condition that is not true is reported: %v", err)
	}
}

// The RBAC cache's lag after a new RoleBinding is rarely long enough to
// see against the test control plane, so the retry is shown with
// refusals made the way the API server makes them.
func TestWhenAuthorized(t *testing.T) {
	rbac := apierrors.NewForbidden(schema.GroupResource{Resource: "resourcequotas"}, "enclave-quota",
		errors.New(`User "system:serviceaccount:kraken-system:kraken" cannot patch resource "resourcequotas" in API group "" in the namespace "enc"`))
	quota := apierrors.NewForbidden(schema.GroupResource{Resource: "pods"}, "p",
		errors.New("exceeded quota: enclave-quota, requested: pods=1, used: pods=1, limited: pods=1"))
	c := &Client{log: slog.New(slog.DiscardHandler)}
	for _, tc := range []struct {
		name    string
		errs    []error // returned by successive calls; nil after them
		calls   int
		wantErr error
	}{
		{"allowed at once", nil, 1, nil},
		{"refused by RBAC until the binding is seen", []error{rbac, rbac}, 3, nil},
		{"refused for another reason: no retry", []error{quota}, 1, quota},
		{"other errors: no retry", []error{context.Canceled}, 1, context.Canceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			err := c.whenAuthorized(t.Context(), func(context.Context) error {
				calls++
				if calls <= len(tc.errs) {
					return tc.errs[calls-1]
				}
				return nil
			})
			if !errors.Is(err, tc.wantErr) || calls != tc.calls {
				t.Errorf("whenAuthorized = %v after %d calls, want %v after %d", err, calls, tc.wantErr, tc.calls)
			}
		})
	}
}
