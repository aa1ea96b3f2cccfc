package k8s

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kraken-ops/kraken/enclave"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/watch"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
	networkingv1ac "k8s.io/client-go/applyconfigurations/networking/v1"
	rbacv1ac "k8s.io/client-go/applyconfigurations/rbac/v1"
)

var _ enclave.Cluster = (*Client)(nil)

// Enclave namespace annotations beside the ones in client.go, and the
// values of AnnotationState.
const (
	// AnnotationState is "provisioning" until every object of the
	// enclave has been applied, then "active" or "frozen".
	AnnotationState = "kraken.dev/state"
	// AnnotationQuota is the effective quota as JSON, so the namespace
	// alone describes the enclave.
	AnnotationQuota = "kraken.dev/quota"
	// AnnotationFrozenBy and AnnotationFrozenAt say who last froze or
	// unfroze the enclave, and when.
	AnnotationFrozenBy = "kraken.dev/frozen-by"
	AnnotationFrozenAt = "kraken.dev/frozen-at"

	StateProvisioning = "provisioning"
	StateActive       = "active"
	StateFrozen       = "frozen"

	// LabelPodSecurity makes the API server refuse pods that don't meet
	// the restricted Pod Security Standard in an enclave.
	LabelPodSecurity = "pod-security.kubernetes.io/enforce"
)

// Names of the objects every enclave namespace holds.
const (
	EnclaveQuota             = "enclave-quota"
	EnclaveLimitRange        = "enclave-limits"
	EnclavePolicyDefaultDeny = "default-deny"
	EnclavePolicyAllowDNS    = "allow-dns"
	EnclavePolicyAllowBot    = "allow-from-kraken"
	// EnclaveBotRoleBinding grants the bot Config.EnclaveRole in the
	// enclave.
	EnclaveBotRoleBinding = "kraken-bot"
)

// stateFieldManager owns the annotations SetFrozen writes. A second
// manager is what lets SetFrozen apply those alone: an apply by
// FieldManager that left out the labels and other annotations would
// remove them. Provision applies the frozen state too (leaving it out
// would remove it), but only ever the one already recorded on a ready
// enclave, so the two never disagree on its value.
const stateFieldManager = FieldManager + "-state"

// Provision creates or converges the enclave's namespace and the objects
// in it.
//
// An enclave belongs to the Slack channel that provisioned it (its team
// and channel ids, not the channel's name, which may change). When the
// namespace exists and belongs to another channel, Provision returns
// enclave.ErrNameTaken and changes nothing: one channel can't take over,
// or re-label, another's enclave by asking for its name. Whether it is
// ready or half made does not matter.
//
// On an enclave that exists and is ready, Provision is a reconcile: it
// converges the objects, the quota and the channel's name, but keeps
// what other operations own:
//   - the owner recorded on the namespace, whatever e.Owner says (giving
//     the enclave to someone else is a transfer, not a reconcile);
//   - the frozen state, whatever e.Frozen says: only SetFrozen and
//     Update change it, so a reconcile can't thaw an archived channel's
//     enclave;
//   - the Governance (members, modes, channel facts), whatever
//     e.Governance says, exactly as recorded: Update changes it, and a
//     damaged or missing mode stays so until the owner sets one;
//   - the provenance of the provision that made it.
//
// Its last write fails rather than put back a record that changed since
// its read, and is then made again from the changed record, so a
// reconcile never reverts an Update or SetFrozen that ran alongside it.
//
// A new enclave, or one whose first provision stopped part way (not yet
// ready), takes its owner, frozen state and Governance from e: it may
// start frozen. e's Mode (and tentacle modes) must then be valid.
//
// The order follows the bot's rights. Cluster-wide it may only create
// namespaces and apply RoleBindings (both confined to enclaves by the
// chart's admission policy); everything else it writes with the
// enclave role, which the RoleBinding grants it in this namespace alone.
// So: the namespace (created, marked provisioning), the RoleBinding,
// then every other object, and last the namespace again, marked active
// (or frozen). An enclave left half made by a failure reads as not ready
// until a later Provision finishes it. An enclave that is already ready
// stays ready while it is re-applied: each object is replaced
// atomically, never removed.
func (c *Client) Provision(ctx context.Context, e enclave.Enclave, p enclave.Provenance) error {
	if err := enclave.ValidateName(e.Name); err != nil {
		return err
	}
	name := e.Name
	q, err := resolveQuota(e.Quota, c.cfg.DefaultQuota)
	if err != nil {
		return fmt.Errorf("provision enclave %s: %w", name, err)
	}
	op := "provision enclave " + name
	at := p.At
	if at.IsZero() {
		at = time.Now()
	}
	meta := provisionMeta{by: p.Actor, at: at.UTC().Format(time.RFC3339)}
	// The record of a new or half-made enclave; whether it is needed is
	// known once the namespace is read.
	fromE, recErr := recordAnnotations(e)

	ns, err := c.cs.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
	created := false
	if apierrors.IsNotFound(err) {
		// Create, not apply: server-side apply is a PATCH, which the bot
		// may only do inside its enclaves, and this one has no RoleBinding
		// yet. Create also fails rather than adopts when someone else made
		// the name in the meantime.
		if recErr != nil {
			return fmt.Errorf("%s: %w", op, recErr)
		}
		ns, err = c.cs.CoreV1().Namespaces().Create(ctx, namespaceObject(e, q, meta, fromE), metav1.CreateOptions{FieldManager: FieldManager})
		created = err == nil
		if apierrors.IsAlreadyExists(err) {
			ns, err = c.cs.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
		}
	}
	if err != nil {
		return apiError(op+": namespace", err)
	}
	if !ours(ns) {
		return fmt.Errorf("%w: namespace %s already exists and the bot does not manage it; choose another name", enclave.ErrNameTaken, name)
	}
	if ns.DeletionTimestamp != nil {
		return fmt.Errorf("%s: %w", op, ErrTerminating)
	}
	// Another channel's enclave, even half made, is left alone. A
	// namespace made by this call carries e's ids, so this only refuses
	// one that was there before, or made by a concurrent Provision.
	if a := ns.Annotations; a[AnnotationChannel] != e.Channel.ID || a[AnnotationTeam] != e.Channel.TeamID {
		c.log.Warn("enclave name asked for by another channel", "enclave", name,
			"channel", e.Channel.ID, "team", e.Channel.TeamID,
			"owner_channel", a[AnnotationChannel], "owner_team", a[AnnotationTeam], "actor", p.Actor)
		return fmt.Errorf("%s: %w: the enclave name %s is already used by another channel; pick another name", op, enclave.ErrNameTaken, name)
	}
	// The provenance on the namespace is the provision that made it:
	// re-running Provision (a reconcile) leaves it, and so changes nothing
	// when nothing else changed.
	if v, ok := ns.Annotations[AnnotationActor]; ok {
		meta.by = v
	}
	if v, ok := ns.Annotations[AnnotationAt]; ok {
		meta.at = v
	}
	// A new or half-made enclave takes its record from e, which must
	// then be one that can be recorded; a ready one keeps its own, so e's
	// governance does not matter there.
	if !readyState(ns.Annotations[AnnotationState]) && recErr != nil {
		return fmt.Errorf("%s: %w", op, recErr)
	}

	// The RoleBinding is applied with the bot's cluster-wide right; the
	// steps after it use the rights it grants.
	if _, err := c.cs.RbacV1().RoleBindings(name).Apply(ctx, c.botRoleBindingConfig(name), applyOptions()); err != nil {
		return apiError(op+": apply RoleBinding "+EnclaveBotRoleBinding, err)
	}
	steps := []provisionStep{
		{"ResourceQuota " + EnclaveQuota, func(ctx context.Context) error {
			_, err := c.cs.CoreV1().ResourceQuotas(name).Apply(ctx, quotaConfig(name, q), applyOptions())
			return err
		}},
		{"LimitRange " + EnclaveLimitRange, func(ctx context.Context) error {
			_, err := c.cs.CoreV1().LimitRanges(name).Apply(ctx, limitRangeConfig(name, q), applyOptions())
			return err
		}},
	}
	for _, np := range c.policyConfigs(name) {
		steps = append(steps, provisionStep{"NetworkPolicy " + *np.Name, func(ctx context.Context) error {
			_, err := c.cs.NetworkingV1().NetworkPolicies(name).Apply(ctx, np, applyOptions())
			return err
		}})
	}
	steps = append(steps,
		provisionStep{"ServiceAccount " + TentacleServiceAccount, func(ctx context.Context) error {
			_, err := c.cs.CoreV1().ServiceAccounts(name).Apply(ctx, tentacleServiceAccountConfig(name), applyOptions())
			return err
		}},
	)
	for _, s := range steps {
		if err := c.whenAuthorized(ctx, s.apply); err != nil {
			c.log.Warn("enclave provision failed part way", "enclave", name, "step", s.what, "err", err)
			return apiError(op+": apply "+s.what, err)
		}
	}
	final, err := c.finishNamespace(ctx, op, e, q, meta, ns, fromE)
	if err != nil {
		c.log.Warn("enclave provision failed part way", "enclave", name, "step", "Namespace", "err", err)
		return err
	}
	c.log.Info("enclave provisioned", "enclave", name, "state", final, "actor", p.Actor, "channel", p.Channel, "new", created)
	return nil
}

// rbacSettle bounds how long a write refused by RBAC is retried: the API
// server authorizes with a cache of RoleBindings, which has a binding
// written a moment ago only a moment later (milliseconds, usually).
const rbacSettle = 5 * time.Second

// whenAuthorized runs write, and again while RBAC refuses it, for up to
// rbacSettle. Only the first write after a new RoleBinding ever waits: a
// write that RBAC allows, or refuses for good, costs one request. Any
// other error returns at once.
func (c *Client) whenAuthorized(ctx context.Context, write func(context.Context) error) error {
	deadline := time.Now().Add(rbacSettle)
	pause := 10 * time.Millisecond
	for {
		err := write(ctx)
		var status apierrors.APIStatus
		if err == nil || !apierrors.IsForbidden(err) || !errors.As(err, &status) || parseForbidden(status.Status().Message) == nil || time.Now().Add(pause).After(deadline) {
			return err
		}
		c.log.Debug("refused by RBAC, waiting for a new RoleBinding to take effect", "err", err, "pause", pause)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(pause):
		}
		pause = min(2*pause, 500*time.Millisecond)
	}
}

// provisionStep applies one object of an enclave.
type provisionStep struct {
	what  string
	apply func(context.Context) error
}

// provisionMeta is the provenance written on the namespace.
type provisionMeta struct{ by, at string }

func readyState(s string) bool { return s == StateActive || s == StateFrozen }

// ours tells an enclave namespace from any other: the bot never touches
// a namespace it did not make, even one with the right name.
func ours(ns *corev1.Namespace) bool {
	return ns.Labels[LabelManagedBy] == ManagedBy && ns.Labels[LabelEnclave] == ns.Name
}

func namespaceLabels(name string) map[string]string {
	labels := enclaveLabels(name)
	labels[LabelPodSecurity] = "restricted"
	return labels
}

// finishNamespace applies the namespace with its final state, active or
// frozen, and every label and annotation Provision writes; it returns
// the state. ns is the namespace as read before the other objects were
// applied.
//
// A ready enclave keeps its record (keptRecord); a new or half-made one
// gets fromE. The apply carries the namespace's UID, so it fails rather
// than create a namespace, or overwrite another channel's, when the one
// read was deleted (and maybe made again) since; and its
// resourceVersion, so it fails rather than put back a record that
// Update or SetFrozen changed since the read. On such a conflict it
// reads the namespace again and re-applies from that, up to updateTries
// times: a reconcile never reverts a change it did not see.
func (c *Client) finishNamespace(ctx context.Context, op string, e enclave.Enclave, q quotaSpec, meta provisionMeta, ns *corev1.Namespace, fromE map[string]string) (string, error) {
	replaced := func(err error) error {
		return fmt.Errorf("%s: the namespace was deleted or replaced while provisioning; provision again: %w", op, err)
	}
	for try := 1; ; try++ {
		rec := fromE
		if readyState(ns.Annotations[AnnotationState]) {
			rec = keptRecord(ns, e)
		}
		final := StateActive
		if rec[AnnotationFrozen] == "true" {
			final = StateFrozen
		}
		cfg := namespaceConfig(e, q, meta, final, rec).WithUID(ns.UID).WithResourceVersion(ns.ResourceVersion)
		err := c.whenAuthorized(ctx, func(ctx context.Context) error {
			_, err := c.cs.CoreV1().Namespaces().Apply(ctx, cfg, applyOptions())
			return err
		})
		switch {
		case err == nil:
			return final, nil
		case apierrors.IsNotFound(err) || uidChanged(err):
			return "", replaced(err)
		case !apierrors.IsConflict(err):
			return "", apiError(op+": apply Namespace "+final, err)
		case try == updateTries:
			return "", fmt.Errorf("%s: gave up after %d tries, the namespace kept changing; provision again: %w", op, try, err)
		}
		cur, gerr := c.cs.CoreV1().Namespaces().Get(ctx, e.Name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(gerr) || gerr == nil && cur.UID != ns.UID:
			return "", replaced(err)
		case gerr != nil:
			return "", apiError(op+": namespace", gerr)
		case cur.DeletionTimestamp != nil:
			return "", fmt.Errorf("%s: %w", op, ErrTerminating)
		case !ours(cur) || cur.Annotations[AnnotationChannel] != e.Channel.ID || cur.Annotations[AnnotationTeam] != e.Channel.TeamID:
			return "", fmt.Errorf("%s: %w: the namespace %s was changed to belong to something else while provisioning", op, enclave.ErrNameTaken, e.Name)
		}
		c.log.Debug("enclave namespace changed while provisioning, applying it again", "enclave", e.Name, "try", try)
		ns = cur
	}
}

// recordAnnotations are the annotations that say who owns an enclave and
// how it is governed, from e: what a new or half-made enclave records.
func recordAnnotations(e enclave.Enclave) (map[string]string, error) {
	rec, err := governanceAnnotations(e.Governance)
	if err != nil {
		return nil, err
	}
	rec[AnnotationOwner] = e.Owner
	rec[AnnotationFrozen] = strconv.FormatBool(e.Frozen)
	return rec, nil
}

// keptRecord is a ready enclave's record as its namespace holds it, for
// a reconcile to apply back unchanged: the owner (e's only when none is
// recorded), the frozen state, and the governance annotations exactly as
// they are, a damaged or missing one included: a reconcile is no way to
// reset who may do what.
func keptRecord(ns *corev1.Namespace, e enclave.Enclave) map[string]string {
	a := ns.Annotations
	rec := map[string]string{
		AnnotationOwner:  cmp.Or(a[AnnotationOwner], e.Owner),
		AnnotationFrozen: strconv.FormatBool(a[AnnotationFrozen] == "true"),
	}
	for _, k := range governanceKeys {
		if v, ok := a[k]; ok {
			rec[k] = v
		}
	}
	return rec
}

// namespaceAnnotations are the annotations Provision writes: the
// channel, provenance, quota and state, and rec (recordAnnotations or
// keptRecord).
func namespaceAnnotations(e enclave.Enclave, q quotaSpec, m provisionMeta, state string, rec map[string]string) map[string]string {
	a := map[string]string{
		AnnotationChannel: e.Channel.ID,
		AnnotationName:    e.Channel.Name,
		AnnotationTeam:    e.Channel.TeamID,
		AnnotationActor:   m.by,
		AnnotationAt:      m.at,
		AnnotationQuota:   encodeQuota(q.q),
		AnnotationState:   state,
	}
	maps.Copy(a, rec)
	return a
}

// namespaceObject is the namespace as first created, in state
// provisioning, with every label and annotation the applies that follow
// set: an enclave half made reads back complete but not ready.
func namespaceObject(e enclave.Enclave, q quotaSpec, m provisionMeta, rec map[string]string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name:        e.Name,
		Labels:      namespaceLabels(e.Name),
		Annotations: namespaceAnnotations(e, q, m, StateProvisioning, rec),
	}}
}

func namespaceConfig(e enclave.Enclave, q quotaSpec, m provisionMeta, state string, rec map[string]string) *corev1ac.NamespaceApplyConfiguration {
	return corev1ac.Namespace(e.Name).
		WithLabels(namespaceLabels(e.Name)).
		WithAnnotations(namespaceAnnotations(e, q, m, state, rec))
}

func quotaConfig(ns string, q quotaSpec) *corev1ac.ResourceQuotaApplyConfiguration {
	return corev1ac.ResourceQuota(EnclaveQuota, ns).
		WithLabels(enclaveLabels(ns)).
		WithSpec(corev1ac.ResourceQuotaSpec().WithHard(q.hard()))
}

func limitRangeConfig(ns string, q quotaSpec) *corev1ac.LimitRangeApplyConfiguration {
	return corev1ac.LimitRange(EnclaveLimitRange, ns).
		WithLabels(enclaveLabels(ns)).
		WithSpec(corev1ac.LimitRangeSpec().WithLimits(
			corev1ac.LimitRangeItem().
				WithType(corev1.LimitTypeContainer).
				WithDefaultRequest(corev1.ResourceList{corev1.ResourceCPU: q.defCPU, corev1.ResourceMemory: q.defMemory}).
				WithDefault(corev1.ResourceList{corev1.ResourceCPU: q.defLimCPU, corev1.ResourceMemory: q.defLimMemory}).
				WithMax(corev1.ResourceList{corev1.ResourceCPU: q.maxCPU, corev1.ResourceMemory: q.maxMemory}),
		))
}

// policyConfigs deny all traffic of the enclave's pods except DNS
// lookups out and the bot in; tentacles open their declared egress with
// policies of their own.
func (c *Client) policyConfigs(ns string) []*networkingv1ac.NetworkPolicyApplyConfiguration {
	all := metav1ac.LabelSelector()         // empty: every pod in the namespace
	botPort := intstr.FromInt32(EnginePort) // where tentacles serve /run and /health
	return []*networkingv1ac.NetworkPolicyApplyConfiguration{
		networkingv1ac.NetworkPolicy(EnclavePolicyDefaultDeny, ns).
			WithLabels(enclaveLabels(ns)).
			WithSpec(networkingv1ac.NetworkPolicySpec().
				WithPodSelector(all).
				WithPolicyTypes(networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress)),
		networkingv1ac.NetworkPolicy(EnclavePolicyAllowDNS, ns).
			WithLabels(enclaveLabels(ns)).
			WithSpec(networkingv1ac.NetworkPolicySpec().
				WithPodSelector(all).
				WithPolicyTypes(networkingv1.PolicyTypeEgress).
				WithEgress(dnsEgress())),
		networkingv1ac.NetworkPolicy(EnclavePolicyAllowBot, ns).
			WithLabels(enclaveLabels(ns)).
			WithSpec(networkingv1ac.NetworkPolicySpec().
				WithPodSelector(all).
				WithPolicyTypes(networkingv1.PolicyTypeIngress).
				WithIngress(networkingv1ac.NetworkPolicyIngressRule().
					WithFrom(networkingv1ac.NetworkPolicyPeer().
						WithNamespaceSelector(metav1ac.LabelSelector().WithMatchLabels(map[string]string{corev1.LabelMetadataName: c.cfg.BotNamespace})).
						WithPodSelector(metav1ac.LabelSelector().WithMatchLabels(c.cfg.BotPodLabels))).
					WithPorts(networkingv1ac.NetworkPolicyPort().WithProtocol(corev1.ProtocolTCP).WithPort(botPort)))),
	}
}

func tentacleServiceAccountConfig(ns string) *corev1ac.ServiceAccountApplyConfiguration {
	return corev1ac.ServiceAccount(TentacleServiceAccount, ns).
		WithLabels(enclaveLabels(ns)).
		WithAutomountServiceAccountToken(false)
}

func (c *Client) botRoleBindingConfig(ns string) *rbacv1ac.RoleBindingApplyConfiguration {
	return rbacv1ac.RoleBinding(EnclaveBotRoleBinding, ns).
		WithLabels(enclaveLabels(ns)).
		WithRoleRef(rbacv1ac.RoleRef().WithAPIGroup(rbacv1.GroupName).WithKind("ClusterRole").WithName(c.cfg.EnclaveRole)).
		WithSubjects(rbacv1ac.Subject().WithKind(rbacv1.ServiceAccountKind).WithName(c.cfg.BotServiceAccount).WithNamespace(c.cfg.BotNamespace))
}

// Get reads an enclave back from its namespace.
func (c *Client) Get(ctx context.Context, name string) (enclave.Enclave, error) {
	ns, err := c.enclaveNamespace(ctx, name, "get enclave "+name)
	if err != nil {
		return enclave.Enclave{}, err
	}
	return c.enclaveFrom(ns), nil
}

// enclaveNamespace reads the namespace of an enclave the bot manages;
// enclave.ErrNotFound when there is none, or it is not the bot's.
func (c *Client) enclaveNamespace(ctx context.Context, name, op string) (*corev1.Namespace, error) {
	if err := enclave.ValidateName(name); err != nil {
		return nil, fmt.Errorf("%s: %w: %w", op, enclave.ErrNotFound, err)
	}
	ns, err := c.cs.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) || err == nil && !ours(ns) {
		return nil, fmt.Errorf("%s: %w", op, enclave.ErrNotFound)
	}
	if err != nil {
		return nil, apiError(op, err)
	}
	return ns, nil
}

// List returns every enclave, by name, in one request per 500.
func (c *Client) List(ctx context.Context) ([]enclave.Enclave, error) {
	opts := metav1.ListOptions{
		LabelSelector: LabelManagedBy + "=" + ManagedBy + "," + LabelEnclave,
		Limit:         500,
	}
	var out []enclave.Enclave
	for {
		list, err := c.cs.CoreV1().Namespaces().List(ctx, opts)
		if err != nil {
			return nil, apiError("list enclaves", err)
		}
		for i := range list.Items {
			if ours(&list.Items[i]) {
				out = append(out, c.enclaveFrom(&list.Items[i]))
			}
		}
		if list.Continue == "" {
			break
		}
		opts.Continue = list.Continue
	}
	slices.SortFunc(out, func(a, b enclave.Enclave) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// enclaveFrom reads an enclave from its namespace. A damaged governance
// record reads so that it allows less, never more (readGovernance).
func (c *Client) enclaveFrom(ns *corev1.Namespace) enclave.Enclave {
	a := ns.Annotations
	e := enclave.Enclave{
		Name:        ns.Name,
		Channel:     enclave.Channel{TeamID: a[AnnotationTeam], ID: a[AnnotationChannel], Name: a[AnnotationName]},
		Owner:       a[AnnotationOwner],
		Frozen:      a[AnnotationFrozen] == "true",
		Terminating: ns.DeletionTimestamp != nil || ns.Status.Phase == corev1.NamespaceTerminating,
		CreatedAt:   ns.CreationTimestamp.Time,
		Governance:  readGovernance(ns, c.log),
	}
	e.Ready = !e.Terminating && readyState(a[AnnotationState])
	if q, err := decodeQuota(a[AnnotationQuota]); err == nil {
		e.Quota = q
	}
	return e
}

// SetFrozen records the frozen state with one apply of the namespace's
// frozen and state annotations. A half-made enclave stays in state
// provisioning: freezing it must not make it look ready.
func (c *Client) SetFrozen(ctx context.Context, name string, frozen bool, p enclave.Provenance) error {
	op := fmt.Sprintf("set enclave %s frozen=%t", name, frozen)
	ns, err := c.enclaveNamespace(ctx, name, op)
	if err != nil {
		return err
	}
	if ns.DeletionTimestamp != nil {
		return fmt.Errorf("%s: %w", op, ErrTerminating)
	}
	at := p.At
	if at.IsZero() {
		at = time.Now()
	}
	ann := map[string]string{
		AnnotationFrozen:   strconv.FormatBool(frozen),
		AnnotationFrozenBy: p.Actor,
		AnnotationFrozenAt: at.UTC().Format(time.RFC3339),
	}
	if readyState(ns.Annotations[AnnotationState]) {
		ann[AnnotationState] = StateActive
		if frozen {
			ann[AnnotationState] = StateFrozen
		}
	}
	// The UID makes the apply fail instead of creating a bare namespace
	// when the enclave was deleted since the read above.
	cfg := corev1ac.Namespace(name).WithUID(ns.UID).WithAnnotations(ann)
	if _, err := c.cs.CoreV1().Namespaces().Apply(ctx, cfg, metav1.ApplyOptions{FieldManager: stateFieldManager, Force: true}); err != nil {
		if apierrors.IsNotFound(err) || apierrors.IsConflict(err) || uidChanged(err) {
			// Deleted, or deleted and made again, since the read.
			return fmt.Errorf("%s: %w", op, enclave.ErrNotFound)
		}
		return apiError(op, err)
	}
	c.log.Info("enclave frozen state set", "enclave", name, "frozen", frozen, "actor", p.Actor, "channel", p.Channel)
	return nil
}

// uidChanged tells the API's refusal of an apply whose metadata.uid is
// not the object's: the object was replaced by another of the same name.
func uidChanged(err error) bool {
	var status apierrors.APIStatus
	if !apierrors.IsInvalid(err) || !errors.As(err, &status) || status.Status().Details == nil {
		return false
	}
	return slices.ContainsFunc(status.Status().Details.Causes, func(c metav1.StatusCause) bool {
		return c.Field == "metadata.uid"
	})
}

// deprovisionTimeout bounds Deprovision when its context has no deadline
// of its own. A variable so that tests can shorten it.
var deprovisionTimeout = 5 * time.Minute

// Deprovision deletes the enclave's namespace, which takes everything in
// it along, and watches until the namespace controller has finished, up
// to ctx's deadline, or for 5 minutes (deprovisionTimeout) when ctx has
// none: a namespace stuck terminating would otherwise keep it waiting
// forever. When it is not gone by then the error is a
// *StuckTerminatingError naming what holds it, wrapping
// context.DeadlineExceeded.
func (c *Client) Deprovision(ctx context.Context, name string, p enclave.Provenance) error {
	op := "deprovision enclave " + name
	waited := "" // says how long, when the wait was this default's
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, deprovisionTimeout)
		defer cancel()
		waited = fmt.Sprintf(" (gave up after waiting %s)", deprovisionTimeout)
	}
	ns, err := c.enclaveNamespace(ctx, name, op)
	if err != nil {
		return err
	}
	if ns.DeletionTimestamp == nil {
		bg := metav1.DeletePropagationBackground
		err := c.cs.CoreV1().Namespaces().Delete(ctx, name, metav1.DeleteOptions{
			PropagationPolicy: &bg,
			// Never delete a namespace of the same name made since the read.
			Preconditions: &metav1.Preconditions{UID: &ns.UID},
		})
		switch {
		case apierrors.IsNotFound(err):
			return nil
		case apierrors.IsConflict(err):
			return fmt.Errorf("%s: the namespace was replaced by another one while deprovisioning; nothing was deleted", op)
		case err != nil:
			return apiError(op, err)
		}
		c.log.Info("enclave deprovisioning", "enclave", name, "actor", p.Actor, "channel", p.Channel)
	}
	if err := c.waitGone(ctx, ns); err != nil {
		var stuck *StuckTerminatingError
		if errors.As(err, &stuck) {
			return fmt.Errorf("%s%s: %w", op, waited, err)
		}
		return apiError(op+": wait for the namespace to be gone", err)
	}
	c.log.Info("enclave deprovisioned", "enclave", name, "actor", p.Actor)
	return nil
}

// waitGone watches ns until it is deleted. It starts from the resource
// version read before the delete, so no event in between is missed.
func (c *Client) waitGone(ctx context.Context, ns *corev1.Namespace) error {
	last, rv := ns, ns.ResourceVersion
	for {
		w, err := c.cs.CoreV1().Namespaces().Watch(ctx, metav1.ListOptions{
			FieldSelector:       fields.OneTermEqualSelector("metadata.name", ns.Name).String(),
			ResourceVersion:     rv,
			AllowWatchBookmarks: true,
		})
		if err != nil {
			if ctx.Err() != nil {
				return c.stuck(ctx, last)
			}
			return err
		}
		gone, relist, err := consumeNamespaceWatch(ctx, w, ns.UID, &last, &rv)
		w.Stop()
		switch {
		case gone:
			return nil
		case ctx.Err() != nil:
			return c.stuck(ctx, last)
		case err != nil:
			return err
		case relist:
			// The resource version expired: read the present and go on.
			cur, err := c.cs.CoreV1().Namespaces().Get(ctx, ns.Name, metav1.GetOptions{})
			if apierrors.IsNotFound(err) || err == nil && cur.UID != ns.UID {
				return nil
			}
			if err != nil {
				if ctx.Err() != nil {
					return c.stuck(ctx, last)
				}
				return err
			}
			last, rv = cur, cur.ResourceVersion
		}
		// Otherwise the server closed the watch (its timeout): resume.
	}
}

// consumeNamespaceWatch reads events until the namespace with uid is
// deleted (gone), the resource version expired (relist), the watch ends,
// or ctx is done. It keeps the last state seen in last and rv.
func consumeNamespaceWatch(ctx context.Context, w watch.Interface, uid types.UID, last **corev1.Namespace, rv *string) (gone, relist bool, err error) {
	for {
		select {
		case <-ctx.Done():
			return false, false, ctx.Err()
		case ev, ok := <-w.ResultChan():
			if !ok {
				return false, false, nil
			}
			switch ev.Type {
			case watch.Deleted:
				return true, false, nil
			case watch.Added, watch.Modified:
				ns, ok := ev.Object.(*corev1.Namespace)
				if !ok {
					continue
				}
				if ns.UID != uid {
					return true, false, nil // a new namespace of the same name: ours is gone
				}
				*last, *rv = ns, ns.ResourceVersion
			case watch.Bookmark:
				if m, err := metaAccessor(ev.Object); err == nil {
					*rv = m.GetResourceVersion()
				}
			case watch.Error:
				err := apierrors.FromObject(ev.Object)
				if apierrors.IsResourceExpired(err) || apierrors.IsGone(err) {
					return false, true, nil
				}
				return false, false, err
			}
		}
	}
}

func metaAccessor(obj any) (metav1.Object, error) {
	m, ok := obj.(metav1.Object)
	if !ok {
		return nil, fmt.Errorf("watch event of type %T has no metadata", obj)
	}
	return m, nil
}

// stuck builds the error for a namespace not gone by the deadline. One
// last read, on a short context of its own since ctx is done, reports
// the namespace controller's latest conditions rather than what the
// watch last carried.
func (c *Client) stuck(ctx context.Context, last *corev1.Namespace) error {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	cur, err := c.cs.CoreV1().Namespaces().Get(rctx, last.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err) || err == nil && cur.UID != last.UID:
		return nil // it finished just now
	case err == nil:
		last = cur
	}
	return stuckTerminating(last, ctx.Err())
}
