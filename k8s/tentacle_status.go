package k8s

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kraken-ops/kraken/tentacle"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
)

// Starting is the LastError of a tentacle whose current revision is not
// serving yet and shows no problem.
const Starting = "starting"

// Status reports the tentacle's health from its Deployment and pods: one
// GET and one LIST.
func (t *Tentacles) Status(ctx context.Context, enc, name string) (tentacle.Status, error) {
	op := fmt.Sprintf("status of tentacle %s in enclave %s", name, enc)
	dep, err := t.cs.AppsV1().Deployments(enc).Get(ctx, name, metav1.GetOptions{})
	if err := tentaclesObject(dep, err, name, op); err != nil {
		return tentacle.Status{}, err
	}
	pods, err := t.cs.CoreV1().Pods(enc).List(ctx, metav1.ListOptions{LabelSelector: revisionSelector(name)})
	if err != nil {
		return tentacle.Status{}, apiError(op+": list pods", err)
	}
	st, _, _ := assess(dep, pods.Items)
	return st, nil
}

// List reports every tentacle of the enclave, sorted by name, with two
// LISTs (Deployments and pods) however many tentacles there are. An
// enclave with none, or no enclave of that name, gives an empty list.
func (t *Tentacles) List(ctx context.Context, enc string) ([]tentacle.Status, error) {
	op := fmt.Sprintf("list tentacles in enclave %s", enc)
	sel := metav1.ListOptions{LabelSelector: LabelManagedBy + "=" + ManagedBy + "," + LabelTentacle}
	deps, err := t.cs.AppsV1().Deployments(enc).List(ctx, sel)
	if err != nil {
		return nil, apiError(op, err)
	}
	if len(deps.Items) == 0 {
		return nil, nil
	}
	pods, err := t.cs.CoreV1().Pods(enc).List(ctx, sel)
	if err != nil {
		return nil, apiError(op+": list pods", err)
	}
	byTentacle := map[string][]corev1.Pod{}
	for _, p := range pods.Items {
		byTentacle[p.Labels[LabelTentacle]] = append(byTentacle[p.Labels[LabelTentacle]], p)
	}
	out := make([]tentacle.Status, 0, len(deps.Items))
	for i := range deps.Items {
		d := &deps.Items[i]
		if !isTentacles(d.Labels, d.Name) {
			continue
		}
		st, _, _ := assess(d, byTentacle[d.Name])
		out = append(out, st)
	}
	slices.SortFunc(out, func(a, b tentacle.Status) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// DefaultWaitTimeout bounds WaitReady when its context has no deadline.
const DefaultWaitTimeout = 5 * time.Minute

// waitTimeout is DefaultWaitTimeout; tests shorten it.
var waitTimeout = DefaultWaitTimeout

// WaitReady waits until the tentacle's current revision is rolled out
// and serving, or shows a problem waiting will not fix (then the error
// wraps ErrNotReady and the status's LastError says what). It watches
// the Deployment and its pods; it does not poll. The context bounds the
// wait, and when it has no deadline WaitReady gives up after
// DefaultWaitTimeout (5 minutes): a tentacle that keeps starting would
// otherwise be waited for forever. When the wait ends that way, the last
// status seen comes back with an error wrapping
// context.DeadlineExceeded.
func (t *Tentacles) WaitReady(ctx context.Context, enc, name string) (tentacle.Status, error) {
	op := fmt.Sprintf("wait for tentacle %s in enclave %s", name, enc)
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, waitTimeout)
		defer cancel()
		op += fmt.Sprintf(" (at most %s)", waitTimeout)
	}
	deps := t.cs.AppsV1().Deployments(enc)
	pods := t.cs.CoreV1().Pods(enc)
	depOpts := metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", name).String()}
	podOpts := metav1.ListOptions{LabelSelector: revisionSelector(name)}
	var last tentacle.Status
	for {
		dl, err := deps.List(ctx, depOpts)
		if err != nil {
			return last, apiError(op, err)
		}
		if len(dl.Items) == 0 || !isTentacles(dl.Items[0].Labels, name) {
			return last, fmt.Errorf("%s: %w", op, tentacle.ErrNotDeployed)
		}
		pl, err := pods.List(ctx, podOpts)
		if err != nil {
			return last, apiError(op+": list pods", err)
		}
		w := &waiter{op: op, dep: &dl.Items[0], pods: map[types.UID]corev1.Pod{}}
		for _, p := range pl.Items {
			w.pods[p.UID] = p
		}
		var done bool
		if last, done, err = w.check(); done {
			return last, err
		}
		watchFrom := func(opts metav1.ListOptions, rv string) metav1.ListOptions {
			opts.ResourceVersion, opts.AllowWatchBookmarks = rv, true
			return opts
		}
		dw, err := deps.Watch(ctx, watchFrom(depOpts, dl.ResourceVersion))
		if err != nil {
			return last, apiError(op+": watch", err)
		}
		pw, err := pods.Watch(ctx, watchFrom(podOpts, pl.ResourceVersion))
		if err != nil {
			dw.Stop()
			return last, apiError(op+": watch pods", err)
		}
		last, done, err = w.follow(ctx, dw, pw)
		dw.Stop()
		pw.Stop()
		if done {
			return last, err
		}
		// A watch ended (the API server closes them now and then, or
		// its history moved on): list again and carry on from there.
	}
}

// waiter is what WaitReady knows of the tentacle.
type waiter struct {
	op   string
	dep  *appsv1.Deployment
	pods map[types.UID]corev1.Pod
	last tentacle.Status
}

func (w *waiter) check() (tentacle.Status, bool, error) {
	pods := make([]corev1.Pod, 0, len(w.pods))
	for _, p := range w.pods {
		pods = append(pods, p)
	}
	st, rolledOut, terminal := assess(w.dep, pods)
	w.last = st
	switch {
	case rolledOut:
		return st, true, nil
	case terminal:
		return st, true, fmt.Errorf("%s: %w: %s", w.op, ErrNotReady, st.LastError)
	}
	return st, false, nil
}

// follow applies watch events until the tentacle is done (either way)
// or a watch ends; done is false for the latter.
func (w *waiter) follow(ctx context.Context, dw, pw watch.Interface) (tentacle.Status, bool, error) {
	for {
		var ev watch.Event
		var ok bool
		select {
		case <-ctx.Done():
			return w.last, true, fmt.Errorf("%s: %w (last seen: %s)", w.op, ctx.Err(), cmp.Or(w.last.LastError, "ready"))
		case ev, ok = <-dw.ResultChan():
		case ev, ok = <-pw.ResultChan():
		}
		if !ok {
			return w.last, false, nil
		}
		switch o := ev.Object.(type) {
		case *metav1.Status:
			if ev.Type == watch.Error && o.Code != 410 {
				return w.last, true, apiError(w.op+": watch", apierrors.FromObject(o))
			}
			return w.last, false, nil // 410 Gone: list again
		case *appsv1.Deployment:
			if ev.Type == watch.Deleted {
				return w.last, true, fmt.Errorf("%s: %w: it was removed while starting", w.op, tentacle.ErrNotDeployed)
			}
			if ev.Type != watch.Bookmark {
				w.dep = o
			}
		case *corev1.Pod:
			switch ev.Type {
			case watch.Deleted:
				delete(w.pods, o.UID)
			case watch.Added, watch.Modified:
				w.pods[o.UID] = *o
			}
		}
		if st, done, err := w.check(); done {
			return st, true, err
		}
	}
}

// tentaclesObject words the outcome of reading one of the tentacle's
// objects: tentacle.ErrNotDeployed when there is none of that name or it
// is not the tentacle's, the API's error when the read failed, nil when
// obj is the tentacle's.
func tentaclesObject(obj metav1.Object, err error, name, op string) error {
	switch {
	case apierrors.IsNotFound(err) || err == nil && !isTentacles(obj.GetLabels(), name):
		return fmt.Errorf("%s: %w", op, tentacle.ErrNotDeployed)
	case err != nil:
		return apiError(op, err)
	}
	return nil
}

// assess turns a Deployment and its pods into a Status. rolledOut means
// the current revision serves on every replica; terminal means LastError
// will not go away by waiting.
func assess(dep *appsv1.Deployment, pods []corev1.Pod) (st tentacle.Status, rolledOut, terminal bool) {
	replicas := int32(1)
	if dep.Spec.Replicas != nil {
		replicas = *dep.Spec.Replicas
	}
	st = tentacle.Status{
		Name:       dep.Name,
		Version:    dep.Annotations[AnnotationVersion],
		Replicas:   int(replicas),
		DeployedBy: dep.Annotations[AnnotationActor],
	}
	st.Revision, _ = strconv.Atoi(dep.Annotations[AnnotationRevision])
	st.DeployedAt, _ = time.Parse(time.RFC3339, dep.Annotations[AnnotationAt])

	// Readiness comes from the pods, which the kubelet writes first; the
	// Deployment's counts follow a moment later. Pods being replaced
	// still serve, so they count.
	for _, p := range pods {
		if p.DeletionTimestamp == nil && podReady(&p) {
			st.ReadyReplicas++
		}
	}
	st.Ready = st.ReadyReplicas > 0
	current := currentPods(dep, pods)
	currentReady := 0
	for _, p := range current {
		for _, cs := range p.Status.ContainerStatuses {
			st.Restarts += int(cs.RestartCount)
		}
		if podReady(&p) {
			currentReady++
		}
	}
	observed := dep.Status.ObservedGeneration >= dep.Generation
	rolledOut = observed && dep.Status.UpdatedReplicas >= replicas && dep.Status.Replicas == dep.Status.UpdatedReplicas &&
		dep.Status.AvailableReplicas >= replicas && currentReady >= int(replicas)
	for _, p := range current {
		if msg, term := podProblem(&p); msg != "" {
			st.LastError, terminal = msg, term
			break
		}
	}
	if st.LastError == "" && observed {
		st.LastError, terminal = deploymentProblem(dep)
	}
	if rolledOut {
		// Serving: problems of pods that are replaced do not count.
		if !terminal {
			st.LastError = ""
		}
		return st, true, false
	}
	if st.LastError == "" {
		st.LastError = Starting
	}
	return st, false, terminal
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// currentPods are the pods of the Deployment's current template, newest
// first: the pod template's revision and restart annotations tell them
// from the pods being replaced. Pods being deleted are left out.
func currentPods(dep *appsv1.Deployment, pods []corev1.Pod) []corev1.Pod {
	want := dep.Spec.Template.Annotations
	var out []corev1.Pod
	for _, p := range pods {
		if p.DeletionTimestamp != nil ||
			p.Annotations[AnnotationRevision] != want[AnnotationRevision] ||
			p.Annotations[AnnotationRestartedAt] != want[AnnotationRestartedAt] {
			continue
		}
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b corev1.Pod) int {
		return cmp.Or(b.CreationTimestamp.Compare(a.CreationTimestamp.Time), strings.Compare(a.Name, b.Name))
	})
	return out
}

// podProblem says in plain words what keeps a pod from serving.
func podProblem(p *corev1.Pod) (msg string, terminal bool) {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
			return "there is no room for it in the cluster: " + oneLine(c.Message), true
		}
	}
	if p.Status.Phase == corev1.PodFailed {
		return "its pod failed: " + oneLine(cmp.Or(p.Status.Message, p.Status.Reason, "no reason given")), false
	}
	statuses := slices.Clone(p.Status.ContainerStatuses)
	// The engine's problem is the one people care about first.
	slices.SortStableFunc(statuses, func(a, b corev1.ContainerStatus) int {
		return cmp.Compare(boolInt(a.Name != EngineContainer), boolInt(b.Name != EngineContainer))
	})
	for _, cs := range statuses {
		who := "it"
		image := "the engine image"
		if cs.Name != EngineContainer {
			who = "its sidecar " + cs.Name
			image = "the image of sidecar " + cs.Name
		}
		if w := cs.State.Waiting; w != nil {
			switch w.Reason {
			case "CrashLoopBackOff":
				return who + " keeps crashing: " + lastTermination(cs), true
			case "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull":
				return image + " cannot be pulled (" + cs.Image + ")", true
			case "ErrImagePull":
				// The first failure; the kubelet tries again before
				// backing off.
				return image + " cannot be pulled (" + cs.Image + ")", false
			case "CreateContainerConfigError":
				return who + " cannot start: " + oneLine(w.Message), true
			case "CreateContainerError", "RunContainerError":
				return who + " cannot start: " + oneLine(w.Message), false
			}
		}
		if term := cs.State.Terminated; term != nil && term.ExitCode != 0 {
			if term.Reason == "OOMKilled" {
				return who + " ran out of memory", false
			}
			return who + " crashed: " + terminationDetail(term), false
		}
		if last := cs.LastTerminationState.Terminated; last != nil && !cs.Ready && last.Reason == "OOMKilled" {
			return who + " ran out of memory", false
		}
	}
	return "", false
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// lastTermination says how a crashing container last ended.
func lastTermination(cs corev1.ContainerStatus) string {
	t := cs.LastTerminationState.Terminated
	if t == nil {
		t = cs.State.Terminated
	}
	if t == nil {
		return "it exits soon after starting"
	}
	return terminationDetail(t)
}

func terminationDetail(t *corev1.ContainerStateTerminated) string {
	if t.Reason == "OOMKilled" {
		return "it ran out of memory"
	}
	if msg := lastLine(t.Message); msg != "" {
		return msg
	}
	if t.Signal != 0 {
		return fmt.Sprintf("killed by signal %d", t.Signal)
	}
	if t.Reason != "" && t.Reason != "Error" && t.Reason != "Completed" {
		return fmt.Sprintf("%s, exit code %d", t.Reason, t.ExitCode)
	}
	return fmt.Sprintf("exit code %d", t.ExitCode)
}

// lastLine is the last non-empty line of a termination message (which
// may be the tail of the log), cut to a readable length.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return oneLine(lines[len(lines)-1])
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 300 {
		s = s[:297] + "..."
	}
	return s
}

// deploymentProblem reads the Deployment's conditions: pods the cluster
// refused to create (most often the enclave's quota), or a rollout past
// its deadline.
func deploymentProblem(dep *appsv1.Deployment) (string, bool) {
	for _, c := range dep.Status.Conditions {
		switch {
		case c.Type == appsv1.DeploymentReplicaFailure && c.Status == corev1.ConditionTrue:
			if q := parseQuotaExceeded(c.Message); q != nil {
				var parts []string
				for _, r := range q.Resources {
					parts = append(parts, fmt.Sprintf("%s (asked for %s, %s of %s in use)", r.Name, r.Requested, r.Used, r.Limit))
				}
				return "the enclave's quota is used up: " + cmp.Or(strings.Join(parts, ", "), "a resource"), true
			}
			return "the cluster refused to create its pod: " + oneLine(c.Message), true
		case c.Type == appsv1.DeploymentProgressing && c.Status == corev1.ConditionFalse && c.Reason == "ProgressDeadlineExceeded":
			return "it did not become ready in time: " + oneLine(c.Message), true
		}
	}
	return "", false
}
