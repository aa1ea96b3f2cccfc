package k8s

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/kraken-ops/kraken/enclave"
	"github.com/kraken-ops/kraken/k8s/k8stest"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
)

// testEnclaveRole creates a ClusterRole to stand for the chart's enclave
// role, under a name of the test's own, and deletes it afterwards.
func testEnclaveRole(t *testing.T) string {
	t.Helper()
	cs := k8stest.Clientset(t)
	name := k8stest.UniqueName("kraken-enclave-test")
	ctx := enclaveCtx(t, 30*time.Second)
	_, err := cs.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	noErr(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		err := cs.RbacV1().ClusterRoles().Delete(ctx, name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("delete ClusterRole %s: %v", name, err)
		}
	})
	return name
}

func TestCheckAsAdmin(t *testing.T) {
	t.Parallel()
	role := testEnclaveRole(t)
	c := newEnclaveClient(t, k8stest.Config(t), func(c *Config) { c.EnclaveRole = role })
	ctx := enclaveCtx(t, time.Minute)
	// An enclave to check the per-enclave rights in.
	noErr(t, c.Provision(ctx, testEnclave(enclaveName(t, "enc-check")), testProvenance))
	_, gvisorErr := k8stest.Clientset(t).NodeV1().RuntimeClasses().Get(ctx, DefaultRuntimeClass, metav1.GetOptions{})

	r := c.Check(ctx)
	t.Logf("\n%s", r)
	if !r.OK() {
		t.Errorf("the admin fails the check: %v", r.Failed())
	}
	var rbac int
	for _, i := range r.Items {
		if i.Access != nil {
			rbac++
			if i.Status != CheckOK {
				t.Errorf("admin (system:masters) lacks %s: %s", i.Access.Resource, i.Title)
			}
		}
	}
	if rbac != len(RequiredAccess) {
		t.Errorf("%d RBAC items, want one per RequiredAccess entry (%d)", rbac, len(RequiredAccess))
	}
	out := r.String()
	// The test control plane has no gVisor: a warning, not a failure.
	// (Another test may have made the RuntimeClass; then it is a ✓.)
	if apierrors.IsNotFound(gvisorErr) {
		if !strings.Contains(out, "! RuntimeClass gvisor not found: tentacles run without gVisor isolation") {
			t.Errorf("missing gVisor is not reported as a warning:\n%s", out)
		}
		if !strings.Contains(out, "fix: install gVisor") {
			t.Errorf("missing gVisor has no fix:\n%s", out)
		}
	}
	for _, want := range []string{
		"✓ Kubernetes API at https://127.0.0.1:",
		"(v1.37.2), the bot acts as \"kube-testenv-admin\"",
		"✓ namespaces cluster-wide: get, list, watch, create",
		"✓ namespaces in enclave ",
		"✓ ClusterRole " + role + " exists",
		"✓ default enclave quota: requests 4 CPU / 8Gi memory, limits 8 CPU / 16Gi memory, 20 pods",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}

func TestCheckWithoutRights(t *testing.T) {
	t.Parallel()
	rc := k8stest.Config(t)
	rc.Impersonate = rest.ImpersonationConfig{UserName: k8stest.UniqueName("nobody")}
	c := newEnclaveClient(t, rc, nil)
	r := c.Check(enclaveCtx(t, time.Minute))
	t.Logf("\n%s", r)
	if r.OK() {
		t.Fatal("a user with no rights passes the check")
	}
	if r.Items[0].Status != CheckOK {
		t.Errorf("the API is reachable, yet: %s", r.Items[0].Title)
	}
	missing := map[string][]string{}
	for _, i := range r.Failed() {
		if i.Access != nil {
			missing[i.Access.Resource] = i.Missing
		}
	}
	for _, a := range RequiredAccess {
		if a.Scope == InEnclave {
			continue // this user can see no enclave to check in: one warning
		}
		if a.Resource == "selfsubjectaccessreviews" || a.Resource == "selfsubjectreviews" {
			continue // every authenticated user has these
		}
		if got := missing[a.Resource]; strings.Join(got, ",") != strings.Join(a.Verbs, ",") {
			t.Errorf("%s: missing %v reported, want all of %v", a.Resource, got, a.Verbs)
		}
	}
	out := r.String()
	for _, want := range []string{
		"✗ namespaces cluster-wide: missing get, list, watch, create",
		"fix: give \"" + rc.Impersonate.UserName + "\" get, list, watch, create on namespaces through the bot's ClusterRole",
		"✗ rolebindings.rbac.authorization.k8s.io cluster-wide: missing create, patch",
		"✗ clusterroles.rbac.authorization.k8s.io kraken-enclave cluster-wide: missing get, bind",
		"(resourceNames: [kraken-enclave])",
		"! rights in each enclave (namespaces, resourcequotas, limitranges, serviceaccounts, networkpolicies, configmaps, secrets, services, deployments, replicasets, pods, pods/log, events): not checked, the enclaves could not be listed",
		"! RuntimeClass gvisor: could not check: the bot may not read it",
		"problem(s) to fix",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}

func TestCheckUnreachable(t *testing.T) {
	t.Parallel()
	rc := k8stest.Config(t)
	rc.Host = "https://127.0.0.1:1" // nothing listens on port 1
	r := newEnclaveClient(t, rc, nil).Check(enclaveCtx(t, time.Minute))
	t.Logf("\n%s", r)
	if r.OK() || len(r.Items) != 1 {
		t.Fatalf("an unreachable API gives %d items, OK=%t; want one failure", len(r.Items), r.OK())
	}
	out := r.String()
	for _, want := range []string{"✗ Kubernetes API at https://127.0.0.1:1:", "the cluster can't be reached", "connection refused", "fix: make sure the cluster is up"} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "/version") {
		t.Errorf("the report repeats the request URL:\n%s", out)
	}
}

func TestCheckBadDefaultQuota(t *testing.T) {
	t.Parallel()
	c := newEnclaveClient(t, k8stest.Config(t), func(c *Config) {
		c.DefaultQuota = enclave.Quota{CPU: "1", DefaultCPU: "2", MaxMemory: "lots"}
	})
	r := c.Check(enclaveCtx(t, time.Minute))
	out := r.String()
	if r.OK() || !strings.Contains(out, `✗ default enclave quota: invalid quota: MaxMemory "lots" is not a quantity`) {
		t.Errorf("a bad default quota is not a failure:\n%s", out)
	}
}
