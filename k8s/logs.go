package k8s

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/kraken-ops/kraken/tentacle"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// DefaultTailLines is how many log lines Logs returns when not told.
const DefaultTailLines = 100

// Logs streams the engine container's log of the tentacle's newest pod:
// the last TailLines lines, and with Follow what it writes next until
// the pod ends or ctx is done. The caller closes the stream.
func (t *Tentacles) Logs(ctx context.Context, enc, name string, opts tentacle.LogOptions) (io.ReadCloser, error) {
	op := fmt.Sprintf("logs of tentacle %s in enclave %s", name, enc)
	pods, err := t.cs.CoreV1().Pods(enc).List(ctx, metav1.ListOptions{LabelSelector: revisionSelector(name)})
	if err != nil {
		return nil, apiError(op, err)
	}
	pod := newestPod(pods.Items)
	if pod == nil {
		dep, err := t.meta.Resource(gvrDeployments).Namespace(enc).Get(ctx, name, metav1.GetOptions{})
		if err := tentaclesObject(dep, err, name, op); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%s: it has no pod yet, so no logs; see its status", op)
	}
	tail := int64(cmp.Or(opts.TailLines, DefaultTailLines))
	stream, err := t.cs.CoreV1().Pods(enc).GetLogs(pod.Name, &corev1.PodLogOptions{
		Container: EngineContainer,
		TailLines: &tail,
		Follow:    opts.Follow,
	}).Stream(ctx)
	if err != nil {
		if apierrors.IsBadRequest(err) {
			// The kubelet has nothing yet: the container is still
			// being created or its image pulled.
			return nil, fmt.Errorf("%s: pod %s has no logs yet: %w", op, pod.Name, err)
		}
		return nil, apiError(op+": pod "+pod.Name, err)
	}
	return stream, nil
}

// newestPod prefers running pods (a pod being replaced still logs the
// runs it serves) and, among those, the newest.
func newestPod(pods []corev1.Pod) *corev1.Pod {
	var best *corev1.Pod
	rank := func(p *corev1.Pod) int {
		if p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning {
			return 1
		}
		return 0
	}
	for i := range pods {
		p := &pods[i]
		if best == nil || cmp.Or(cmp.Compare(rank(p), rank(best)), p.CreationTimestamp.Compare(best.CreationTimestamp.Time)) > 0 {
			best = p
		}
	}
	return best
}

// Events lists what the cluster reported about the tentacle's
// Deployment, ReplicaSets and pods, newest first: two LISTs. Pods are
// recognised by their ReplicaSet's name, so events of pods already gone
// are kept.
func (t *Tentacles) Events(ctx context.Context, enc, name string) ([]tentacle.Event, error) {
	op := fmt.Sprintf("events of tentacle %s in enclave %s", name, enc)
	rss, err := t.cs.AppsV1().ReplicaSets(enc).List(ctx, metav1.ListOptions{LabelSelector: revisionSelector(name)})
	if err != nil {
		return nil, apiError(op, err)
	}
	owned := map[string]bool{}
	for _, rs := range rss.Items {
		owned[rs.Name] = true
	}
	events, err := t.cs.CoreV1().Events(enc).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, apiError(op, err)
	}
	var out []tentacle.Event
	for _, e := range events.Items {
		o := e.InvolvedObject
		var ours bool
		switch o.Kind {
		case "Deployment":
			ours = o.Name == name
		case "ReplicaSet":
			ours = owned[o.Name]
		case "Pod":
			// A Deployment's pod is named <ReplicaSet>-<5 characters>.
			if m := podName.FindStringSubmatch(o.Name); m != nil {
				ours = owned[m[1]]
			}
		}
		if !ours {
			continue
		}
		out = append(out, tentacle.Event{
			Time:    eventTime(&e),
			Warning: e.Type == corev1.EventTypeWarning,
			Reason:  e.Reason,
			Message: strings.TrimSpace(e.Message),
		})
	}
	slices.SortStableFunc(out, func(a, b tentacle.Event) int { return b.Time.Compare(a.Time) })
	return out, nil
}

var podName = regexp.MustCompile(`^(.+)-[a-z0-9]{5}$`)

// eventTime is when an event last happened; events recorded through the
// newer events API carry only some of these.
func eventTime(e *corev1.Event) time.Time {
	if e.Series != nil && !e.Series.LastObservedTime.IsZero() {
		return e.Series.LastObservedTime.Time
	}
	for _, t := range []time.Time{e.LastTimestamp.Time, e.EventTime.Time, e.FirstTimestamp.Time, e.CreationTimestamp.Time} {
		if !t.IsZero() {
			return t
		}
	}
	return time.Time{}
}
