package k8s_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kraken-ops/kraken/bot/login"
	"github.com/kraken-ops/kraken/enclave"
	"github.com/kraken-ops/kraken/k8s"
	"github.com/kraken-ops/kraken/k8s/k8stest"
	"github.com/kraken-ops/kraken/k8s/k8stest/botenv"
	"github.com/kraken-ops/kraken/tentacle"
	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	nodev1 "k8s.io/api/node/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// botEnv is the chart's RBAC installed for one test under unique names,
// and the bot's ServiceAccount it grants to.
type botEnv struct {
	opts  k8s.RBACOptions
	admin kubernetes.Interface
	// rest and cs act as the bot: its ServiceAccount's token, nothing else.
	rest *rest.Config
	cs   kubernetes.Interface
}

// installBotRBAC applies BotRBAC, exactly as the chart would (see
// botenv.Install).
func installBotRBAC(t *testing.T) *botEnv {
	t.Helper()
	e := botenv.Install(t)
	cs, err := kubernetes.NewForConfig(e.Rest)
	if err != nil {
		t.Fatal(err)
	}
	return &botEnv{opts: e.Options, admin: e.Admin, rest: e.Rest, cs: cs}
}

func applyObjects(t *testing.T, cs kubernetes.Interface, objs []runtime.Object) {
	botenv.ApplyObjects(t, cs, objs)
}

func tokenConfig(t *testing.T, cs kubernetes.Interface, ns, sa string) *rest.Config {
	return botenv.TokenConfig(t, cs, ns, sa)
}

func newBotClient(t *testing.T, e *botEnv, tweak func(*k8s.Config)) *k8s.Client {
	t.Helper()
	cfg := k8s.Config{
		Rest:              e.rest,
		BotNamespace:      e.opts.Namespace,
		BotServiceAccount: e.opts.ServiceAccount,
		EnclaveRole:       e.opts.EnclaveRole(),
		IdentitiesSecret:  e.opts.IdentitiesSecret(),
		Image:             "ghcr.io/kraken-ops/kraken:test",
		Logger:            slog.New(slog.NewTextHandler(t.Output(), nil)),
	}
	if tweak != nil {
		tweak(&cfg)
	}
	c, err := k8s.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestBotRBACLeastPrivilege holds the rules to their shape, so that a
// permission added to RequiredAccess lands where it is harmless or is
// refused here with the reason. What the bot does in a namespace belongs
// in the enclave role, which only reaches namespaces it made; the
// cluster-wide role may only hold what is safe in every namespace or
// what the admission policy confines.
func TestBotRBACLeastPrivilege(t *testing.T) {
	o := k8s.RBACOptions{Name: "kraken", Namespace: "kraken-system", ServiceAccount: "kraken"}
	clusterWide := map[string][]string{
		// Reading namespace metadata; creating one only with the enclave
		// labels (admission policy).
		"namespaces": {"get", "list", "watch", "create"},
		// Only in enclave namespaces, only the enclave role, only to the
		// bot (admission policy).
		"rbac.authorization.k8s.io/rolebindings": {"create", "patch"},
		// Only with resourceNames: the enclave role (checked below).
		"rbac.authorization.k8s.io/clusterroles":        {"get", "bind"},
		"node.k8s.io/runtimeclasses":                    {"get"},
		"authorization.k8s.io/selfsubjectaccessreviews": {"create"},
		"authentication.k8s.io/selfsubjectreviews":      {"create"},
	}
	// Its own namespace holds its Secrets and its ServiceAccount's
	// tokens: there it may touch nothing but the leader election's Lease
	// and the one ConfigMap of the schedules' shared state (by name).
	botNamespace := map[string][]string{
		"coordination.k8s.io/leases": {"get", "create", "update"},
		"configmaps":                 {"get", "update"},
		"secrets":                    {"get", "update"},
	}
	// Never, even inside an enclave: these reach beyond it (tokens for
	// other identities, a shell in pods, the node, RBAC itself).
	neverInEnclave := map[string]bool{
		"serviceaccounts/token": true, "pods/exec": true, "pods/attach": true, "pods/portforward": true,
		"pods/proxy": true, "services/proxy": true, "nodes": true, "nodes/proxy": true,
		"rbac.authorization.k8s.io/roles": true, "rbac.authorization.k8s.io/clusterroles": true,
		"rbac.authorization.k8s.io/clusterrolebindings": true,
	}
	neverVerb := map[string]bool{"*": true, "escalate": true, "impersonate": true, "bind": true}

	for _, obj := range k8s.BotRBAC(o) {
		var rules []rbacv1.PolicyRule
		var kind, name string
		switch r := obj.(type) {
		case *rbacv1.ClusterRole:
			rules, kind, name = r.Rules, "ClusterRole", r.Name
		case *rbacv1.Role:
			rules, kind, name = r.Rules, "Role", r.Name
		default:
			continue
		}
		for _, rule := range rules {
			for _, g := range rule.APIGroups {
				for _, res := range rule.Resources {
					key := res
					if g != "" {
						key = g + "/" + res
					}
					if g == "*" || res == "*" || strings.HasSuffix(res, "/*") {
						t.Errorf("%s %s: wildcard in %s", kind, name, key)
					}
					for _, verb := range rule.Verbs {
						switch name {
						case o.Name:
							if kind == "Role" {
								// In its own namespace the bot needs only the
								// leader election's Lease.
								if !slices.Contains(botNamespace[key], verb) {
									t.Errorf("the bot's own Role grants %s %s; it needs only %v in its namespace", verb, key, botNamespace)
								}
								if key == "configmaps" && !slices.Equal(rule.ResourceNames, []string{k8s.ScheduleStateConfigMap}) {
									t.Errorf("the bot's own Role grants %s on configmaps %v; only on %s", verb, rule.ResourceNames, k8s.ScheduleStateConfigMap)
								}
								if key == "secrets" && !slices.Equal(rule.ResourceNames, []string{o.IdentitiesSecret()}) {
									t.Errorf("the bot's own Role grants %s on secrets %v; only on %s", verb, rule.ResourceNames, o.IdentitiesSecret())
								}
								continue
							}
							if !slices.Contains(clusterWide[key], verb) {
								t.Errorf("the bot's ClusterRole grants %s %s in every namespace; move it to the enclave role (Scope InEnclave in RequiredAccess), which reaches only enclave namespaces", verb, key)
							}
							if key == "rbac.authorization.k8s.io/clusterroles" && !slices.Equal(rule.ResourceNames, []string{o.EnclaveRole()}) {
								t.Errorf("the bot's ClusterRole grants %s on clusterroles %v; only on %s", verb, rule.ResourceNames, o.EnclaveRole())
							}
						case o.EnclaveRole():
							if neverInEnclave[key] || neverVerb[verb] {
								t.Errorf("the enclave role grants %s %s", verb, key)
							}
							if key == "rbac.authorization.k8s.io/rolebindings" && verb != "get" && verb != "list" && verb != "watch" {
								t.Errorf("the enclave role grants %s rolebindings; writing them is the ClusterRole's, under the admission policy", verb)
							}
						}
					}
				}
			}
		}
	}
}

// TestBotOperationsUnderChartRBAC runs every operation the bot has, as
// the bot's ServiceAccount with nothing but the chart's RBAC: each must
// succeed, and together they must use every verb the chart grants.
//
// Some paths are not driven here, because they need a race or a failure
// to be taken; each needs only verbs a driven path uses too, so the run
// still covers every grant:
//   - Provision losing the namespace create to someone else (namespaces
//     get, as every Provision does);
//   - Deploy losing its revision to a concurrent deploy (configmaps get,
//     as Rollback does), or failing after it (configmaps delete, as
//     Undeploy does);
//   - Deploy pruning revisions beyond MaxRevisions (configmaps delete);
//   - Deprovision's watch expiring, or its deadline passing (namespaces
//     get);
//   - WaitReady's watch ending (deployments and pods list and watch, as
//     every WaitReady does);
//   - Logs of a tentacle with no pod (deployments get, as Status does);
//   - Rollback to the previous revision with rev 0 (configmaps list);
//   - SetSecret making the tentacle's Secret again when it went missing
//     (secrets create, as Deploy's apply does).
//
// A path that needs a verb nothing here uses must be driven here, not
// let off.
func TestBotOperationsUnderChartRBAC(t *testing.T) {
	t.Parallel()
	e := installBotRBAC(t)
	ctx := testCtx(t, 4*time.Minute)
	kubelet := k8stest.StartKubelet(t, k8stest.Config(t), k8stest.KubeletOptions{})
	used := &accessRecorder{}
	e.rest = rest.CopyConfig(e.rest)
	e.rest.Wrap(used.wrap)
	c := newBotClient(t, e, func(cfg *k8s.Config) {
		cfg.NodeSelector = kubelet.NodeSelector()
		cfg.RunTransport = kubelet.Transport()
	})
	tc, err := k8s.NewTentacles(c)
	if err != nil {
		t.Fatal(err)
	}
	p := enclave.Provenance{Actor: "U0001", Channel: "C0001", At: time.Now()}
	name := k8stest.UniqueName("rbac-ops")
	k8stest.CleanupNamespace(t, name)
	defer used.check(t, name, e.opts.Namespace)

	step := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s as the bot: %v", what, err)
		}
	}

	// The enclave side.
	e1 := enclave.Enclave{
		Name:    name,
		Channel: enclave.Channel{TeamID: "T0001", ID: "C0001", Name: "rbac"},
		Owner:   "U0001",
	}
	step("Provision", c.Provision(ctx, e1, p))
	step("Provision again (converge)", c.Provision(ctx, e1, p))
	got, err := c.Get(ctx, name)
	step("Get", err)
	if !got.Ready {
		t.Errorf("Get after Provision: not ready: %+v", got)
	}
	all, err := c.List(ctx)
	step("List enclaves", err)
	if !slices.ContainsFunc(all, func(x enclave.Enclave) bool { return x.Name == name }) {
		t.Errorf("List does not include %s", name)
	}
	step("SetFrozen(true)", c.SetFrozen(ctx, name, true, p))
	step("SetFrozen(false)", c.SetFrozen(ctx, name, false, p))
	updated, err := c.Update(ctx, name, func(e *enclave.Enclave) error {
		e.Members, e.Mode = append(e.Members, "U0002"), enclave.ModeTeamRun
		return nil
	}, p)
	step("Update", err)
	if !slices.Contains(updated.Members, "U0002") || updated.Mode != enclave.ModeTeamRun {
		t.Errorf("Update as the bot recorded %+v", updated)
	}

	// The tentacle side.
	tname := "greeter"
	b1 := testBundle(t, tname, "hello")
	rev1, err := tc.Deploy(ctx, name, b1, p)
	step("Deploy", err)
	_, err = tc.WaitReady(ctx, name, tname)
	step("WaitReady", err)
	_, err = tc.Status(ctx, name, tname)
	step("Status", err)
	list, err := tc.List(ctx, name)
	step("List tentacles", err)
	if len(list) != 1 {
		t.Errorf("List tentacles: %d, want 1", len(list))
	}
	out, err := tc.Run(ctx, name, tname, json.RawMessage(`{"name":"rbac"}`))
	step("Run", err)
	if !strings.Contains(string(out), "hello, rbac") {
		t.Errorf("Run returned %s", out)
	}
	logs, err := tc.Logs(ctx, name, tname, tentacle.LogOptions{TailLines: 10})
	step("Logs", err)
	if _, err := io.ReadAll(logs); err != nil {
		t.Errorf("reading logs: %v", err)
	}
	logs.Close()
	_, err = tc.Events(ctx, name, tname)
	step("Events", err)
	step("Restart", tc.Restart(ctx, name, tname, p))
	step("SetSecret", tc.SetSecret(ctx, name, tname, "token", "rbac-secret-value", p))
	step("SetSecret removing it", tc.SetSecret(ctx, name, tname, "token", "", p))
	rev2, err := tc.Deploy(ctx, name, testBundle(t, tname, "hi"), p)
	step("Deploy a second revision", err)
	revs, err := tc.Revisions(ctx, name, tname)
	step("Revisions", err)
	_, err = tc.Files(ctx, name, tname, rev1.Number)
	step("Files", err)
	if len(revs) < 2 {
		t.Errorf("Revisions: %d, want 2 (%d and %d)", len(revs), rev1.Number, rev2.Number)
	}
	_, err = tc.Rollback(ctx, name, tname, rev1.Number, p)
	step("Rollback", err)
	_, err = tc.WaitReady(ctx, name, tname)
	step("WaitReady after the rollback", err)
	step("Undeploy", tc.Undeploy(ctx, name, tname, p))

	// What the bot checks about itself at start.
	step("CheckGuard", c.CheckGuard(ctx))
	report := c.Check(ctx)
	for _, i := range report.Failed() {
		// Check tries the in-enclave rights in the first ready enclave it
		// lists, which on the shared test cluster may be another test's
		// bot's; the operations above used them for real in this one.
		if i.Access == nil || i.Access.Scope != k8s.InEnclave {
			t.Errorf("Check as the bot fails: %s\n%s", i.Title, report)
		}
	}

	// Leader election, in the bot's own namespace: take the lease (get,
	// create), hold it, release it (update).
	leading := make(chan struct{})
	var once sync.Once
	leadCtx, endLead := context.WithCancel(ctx)
	led := make(chan error, 1)
	go func() {
		led <- c.Lead(leadCtx, k8s.LeaderConfig{LeaseDuration: 3 * time.Second, RenewDeadline: 2 * time.Second, RetryPeriod: 500 * time.Millisecond},
			func(ctx context.Context) { once.Do(func() { close(leading) }); <-ctx.Done() })
	}()
	select {
	case <-leading:
	case <-ctx.Done():
		t.Fatal("the bot never took the leader lease")
	}
	endLead()
	step("Lead", <-led)
	holder, err := c.LeaseHolder(ctx, "")
	step("LeaseHolder", err)
	if holder != "" {
		t.Errorf("the lease is held by %q after Lead returned, want it released", holder)
	}

	// The schedules' shared state, in its own namespace: read it (get),
	// and change it with compare-and-swap (get, update).
	state := c.ScheduleState()
	_, err = state.Load(ctx)
	step("ScheduleState.Load", err)
	step("ScheduleState.Update", state.Update(ctx, func(cur []byte) ([]byte, error) { return append(cur, 'x'), nil }))

	// The sign-ins, in its own namespace: read one (get), and change one
	// with compare-and-swap (get, update).
	ids, err := c.Identities(testKeyring(t))
	step("Identities", err)
	step("Identities.Update", ids.Update(ctx, "T1/UALEX", func(login.Record, bool) (login.Record, bool, error) {
		return login.Record{Link: login.Link{Subject: "alex"}}, true, nil
	}))
	_, _, err = ids.Get(ctx, "T1/UALEX")
	step("Identities.Get", err)

	step("Deprovision", c.Deprovision(ctx, name, p))
	if _, err := c.Get(ctx, name); !errors.Is(err, enclave.ErrNotFound) {
		t.Errorf("Get after Deprovision: %v, want ErrNotFound", err)
	}
}

// TestBotRefusedOutsideItsEnclaves tries, as the bot, what it must never
// be able to do; the API server must answer each with 403 Forbidden.
func TestBotRefusedOutsideItsEnclaves(t *testing.T) {
	t.Parallel()
	e := installBotRBAC(t)
	ctx := testCtx(t, time.Minute)
	admin, bot := e.admin, e.cs

	// Someone else's namespace, with a Secret in it.
	other := k8stest.Namespace(t, "not-an-enclave")
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "db"}, StringData: map[string]string{"password": "x"}}
	if _, err := admin.CoreV1().Secrets(other).Create(ctx, secret, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// An enclave as Provision leaves it, made by the admin so that this
	// test stands on the RBAC alone.
	enc := k8stest.Namespace(t, "rbac-enclave")
	mkEnclave(t, admin, e.opts, enc)

	refused := func(what string, err error) {
		t.Helper()
		if !apierrors.IsForbidden(err) {
			t.Errorf("%s: want 403 Forbidden, got %v", what, err)
			return
		}
		t.Logf("refused: %s: %v", what, err)
	}
	allowed := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Errorf("%s: the bot should be allowed this, got %v", what, err)
		}
	}
	kube := metav1.NamespaceSystem
	dry := metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}
	dryPatch := metav1.PatchOptions{DryRun: []string{metav1.DryRunAll}}
	dryDelete := metav1.DeleteOptions{DryRun: []string{metav1.DryRunAll}}
	labelPatch := func(k string, v *string) []byte {
		b, _ := json.Marshal(map[string]any{"metadata": map[string]any{"labels": map[string]any{k: v}}})
		return b
	}
	kraken, privileged := k8s.ManagedBy, "privileged"
	enclaveRoleBinding := func(ns string, role rbacv1.RoleRef, subject rbacv1.Subject) *rbacv1.RoleBinding {
		return &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{GenerateName: "escalate-", Namespace: ns},
			RoleRef:    role,
			Subjects:   []rbacv1.Subject{subject},
		}
	}
	enclaveRole := rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: e.opts.EnclaveRole()}
	clusterAdmin := rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "cluster-admin"}
	self := rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Name: e.opts.ServiceAccount, Namespace: e.opts.Namespace}
	// Writes are dry runs: if a refusal regressed, nothing would change.

	// Secrets outside enclaves.
	_, err := bot.CoreV1().Secrets(kube).List(ctx, metav1.ListOptions{})
	refused("list Secrets in kube-system", err)
	_, err = bot.CoreV1().Secrets(other).Get(ctx, "db", metav1.GetOptions{})
	refused("get a Secret in a namespace that is not an enclave", err)
	_, err = bot.CoreV1().Secrets(e.opts.Namespace).List(ctx, metav1.ListOptions{})
	refused("list Secrets in the bot's own namespace", err)
	_, err = bot.CoreV1().Secrets("").List(ctx, metav1.ListOptions{})
	refused("list Secrets cluster-wide", err)

	// Anything in kube-system.
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "kraken-was-here"}}
	_, err = bot.CoreV1().ConfigMaps(kube).Create(ctx, cm, dry)
	refused("create a ConfigMap in kube-system", err)
	_, err = bot.CoreV1().ConfigMaps(kube).Patch(ctx, "kube-root-ca.crt", types.MergePatchType, []byte(`{"data":{"x":"y"}}`), dryPatch)
	refused("patch a ConfigMap in kube-system", err)
	refused("delete a ConfigMap in kube-system", bot.CoreV1().ConfigMaps(kube).Delete(ctx, "kube-root-ca.crt", dryDelete))
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "kraken-was-here"},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"a": "b"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"a": "b"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
			},
		},
	}
	_, err = bot.AppsV1().Deployments(kube).Create(ctx, dep, dry)
	refused("create a Deployment in kube-system", err)
	_, err = bot.AppsV1().Deployments(kube).Patch(ctx, "coredns", types.MergePatchType, []byte(`{"spec":{"replicas":0}}`), dryPatch)
	refused("patch a Deployment in kube-system", err)
	refused("delete a Deployment in kube-system", bot.AppsV1().Deployments(kube).Delete(ctx, "coredns", dryDelete))
	_, err = bot.AppsV1().Deployments(other).Create(ctx, dep, dry)
	refused("create a Deployment in a namespace that is not an enclave", err)
	// What an enclave is made of must not be writable elsewhere either: a
	// zero quota or a deny-all policy in kube-system takes the cluster
	// down, and a ServiceAccount there is an identity to borrow.
	zero := resource.MustParse("0")
	_, err = bot.CoreV1().ResourceQuotas(kube).Create(ctx, &corev1.ResourceQuota{
		ObjectMeta: metav1.ObjectMeta{Name: "kraken-was-here"},
		Spec:       corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{corev1.ResourcePods: zero}},
	}, dry)
	refused("create a ResourceQuota in kube-system", err)
	_, err = bot.CoreV1().LimitRanges(kube).Create(ctx, &corev1.LimitRange{
		ObjectMeta: metav1.ObjectMeta{Name: "kraken-was-here"},
		Spec: corev1.LimitRangeSpec{Limits: []corev1.LimitRangeItem{{
			Type: corev1.LimitTypeContainer, Max: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1Mi")},
		}}},
	}, dry)
	refused("create a LimitRange in kube-system", err)
	_, err = bot.NetworkingV1().NetworkPolicies(kube).Create(ctx, &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "kraken-was-here"},
		Spec:       networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress}},
	}, dry)
	refused("create a deny-all NetworkPolicy in kube-system", err)
	_, err = bot.CoreV1().ServiceAccounts(kube).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "kraken-was-here"}}, dry)
	refused("create a ServiceAccount in kube-system", err)
	_, err = bot.CoreV1().ServiceAccounts(kube).Patch(ctx, "default", types.MergePatchType, []byte(`{"metadata":{"labels":{"x":"y"}}}`), dryPatch)
	refused("patch a ServiceAccount in kube-system", err)

	// Namespaces that are not enclaves, and the labels that make one.
	_, err = bot.CoreV1().Namespaces().Patch(ctx, kube, types.MergePatchType, labelPatch(k8s.LabelManagedBy, &kraken), dryPatch)
	refused("label kube-system as an enclave", err)
	refused("delete kube-system", bot.CoreV1().Namespaces().Delete(ctx, kube, dryDelete))
	_, err = bot.CoreV1().Namespaces().Patch(ctx, other, types.MergePatchType, labelPatch(k8s.LabelManagedBy, &kraken), dryPatch)
	refused("adopt someone else's namespace by labeling it", err)
	refused("delete someone else's namespace", bot.CoreV1().Namespaces().Delete(ctx, other, dryDelete))
	_, err = bot.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: k8stest.UniqueName("unlabeled")}}, dry)
	refused("create a namespace without the managed-by label", err)
	_, err = bot.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name:   k8stest.UniqueName("no-pod-security"),
		Labels: map[string]string{k8s.LabelManagedBy: k8s.ManagedBy},
	}}, dry)
	refused("create an enclave namespace without Pod Security enforcement", err)
	_, err = bot.CoreV1().Namespaces().Patch(ctx, enc, types.MergePatchType, labelPatch(k8s.LabelManagedBy, nil), dryPatch)
	refused("remove the managed-by label from an enclave", err)
	_, err = bot.CoreV1().Namespaces().Patch(ctx, enc, types.MergePatchType, labelPatch(k8s.LabelPodSecurity, &privileged), dryPatch)
	refused("lower an enclave's Pod Security level", err)

	// RBAC escalation.
	_, err = bot.RbacV1().RoleBindings(kube).Create(ctx, enclaveRoleBinding(kube, enclaveRole, self), dry)
	refused("bind the enclave role to itself in kube-system", err)
	_, err = bot.RbacV1().RoleBindings(other).Create(ctx, enclaveRoleBinding(other, enclaveRole, self), dry)
	refused("bind the enclave role to itself in a namespace that is not an enclave", err)
	_, err = bot.RbacV1().RoleBindings(enc).Create(ctx, enclaveRoleBinding(enc, enclaveRole,
		rbacv1.Subject{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "mallory"}), dry)
	refused("bind the enclave role to someone else in an enclave", err)
	_, err = bot.RbacV1().RoleBindings(enc).Create(ctx, enclaveRoleBinding(enc, rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "view"}, self), dry)
	refused("bind another role to itself in an enclave", err)
	for _, ns := range []string{enc, kube, other} {
		_, err = bot.RbacV1().RoleBindings(ns).Create(ctx, enclaveRoleBinding(ns, clusterAdmin, self), dry)
		refused("bind cluster-admin to itself in "+ns, err)
	}
	_, err = bot.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: k8stest.UniqueName("escalate")}}, dry)
	refused("create a ClusterRole", err)
	_, err = bot.RbacV1().ClusterRoles().Patch(ctx, e.opts.EnclaveRole(), types.JSONPatchType,
		[]byte(`[{"op":"add","path":"/rules/-","value":{"apiGroups":["*"],"resources":["*"],"verbs":["*"]}}]`), dryPatch)
	refused("widen the enclave role", err)
	for _, role := range []rbacv1.RoleRef{clusterAdmin, enclaveRole} {
		_, err = bot.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{GenerateName: "escalate-"},
			RoleRef:    role,
			Subjects:   []rbacv1.Subject{self},
		}, dry)
		refused("create a ClusterRoleBinding to "+role.Name, err)
	}
	_, err = bot.CoreV1().ServiceAccounts(enc).CreateToken(ctx, "default", &authenticationv1.TokenRequest{}, dry)
	refused("mint a token for a ServiceAccount in an enclave", err)

	// ConfigMaps in its own namespace other than the schedules' state,
	// that one's name elsewhere, and making or removing it.
	own := e.opts.Namespace
	if _, err := admin.CoreV1().ConfigMaps(own).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "other"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.CoreV1().ConfigMaps(other).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: k8s.ScheduleStateConfigMap}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err = bot.CoreV1().ConfigMaps(own).Get(ctx, "other", metav1.GetOptions{})
	refused("get another ConfigMap in the bot's own namespace", err)
	_, err = bot.CoreV1().ConfigMaps(own).Update(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "other"}}, metav1.UpdateOptions{DryRun: []string{metav1.DryRunAll}})
	refused("update another ConfigMap in the bot's own namespace", err)
	_, err = bot.CoreV1().ConfigMaps(own).List(ctx, metav1.ListOptions{})
	refused("list ConfigMaps in the bot's own namespace", err)
	_, err = bot.CoreV1().ConfigMaps(own).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "kraken-new"}}, dry)
	refused("create a ConfigMap in the bot's own namespace", err)
	refused("delete the schedules' state", bot.CoreV1().ConfigMaps(own).Delete(ctx, k8s.ScheduleStateConfigMap, dryDelete))
	_, err = bot.CoreV1().ConfigMaps(own).Patch(ctx, k8s.ScheduleStateConfigMap, types.MergePatchType, []byte(`{"data":{"x":"y"}}`), dryPatch)
	refused("patch the schedules' state (only get and update, with compare-and-swap)", err)
	_, err = bot.CoreV1().ConfigMaps(other).Get(ctx, k8s.ScheduleStateConfigMap, metav1.GetOptions{})
	refused("get a ConfigMap of the state's name in another namespace", err)
	_, err = bot.CoreV1().ConfigMaps(other).Update(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: k8s.ScheduleStateConfigMap}}, metav1.UpdateOptions{DryRun: []string{metav1.DryRunAll}})
	refused("update a ConfigMap of the state's name in another namespace", err)
	_, err = bot.CoreV1().ConfigMaps(own).Get(ctx, k8s.ScheduleStateConfigMap, metav1.GetOptions{})
	allowed("get the schedules' state", err)

	// Secrets in its own namespace other than the sign-ins' (its
	// ServiceAccount's tokens live there), that one's name elsewhere, and
	// making, listing, patching or removing it.
	idSecret := e.opts.IdentitiesSecret()
	if _, err := admin.CoreV1().Secrets(own).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "other"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.CoreV1().Secrets(other).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: idSecret}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err = bot.CoreV1().Secrets(own).Get(ctx, "other", metav1.GetOptions{})
	refused("get another Secret in the bot's own namespace", err)
	_, err = bot.CoreV1().Secrets(own).Update(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "other"}}, metav1.UpdateOptions{DryRun: []string{metav1.DryRunAll}})
	refused("update another Secret in the bot's own namespace", err)
	_, err = bot.CoreV1().Secrets(own).List(ctx, metav1.ListOptions{})
	refused("list Secrets in the bot's own namespace", err)
	_, err = bot.CoreV1().Secrets(own).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "kraken-new"}}, dry)
	refused("create a Secret in the bot's own namespace", err)
	refused("delete the sign-ins' Secret", bot.CoreV1().Secrets(own).Delete(ctx, idSecret, dryDelete))
	_, err = bot.CoreV1().Secrets(own).Patch(ctx, idSecret, types.MergePatchType, []byte(`{"data":{"x":"eQ=="}}`), dryPatch)
	refused("patch the sign-ins' Secret (only get and update, with compare-and-swap)", err)
	_, err = bot.CoreV1().Secrets(other).Get(ctx, idSecret, metav1.GetOptions{})
	refused("get a Secret of the sign-ins' name in another namespace", err)
	_, err = bot.CoreV1().Secrets(other).Update(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: idSecret}}, metav1.UpdateOptions{DryRun: []string{metav1.DryRunAll}})
	refused("update a Secret of the sign-ins' name in another namespace", err)
	_, err = bot.CoreV1().Secrets(own).Get(ctx, idSecret, metav1.GetOptions{})
	allowed("get the sign-ins' Secret", err)

	// Its own guard.
	refused("delete the admission policy", bot.AdmissionregistrationV1().ValidatingAdmissionPolicies().Delete(ctx, e.opts.PolicyName(), dryDelete))
	refused("delete the admission policy's binding", bot.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().Delete(ctx, e.opts.PolicyName(), dryDelete))

	// Cluster-wide objects beyond its own.
	_, err = bot.NodeV1().RuntimeClasses().Create(ctx, &nodev1.RuntimeClass{ObjectMeta: metav1.ObjectMeta{Name: k8stest.UniqueName("rc")}, Handler: "runc"}, dry)
	refused("create a RuntimeClass", err)
	_, err = bot.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: k8stest.UniqueName("node")}}, dry)
	refused("create a Node", err)
	_, err = bot.CoreV1().PersistentVolumes().Create(ctx, &corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: k8stest.UniqueName("pv")}}, dry)
	refused("create a PersistentVolume", err)

	// And the two rights the policy is there for still work where they
	// should: the bot's own RoleBinding in an enclave, and a new enclave
	// namespace.
	_, err = bot.RbacV1().RoleBindings(enc).Create(ctx, enclaveRoleBinding(enc, enclaveRole, self), dry)
	allowed("bind the enclave role to itself in an enclave", err)
	_, err = bot.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name:   k8stest.UniqueName("new-enclave"),
		Labels: map[string]string{k8s.LabelManagedBy: k8s.ManagedBy, k8s.LabelPodSecurity: "restricted"},
	}}, dry)
	allowed("create an enclave namespace", err)
}

// TestBotRBACNeedsTheAdmissionPolicy shows why the chart installs the
// ValidatingAdmissionPolicy: a second ServiceAccount with the same
// ClusterRole, which the policy does not cover, can bind the enclave role
// in kube-system, and CheckGuard says so.
func TestBotRBACNeedsTheAdmissionPolicy(t *testing.T) {
	t.Parallel()
	e := installBotRBAC(t)
	ctx := testCtx(t, time.Minute)
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "unguarded"}}
	if _, err := e.admin.CoreV1().ServiceAccounts(e.opts.Namespace).Create(ctx, sa, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	applyObjects(t, e.admin, []runtime.Object{&rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: e.opts.Name + "-unguarded", Labels: e.opts.Labels},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: e.opts.Name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: sa.Name, Namespace: e.opts.Namespace}},
	}})
	unguarded := &botEnv{opts: e.opts, admin: e.admin, rest: tokenConfig(t, e.admin, e.opts.Namespace, sa.Name)}
	unguarded.opts.ServiceAccount = sa.Name
	c := newBotClient(t, unguarded, nil)
	// Wait for the binding, then expect the unsafe answer.
	var err error
	deadline := time.Now().Add(30 * time.Second)
	for err = c.CheckGuard(ctx); err == nil && time.Now().Before(deadline); err = c.CheckGuard(ctx) {
		time.Sleep(100 * time.Millisecond)
	}
	if !errors.Is(err, k8s.ErrUnguarded) {
		t.Fatalf("CheckGuard without the admission policy: %v, want ErrUnguarded", err)
	}
}

// mkEnclave makes ns what Provision makes of an enclave namespace, as far
// as RBAC is concerned: the labels and the bot's RoleBinding.
func mkEnclave(t *testing.T, admin kubernetes.Interface, o k8s.RBACOptions, ns string) {
	t.Helper()
	ctx := testCtx(t, 30*time.Second)
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"labels": map[string]string{
		k8s.LabelManagedBy: k8s.ManagedBy, k8s.LabelEnclave: ns, k8s.LabelPodSecurity: "restricted",
	}}})
	if _, err := admin.CoreV1().Namespaces().Patch(ctx, ns, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	rb := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: k8s.EnclaveBotRoleBinding, Namespace: ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: o.EnclaveRole()},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: o.ServiceAccount, Namespace: o.Namespace}},
	}
	if _, err := admin.RbacV1().RoleBindings(ns).Create(ctx, rb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Wait until the bot holds the enclave role there.
	bot := tokenConfig(t, admin, o.Namespace, o.ServiceAccount)
	cs, err := kubernetes.NewForConfig(bot)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, ctx, "the enclave RoleBinding to take effect", func() error {
		r, err := cs.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authorizationv1.SelfSubjectAccessReview{
			Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authorizationv1.ResourceAttributes{
				Namespace: ns, Verb: "patch", Resource: "namespaces", Name: ns,
			}},
		}, metav1.CreateOptions{})
		if err == nil && !r.Status.Allowed {
			err = errors.New("not allowed yet")
		}
		return err
	})
}

// testBundle is a one-node tentacle that greets.
func testBundle(t *testing.T, name, greeting string) *tentacle.Bundle {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"workflow.yaml": "name: " + name + "\nversion: \"1.0\"\ndescription: Greets.\nnodes:\n  greet:\n    path: ./nodes/greet.ts\nconfig:\n  greeting: " + greeting + "\n",
		"nodes/greet.ts": "export default async function run(ctx, input) {\n" +
			"  ctx.log.info(\"greeting\", { who: input.name });\n" +
			"  return { text: ctx.config.greeting + \", \" + input.name };\n}\n",
	}
	for p, content := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := tentacle.LoadBundle(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func eventually(t *testing.T, ctx context.Context, what string, f func() error) {
	botenv.Eventually(t, ctx, what, f)
}

func testCtx(t *testing.T, d time.Duration) context.Context { return botenv.Ctx(t, d) }

// accessRecorder notes what RBAC checked for every request the bot made,
// to tell which grants the operations never used.
type accessRecorder struct {
	mu   sync.Mutex
	seen map[rbacCheck]bool
}

// rbacCheck is one verb on one resource in one namespace, as the API
// server's authorizer sees a request. Namespace is "" for cluster-scoped
// resources and for lists and watches of them; a request on a Namespace
// object itself is filed under that namespace, as RBAC files it.
type rbacCheck struct {
	namespace, group, resource, verb string
}

func (a *accessRecorder) wrap(next http.RoundTripper) http.RoundTripper {
	return roundTripper(func(r *http.Request) (*http.Response, error) {
		resp, err := next.RoundTrip(r)
		// A request RBAC refused used no grant; any other answer (404 and
		// 409 too) came after RBAC allowed it.
		if err != nil || resp.StatusCode == http.StatusForbidden {
			return resp, err
		}
		a.mu.Lock()
		defer a.mu.Unlock()
		if a.seen == nil {
			a.seen = map[rbacCheck]bool{}
		}
		for _, c := range accessOf(r) {
			a.seen[c] = true
		}
		return resp, err
	})
}

// accessOf maps a request to what RBAC checks for it. A server-side
// apply is a patch that creates the object when it is missing, so it
// counts as both. Writing a RoleBinding makes the API server check bind
// on the role it refers to (the bot does not hold every right in the
// enclave role before the binding exists).
func accessOf(r *http.Request) []rbacCheck {
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	var group string
	switch {
	case len(parts) >= 3 && parts[0] == "api":
		parts = parts[2:]
	case len(parts) >= 4 && parts[0] == "apis":
		group, parts = parts[1], parts[3:]
	default:
		return nil // discovery, /version: no RBAC rule of the bot's
	}
	var ns string
	if len(parts) >= 3 && parts[0] == "namespaces" {
		ns, parts = parts[1], parts[2:]
	} else if len(parts) == 2 && parts[0] == "namespaces" && group == "" {
		ns = parts[1] // a namespace's own object is authorized inside it
	}
	res, named := parts[0], len(parts) > 1
	if len(parts) > 2 {
		res += "/" + parts[2]
	}
	var verbs []string
	switch r.Method {
	case http.MethodGet:
		switch {
		case r.URL.Query().Get("watch") == "true":
			verbs = []string{"watch"}
		case named:
			verbs = []string{"get"}
		default:
			verbs = []string{"list"}
		}
	case http.MethodPost:
		verbs = []string{"create"}
	case http.MethodPut:
		verbs = []string{"update"}
	case http.MethodPatch:
		verbs = []string{"patch"}
		if r.URL.Query().Get("fieldManager") != "" && strings.Contains(r.Header.Get("Content-Type"), "apply-patch") {
			verbs = append(verbs, "create")
		}
	case http.MethodDelete:
		verbs = []string{"delete"}
		if !named {
			verbs = []string{"deletecollection"}
		}
	}
	var out []rbacCheck
	for _, v := range verbs {
		out = append(out, rbacCheck{namespace: ns, group: group, resource: res, verb: v})
		if group == rbacv1.GroupName && res == "rolebindings" && (v == "create" || v == "patch") {
			out = append(out, rbacCheck{group: rbacv1.GroupName, resource: "clusterroles", verb: "bind"})
		}
	}
	return out
}

// grants reports whether RequiredAccess grants verb on group/resource in
// scope.
func grants(scope k8s.AccessScope, group, resource, verb string) bool {
	return slices.ContainsFunc(k8s.RequiredAccess, func(a k8s.Access) bool {
		return a.Scope == scope && a.Group == group && a.Resource == resource && slices.Contains(a.Verbs, verb)
	})
}

// unused lists the grants of RequiredAccess that no recorded request
// needed. Each request is credited to the narrowest grant that allows it:
// the bot's Role in its own namespace, the enclave role in enclave enc,
// else the cluster-wide role (which covers every namespace). So a
// cluster-wide grant is used only by requests the narrower roles do not
// allow, such as reading a namespace before it is an enclave, or the
// enclave's RoleBinding itself.
func (a *accessRecorder) unused(enc, botNamespace string) []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	type grant struct {
		scope                 k8s.AccessScope
		group, resource, verb string
	}
	used := map[grant]bool{}
	for c := range a.seen {
		for _, scope := range []k8s.AccessScope{k8s.InBotNamespace, k8s.InEnclave, k8s.ClusterWide} {
			switch {
			case scope == k8s.InBotNamespace && c.namespace != botNamespace,
				scope == k8s.InEnclave && c.namespace != enc,
				!grants(scope, c.group, c.resource, c.verb):
				continue
			}
			used[grant{scope, c.group, c.resource, c.verb}] = true
			break
		}
	}
	var out []string
	for _, acc := range k8s.RequiredAccess {
		for _, v := range acc.Verbs {
			if !used[grant{acc.Scope, acc.Group, acc.Resource, v}] {
				res := acc.Resource
				if acc.Group != "" {
					res += "." + acc.Group
				}
				out = append(out, fmt.Sprintf("%s %s (%s)", v, res, acc.Scope))
			}
		}
	}
	return out
}

// check fails the test for every grant no operation used: the bot's RBAC
// is exactly what its operations need, so an unused grant is one to take
// out of RequiredAccess (or an operation missing from the test). When an
// operation already failed the run was cut short, and the list only
// says what it did not get to.
func (a *accessRecorder) check(t *testing.T, enc, botNamespace string) {
	t.Helper()
	unused := a.unused(enc, botNamespace)
	switch {
	case len(unused) == 0:
	case t.Failed():
		t.Logf("granted but not used before the failure: %s", strings.Join(unused, ", "))
	default:
		t.Errorf("RequiredAccess grants what no operation of the bot used: %s\n"+
			"remove those verbs from k8s.RequiredAccess and run go generate ./k8s; "+
			"if an operation does need one, make this test run that operation", strings.Join(unused, ", "))
	}
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
