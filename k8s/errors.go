package k8s

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"regexp"
	"slices"
	"strings"
	"syscall"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// Errors callers branch on, beside the enclave package's.
var (
	// ErrUnreachable means the Kubernetes API did not answer: the
	// cluster is down, restarting, or the address is wrong. Retrying
	// later is the remedy.
	ErrUnreachable error = &plainError{"the cluster can't be reached", "the platform's cluster can't be reached right now; try again in a minute"}
	// ErrTerminating means the enclave's namespace is being deleted, so
	// nothing can be created in it until it is gone.
	ErrTerminating error = &plainError{"enclave is being removed, try again shortly", "the enclave is being removed"}
	// ErrQuotaInvalid means a quota (an enclave's or the platform
	// default) has quantities that don't parse or don't fit together.
	ErrQuotaInvalid = errors.New("invalid quota")
)

// plainError is a sentinel that also says, in Plain, what the person who
// asked should read: the bot shows people Plain and logs Error for the
// operators.
type plainError struct{ msg, plain string }

func (e *plainError) Error() string { return e.msg }
func (e *plainError) Plain() string { return e.plain }

// ForbiddenError says which permission the bot lacks. The API's own
// message names the user, verb and resource; this keeps them apart so the
// fix can be spelled out.
type ForbiddenError struct {
	Op        string // what the bot was doing
	User      string
	Verb      string
	Resource  string // "pods/log" for a subresource
	Group     string // "" is the core group
	Namespace string // "" is cluster scope
	Err       error  // the API error
}

func (e *ForbiddenError) Error() string {
	res := e.Resource
	if e.Group != "" {
		res += "." + e.Group
	}
	what := fmt.Sprintf("%s %s at cluster scope", e.Verb, res)
	switch {
	case e.Resource == "namespaces" && e.Group == "" && e.Namespace != "":
		// RBAC files a request for namespace x itself under namespace x.
		what = fmt.Sprintf("%s namespace %s", e.Verb, e.Namespace)
	case e.Namespace != "":
		what = fmt.Sprintf("%s %s in namespace %s", e.Verb, res, e.Namespace)
	}
	return fmt.Sprintf("%s: the bot (%s) is not allowed to %s; grant %q on %q to its role (see the Helm chart's RBAC, or run the cluster check)",
		e.Op, e.User, what, e.Verb, res)
}

func (e *ForbiddenError) Unwrap() error { return e.Err }

// Plain is what the person who asked reads: the fix is the operators'.
func (e *ForbiddenError) Plain() string {
	return "the bot lacks a permission it needs in the cluster; the platform team can fix that (the bot's log says which)"
}

// QuotaExceededError says which of an enclave's quota resources ran out.
type QuotaExceededError struct {
	Op    string
	Quota string // the ResourceQuota's name
	// Resources are the ones that ran out, each with what was asked,
	// what is used and the limit, e.g. {Name: "pods", Requested: "1",
	// Used: "2", Limit: "2"}.
	Resources []QuotaUse
	Err       error
}

// QuotaUse is one resource of an exceeded quota.
type QuotaUse struct {
	Name, Requested, Used, Limit string
}

func (e *QuotaExceededError) Error() string {
	parts := make([]string, 0, len(e.Resources))
	for _, r := range e.Resources {
		parts = append(parts, fmt.Sprintf("%s (asked for %s more, %s of %s in use)", r.Name, r.Requested, r.Used, r.Limit))
	}
	what := strings.Join(parts, ", ")
	if what == "" {
		what = "a resource"
	}
	return fmt.Sprintf("%s: the enclave's quota is used up: %s; free some up or ask an admin to raise the quota", e.Op, what)
}

func (e *QuotaExceededError) Unwrap() error { return e.Err }

// Plain is what the person who asked reads.
func (e *QuotaExceededError) Plain() string {
	names := strings.Join(e.ExceededResources(), ", ")
	if names == "" {
		names = "a resource"
	}
	return "the enclave's quota is used up (" + names + "); undeploy something, or ask the platform team for more"
}

// ExceededResources lists the names of the exhausted resources.
func (e *QuotaExceededError) ExceededResources() []string {
	names := make([]string, len(e.Resources))
	for i, r := range e.Resources {
		names[i] = r.Name
	}
	return names
}

// StuckTerminatingError is returned when a namespace being deleted was
// not gone by the deadline. Finalizers and Conditions say what holds it.
type StuckTerminatingError struct {
	Namespace string
	// Finalizers still on the namespace itself (spec.finalizers and
	// metadata.finalizers).
	Finalizers []string
	// Conditions are the namespace's true deletion conditions, as
	// "Type: message".
	Conditions []string
	Err        error // why waiting stopped, usually context.DeadlineExceeded
}

func (e *StuckTerminatingError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "namespace %s is stuck terminating", e.Namespace)
	if len(e.Conditions) > 0 {
		fmt.Fprintf(&b, ": %s", strings.Join(e.Conditions, "; "))
	}
	if len(e.Finalizers) > 0 {
		fmt.Fprintf(&b, " (namespace finalizers left: %s)", strings.Join(e.Finalizers, ", "))
	}
	if len(e.Conditions) == 0 {
		b.WriteString("; the namespace controller may still be deleting its content, or may not be running")
	}
	b.WriteString("; remove the finalizers named above from the objects that still carry them once what they guard is cleaned up, then deprovision again")
	return b.String()
}

func (e *StuckTerminatingError) Unwrap() error { return e.Err }

// Plain is what the person who asked reads.
func (e *StuckTerminatingError) Plain() string {
	return "removing the enclave is taking longer than it should; the platform team needs to look at it"
}

// deletionConditions are the namespace conditions the namespace
// controller sets while something blocks deletion.
var deletionConditions = []corev1.NamespaceConditionType{
	corev1.NamespaceDeletionDiscoveryFailure,
	corev1.NamespaceDeletionGVParsingFailure,
	corev1.NamespaceDeletionContentFailure,
	corev1.NamespaceContentRemaining,
	corev1.NamespaceFinalizersRemaining,
}

func stuckTerminating(ns *corev1.Namespace, cause error) *StuckTerminatingError {
	e := &StuckTerminatingError{Namespace: ns.Name, Err: cause}
	for _, f := range ns.Spec.Finalizers {
		e.Finalizers = append(e.Finalizers, string(f))
	}
	e.Finalizers = append(e.Finalizers, ns.Finalizers...)
	for _, c := range ns.Status.Conditions {
		if c.Status == corev1.ConditionTrue && slices.Contains(deletionConditions, c.Type) {
			e.Conditions = append(e.Conditions, fmt.Sprintf("%s: %s", c.Type, c.Message))
		}
	}
	return e
}

// apiError turns a client-go error into one a person can act on, keeping
// the original reachable with errors.Is/As. op says what the bot was
// doing, e.g. "provision enclave x: apply ResourceQuota enclave-quota".
func apiError(op string, err error) error {
	if err == nil {
		return nil
	}
	var status apierrors.APIStatus
	isStatus := errors.As(err, &status)
	switch {
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%s: %w", op, err)
	case !isStatus && unreachable(err):
		return fmt.Errorf("%s: %w (%s)", op, ErrUnreachable, rootCause(err))
	case apierrors.IsServiceUnavailable(err):
		return fmt.Errorf("%s: %w (the API server is not ready: %s)", op, ErrUnreachable, status.Status().Message)
	case apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause):
		return fmt.Errorf("%s: %w (%w)", op, ErrTerminating, err)
	case apierrors.IsForbidden(err):
		msg := status.Status().Message
		if q := parseQuotaExceeded(msg); q != nil {
			q.Op, q.Err = op, err
			return q
		}
		if f := parseForbidden(msg); f != nil {
			f.Op, f.Err = op, err
			return f
		}
		// Admission refusals (PodSecurity, LimitRange) carry a message
		// that already says what is wrong.
		return fmt.Errorf("%s: refused: %w", op, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// unreachable tells network failures (refused, reset, timed out, TLS
// cut) from answers of the API server.
func unreachable(err error) bool {
	var netErr net.Error
	return errors.As(err, &netErr) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// rootCause is the innermost error's text: "connect: connection refused"
// rather than the whole request URL and method.
func rootCause(err error) string {
	var op *net.OpError
	if errors.As(err, &op) {
		return op.Error()
	}
	for {
		next := errors.Unwrap(err)
		if next == nil {
			return err.Error()
		}
		err = next
	}
}

// The RBAC authorizer's wording, e.g.
//
//	User "bob" cannot patch resource "namespaces" in API group "" at the cluster scope
//	User "bob" cannot get resource "pods/log" in API group "" in the namespace "x"
var forbiddenRE = regexp.MustCompile(`User "([^"]*)" cannot (\S+) resource "([^"]*)"(?: in API group "([^"]*)")?(?: in the namespace "([^"]*)")?`)

func parseForbidden(msg string) *ForbiddenError {
	m := forbiddenRE.FindStringSubmatch(msg)
	if m == nil {
		return nil
	}
	return &ForbiddenError{User: m[1], Verb: m[2], Resource: m[3], Group: m[4], Namespace: m[5]}
}

// Quota admission's wording, e.g.
//
//	pods "p2" is forbidden: exceeded quota: enclave-quota, requested: pods=1, used: pods=1, limited: pods=1
//
// with several resources separated by commas in each list.
var quotaRE = regexp.MustCompile(`exceeded quota: ([^,]+), requested: (.*), used: (.*), limited: (.*)$`)

func parseQuotaExceeded(msg string) *QuotaExceededError {
	m := quotaRE.FindStringSubmatch(msg)
	if m == nil {
		return nil
	}
	requested, used, limited := quotaList(m[2]), quotaList(m[3]), quotaList(m[4])
	e := &QuotaExceededError{Quota: m[1]}
	for _, name := range slices.Sorted(maps.Keys(requested)) {
		e.Resources = append(e.Resources, QuotaUse{Name: name, Requested: requested[name], Used: used[name], Limit: limited[name]})
	}
	return e
}

func quotaList(s string) map[string]string {
	out := map[string]string{}
	for kv := range strings.SplitSeq(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if ok {
			out[k] = v
		}
	}
	return out
}
