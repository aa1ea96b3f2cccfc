package k8s

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kraken-ops/kraken/enclave"
	"github.com/kraken-ops/kraken/engine"
	"github.com/kraken-ops/kraken/tentacle"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
)

// Errors callers of Tentacles branch on, beside the tentacle package's.
var (
	// ErrNameClash means an object a tentacle needs already exists in the
	// enclave and is not that tentacle's.
	ErrNameClash = errors.New("name already used by another object")
	// ErrConflict means another change to the same tentacle is under
	// way; trying again once it is done is the remedy.
	ErrConflict = errors.New("another change to this tentacle is in progress")
	// ErrNotReady means WaitReady saw a problem that will not go away
	// by waiting (the status's LastError says which).
	ErrNotReady = errors.New("tentacle not ready")
	// ErrEnclaveNotReady means the enclave's provisioning did not finish
	// (its namespace is still marked provisioning): it takes no deploys
	// until it is provisioned again.
	ErrEnclaveNotReady = errors.New("enclave not ready")
)

// NoGVisorWarning is the deploy warning of a tentacle that runs without
// gVisor because the cluster has no such RuntimeClass.
const NoGVisorWarning = "gVisor is not installed: this tentacle runs without sandbox isolation"

const (
	// deployTimeout bounds one deploy, and is well inside deployLock: a
	// deploy can never still be writing when another one takes over.
	deployTimeout = 30 * time.Second
	// deployLock is how long a revision newer than the deployed one
	// counts as a deploy in progress, rather than one that died.
	deployLock = 2 * time.Minute
	// runtimeClassTTL is how long the answer to "is gVisor there?" is
	// trusted; installing it takes effect within that time.
	runtimeClassTTL = 10 * time.Minute
)

var (
	gvrDeployments   = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
	gvrServices      = schema.GroupVersionResource{Version: "v1", Resource: "services"}
	gvrSecrets       = schema.GroupVersionResource{Version: "v1", Resource: "secrets"}
	gvrConfigMaps    = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
	gvrNetworkPolicy = schema.GroupVersionResource{Group: "networking.k8s.io", Version: "v1", Resource: "networkpolicies"}
)

// Tentacles deploys, runs and reports tentacles in enclaves; it
// implements tentacle.Cluster. It is a type of its own, not methods of
// Client, because enclave.Cluster and tentacle.Cluster both have a List.
// Make one per Client and share it: it caches the RuntimeClass lookup.
//
// A tentacle NAME in enclave E is, in namespace E: the Deployment and
// Service NAME, the Secret NAME-secrets, the NetworkPolicy NAME-egress
// and one immutable ConfigMap NAME-rN per revision N, all labelled
// kraken.dev/tentacle=NAME.
type Tentacles struct {
	c    *Client
	cs   kubernetes.Interface
	meta metadata.Interface
	log  *slog.Logger
	// runTransport carries runs when Config.RunTransport is nil.
	runTransport http.RoundTripper

	rc struct {
		sync.Mutex
		name    string // the RuntimeClass to use, "" for none
		checked time.Time
		warned  bool
	}
}

var _ tentacle.Cluster = (*Tentacles)(nil)

// NewTentacles returns the tentacle side of c.
func NewTentacles(c *Client) (*Tentacles, error) {
	// Metadata-only reads let the bot look at Secrets and revisions
	// without pulling their contents.
	meta, err := metadata.NewForConfig(c.cfg.Rest)
	if err != nil {
		return nil, fmt.Errorf("k8s: %w", err)
	}
	return &Tentacles{c: c, cs: c.cs, meta: meta, log: c.log, runTransport: runTransport()}, nil
}

// Deploy makes b the tentacle's new revision in the enclave. Every
// object is written once, the revision's ConfigMap first (taking the
// revision number, which two deploys cannot both get) and the
// Deployment last (rolling the pods). Before the first write, the four
// applies are sent as server-side dry runs, so that an object the API
// server would refuse (admission, validation) is refused with nothing
// written, instead of leaving the running revision under the new
// revision's Secret and egress policy.
//
// Nothing is written when the enclave is missing, not ready
// (ErrEnclaveNotReady), frozen or being removed, when the bundle is
// invalid or too large (tentacle.ErrTooLarge), when a name the tentacle
// needs is taken by an object that is not the tentacle's (ErrNameClash),
// while another deploy of the same tentacle is under way (ErrConflict),
// when whether gVisor is there cannot be found out, or when the API
// server refuses any of the objects.
//
// The revision's Warnings say what the person should know although the
// deploy went through: no gVisor, parts of the contract the tentacle
// cannot reach.
//
// Requests: 7 reads (the namespace, the RuntimeClass unless cached, four
// metadata GETs and one metadata LIST), 4 dry runs, then 5 writes (the
// ConfigMap, Secret, Service, NetworkPolicy and Deployment), plus the
// deletes of revisions beyond MaxRevisions.
func (t *Tentacles) Deploy(ctx context.Context, enc string, b *tentacle.Bundle, p enclave.Provenance) (tentacle.Revision, error) {
	name := "?"
	if b != nil && b.Workflow != nil {
		name = b.Workflow.Name
	}
	return t.deploy(ctx, enc, b, p, 0, fmt.Sprintf("deploy tentacle %s in enclave %s", name, enc))
}

func (t *Tentacles) deploy(ctx context.Context, enc string, b *tentacle.Bundle, p enclave.Provenance, rollbackOf int, op string) (tentacle.Revision, error) {
	d, err := newDeployment(enc, b, 0, p, t.c.cfg.Image)
	if err != nil {
		return tentacle.Revision{}, fmt.Errorf("%s: %w", op, err)
	}
	d.rollbackOf = rollbackOf
	if err := d.checkServices(); err != nil {
		return tentacle.Revision{}, fmt.Errorf("%s: %w", op, err)
	}
	ctx, cancel := context.WithTimeout(ctx, deployTimeout)
	defer cancel()

	// Everything a deploy needs to know, read at once.
	var ns *corev1.Namespace
	var st *tentacleState
	var noGVisor bool
	err = parallel(
		func() (err error) { ns, err = t.c.enclaveNamespace(ctx, enc, op); return err },
		func() (err error) { st, err = t.state(ctx, enc, d.name, op); return err },
		func() (err error) { d.runtimeClass, noGVisor, err = t.runtimeClass(ctx, op); return err },
	)
	if err != nil {
		return tentacle.Revision{}, err
	}
	switch {
	case ns.DeletionTimestamp != nil:
		return tentacle.Revision{}, fmt.Errorf("%s: %w", op, ErrTerminating)
	case !readyState(ns.Annotations[AnnotationState]):
		return tentacle.Revision{}, fmt.Errorf("%s: %w: its provisioning did not finish (it is marked %q); provision it again, then deploy",
			op, ErrEnclaveNotReady, cmp.Or(ns.Annotations[AnnotationState], "unknown"))
	case ns.Annotations[AnnotationFrozen] == "true":
		return tentacle.Revision{}, fmt.Errorf("%s: %w: it takes no deploys until its channel is unarchived", op, enclave.ErrFrozen)
	}
	if err := st.checkClash(d.name, op); err != nil {
		return tentacle.Revision{}, err
	}
	if r, busy := st.inProgress(time.Now()); busy {
		return tentacle.Revision{}, fmt.Errorf("%s: %w: revision %d, started by %s at %s, is being deployed; try again when it is done",
			op, ErrConflict, r.Number, r.DeployedBy, r.DeployedAt.Format(time.RFC3339))
	}
	d.revision = max(st.deployed, st.latest()) + 1
	d.nodeSelector = t.c.cfg.NodeSelector
	var warnings []string
	if noGVisor {
		warnings = append(warnings, NoGVisorWarning)
	}
	var egressWarnings []string
	// The services' rooms are opened by their own rules (serviceEgress),
	// not as host names.
	d.egress, egressWarnings = engine.NetAllowList(d.workflow, nil)
	for _, w := range egressWarnings {
		t.log.Warn("tentacle egress: "+w, "enclave", enc, "tentacle", d.name)
	}
	warnings = append(warnings, egressWarnings...)
	if d.secrets == nil && !st.secret.exists {
		// A rollback keeps the Secret as it is; if it went missing the
		// pods would wait for it forever, so make an empty one.
		d.secrets = map[string][]byte{}
	}

	if err := t.dryRun(ctx, d, op); err != nil {
		return tentacle.Revision{}, err
	}
	if err := t.createRevision(ctx, d, op); err != nil {
		return tentacle.Revision{}, err
	}
	if err := t.applyObjects(ctx, d, op); err != nil {
		if err = t.failedApply(d, op, err); err != nil {
			return tentacle.Revision{}, err
		}
		// The Deployment runs this revision: the deploy went through.
	}
	t.prune(ctx, enc, d.name, st, d.revision)
	t.log.Info("tentacle deployed", "enclave", enc, "tentacle", d.name, "revision", d.revision,
		"version", d.version, "digest", d.digest, "by", d.by, "rollbackOf", rollbackOf, "runtimeClass", d.runtimeClass)
	return tentacle.Revision{
		Number: d.revision, Version: d.version, Digest: d.digest,
		DeployedAt: d.at.UTC().Truncate(time.Second), DeployedBy: d.by, Warnings: warnings,
	}, nil
}

// dryRun sends the four applies as server-side dry runs, at once: the
// API server validates and admits them (Pod Security, quota, webhooks)
// as it would the real ones, and stores nothing. They cost four requests
// per deploy, which is worth it: without them, an object refused after
// the Secret, Service and NetworkPolicy were applied leaves the running
// revision under the new revision's Secret and egress policy.
func (t *Tentacles) dryRun(ctx context.Context, d *deployment, op string) error {
	opts := applyOptions()
	opts.DryRun = []string{metav1.DryRunAll}
	refused := func(kind, name string, err error) error {
		return apiError(op+": the cluster refuses the "+kind+" "+name+" (checked with a dry run; nothing was written)", err)
	}
	return parallel(
		func() error {
			if d.secrets == nil {
				return nil
			}
			_, err := t.cs.CoreV1().Secrets(d.enclave).Apply(ctx, d.secret(), opts)
			// The API's messages about Secrets name keys, never values.
			return refused("Secret", secretName(d.name), err)
		},
		func() error {
			if d.services == nil {
				return nil
			}
			sec, err := d.servicesSecret()
			if err != nil {
				return fmt.Errorf("%s: %w", op, err)
			}
			_, err = t.cs.CoreV1().Secrets(d.enclave).Apply(ctx, sec, opts)
			return refused("Secret", servicesName(d.name), err)
		},
		func() error {
			_, err := t.cs.CoreV1().Services(d.enclave).Apply(ctx, d.service(), opts)
			return refused("Service", d.name, err)
		},
		func() error {
			_, err := t.cs.NetworkingV1().NetworkPolicies(d.enclave).Apply(ctx, d.egressPolicy(), opts)
			return refused("NetworkPolicy", policyName(d.name), err)
		},
		func() error {
			_, err := t.cs.AppsV1().Deployments(d.enclave).Apply(ctx, d.deployment(), opts)
			return refused("Deployment", d.name, err)
		},
	)
}

// createRevision creates the revision's ConfigMap. Create, not apply:
// an existing ConfigMap of that name is either another deploy that took
// the same number at the same moment, or not the tentacle's at all.
func (t *Tentacles) createRevision(ctx context.Context, d *deployment, op string) error {
	cm, err := d.revisionConfigMap()
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	_, err = t.cs.CoreV1().ConfigMaps(d.enclave).Create(ctx, cm, metav1.CreateOptions{FieldManager: FieldManager})
	if apierrors.IsAlreadyExists(err) {
		existing, gerr := t.meta.Resource(gvrConfigMaps).Namespace(d.enclave).Get(ctx, cm.Name, metav1.GetOptions{})
		if gerr == nil && !isTentacles(existing.Labels, d.name) {
			return clashError(op, "ConfigMap", cm.Name, d.name)
		}
		return fmt.Errorf("%s: %w: revision %d was just taken by another deploy", op, ErrConflict, d.revision)
	}
	if err != nil {
		return apiError(op+": create ConfigMap "+cm.Name, err)
	}
	return nil
}

// applyObjects writes the Secret, Service and NetworkPolicy (at once:
// they do not depend on each other) and then the Deployment, so the pods
// it rolls find everything in place.
func (t *Tentacles) applyObjects(ctx context.Context, d *deployment, op string) error {
	err := parallel(
		func() error {
			if d.secrets == nil {
				return nil
			}
			_, err := t.cs.CoreV1().Secrets(d.enclave).Apply(ctx, d.secret(), applyOptions())
			// The API's messages about Secrets name keys, never values.
			return apiError(op+": apply Secret "+secretName(d.name), err)
		},
		func() error {
			if d.services == nil {
				return nil
			}
			sec, err := d.servicesSecret()
			if err != nil {
				return fmt.Errorf("%s: %w", op, err)
			}
			_, err = t.cs.CoreV1().Secrets(d.enclave).Apply(ctx, sec, applyOptions())
			// The API's messages about Secrets name keys, never values.
			return apiError(op+": apply Secret "+servicesName(d.name), err)
		},
		func() error {
			_, err := t.cs.CoreV1().Services(d.enclave).Apply(ctx, d.service(), applyOptions())
			return apiError(op+": apply Service "+d.name, err)
		},
		func() error {
			_, err := t.cs.NetworkingV1().NetworkPolicies(d.enclave).Apply(ctx, d.egressPolicy(), applyOptions())
			return apiError(op+": apply NetworkPolicy "+policyName(d.name), err)
		},
	)
	if err != nil {
		return err
	}
	_, err = t.cs.AppsV1().Deployments(d.enclave).Apply(ctx, d.deployment(), applyOptions())
	return apiError(op+": apply Deployment "+d.name, err)
}

// failedApply cleans up after applyObjects failed with applyErr, and
// returns the deploy's error: nil when it went through after all.
//
// The Deployment's apply may have reached the API server with only its
// answer lost (a connection reset, an API server restart, the deploy's
// deadline): the Deployment then runs this revision, and deleting the
// revision's ConfigMap would leave its new pods unable to mount their
// files. So the Deployment is read first. At this revision, the deploy
// went through. At another, the revision is removed, so that it does not
// hold the next deploy back as one in progress; objects already applied
// are overwritten by the next deploy. When the Deployment cannot be read
// either, the revision is kept and the error says the revision may be
// live: the next deploy waits for it to expire (deployLock), which is
// better than breaking a Deployment that may be using it.
func (t *Tentacles) failedApply(d *deployment, op string, applyErr error) error {
	// The deploy's context may be what failed; the clean-up gets its own.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	name := revisionName(d.name, d.revision)
	dep, err := t.meta.Resource(gvrDeployments).Namespace(d.enclave).Get(ctx, d.name, metav1.GetOptions{})
	switch {
	case err == nil && isTentacles(dep.Labels, d.name) && dep.Annotations[AnnotationRevision] == strconv.Itoa(d.revision):
		t.log.Warn(op+": the Deployment was applied, but the API server's answer was lost; the deploy went through",
			"enclave", d.enclave, "tentacle", d.name, "revision", d.revision, "err", applyErr)
		return nil
	case err != nil && !apierrors.IsNotFound(err):
		t.log.Warn(op+": could not tell whether the Deployment was applied; its revision is kept, and the next deploy waits for it to expire",
			"enclave", d.enclave, "configmap", name, "err", err)
		return fmt.Errorf("%w; the cluster may have taken revision %d all the same: see the tentacle's status", applyErr, d.revision)
	}
	err = t.cs.CoreV1().ConfigMaps(d.enclave).Delete(ctx, name, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		t.log.Warn(op+": could not remove the revision of the failed deploy; the next deploy waits for it to expire",
			"enclave", d.enclave, "configmap", name, "err", err)
	}
	return applyErr
}

// prune deletes the revisions beyond the newest MaxRevisions (usually
// one per deploy). A failure only leaves extra revisions behind.
func (t *Tentacles) prune(ctx context.Context, enc, name string, st *tentacleState, newRev int) {
	nums := []int{newRev}
	for _, r := range st.revisions {
		nums = append(nums, r.Number)
	}
	slices.SortFunc(nums, func(a, b int) int { return cmp.Compare(b, a) })
	if len(nums) <= MaxRevisions {
		return
	}
	if err := t.deleteRevisions(ctx, enc, name, nums[MaxRevisions:]); err != nil {
		t.log.Warn("could not prune old tentacle revisions", "enclave", enc, "tentacle", name, "err", err)
	}
}

// deleteRevisions deletes revision ConfigMaps one by one: a
// deletecollection would need a verb RBAC cannot narrow any further,
// and there are at most MaxRevisions of them.
func (t *Tentacles) deleteRevisions(ctx context.Context, enc, name string, nums []int) error {
	for _, n := range nums {
		err := t.cs.CoreV1().ConfigMaps(enc).Delete(ctx, revisionName(name, n), metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return apiError("delete ConfigMap "+revisionName(name, n), err)
		}
	}
	return nil
}

// revisionSelector selects a tentacle's objects by label.
func revisionSelector(name string) string {
	return LabelManagedBy + "=" + ManagedBy + "," + LabelTentacle + "=" + name
}

// tentacleState is what the cluster holds of a tentacle, read with
// metadata-only requests.
type tentacleState struct {
	deployment, service, secret, policy objectState
	deployed                            int // the Deployment's revision, 0 without one
	revisions                           []revisionState
}

type objectState struct {
	exists bool
	ours   bool
	uid    types.UID
}

type revisionState struct {
	tentacle.Revision
	created time.Time
}

func (s *tentacleState) latest() int {
	if len(s.revisions) == 0 {
		return 0
	}
	return s.revisions[0].Number
}

// inProgress finds a revision newer than the deployed one that is young
// enough to be a deploy still under way (an older one died half way).
//
// This and the revision ConfigMap's create make deploys of one tentacle
// exclusive: a deploy writes only between creating its revision N and
// applying the Deployment at N. Two deploys that computed the same N
// cannot both create it. A deploy that computed N+1 saw revision N, and
// passes only if it also saw the Deployment at N: the deploy of N was
// over before its reads. That holds whatever order the reads ran in.
func (s *tentacleState) inProgress(now time.Time) (tentacle.Revision, bool) {
	for _, r := range s.revisions {
		if r.Number > s.deployed && now.Sub(r.created) < deployLock {
			return r.Revision, true
		}
	}
	return tentacle.Revision{}, false
}

func (s *tentacleState) checkClash(name, op string) error {
	for _, o := range []struct {
		kind, name string
		st         objectState
	}{
		{"Deployment", name, s.deployment},
		{"Service", name, s.service},
		{"Secret", secretName(name), s.secret},
		{"NetworkPolicy", policyName(name), s.policy},
	} {
		if o.st.exists && !o.st.ours {
			return clashError(op, o.kind, o.name, name)
		}
	}
	return nil
}

func clashError(op, kind, obj, name string) error {
	return fmt.Errorf("%s: %w: the enclave already has a %s named %s that is not part of tentacle %s; rename the tentacle or remove that %s",
		op, ErrNameClash, kind, obj, name, kind)
}

// isTentacles reports whether labels mark an object of tentacle name.
func isTentacles(labels map[string]string, name string) bool {
	return labels[LabelManagedBy] == ManagedBy && labels[LabelTentacle] == name
}

// state reads the tentacle's objects and revisions: four metadata GETs
// and one metadata LIST, at the same time, whatever the tentacle's size.
// (Deploy's exclusion does not depend on the order of these reads: see
// tentacleState.inProgress.)
func (t *Tentacles) state(ctx context.Context, enc, name, op string) (*tentacleState, error) {
	st := &tentacleState{}
	get := func(gvr schema.GroupVersionResource, obj string, dst *objectState) func() error {
		return func() error {
			m, err := t.meta.Resource(gvr).Namespace(enc).Get(ctx, obj, metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				return nil
			}
			if err != nil {
				return apiError(op+": read "+gvr.Resource+" "+obj, err)
			}
			*dst = objectState{exists: true, ours: isTentacles(m.Labels, name), uid: m.UID}
			if gvr == gvrDeployments && dst.ours {
				st.deployed, _ = strconv.Atoi(m.Annotations[AnnotationRevision])
			}
			return nil
		}
	}
	err := parallel(
		get(gvrDeployments, name, &st.deployment),
		get(gvrServices, name, &st.service),
		get(gvrSecrets, secretName(name), &st.secret),
		get(gvrNetworkPolicy, policyName(name), &st.policy),
		func() (err error) {
			st.revisions, err = t.revisions(ctx, enc, name, op)
			return err
		},
	)
	if err != nil {
		return nil, err
	}
	return st, nil
}

// parallel runs fns at once and returns the first error in fns' order.
func parallel(fns ...func() error) error {
	errs := make([]error, len(fns))
	var wg sync.WaitGroup
	for i, f := range fns {
		wg.Go(func() { errs[i] = f() })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// revisions lists the tentacle's revisions, newest first, without their
// files.
func (t *Tentacles) revisions(ctx context.Context, enc, name, op string) ([]revisionState, error) {
	list, err := t.meta.Resource(gvrConfigMaps).Namespace(enc).List(ctx, metav1.ListOptions{LabelSelector: revisionSelector(name) + "," + LabelRevision})
	if err != nil {
		return nil, apiError(op+": list revisions", err)
	}
	var out []revisionState
	for _, m := range list.Items {
		n, err := strconv.Atoi(m.Labels[LabelRevision])
		if err != nil || n <= 0 {
			continue
		}
		at, _ := time.Parse(time.RFC3339, m.Annotations[AnnotationAt])
		out = append(out, revisionState{
			Revision: tentacle.Revision{
				Number: n, Version: m.Annotations[AnnotationVersion], Digest: m.Annotations[AnnotationDigest],
				DeployedAt: at, DeployedBy: m.Annotations[AnnotationActor],
			},
			created: m.CreationTimestamp.Time,
		})
	}
	slices.SortFunc(out, func(a, b revisionState) int { return cmp.Compare(b.Number, a.Number) })
	return out, nil
}

// runtimeClass is the RuntimeClass tentacle pods get: gVisor's when the
// cluster has it, none when Config.RuntimeClass is NoRuntimeClass.
// noGVisor reports a cluster without it: tentacles still run, without
// sandbox isolation, which the deploy warns about (and the cluster check
// reports). Only "not found" means that: any other error, Forbidden
// included, fails the deploy, since deploying unsandboxed because the
// bot may not look, or the API hiccuped, would be a silent downgrade.
func (t *Tentacles) runtimeClass(ctx context.Context, op string) (name string, noGVisor bool, err error) {
	want := cmp.Or(t.c.cfg.RuntimeClass, DefaultRuntimeClass)
	if want == NoRuntimeClass {
		return "", false, nil
	}
	t.rc.Lock()
	defer t.rc.Unlock()
	if !t.rc.checked.IsZero() && time.Since(t.rc.checked) < runtimeClassTTL {
		return t.rc.name, t.rc.name == "", nil
	}
	_, err = t.cs.NodeV1().RuntimeClasses().Get(ctx, want, metav1.GetOptions{})
	switch {
	case err == nil:
		t.rc.name, t.rc.warned = want, false
	case apierrors.IsNotFound(err):
		if !t.rc.warned {
			t.log.Warn("tentacles run without gVisor: the cluster has no RuntimeClass " + want)
			t.rc.warned = true
		}
		t.rc.name = ""
	default:
		return "", false, apiError(op+": look up RuntimeClass "+want+" (tentacles are not deployed without knowing whether they can be sandboxed)", err)
	}
	t.rc.checked = time.Now()
	return t.rc.name, t.rc.name == "", nil
}

// Revisions lists the tentacle's revisions, newest first;
// tentacle.ErrNotDeployed when it has none.
func (t *Tentacles) Revisions(ctx context.Context, enc, name string) ([]tentacle.Revision, error) {
	op := fmt.Sprintf("revisions of tentacle %s in enclave %s", name, enc)
	revs, err := t.revisions(ctx, enc, name, op)
	if err != nil {
		return nil, err
	}
	if len(revs) == 0 {
		return nil, fmt.Errorf("%s: %w", op, tentacle.ErrNotDeployed)
	}
	out := make([]tentacle.Revision, len(revs))
	for i, r := range revs {
		out[i] = r.Revision
	}
	return out, nil
}

// Rollback deploys the files of revision rev (the one before the
// deployed revision when rev is 0) as a new revision. Secrets stay as
// they are: they are not part of revisions.
func (t *Tentacles) Rollback(ctx context.Context, enc, name string, rev int, p enclave.Provenance) (tentacle.Revision, error) {
	op := fmt.Sprintf("roll back tentacle %s in enclave %s", name, enc)
	dep, err := t.meta.Resource(gvrDeployments).Namespace(enc).Get(ctx, name, metav1.GetOptions{})
	if err := tentaclesObject(dep, err, name, op); err != nil {
		return tentacle.Revision{}, err
	}
	current, _ := strconv.Atoi(dep.Annotations[AnnotationRevision])
	if rev == 0 {
		revs, err := t.revisions(ctx, enc, name, op)
		if err != nil {
			return tentacle.Revision{}, err
		}
		for _, r := range revs {
			if r.Number < current {
				rev = r.Number
				break
			}
		}
		if rev == 0 {
			return tentacle.Revision{}, fmt.Errorf("%s: %w: revision %d is the oldest one kept", op, tentacle.ErrNoRevision, current)
		}
	}
	cm, err := t.cs.CoreV1().ConfigMaps(enc).Get(ctx, revisionName(name, rev), metav1.GetOptions{})
	if apierrors.IsNotFound(err) || err == nil && (!isTentacles(cm.Labels, name) || cm.Labels[LabelRevision] != strconv.Itoa(rev)) {
		return tentacle.Revision{}, fmt.Errorf("%s: %w: revision %d is not kept (the last %d are)", op, tentacle.ErrNoRevision, rev, MaxRevisions)
	}
	if err != nil {
		return tentacle.Revision{}, apiError(op, err)
	}
	files, err := revisionFiles(cm)
	if err != nil {
		return tentacle.Revision{}, fmt.Errorf("%s: revision %d: %w", op, rev, err)
	}
	b, err := tentacle.BundleFromFiles(files, nil)
	if err != nil {
		return tentacle.Revision{}, fmt.Errorf("%s: revision %d: %w", op, rev, err)
	}
	if b.Workflow.Name != name {
		return tentacle.Revision{}, fmt.Errorf("%s: revision %d holds tentacle %s", op, rev, b.Workflow.Name)
	}
	return t.deploy(ctx, enc, b, p, rev, op)
}

// Files returns the files revision rev of the tentacle deployed, or
// those of the revision its Deployment runs when rev is 0: what a
// redeploy is compared with. Revisions hold no secrets, so neither does
// the result.
//
// tentacle.ErrNotDeployed when the tentacle has no Deployment (and, for
// rev > 0, no such revision either); tentacle.ErrNoRevision when rev is
// negative or not kept. Requests: one GET of the revision's ConfigMap,
// after one metadata GET of the Deployment when rev is 0 or the revision
// is missing.
func (t *Tentacles) Files(ctx context.Context, enc, name string, rev int) (map[string][]byte, error) {
	op := fmt.Sprintf("files of tentacle %s in enclave %s", name, enc)
	if rev < 0 {
		return nil, fmt.Errorf("%s: %w: revision %d (revisions count from 1; 0 is the deployed one)", op, tentacle.ErrNoRevision, rev)
	}
	// deployed reads which revision the Deployment runs; not deployed
	// when there is no Deployment of the tentacle.
	deployed := func() (int, error) {
		dep, err := t.meta.Resource(gvrDeployments).Namespace(enc).Get(ctx, name, metav1.GetOptions{})
		if err := tentaclesObject(dep, err, name, op); err != nil {
			return 0, err
		}
		n, err := strconv.Atoi(dep.Annotations[AnnotationRevision])
		if err != nil || n <= 0 {
			return 0, fmt.Errorf("%s: %w: its Deployment does not say which revision it runs (%s=%q)",
				op, tentacle.ErrNoRevision, AnnotationRevision, dep.Annotations[AnnotationRevision])
		}
		return n, nil
	}
	if rev == 0 {
		n, err := deployed()
		if err != nil {
			return nil, err
		}
		rev = n
	}
	op = fmt.Sprintf("files of revision %d of tentacle %s in enclave %s", rev, name, enc)
	cm, err := t.cs.CoreV1().ConfigMaps(enc).Get(ctx, revisionName(name, rev), metav1.GetOptions{})
	if apierrors.IsNotFound(err) || err == nil && (!isTentacles(cm.Labels, name) || cm.Labels[LabelRevision] != strconv.Itoa(rev)) {
		// No such revision. When the tentacle is not deployed at all,
		// that is the answer the caller can act on, so ask.
		if _, derr := deployed(); derr != nil && !errors.Is(derr, tentacle.ErrNoRevision) {
			return nil, derr // not deployed, or the question went unanswered
		}
		return nil, fmt.Errorf("%s: %w: revision %d is not kept (the last %d are)", op, tentacle.ErrNoRevision, rev, MaxRevisions)
	}
	if err != nil {
		return nil, apiError(op, err)
	}
	files, err := revisionFiles(cm)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	return files, nil
}

// revisionFiles reads a revision's files back by its index.
func revisionFiles(cm *corev1.ConfigMap) (map[string][]byte, error) {
	var index map[string]string
	if err := json.Unmarshal([]byte(cm.Annotations[AnnotationFiles]), &index); err != nil {
		return nil, fmt.Errorf("its file index is unreadable: %w", err)
	}
	files := make(map[string][]byte, len(index))
	for p, k := range index {
		if v, ok := cm.Data[k]; ok {
			files[p] = []byte(v)
		} else if v, ok := cm.BinaryData[k]; ok {
			files[p] = v
		} else {
			return nil, fmt.Errorf("file %s is missing", p)
		}
	}
	return files, nil
}

// Restart rolls the tentacle's pods with one patch of the pod template.
// The patch tests the Deployment's labels first, so it never restarts a
// Deployment that is not the tentacle's. The pod template is stamped
// with the time of the restart, not p.At: two restarts with the same
// provenance (a caller's, a test's) would leave the template unchanged
// the second time, and the pods not rolled.
func (t *Tentacles) Restart(ctx context.Context, enc, name string, p enclave.Provenance) error {
	op := fmt.Sprintf("restart tentacle %s in enclave %s", name, enc)
	at := time.Now()
	by := cmp.Or(p.Actor, "system")
	patch, err := json.Marshal([]map[string]string{
		{"op": "test", "path": "/metadata/labels/" + jsonPointer(LabelManagedBy), "value": ManagedBy},
		{"op": "test", "path": "/metadata/labels/" + jsonPointer(LabelTentacle), "value": name},
		{"op": "add", "path": "/spec/template/metadata/annotations/" + jsonPointer(AnnotationRestartedAt), "value": at.UTC().Format(time.RFC3339Nano)},
		{"op": "add", "path": "/metadata/annotations/" + jsonPointer(AnnotationRestartedBy), "value": by},
	})
	if err != nil {
		return err
	}
	_, err = t.cs.AppsV1().Deployments(enc).Patch(ctx, name, types.JSONPatchType, patch, metav1.PatchOptions{FieldManager: FieldManager})
	switch {
	case apierrors.IsNotFound(err):
		return fmt.Errorf("%s: %w", op, tentacle.ErrNotDeployed)
	case apierrors.IsInvalid(err) || apierrors.IsBadRequest(err) || statusCode(err) == 422:
		// A failed test: the Deployment of that name is someone else's.
		return fmt.Errorf("%s: %w: the Deployment %s is not a tentacle's", op, tentacle.ErrNotDeployed, name)
	case err != nil:
		return apiError(op, err)
	}
	t.log.Info("tentacle restarted", "enclave", enc, "tentacle", name, "by", by)
	return nil
}

// jsonPointer escapes a map key for a JSON patch path (RFC 6901).
func jsonPointer(key string) string {
	return strings.NewReplacer("~", "~0", "/", "~1").Replace(key)
}

// Undeploy removes the tentacle: its Deployment (whose pods go with it),
// Service, NetworkPolicy, Secret and revisions. Objects are chosen by
// the tentacle's labels, so nothing that is not the tentacle's is
// touched; tentacle.ErrNotDeployed when there is nothing of it, and
// ErrConflict while a deploy of it is under way.
func (t *Tentacles) Undeploy(ctx context.Context, enc, name string, p enclave.Provenance) error {
	op := fmt.Sprintf("undeploy tentacle %s from enclave %s", name, enc)
	if _, err := t.c.enclaveNamespace(ctx, enc, op); err != nil {
		return err
	}
	st, err := t.state(ctx, enc, name, op)
	if err != nil {
		return err
	}
	if !st.deployment.ours && !st.service.ours && !st.secret.ours && !st.policy.ours && len(st.revisions) == 0 {
		return fmt.Errorf("%s: %w", op, tentacle.ErrNotDeployed)
	}
	// A deploy writes between creating its revision and applying the
	// Deployment: removing things under it would leave strays behind.
	if r, busy := st.inProgress(time.Now()); busy {
		return fmt.Errorf("%s: %w: revision %d, started by %s at %s, is being deployed; undeploy when it is done",
			op, ErrConflict, r.Number, r.DeployedBy, r.DeployedAt.Format(time.RFC3339))
	}
	background := metav1.DeletePropagationBackground
	del := func(kind string, o objectState, f func(context.Context, string, metav1.DeleteOptions) error, objName string) error {
		if !o.ours {
			return nil
		}
		err := f(ctx, objName, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &o.uid}, PropagationPolicy: &background})
		if err != nil && !apierrors.IsNotFound(err) {
			return apiError(op+": delete "+kind+" "+objName, err)
		}
		return nil
	}
	// The Deployment first: its pods stop using what follows.
	if err := del("Deployment", st.deployment, t.cs.AppsV1().Deployments(enc).Delete, name); err != nil {
		return err
	}
	if err := del("Service", st.service, t.cs.CoreV1().Services(enc).Delete, name); err != nil {
		return err
	}
	if err := del("NetworkPolicy", st.policy, t.cs.NetworkingV1().NetworkPolicies(enc).Delete, policyName(name)); err != nil {
		return err
	}
	if err := del("Secret", st.secret, t.cs.CoreV1().Secrets(enc).Delete, secretName(name)); err != nil {
		return err
	}
	// The services Secret is not in st (most tentacles have none): delete
	// it by name. No other object of ours can bear that name, and people
	// make no Secrets in an enclave.
	err = t.cs.CoreV1().Secrets(enc).Delete(ctx, servicesName(name), metav1.DeleteOptions{PropagationPolicy: &background})
	if err != nil && !apierrors.IsNotFound(err) {
		return apiError(op+": delete Secret "+servicesName(name), err)
	}
	var nums []int
	for _, r := range st.revisions {
		nums = append(nums, r.Number)
	}
	if err := t.deleteRevisions(ctx, enc, name, nums); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	t.log.Info("tentacle undeployed", "enclave", enc, "tentacle", name, "by", cmp.Or(p.Actor, "system"))
	return nil
}

func statusCode(err error) int32 {
	var s apierrors.APIStatus
	if errors.As(err, &s) {
		return s.Status().Code
	}
	return 0
}
