package k8s_test

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kraken-ops/kraken/k8s"
	"github.com/kraken-ops/kraken/k8s/k8stest/botenv"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/rest"
)

// Short durations, so that failovers take seconds.
var testLeader = k8s.LeaderConfig{
	LeaseDuration: 3 * time.Second,
	RenewDeadline: 2 * time.Second,
	RetryPeriod:   500 * time.Millisecond,
}

// terms records who led when, to show that no two candidates led at once.
type terms struct {
	mu     sync.Mutex
	all    []term
	starts chan term
}

type term struct {
	who        string
	start, end time.Time
	// prev is what LeaderTermOf told the leader of its predecessor.
	prev    k8s.LeaderTerm
	hasPrev bool
}

func newTerms() *terms { return &terms{starts: make(chan term, 16)} }

// lead is a candidate's lead func: it records its term.
func (r *terms) lead(who string) func(context.Context) {
	return func(ctx context.Context) {
		prev, ok := k8s.LeaderTermOf(ctx)
		tm := term{who: who, start: time.Now(), prev: prev, hasPrev: ok}
		r.mu.Lock()
		i := len(r.all)
		r.all = append(r.all, tm)
		r.mu.Unlock()
		r.starts <- tm
		<-ctx.Done()
		r.mu.Lock()
		r.all[i].end = time.Now()
		r.mu.Unlock()
	}
}

// next waits for a term to start.
func (r *terms) next(t *testing.T, within time.Duration) term {
	t.Helper()
	select {
	case tm := <-r.starts:
		return tm
	case <-time.After(within):
		t.Fatalf("no candidate started leading within %v", within)
		return term{}
	}
}

// checkNoOverlap fails when a term started before the previous one ended.
func (r *terms) checkNoOverlap(t *testing.T) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	all := slices.Clone(r.all)
	slices.SortFunc(all, func(a, b term) int { return a.start.Compare(b.start) })
	for i := 1; i < len(all); i++ {
		prev := all[i-1]
		if prev.end.IsZero() || all[i].start.Before(prev.end) {
			t.Errorf("%s started leading at %s while %s led (%s to %s)",
				all[i].who, all[i].start.Format(time.StampMilli), prev.who, prev.start.Format(time.StampMilli), prev.end.Format(time.StampMilli))
		}
	}
}

// candidate is one replica campaigning as the bot's ServiceAccount.
type candidate struct {
	name        string
	cancel      func()
	done        chan error
	partitioned *atomic.Bool // its requests fail, as if cut off from the API server
	stopped     bool
}

func startCandidate(t *testing.T, e *botenv.Env, r *terms, name string, cfg k8s.LeaderConfig) *candidate {
	t.Helper()
	cd := &candidate{name: name, done: make(chan error, 1), partitioned: new(atomic.Bool)}
	kc := e.Config(t)
	kc.Rest = rest.CopyConfig(e.Rest)
	kc.Rest.Wrap(func(next http.RoundTripper) http.RoundTripper {
		return roundTripper(func(req *http.Request) (*http.Response, error) {
			if cd.partitioned.Load() {
				return nil, errors.New("partitioned")
			}
			return next.RoundTrip(req)
		})
	})
	c, err := k8s.New(kc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cd.cancel = cancel
	cfg.Identity = name
	go func() { cd.done <- c.Lead(ctx, cfg, r.lead(name)) }()
	t.Cleanup(func() { cd.stop(t) })
	return cd
}

// stop ends the candidate and waits for Lead to return.
func (cd *candidate) stop(t *testing.T) {
	t.Helper()
	cd.partitioned.Store(false)
	cd.cancel()
	if cd.stopped {
		return
	}
	cd.stopped = true
	select {
	case err := <-cd.done:
		if err != nil {
			t.Errorf("%s: Lead: %v", cd.name, err)
		}
	case <-time.After(10 * time.Second):
		t.Errorf("%s: Lead did not return within 10s of its context ending", cd.name)
	}
}

// TestLeadFailover runs candidates for the leader lease as the bot, with
// the chart's RBAC only: one leads at a time; a leader that stops (the
// SIGTERM path) hands over at once; a leader cut off from the API server
// stops leading before another takes over, within the lease duration.
func TestLeadFailover(t *testing.T) {
	t.Parallel()
	e := botenv.Install(t)
	r := newTerms()
	defer r.checkNoOverlap(t)
	cfg := testLeader

	a := startCandidate(t, e, r, "a", cfg)
	b := startCandidate(t, e, r, "b", cfg)
	first := r.next(t, 30*time.Second) // the bot's Role may take a moment to apply
	if !first.hasPrev || first.prev != (k8s.LeaderTerm{}) {
		t.Errorf("the first leader of a new lease is told of a predecessor: %+v (%v)", first.prev, first.hasPrev)
	}
	leader, follower := a, b
	if first.who == "b" {
		leader, follower = b, a
	}
	// Both campaign; the follower must stay a follower for a while.
	time.Sleep(2 * cfg.LeaseDuration)
	select {
	case tm := <-r.starts:
		t.Fatalf("%s started leading while %s held the lease", tm.who, first.who)
	default:
	}

	// SIGTERM: the leader's context ends, its lead returns, it releases
	// the lease.
	stopped := time.Now()
	leader.stop(t)
	next := r.next(t, cfg.LeaseDuration)
	if next.who != follower.name {
		t.Fatalf("after %s stopped, %s leads, want %s", leader.name, next.who, follower.name)
	}
	// A released lease names no holder; its renewal is the release,
	// after the old leader's work stopped.
	if p := next.prev; p.Previous != "" || p.PreviousRenew.Before(stopped.Add(-time.Second)) || p.PreviousRenew.After(next.start) {
		t.Errorf("after a release the new leader is told %+v; want no holder, renewed between %s and %s",
			p, stopped.Format(time.StampMilli), next.start.Format(time.StampMilli))
	}
	released := next.start.Sub(stopped)
	t.Logf("failover after a release: %v", released.Round(time.Millisecond))
	if max := 2*cfg.RetryPeriod + time.Second; released > max {
		t.Errorf("failover after a release took %v, want under %v", released, max)
	}

	// A crash, or a partition: the leader stops renewing without
	// releasing. It must stop leading after RenewDeadline, and the other
	// take over only after LeaseDuration.
	leader, follower = follower, startCandidate(t, e, r, "c", cfg)
	time.Sleep(cfg.RetryPeriod)
	cut := time.Now()
	leader.partitioned.Store(true)
	next = r.next(t, cfg.LeaseDuration+cfg.RenewDeadline)
	if next.who != follower.name {
		t.Fatalf("after %s was cut off, %s leads, want %s", leader.name, next.who, follower.name)
	}
	// The dead leader's last renewal, at most a retry (jittered by up to
	// 1.2) before the cut, is what the next one is told.
	if p := next.prev; p.Previous != leader.name || p.PreviousRenew.After(cut) || cut.Sub(p.PreviousRenew) > 2*cfg.RetryPeriod+time.Second {
		t.Errorf("after a crash at %s the new leader is told %+v; want %s's last renewal, shortly before",
			cut.Format(time.StampMilli), p, leader.name)
	}
	expired := next.start.Sub(cut)
	t.Logf("failover after a crash: %v (lease %v, retry %v)", expired.Round(time.Millisecond), cfg.LeaseDuration, cfg.RetryPeriod)
	if max := cfg.LeaseDuration + 3*cfg.RetryPeriod + time.Second; expired > max {
		t.Errorf("failover after a crash took %v, want under %v", expired, max)
	}
	r.mu.Lock()
	for _, tm := range r.all {
		if tm.who == leader.name && !tm.end.IsZero() {
			t.Logf("the cut-off leader stopped leading %v after the cut", tm.end.Sub(cut).Round(time.Millisecond))
		}
	}
	r.mu.Unlock()
	// Back on the network, the old leader is a follower.
	leader.partitioned.Store(false)
	time.Sleep(2 * cfg.RetryPeriod)
	select {
	case tm := <-r.starts:
		t.Fatalf("%s started leading while %s held the lease", tm.who, follower.name)
	default:
	}
	leader.stop(t)
	follower.stop(t)
}

// TestLeadKeepLease: a leader that ends without releasing, as a crashed
// pod does, is succeeded once the lease expires.
func TestLeadKeepLease(t *testing.T) {
	t.Parallel()
	e := botenv.Install(t)
	r := newTerms()
	defer r.checkNoOverlap(t)
	crash := testLeader
	crash.KeepLease = true
	a := startCandidate(t, e, r, "a", crash)
	if tm := r.next(t, 30*time.Second); tm.who != "a" {
		t.Fatalf("%s leads, want a", tm.who)
	}
	b := startCandidate(t, e, r, "b", testLeader)
	time.Sleep(testLeader.RetryPeriod)
	killed := time.Now()
	a.stop(t)
	tm := r.next(t, 2*testLeader.LeaseDuration)
	took := tm.start.Sub(killed)
	t.Logf("failover after a leader ended without releasing: %v", took.Round(time.Millisecond))
	if took < testLeader.LeaseDuration-testLeader.RetryPeriod-500*time.Millisecond {
		t.Errorf("b took over after %v, before a's lease (%v) could have expired", took, testLeader.LeaseDuration)
	}
	if max := testLeader.LeaseDuration + 3*testLeader.RetryPeriod + time.Second; took > max {
		t.Errorf("failover took %v, want under %v", took, max)
	}
	b.stop(t)
}

// TestChartReplicas: one replica with persistence is a Deployment on the
// chart's claim; several with persistence a StatefulSet, each pod with a
// claim of its own; without persistence a Deployment of emptyDirs. Every
// way the pods name themselves in the lease, outlive their shutdown
// grace, and share the schedules' ConfigMap.
func TestChartReplicas(t *testing.T) {
	for _, tc := range []struct {
		name        string
		persistence bool
		replicas    int
		kind        string
	}{
		{"persistence, one replica", true, 1, "Deployment"},
		{"persistence, three replicas", true, 3, "StatefulSet"},
		{"no persistence", false, 2, "Deployment"},
	} {
		objs := renderChart(t, "kraken", "kraken-system", map[string]any{
			"persistence": map[string]any{"enabled": tc.persistence, "storageClassName": "fast"}, "replicaCount": tc.replicas})
		var replicas *int32
		var pod corev1.PodSpec
		switch tc.kind {
		case "Deployment":
			dep := findObject[appsv1.Deployment](t, objs, "Deployment", "kraken")
			replicas, pod = dep.Spec.Replicas, dep.Spec.Template.Spec
			if tc.persistence != (dep.Spec.Strategy.Type == appsv1.RecreateDeploymentStrategyType) {
				t.Errorf("%s: strategy %q", tc.name, dep.Spec.Strategy.Type)
			}
		case "StatefulSet":
			sts := findObject[appsv1.StatefulSet](t, objs, "StatefulSet", "kraken")
			replicas, pod = sts.Spec.Replicas, sts.Spec.Template.Spec
			if len(sts.Spec.VolumeClaimTemplates) != 1 {
				t.Fatalf("%s: %d volume claim templates, want one", tc.name, len(sts.Spec.VolumeClaimTemplates))
			}
			vct := sts.Spec.VolumeClaimTemplates[0]
			if vct.Name != "data" || vct.Spec.Resources.Requests.Storage().String() != "1Gi" || vct.Spec.StorageClassName == nil || *vct.Spec.StorageClassName != "fast" ||
				!slices.Equal(vct.Spec.AccessModes, []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}) {
				t.Errorf("%s: the claim template is %+v, want data, 1Gi, ReadWriteOnce, class fast", tc.name, vct)
			}
			if sts.Spec.ServiceName != "kraken" || sts.Spec.PodManagementPolicy != appsv1.ParallelPodManagement {
				t.Errorf("%s: serviceName %q, podManagementPolicy %q", tc.name, sts.Spec.ServiceName, sts.Spec.PodManagementPolicy)
			}
			for _, v := range pod.Volumes {
				if v.Name == "data" {
					t.Errorf("%s: the pod has its own data volume %+v besides the claim template's", tc.name, v)
				}
			}
			for _, o := range objs {
				if o.GetKind() == "PersistentVolumeClaim" || o.GetKind() == "Deployment" {
					t.Errorf("%s: the chart renders %s %s too: each replica's claim comes from the StatefulSet", tc.name, o.GetKind(), o.GetName())
				}
			}
		}
		if replicas == nil || int(*replicas) != tc.replicas {
			t.Errorf("%s: replicas %v, want %d", tc.name, replicas, tc.replicas)
		}
		mounted := slices.ContainsFunc(pod.Containers[0].VolumeMounts, func(m corev1.VolumeMount) bool { return m.Name == "data" && m.MountPath == "/data" })
		if !mounted {
			t.Errorf("%s: the data volume is not mounted at /data", tc.name)
		}
		var podName, grace string
		for _, e := range pod.Containers[0].Env {
			switch e.Name {
			case "KRAKEN_POD_NAME":
				if e.ValueFrom != nil && e.ValueFrom.FieldRef != nil {
					podName = e.ValueFrom.FieldRef.FieldPath
				}
			case "KRAKEN_SHUTDOWN_GRACE":
				grace = e.Value
			}
		}
		if podName != "metadata.name" {
			t.Errorf("%s: KRAKEN_POD_NAME is not the pod's name", tc.name)
		}
		d, err := time.ParseDuration(grace)
		if err != nil || pod.TerminationGracePeriodSeconds == nil || time.Duration(*pod.TerminationGracePeriodSeconds)*time.Second < d+5*time.Second {
			t.Errorf("%s: KRAKEN_SHUTDOWN_GRACE %q, terminationGracePeriodSeconds %v: the pod must outlive the grace by a few seconds", tc.name, grace, pod.TerminationGracePeriodSeconds)
		}
		if cm := findObject[corev1.ConfigMap](t, objs, "ConfigMap", k8s.ScheduleStateConfigMap); len(cm.Data)+len(cm.BinaryData) != 0 {
			t.Errorf("%s: the schedules' ConfigMap carries data, which an upgrade would write over the bot's", tc.name)
		}
	}
}

// TestChartReplicasRefuseOneClaim: several replicas cannot share an
// existing claim (one bbolt file); the chart says so rather than render
// pods that wait on each other's lock.
func TestChartReplicasRefuseOneClaim(t *testing.T) {
	_, err := renderChartError(t, "kraken", "kraken-system", map[string]any{"replicaCount": 3, "persistence": map[string]any{"existingClaim": "mine"}})
	if err == nil || !strings.Contains(err.Error(), "existingClaim") {
		t.Errorf("replicaCount 3 with an existing claim: %v, want the chart to refuse, naming existingClaim", err)
	}
	if _, err := renderChartError(t, "kraken", "kraken-system", map[string]any{"replicaCount": 1, "persistence": map[string]any{"existingClaim": "mine"}}); err != nil {
		t.Errorf("one replica on an existing claim: %v", err)
	}
}
