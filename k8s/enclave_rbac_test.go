package k8s

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/kraken-ops/kraken/enclave"
	"github.com/kraken-ops/kraken/k8s/k8stest"
	admissionv1 "k8s.io/api/admissionregistration/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// The whole enclave life cycle as the bot itself, holding only the
// rights the chart gives it (BotRBAC, made from RequiredAccess) and held
// by its admission policy: what the admin-run tests show works, works
// with least privilege too, and the check agrees.
func TestEnclaveLifecycleWithTheBotsOwnRights(t *testing.T) {
	t.Parallel()
	admin := k8stest.Clientset(t)
	botNS := k8stest.Namespace(t, "kraken-bot")
	o := RBACOptions{Name: k8stest.UniqueName("kraken-test"), Namespace: botNS, ServiceAccount: "kraken"}
	applyRBAC(t, admin, BotRBAC(o))

	rc := k8stest.Config(t)
	rc.Impersonate = rest.ImpersonationConfig{
		UserName: o.Username(),
		Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:" + botNS, "system:authenticated"},
	}
	bot := newEnclaveClient(t, rc, func(c *Config) {
		c.BotNamespace, c.BotServiceAccount, c.EnclaveRole = botNS, o.ServiceAccount, o.EnclaveRole()
		c.IdentitiesSecret = o.IdentitiesSecret()
	})
	// RBAC takes effect when the authorizer's cache has the bindings, and
	// the admission policy when the API server's has the policy and its
	// binding (the check below fails until then).
	waitAllowed(t, bot.cs, authorizationv1.ResourceAttributes{Verb: "bind", Group: rbacv1.GroupName, Resource: "clusterroles", Name: o.EnclaveRole()})
	waitGuarded(t, bot)

	ctx := enclaveCtx(t, 2*time.Minute)
	name := enclaveName(t, "enc-asbot")
	e := testEnclave(name)
	noErr(t, bot.Provision(ctx, e, testProvenance))
	assertWholeEnclave(t, admin, name)
	noErr(t, bot.Provision(ctx, e, testProvenance))
	got, err := bot.Get(ctx, name)
	noErr(t, err)
	if !got.Ready {
		t.Errorf("provisioned as the bot: %+v", got)
	}
	if _, err := bot.List(ctx); err != nil {
		t.Errorf("List as the bot: %v", err)
	}
	noErr(t, bot.SetFrozen(ctx, name, true, testProvenance))
	noErr(t, bot.SetFrozen(ctx, name, false, testProvenance))

	// The enclave's RoleBinding gives the bot the enclave role there.
	waitAllowed(t, bot.cs, authorizationv1.ResourceAttributes{Verb: "create", Resource: "configmaps", Namespace: name})
	for i := range RequiredAccess {
		a := &RequiredAccess[i]
		if item := bot.checkAccess(ctx, a, name, "the bot"); item.Status != CheckOK {
			t.Errorf("the chart's RBAC lacks what RequiredAccess says: %s", item.Title)
		}
	}
	r := bot.Check(ctx)
	t.Logf("\n%s", r)
	for _, i := range r.Failed() {
		// Check samples the first ready enclave in the cluster, which in
		// the shared test cluster can belong to another test's bot.
		if i.Access == nil || i.Access.Scope != InEnclave {
			t.Errorf("check as the bot fails: %s", i.Title)
		}
	}

	// The admission policy keeps the bot out of namespaces it did not
	// make, whatever the names.
	taken := k8stest.Namespace(t, "enc-notbots")
	if err := bot.Provision(ctx, testEnclave(taken), testProvenance); !errors.Is(err, enclave.ErrNameTaken) {
		t.Errorf("Provision as the bot over a namespace not its own = %v, want ErrNameTaken", err)
	}

	noErr(t, bot.Deprovision(ctx, name, testProvenance))
}

// applyRBAC creates objs and deletes them when the test ends.
func applyRBAC(t *testing.T, cs kubernetes.Interface, objs []runtime.Object) {
	t.Helper()
	ctx := enclaveCtx(t, 30*time.Second)
	for _, obj := range objs {
		var err error
		var del func(context.Context) error
		switch o := obj.(type) {
		case *rbacv1.ClusterRole:
			_, err = cs.RbacV1().ClusterRoles().Create(ctx, o, metav1.CreateOptions{})
			del = func(ctx context.Context) error {
				return cs.RbacV1().ClusterRoles().Delete(ctx, o.Name, metav1.DeleteOptions{})
			}
		case *rbacv1.ClusterRoleBinding:
			_, err = cs.RbacV1().ClusterRoleBindings().Create(ctx, o, metav1.CreateOptions{})
			del = func(ctx context.Context) error {
				return cs.RbacV1().ClusterRoleBindings().Delete(ctx, o.Name, metav1.DeleteOptions{})
			}
		case *rbacv1.Role:
			_, err = cs.RbacV1().Roles(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
			del = func(ctx context.Context) error {
				return cs.RbacV1().Roles(o.Namespace).Delete(ctx, o.Name, metav1.DeleteOptions{})
			}
		case *rbacv1.RoleBinding:
			_, err = cs.RbacV1().RoleBindings(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
			del = func(ctx context.Context) error {
				return cs.RbacV1().RoleBindings(o.Namespace).Delete(ctx, o.Name, metav1.DeleteOptions{})
			}
		case *admissionv1.ValidatingAdmissionPolicy:
			_, err = cs.AdmissionregistrationV1().ValidatingAdmissionPolicies().Create(ctx, o, metav1.CreateOptions{})
			del = func(ctx context.Context) error {
				return cs.AdmissionregistrationV1().ValidatingAdmissionPolicies().Delete(ctx, o.Name, metav1.DeleteOptions{})
			}
		case *admissionv1.ValidatingAdmissionPolicyBinding:
			_, err = cs.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().Create(ctx, o, metav1.CreateOptions{})
			del = func(ctx context.Context) error {
				return cs.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().Delete(ctx, o.Name, metav1.DeleteOptions{})
			}
		default:
			t.Fatalf("applyRBAC: unexpected %T", obj)
		}
		noErr(t, err)
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := del(ctx); err != nil && !apierrors.IsNotFound(err) {
				t.Errorf("delete %T: %v", obj, err)
			}
		})
	}
}

// waitGuarded waits until the admission policy confines c's user: a
// policy and its binding reach the API server's admission a moment after
// they are written.
func waitGuarded(t *testing.T, c *Client) {
	t.Helper()
	ctx := enclaveCtx(t, 30*time.Second)
	for {
		err := c.CheckGuard(ctx)
		if err == nil {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the admission policy never took effect: %v", err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// waitAllowed asks, as the client's user, until attrs is allowed: RBAC
// changes reach the authorizer through a cache, a moment after the write.
func waitAllowed(t *testing.T, cs kubernetes.Interface, attrs authorizationv1.ResourceAttributes) {
	t.Helper()
	ctx := enclaveCtx(t, 30*time.Second)
	for {
		res, err := cs.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authorizationv1.SelfSubjectAccessReview{
			Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &attrs},
		}, metav1.CreateOptions{})
		if err == nil && res.Status.Allowed {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("never allowed %s: %v", fmt.Sprintf("%+v", attrs), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
