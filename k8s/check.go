package k8s

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/kraken-ops/kraken/enclave"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/version"
)

// AccessScope says where the bot needs a permission, and so which
// object of the chart grants it.
type AccessScope int

const (
	// ClusterWide: on cluster-scoped resources, or on namespaced ones in
	// every namespace (an enclave's RoleBinding is made in a namespace
	// the bot has no rights in yet). Granted by the bot's ClusterRole
	// through a ClusterRoleBinding.
	ClusterWide AccessScope = iota
	// InEnclave: inside each enclave namespace, granted by
	// Config.EnclaveRole, which Provision binds to the bot there.
	InEnclave
	// InBotNamespace: in Config.BotNamespace, granted by the bot's Role
	// there (the leader election's Lease).
	InBotNamespace
)

func (s AccessScope) String() string {
	switch s {
	case ClusterWide:
		return "cluster-wide"
	case InEnclave:
		return "in each enclave"
	case InBotNamespace:
		return "in the bot's namespace"
	}
	return fmt.Sprintf("AccessScope(%d)", int(s))
}

// Access is one resource the bot uses and the verbs it needs on it.
type Access struct {
	Group    string // API group, "" for the core group
	Resource string // plural, "pods/log" for a subresource
	Verbs    []string
	Scope    AccessScope
	// OnlyEnclaveRole limits the grant to the ClusterRole named
	// Config.EnclaveRole (resourceNames in the chart).
	OnlyEnclaveRole bool
	// Name, when set, limits the grant to the object of that name
	// (resourceNames in the chart).
	Name string
	// OnlyIdentitiesSecret limits the grant to the Secret named
	// Config.IdentitiesSecret (resourceNames in the chart).
	OnlyIdentitiesSecret bool
	Why                  string
}

// RequiredAccess is every permission the bot needs, for the cluster check
// and for the Helm chart's RBAC, which is made from it (rbac.go).
//
// It is exactly what the code asks the API server for, and no more: each
// verb below is used by some operation, which its comment names, and
// TestBotOperationsUnderChartRBAC fails when a granted verb goes unused.
// Take a verb out here when the code stops using it; add one only with
// the call that needs it.
//
// Cluster-wide the bot holds only what is harmless in any namespace or
// what the chart's admission policy confines to enclaves: reading
// namespaces, creating enclave namespaces, and applying the one
// RoleBinding per enclave that grants it Config.EnclaveRole there.
// Everything it writes inside an enclave, the namespace object itself
// included, comes from that role. Server-side apply is a PATCH, and
// creates what does not exist yet, which the API server authorizes as
// create too: hence create and patch together. The bot writes only with
// apply, create, JSON patch and delete, never with PUT, so no rule grants
// update but three, all in the bot's own namespace and written with the
// resourceVersion read, so that two writers conflict: client-go's leader
// election's Lease, the schedules' shared state (one ConfigMap), and the
// sign-ins (one Secret).
var RequiredAccess = []Access{
	// get: Provision (before the enclave's RoleBinding exists, and of
	// namespaces that are not enclaves), Get, Update, every tentacle
	// operation's enclave lookup, Deprovision's wait; list: List, Check;
	// watch: Deprovision's wait; create: Provision.
	{Resource: "namespaces", Verbs: []string{"get", "list", "watch", "create"}, Scope: ClusterWide,
		Why: "finding enclaves, creating them, and waiting for a deprovisioned one to be gone"},
	// Provision applies it (create the first time, patch after);
	// CheckGuard's dry run creates one.
	{Group: "rbac.authorization.k8s.io", Resource: "rolebindings", Verbs: []string{"create", "patch"}, Scope: ClusterWide,
		Why: "each enclave's binding of the enclave role to the bot"},
	// get: Check; bind: the API server asks for it when Provision writes
	// the RoleBinding.
	{Group: "rbac.authorization.k8s.io", Resource: "clusterroles", Verbs: []string{"get", "bind"}, Scope: ClusterWide, OnlyEnclaveRole: true,
		Why: "binding a role needs bind on it (or every right in it); get lets the check see it exists"},
	// Check, and Deploy's choice of RuntimeClass.
	{Group: "node.k8s.io", Resource: "runtimeclasses", Verbs: []string{"get"}, Scope: ClusterWide,
		Why: "the cluster check and deploys look for the gVisor RuntimeClass"},
	// Every authenticated user has these two through system:basic-user;
	// they are listed so the bot does not depend on that default.
	{Group: "authorization.k8s.io", Resource: "selfsubjectaccessreviews", Verbs: []string{"create"}, Scope: ClusterWide,
		Why: "the cluster check asks the API server what the bot may do"},
	{Group: "authentication.k8s.io", Resource: "selfsubjectreviews", Verbs: []string{"create"}, Scope: ClusterWide,
		Why: "the cluster check says whom the API server takes the bot for"},

	// RBAC files a request on namespace x itself under namespace x, so
	// the enclave's own RoleBinding covers its Namespace object.
	// patch: Provision's last apply, SetFrozen, Update; delete:
	// Deprovision.
	{Resource: "namespaces", Verbs: []string{"patch", "delete"}, Scope: InEnclave,
		Why: "marking the enclave provisioned, frozen or active, recording its owner, members and modes, and deprovisioning it"},
	// Provision applies these three.
	{Resource: "resourcequotas", Verbs: []string{"create", "patch"}, Scope: InEnclave,
		Why: "the enclave's quota"},
	{Resource: "limitranges", Verbs: []string{"create", "patch"}, Scope: InEnclave,
		Why: "the enclave's per-container defaults and limits"},
	{Resource: "serviceaccounts", Verbs: []string{"create", "patch"}, Scope: InEnclave,
		Why: "the enclave's tentacle ServiceAccount"},
	// get: a tentacle's state (Deploy, Rollback, Undeploy), as metadata;
	// create, patch: Provision's and Deploy's applies; delete: Undeploy.
	{Group: "networking.k8s.io", Resource: "networkpolicies", Verbs: []string{"get", "create", "patch", "delete"}, Scope: InEnclave,
		Why: "the enclave's default-deny, DNS and bot policies, and tentacle egress policies from their contracts"},
	// get: Rollback and Files read a revision's files, Deploy a clashing
	// revision's labels; list: a tentacle's revisions (Deploy, Revisions,
	// Rollback, Undeploy), as metadata; create: Deploy, one immutable
	// ConfigMap per revision; delete: pruning old revisions, a failed
	// deploy's revision, Undeploy.
	{Resource: "configmaps", Verbs: []string{"get", "list", "create", "delete"}, Scope: InEnclave,
		Why: "tentacle code and revisions"},
	// get: a tentacle's state and SetSecret, as metadata (never the
	// values); create, patch: Deploy's apply, SetSecret's patch of one
	// key (create when the Secret went missing); delete: Undeploy.
	{Resource: "secrets", Verbs: []string{"get", "create", "patch", "delete"}, Scope: InEnclave,
		Why: "tentacle secrets"},
	// get: a tentacle's state and Run, as metadata; create, patch:
	// Deploy's apply; delete: Undeploy.
	{Resource: "services", Verbs: []string{"get", "create", "patch", "delete"}, Scope: InEnclave,
		Why: "tentacle Services the bot posts runs to"},
	// get: Status, a tentacle's state, Rollback, Files, Logs; list: List and
	// WaitReady; watch: WaitReady; create, patch: Deploy's apply, and
	// patch for Restart (and SetSecret's restart); delete: Undeploy.
	{Group: "apps", Resource: "deployments", Verbs: []string{"get", "list", "watch", "create", "patch", "delete"}, Scope: InEnclave,
		Why: "tentacle Deployments"},
	// Events finds the tentacle's ReplicaSets by label.
	{Group: "apps", Resource: "replicasets", Verbs: []string{"list"}, Scope: InEnclave,
		Why: "tentacle events"},
	// list: Status, List, Logs, WaitReady; watch: WaitReady.
	{Resource: "pods", Verbs: []string{"list", "watch"}, Scope: InEnclave,
		Why: "tentacle status, restarts and readiness"},
	{Resource: "pods/log", Verbs: []string{"get"}, Scope: InEnclave,
		Why: "tentacle logs"},
	// Events lists the enclave's events.
	{Resource: "events", Verbs: []string{"list"}, Scope: InEnclave,
		Why: "tentacle events"},

	// Lead: get, create (the first replica ever), update (renew, take
	// over, release).
	{Group: "coordination.k8s.io", Resource: "leases", Verbs: []string{"get", "create", "update"}, Scope: InBotNamespace,
		Why: "the bot's replicas elect, with a Lease, the one that runs the work that must happen once (reconcile, schedules)"},
	// ScheduleState: get (Load, and each Update), update (Update, with
	// the resourceVersion read: compare-and-swap). The chart creates it.
	{Resource: "configmaps", Verbs: []string{"get", "update"}, Scope: InBotNamespace, Name: ScheduleStateConfigMap,
		Why: "the schedules' pauses, failure counts and marks, shared by the replicas"},
	// Identities: get (Get, and each Update), update (Update, with the
	// resourceVersion read: compare-and-swap). The chart creates it.
	{Resource: "secrets", Verbs: []string{"get", "update"}, Scope: InBotNamespace, OnlyIdentitiesSecret: true,
		Why: "people's sign-ins (sealed), shared by the replicas"},
}

// CheckStatus is one line's outcome.
type CheckStatus int

const (
	CheckOK   CheckStatus = iota // ✓
	CheckWarn                    // ! works, but not as it should
	CheckFail                    // ✗ the bot can't do its job
)

func (s CheckStatus) mark() string {
	switch s {
	case CheckOK:
		return "✓"
	case CheckWarn:
		return "!"
	}
	return "✗"
}

// CheckItem is one line of the checklist.
type CheckItem struct {
	Status CheckStatus
	// Title says what was checked and what was found.
	Title string
	// Fix says what to do about a warning or failure, in plain words.
	Fix string
	// Missing lists, for an RBAC item, the verbs the bot lacks.
	Missing []string
	// Access is the permission an RBAC item checked, nil for others.
	Access *Access
}

// CheckReport is the cluster check's result, in a fixed order.
type CheckReport struct {
	Items []CheckItem
}

// OK reports whether nothing failed; warnings don't count.
func (r CheckReport) OK() bool {
	return !slices.ContainsFunc(r.Items, func(i CheckItem) bool { return i.Status == CheckFail })
}

// Failed lists the failed items.
func (r CheckReport) Failed() []CheckItem { return r.with(CheckFail) }

// Warnings lists the warnings.
func (r CheckReport) Warnings() []CheckItem { return r.with(CheckWarn) }

func (r CheckReport) with(s CheckStatus) []CheckItem {
	var out []CheckItem
	for _, i := range r.Items {
		if i.Status == s {
			out = append(out, i)
		}
	}
	return out
}

// String is the checklist: one line per item with ✓, ! or ✗, and under
// each warning or failure what to do about it.
func (r CheckReport) String() string {
	var b strings.Builder
	for _, i := range r.Items {
		fmt.Fprintf(&b, "%s %s\n", i.Status.mark(), i.Title)
		if i.Status != CheckOK && i.Fix != "" {
			fmt.Fprintf(&b, "    fix: %s\n", i.Fix)
		}
	}
	fails, warns := len(r.Failed()), len(r.Warnings())
	switch {
	case fails > 0:
		fmt.Fprintf(&b, "%d problem(s) to fix, %d warning(s)\n", fails, warns)
	case warns > 0:
		fmt.Fprintf(&b, "ready, with %d warning(s)\n", warns)
	default:
		b.WriteString("ready\n")
	}
	return b.String()
}

// Check verifies that the bot can work on this cluster: the API answers,
// the bot holds every permission in RequiredAccess, the gVisor
// RuntimeClass exists, and the default quota makes sense. It asks the
// API server about the bot's own identity (SelfSubjectAccessReview), so
// run it with the bot's credentials.
func (c *Client) Check(ctx context.Context) CheckReport {
	var r CheckReport
	add := func(i CheckItem) { r.Items = append(r.Items, i) }

	v, err := c.serverVersion(ctx)
	if err != nil {
		add(CheckItem{Status: CheckFail,
			Title: fmt.Sprintf("Kubernetes API at %s: %v", c.cfg.Rest.Host, err),
			Fix:   "make sure the cluster is up and that the kubeconfig (--kubeconfig or $KUBECONFIG) or the in-cluster service account points at it; the other checks need it"})
		return r
	}
	who := c.whoAmI(ctx)
	add(CheckItem{Status: CheckOK, Title: fmt.Sprintf("Kubernetes API at %s answers (%s), the bot acts as %s", c.cfg.Rest.Host, v.GitVersion, who)})

	// Rights inside enclaves can only be asked about in one; without one
	// they are a single warning rather than one per resource.
	sample, why := c.sampleEnclave(ctx)
	items := make([]*CheckItem, len(RequiredAccess))
	var wg sync.WaitGroup
	var unchecked []string
	for i := range RequiredAccess {
		a := &RequiredAccess[i]
		if a.Scope == InEnclave && sample == "" {
			unchecked = append(unchecked, a.Resource)
			continue
		}
		wg.Go(func() {
			item := c.checkAccess(ctx, a, sample, who)
			items[i] = &item
		})
	}
	wg.Wait()
	for _, item := range items {
		if item != nil {
			add(*item)
		}
	}
	if len(unchecked) > 0 {
		add(CheckItem{Status: CheckWarn,
			Title: fmt.Sprintf("rights in each enclave (%s): not checked, %s", strings.Join(unchecked, ", "), why),
			Fix:   fmt.Sprintf("run the check again once an enclave is provisioned; these rights come from ClusterRole %s, which each enclave binds to the bot", c.cfg.EnclaveRole)})
	}

	add(c.checkGuard(ctx, who))
	add(c.checkGVisor(ctx))
	add(c.checkEnclaveRole(ctx))
	add(c.checkDefaultQuota())
	return r
}

// checkGuard reports whether the admission policy confines the identity
// the check runs as. The policy names only the bot's service account, so
// an unconfined administrator running the check is a warning, while an
// unconfined service account is a failure: the bot refuses to run so.
func (c *Client) checkGuard(ctx context.Context, who string) CheckItem {
	const fix = "install the Helm chart's ValidatingAdmissionPolicy and its binding (Kubernetes 1.30 or later); without them the bot's right to create RoleBindings reaches beyond its enclaves"
	switch err := c.CheckGuard(ctx); {
	case err == nil:
		return CheckItem{Status: CheckOK, Title: "the admission policy keeps the bot's RoleBindings inside its enclaves"}
	case errors.Is(err, ErrUnguarded) && !strings.HasPrefix(who, `"system:serviceaccount:`):
		return CheckItem{Status: CheckWarn,
			Title: fmt.Sprintf("the admission policy does not confine %s, which the check runs as", who),
			Fix:   "run the check with the bot's own credentials to see whether the policy confines the bot; if it does not: " + fix}
	case errors.Is(err, ErrUnguarded):
		return CheckItem{Status: CheckFail, Title: fmt.Sprintf("%s may bind the enclave role outside enclaves: the admission policy is not in force", who), Fix: fix}
	default:
		return CheckItem{Status: CheckFail, Title: "admission policy: " + err.Error(), Fix: fix}
	}
}

func (c *Client) serverVersion(ctx context.Context) (*version.Info, error) {
	body, err := c.cs.Discovery().RESTClient().Get().AbsPath("/version").Do(ctx).Raw()
	if err != nil {
		return nil, apiError("read the server version", err)
	}
	var v version.Info
	if err := json.Unmarshal(body, &v); err != nil {
		return nil, fmt.Errorf("read the server version: %w", err)
	}
	return &v, nil
}

// whoAmI names the identity the API server sees, for the fixes to say
// whom to grant what.
func (c *Client) whoAmI(ctx context.Context) string {
	res, err := c.cs.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil || res.Status.UserInfo.Username == "" {
		return "an unknown user"
	}
	return fmt.Sprintf("%q", res.Status.UserInfo.Username)
}

// sampleEnclave is a ready enclave to check per-enclave rights in, or ""
// and the reason there is none.
func (c *Client) sampleEnclave(ctx context.Context) (name, why string) {
	all, err := c.List(ctx)
	if err != nil {
		return "", "the enclaves could not be listed"
	}
	for _, e := range all {
		if e.Ready {
			return e.Name, ""
		}
	}
	return "", "there is no ready enclave to check in yet"
}

func (c *Client) checkAccess(ctx context.Context, a *Access, sample, who string) CheckItem {
	resource, sub, _ := strings.Cut(a.Resource, "/")
	res := a.Resource
	if a.Group != "" {
		res = resource + "." + a.Group
		if sub != "" {
			res += "/" + sub
		}
	}
	attrs := authorizationv1.ResourceAttributes{Group: a.Group, Resource: resource, Subresource: sub}
	where := a.Scope.String()
	grantor := "the bot's ClusterRole (bound with a ClusterRoleBinding)"
	switch a.Scope {
	case InEnclave:
		attrs.Namespace = sample
		if a.Resource == "namespaces" && a.Group == "" {
			attrs.Name = sample // the enclave's own Namespace object
		}
		where = fmt.Sprintf("in enclave %s", sample)
		grantor = fmt.Sprintf("ClusterRole %s, which every enclave binds to the bot", c.cfg.EnclaveRole)
	case InBotNamespace:
		attrs.Namespace = c.cfg.BotNamespace
		where = "in namespace " + c.cfg.BotNamespace
		grantor = fmt.Sprintf("the bot's Role in namespace %s", c.cfg.BotNamespace)
	}
	if a.OnlyEnclaveRole {
		attrs.Name = c.cfg.EnclaveRole
		res += " " + c.cfg.EnclaveRole
	}
	if a.Name != "" {
		attrs.Name = a.Name
		res += " " + a.Name
	}
	if a.OnlyIdentitiesSecret {
		attrs.Name = c.cfg.IdentitiesSecret
		res += " " + c.cfg.IdentitiesSecret
	}
	var missing []string
	for _, verb := range a.Verbs {
		attrs.Verb = verb
		review := &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &attrs}}
		got, err := c.cs.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, review, metav1.CreateOptions{})
		if err != nil {
			return CheckItem{Status: CheckFail, Access: a,
				Title: fmt.Sprintf("%s %s: could not check: %v", res, where, apiError("ask the API server", err)),
				Fix:   "the bot must be allowed to create selfsubjectaccessreviews (every authenticated user is, by default)"}
		}
		if !got.Status.Allowed {
			missing = append(missing, verb)
		}
	}
	if len(missing) > 0 {
		names := ""
		if a.OnlyEnclaveRole {
			names = fmt.Sprintf(" (resourceNames: [%s])", c.cfg.EnclaveRole)
		}
		fix := fmt.Sprintf("give %s %s on %s%s through %s. Needed for: %s",
			who, strings.Join(missing, ", "), res, names, grantor, a.Why)
		return CheckItem{Status: CheckFail, Access: a, Missing: missing,
			Title: fmt.Sprintf("%s %s: missing %s", res, where, strings.Join(missing, ", ")),
			Fix:   fix}
	}
	return CheckItem{Status: CheckOK, Access: a, Title: fmt.Sprintf("%s %s: %s", res, where, strings.Join(a.Verbs, ", "))}
}

func (c *Client) checkGVisor(ctx context.Context) CheckItem {
	class := c.cfg.RuntimeClass
	switch class {
	case NoRuntimeClass:
		return CheckItem{Status: CheckWarn,
			Title: "gVisor is turned off: tentacles run without sandbox isolation, sharing the node's kernel",
			Fix:   "install gVisor (runsc) on the nodes and set gvisor.enabled in the chart"}
	case "":
		class = DefaultRuntimeClass
	}
	_, err := c.cs.NodeV1().RuntimeClasses().Get(ctx, class, metav1.GetOptions{})
	switch {
	case err == nil:
		return CheckItem{Status: CheckOK, Title: fmt.Sprintf("RuntimeClass %s exists: tentacles run in gVisor sandboxes", class)}
	case apierrors.IsNotFound(err):
		return CheckItem{Status: CheckWarn,
			Title: fmt.Sprintf("RuntimeClass %s not found: tentacles run without gVisor isolation, sharing the node's kernel", class),
			Fix:   fmt.Sprintf("install gVisor (runsc) on the nodes, then create RuntimeClass %s: kubectl apply -f deploy/gvisor/runtimeclass.yaml", class)}
	}
	return CheckItem{Status: CheckWarn,
		Title: fmt.Sprintf("RuntimeClass %s: could not check: %s", class, readFailure(err)),
		Fix:   "let the bot get runtimeclasses (node.k8s.io) so the check can tell whether tentacles are sandboxed"}
}

func (c *Client) checkEnclaveRole(ctx context.Context) CheckItem {
	_, err := c.cs.RbacV1().ClusterRoles().Get(ctx, c.cfg.EnclaveRole, metav1.GetOptions{})
	switch {
	case err == nil:
		return CheckItem{Status: CheckOK, Title: fmt.Sprintf("ClusterRole %s exists: enclaves grant it to the bot", c.cfg.EnclaveRole)}
	case apierrors.IsNotFound(err):
		return CheckItem{Status: CheckFail,
			Title: fmt.Sprintf("ClusterRole %s not found: the bot would have no rights inside enclaves", c.cfg.EnclaveRole),
			Fix:   fmt.Sprintf("install the Helm chart, which defines ClusterRole %s, or point the bot's enclave role setting at the ClusterRole you use", c.cfg.EnclaveRole)}
	}
	return CheckItem{Status: CheckWarn,
		Title: fmt.Sprintf("ClusterRole %s: could not check: %s", c.cfg.EnclaveRole, readFailure(err)),
		Fix:   fmt.Sprintf("let the bot get clusterroles with resourceNames [%s]", c.cfg.EnclaveRole)}
}

// readFailure says briefly why a read failed; the fix says the rest.
func readFailure(err error) string {
	if apierrors.IsForbidden(err) {
		return "the bot may not read it"
	}
	return apiError("read it", err).Error()
}

func (c *Client) checkDefaultQuota() CheckItem {
	s, err := resolveQuota(enclave.Quota{}, c.cfg.DefaultQuota)
	if err != nil {
		return CheckItem{Status: CheckFail,
			Title: fmt.Sprintf("default enclave quota: %v", err),
			Fix:   "correct the platform's default quota in the bot's settings; quantities look like 500m, 2, 512Mi, 4Gi"}
	}
	return CheckItem{Status: CheckOK, Title: fmt.Sprintf(
		"default enclave quota: requests %s CPU / %s memory, limits %s CPU / %s memory, %d pods, %s storage; per container %s CPU / %s by default, at most %s / %s",
		s.cpu.String(), s.memory.String(), s.limitCPU.String(), s.limitMemory.String(), s.q.Pods, s.storage.String(),
		s.defCPU.String(), s.defMemory.String(), s.maxCPU.String(), s.maxMemory.String())}
}
