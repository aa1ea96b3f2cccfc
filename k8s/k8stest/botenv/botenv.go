// Package botenv installs the bot's RBAC and admission policy, exactly as
// the Helm chart would, on the test control plane, and hands out the bot's
// ServiceAccount credentials: tests above the k8s package run the bot
// with nothing more than it has in a real cluster.
package botenv

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/kraken-ops/kraken/k8s"
	"github.com/kraken-ops/kraken/k8s/k8stest"
	admissionv1 "k8s.io/api/admissionregistration/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// Env is the chart's RBAC installed for one test under unique names, and
// the bot's ServiceAccount it grants to.
type Env struct {
	Options k8s.RBACOptions
	Admin   kubernetes.Interface
	// Rest acts as the bot: its ServiceAccount's token, nothing else.
	Rest *rest.Config
}

// Config is a k8s.Config for the bot of this Env.
func (e *Env) Config(t testing.TB) k8s.Config {
	return k8s.Config{
		Rest:              e.Rest,
		BotNamespace:      e.Options.Namespace,
		BotServiceAccount: e.Options.ServiceAccount,
		EnclaveRole:       e.Options.EnclaveRole(),
		IdentitiesSecret:  e.Options.IdentitiesSecret(),
		Image:             "ghcr.io/kraken-ops/kraken:test",
		Logger:            slog.New(slog.NewTextHandler(t.Output(), nil)),
	}
}

// Install applies BotRBAC for a bot ServiceAccount in a fresh namespace
// and returns once the API server enforces all of it: the bot holds its
// cluster-wide rights and the admission policy refuses what it must.
func Install(t testing.TB) *Env {
	t.Helper()
	ctx := Ctx(t, time.Minute)
	admin := k8stest.Clientset(t)
	ns := k8stest.Namespace(t, "kraken-bot")
	e := &Env{
		Admin: admin,
		Options: k8s.RBACOptions{
			// Unique, so parallel runs on the shared control plane do
			// not share (or delete) each other's cluster-scoped objects.
			Name:           k8stest.UniqueName("kraken-rbac"),
			Namespace:      ns,
			ServiceAccount: "kraken",
			Labels:         map[string]string{k8stest.LabelTest: "true"},
		},
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: e.Options.ServiceAccount}}
	if _, err := admin.CoreV1().ServiceAccounts(ns).Create(ctx, sa, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ApplyObjects(t, admin, k8s.BotRBAC(e.Options))
	// The chart creates the schedules' shared state; the bot may not.
	state := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: k8s.ScheduleStateConfigMap}}
	if _, err := admin.CoreV1().ConfigMaps(ns).Create(ctx, state, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// And the sign-ins' Secret, empty.
	ids := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: e.Options.IdentitiesSecret()}}
	if _, err := admin.CoreV1().Secrets(ns).Create(ctx, ids, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	e.Rest = TokenConfig(t, admin, ns, e.Options.ServiceAccount)
	cs, err := kubernetes.NewForConfig(e.Rest)
	if err != nil {
		t.Fatal(err)
	}
	// RBAC and admission policies reach the API server's caches a moment
	// after they are written.
	Eventually(t, ctx, "the bot's ClusterRole to take effect", func() error {
		_, err := cs.CoreV1().Namespaces().List(ctx, metav1.ListOptions{Limit: 1})
		return err
	})
	guard, err := k8s.New(e.Config(t))
	if err != nil {
		t.Fatal(err)
	}
	Eventually(t, ctx, "the admission policy to take effect", func() error { return guard.CheckGuard(ctx) })
	return e
}

// ApplyObjects creates objs as admin and deletes them when the test ends.
func ApplyObjects(t testing.TB, cs kubernetes.Interface, objs []runtime.Object) {
	t.Helper()
	ctx := Ctx(t, 30*time.Second)
	for _, obj := range objs {
		var err error
		var del func(context.Context) error
		none := metav1.DeleteOptions{}
		switch o := obj.(type) {
		case *rbacv1.ClusterRole:
			_, err = cs.RbacV1().ClusterRoles().Create(ctx, o, metav1.CreateOptions{})
			del = func(ctx context.Context) error { return cs.RbacV1().ClusterRoles().Delete(ctx, o.Name, none) }
		case *rbacv1.ClusterRoleBinding:
			_, err = cs.RbacV1().ClusterRoleBindings().Create(ctx, o, metav1.CreateOptions{})
			del = func(ctx context.Context) error { return cs.RbacV1().ClusterRoleBindings().Delete(ctx, o.Name, none) }
		case *rbacv1.Role:
			_, err = cs.RbacV1().Roles(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		case *rbacv1.RoleBinding:
			_, err = cs.RbacV1().RoleBindings(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		case *admissionv1.ValidatingAdmissionPolicy:
			_, err = cs.AdmissionregistrationV1().ValidatingAdmissionPolicies().Create(ctx, o, metav1.CreateOptions{})
			del = func(ctx context.Context) error {
				return cs.AdmissionregistrationV1().ValidatingAdmissionPolicies().Delete(ctx, o.Name, none)
			}
		case *admissionv1.ValidatingAdmissionPolicyBinding:
			_, err = cs.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().Create(ctx, o, metav1.CreateOptions{})
			del = func(ctx context.Context) error {
				return cs.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().Delete(ctx, o.Name, none)
			}
		default:
			t.Fatalf("applyObjects: unexpected %T", obj)
		}
		if err != nil {
			t.Fatalf("create %T: %v", obj, err)
		}
		// Namespaced objects go with their namespace.
		if del != nil {
			t.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				if err := del(ctx); err != nil && !apierrors.IsNotFound(err) {
					t.Errorf("cleanup %T: %v", obj, err)
				}
			})
		}
	}
}

// TokenConfig authenticates as the ServiceAccount with a real token, so
// the API server authenticates and authorizes the bot as it would in the
// cluster (the admin's client certificate is in system:masters, which
// RBAC never refuses).
func TokenConfig(t testing.TB, cs kubernetes.Interface, ns, sa string) *rest.Config {
	t.Helper()
	ctx := Ctx(t, 10*time.Second)
	hour := int64(3600)
	tr, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &hour}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rc := rest.AnonymousClientConfig(k8stest.Config(t))
	rc.BearerToken = tr.Status.Token
	rc.QPS, rc.Burst = 100, 200
	return rc
}

// Eventually retries f until it succeeds or ctx ends.
func Eventually(t testing.TB, ctx context.Context, what string, f func() error) {
	t.Helper()
	for {
		err := f()
		if err == nil {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v", what, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Ctx is a context that ends after d or with the test.
func Ctx(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
