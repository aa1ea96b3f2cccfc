package k8stest

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
)

// How long a stopping engine gets after SIGTERM before SIGKILL: enough
// for an idle engine, short enough that test cleanup stays quick.
const stopGrace = 3 * time.Second

// pod is one pod the kubelet runs.
type pod struct {
	k      *Kubelet
	obj    *corev1.Pod // as first seen
	uid    types.UID
	ip     string
	dir    string
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	kick   chan struct{} // asks the status loop for a write
	write  sync.Mutex    // one status write at a time

	mu         sync.Mutex
	phase      corev1.PodPhase
	started    metav1.Time
	containers []*container
	main       int       // the container a PodState applies to
	override   *PodState // set by SetPodStatus
	overrideAt metav1.Time
}

// container is one container of a pod; the fields after ports are
// guarded by the pod's mu.
type container struct {
	name, image string
	engine      bool
	args        []string // after "engine"
	env         []string
	mounts      []mount
	ports       []corev1.ContainerPort

	containerPort int // what the engine listens on in the pod
	localPort     int // what it listens on here; 0 when not running
	proc          *os.Process
	ready         bool
	restarts      int32
	state, last   corev1.ContainerState
	cur, prev     *logBuffer
	instances     int
}

func newPod(k *Kubelet, obj *corev1.Pod, ip string) *pod {
	ctx, cancel := context.WithCancel(k.ctx)
	p := &pod{
		k: k, obj: obj, uid: obj.UID, ip: ip,
		dir: filepath.Join(k.dir, obj.Namespace+"_"+obj.Name+"_"+string(obj.UID)),
		ctx: ctx, cancel: cancel, kick: make(chan struct{}, 1),
		phase: corev1.PodPending, started: metav1.Now(), main: -1,
	}
	for i, c := range obj.Spec.Containers {
		args, engine := engineCommand(c.Command, c.Args)
		ct := &container{
			name: c.Name, image: c.Image, engine: engine, args: args,
			env:    containerEnv(obj, c, ip),
			mounts: containerMounts(c, filepath.Join(p.dir, "volumes")),
			ports:  c.Ports, containerPort: defaultEnginePort,
			state: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}},
			cur:   newLogBuffer(),
		}
		if engine && p.main < 0 {
			p.main = i
		}
		p.containers = append(p.containers, ct)
	}
	p.main = max(p.main, 0)
	return p
}

// containerEnv is the container's literal env and the downward API
// fields it asks for; values from ConfigMaps and Secrets are left out.
func containerEnv(obj *corev1.Pod, c corev1.Container, ip string) []string {
	var env []string
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			env = append(env, e.Name+"="+e.Value)
		case e.ValueFrom.FieldRef != nil:
			if v, ok := fieldValue(obj, e.ValueFrom.FieldRef.FieldPath, ip); ok {
				env = append(env, e.Name+"="+v)
			}
		}
	}
	return env
}

func (p *pod) key() string { return p.obj.Namespace + "/" + p.obj.Name }

func (p *pod) start() { p.wg.Go(p.run) }

// stop kills the pod's processes and waits for its goroutines.
func (p *pod) stop() {
	p.cancel()
	p.wg.Wait()
}

func (p *pod) kickStatus() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

func (p *pod) run() {
	p.wg.Go(p.statusLoop)
	p.kickStatus()
	// Like the kubelet, wait for the volumes' ConfigMaps and Secrets.
	for attempt := 0; ; attempt++ {
		err := materialise(p.ctx, p.k.cs, p.obj, filepath.Join(p.dir, "volumes"))
		if err == nil {
			break
		}
		if p.ctx.Err() != nil {
			return
		}
		if attempt == 0 {
			p.k.t.Logf("kubelet %s: pod %s waits for its volumes: %v", p.k.name, p.key(), err)
		}
		select {
		case <-p.ctx.Done():
			return
		case <-time.After(250 * time.Millisecond):
		}
	}
	if err := os.MkdirAll(filepath.Join(p.dir, "rootfs"), 0o755); err != nil {
		p.k.t.Errorf("kubelet %s: pod %s: %v", p.k.name, p.key(), err)
		return
	}
	p.mu.Lock()
	p.phase = corev1.PodRunning
	for _, c := range p.containers {
		if !c.engine {
			// A sidecar is taken as running and ready: it has no process.
			c.state = corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.Now()}}
			c.ready = true
			continue
		}
		p.wg.Go(func() { p.runEngine(c) })
	}
	p.mu.Unlock()
	p.kickStatus()
}

// runEngine runs the container's engine and restarts it when it exits,
// like a kubelet with restartPolicy Always: at once the first time, then
// after a back-off (CrashLoopBackOff) that is the kubelet's scaled down
// (1 s doubling to 8 s instead of 10 s to 5 min), so tests see the state
// without waiting minutes.
func (p *pod) runEngine(c *container) {
	crashes := 0
	for {
		began := time.Now()
		code, startedAt := p.runOnce(c)
		if p.ctx.Err() != nil {
			return
		}
		if time.Since(began) > 10*time.Second {
			crashes = 0
		}
		delay := time.Duration(0)
		if crashes > 0 {
			delay = min(time.Second<<(crashes-1), 8*time.Second)
		}
		crashes++
		reason := "Error"
		if code == 0 {
			reason = "Completed"
		}
		p.mu.Lock()
		term := &corev1.ContainerStateTerminated{
			ExitCode: code, Reason: reason, StartedAt: startedAt, FinishedAt: metav1.Now(),
			ContainerID: containerID(p.uid, c.name, c.instances),
		}
		c.last = corev1.ContainerState{Terminated: term}
		c.state = corev1.ContainerState{Terminated: term}
		if delay > 0 {
			c.state = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{
				Reason:  "CrashLoopBackOff",
				Message: fmt.Sprintf("back-off %s restarting failed container=%s pod=%s_%s(%s)", delay, c.name, p.obj.Name, p.obj.Namespace, p.uid),
			}}
		}
		c.restarts++
		c.ready, c.proc, c.localPort = false, nil, 0
		tail := lastLines(c.cur, 5)
		p.mu.Unlock()
		p.kickStatus()
		p.k.t.Logf("kubelet %s: pod %s: engine exited with %d; restart %d in %s; its last lines:\n%s", p.k.name, p.key(), code, c.restarts, delay, tail)
		select {
		case <-p.ctx.Done():
			return
		case <-time.After(delay):
		}
	}
}

// runOnce runs one instance of the engine until it exits or the pod
// stops, and returns its exit code, as the kubelet reports it.
func (p *pod) runOnce(c *container) (int32, metav1.Time) {
	startedAt := metav1.Now()
	buf := newLogBuffer()
	p.mu.Lock()
	if c.instances > 0 {
		c.prev = c.cur
	}
	c.cur = buf
	c.instances++
	p.mu.Unlock()

	port, err := freePort()
	if err != nil {
		fmt.Fprintf(buf, "k8stest: %v\n", err)
		buf.close()
		return 128, startedAt
	}
	args, containerPort := rewriteEngineArgs(c.args, c.mounts, filepath.Join(p.dir, "rootfs"), port, p.k.deno)
	cmd := exec.Command(p.k.kraken, append([]string{"engine"}, args...)...)
	cmd.Dir = p.dir
	cmd.Env = append(os.Environ(), c.env...)
	cmd.Stdout, cmd.Stderr = buf, buf // one writer: the lines stay whole and in order
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(buf, "k8stest: %v\n", err)
		buf.close()
		return 128, startedAt
	}
	exited := make(chan struct{})
	p.wg.Go(func() {
		_ = cmd.Wait()
		buf.close()
		close(exited)
	})
	p.mu.Lock()
	c.proc, c.localPort, c.containerPort, c.ready = cmd.Process, port, containerPort, false
	c.state = corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: startedAt}}
	p.mu.Unlock()
	p.kickStatus()

	// Ready once /health answers, as a readiness probe on it would say,
	// and from this very process: the port was free when picked, but
	// another engine may have taken it before this one bound it.
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	health := "http://127.0.0.1:" + strconv.Itoa(port) + "/health?detail=1"
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for ready := false; !ready; {
		select {
		case <-exited:
			return exitCode(cmd.ProcessState), startedAt
		case <-p.ctx.Done():
			terminate(cmd.Process, exited)
			return exitCode(cmd.ProcessState), startedAt
		case <-tick.C:
		}
		ready = answeredBy(client, health, cmd.Process.Pid)
	}
	p.mu.Lock()
	c.ready = true
	p.mu.Unlock()
	p.kickStatus()
	select {
	case <-exited:
	case <-p.ctx.Done():
		terminate(cmd.Process, exited)
	}
	return exitCode(cmd.ProcessState), startedAt
}

// terminate asks the engine to stop (it lets runs in flight finish), and
// kills it if it has not within stopGrace.
func terminate(proc *os.Process, exited <-chan struct{}) {
	signalGroup(proc, syscall.SIGTERM)
	select {
	case <-exited:
		return
	case <-time.After(stopGrace):
	}
	signalGroup(proc, syscall.SIGKILL)
	<-exited
}

// answeredBy reports whether the engine at url is healthy and is the
// process pid.
func answeredBy(client *http.Client, url string, pid int) bool {
	res, err := client.Get(url)
	if err != nil {
		return false
	}
	defer res.Body.Close()
	var detail struct {
		Pid int `json:"pid"`
	}
	return res.StatusCode == http.StatusOK && json.NewDecoder(res.Body).Decode(&detail) == nil && detail.Pid == pid
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func containerID(uid types.UID, name string, instance int) string {
	return fmt.Sprintf("k8stest://%s-%s-%d", uid, name, instance)
}

func lastLines(b *logBuffer, n int) string {
	lines, _, _, _ := b.from(0)
	lines = lines[max(len(lines)-n, 0):]
	var s strings.Builder
	for _, l := range lines {
		s.WriteString("  | ")
		s.Write(l.text)
		s.WriteByte('\n')
	}
	return s.String()
}

// logs returns a container's current or previous instance's output.
func (p *pod) logs(container string, previous bool) (*logBuffer, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.containers {
		if c.name != container {
			continue
		}
		if !previous {
			return c.cur, nil
		}
		if c.prev == nil {
			return nil, fmt.Errorf("previous terminated container %q in pod %q not found", container, p.obj.Name)
		}
		return c.prev, nil
	}
	return nil, fmt.Errorf("container %q is not valid for pod %q", container, p.obj.Name)
}

// statusLoop writes the status when asked, coalescing requests, and
// retries a failed write: the pod's status must catch up eventually.
func (p *pod) statusLoop() {
	for {
		select {
		case <-p.ctx.Done():
			return
		case <-p.kick:
		}
		for failures := 0; ; failures++ {
			err := p.writeStatus(p.ctx)
			if err == nil || p.ctx.Err() != nil {
				break
			}
			if failures == 0 {
				p.k.t.Logf("kubelet %s: pod %s: write status: %v (retrying)", p.k.name, p.key(), err)
			}
			select {
			case <-p.ctx.Done():
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
}

// writeStatus writes the pod's status as this kubelet sees it. A pod that
// is gone, replaced or being deleted is left alone.
func (p *pod) writeStatus(ctx context.Context) error {
	p.write.Lock()
	defer p.write.Unlock()
	pods := p.k.cs.CoreV1().Pods(p.obj.Namespace)
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := pods.Get(ctx, p.obj.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if cur.UID != p.uid || cur.DeletionTimestamp != nil {
			return nil
		}
		p.fill(&cur.Status)
		_, err = pods.UpdateStatus(ctx, cur, metav1.UpdateOptions{})
		return err
	})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("pod %s status: %w", p.key(), err)
	}
	return nil
}

// fill sets what a kubelet owns in a pod's status, keeping the rest (the
// scheduler's PodScheduled condition, the apiserver's qosClass).
func (p *pod) fill(st *corev1.PodStatus) {
	p.mu.Lock()
	defer p.mu.Unlock()
	st.Phase = p.phase
	st.HostIP = "127.0.0.1"
	st.HostIPs = []corev1.HostIP{{IP: "127.0.0.1"}}
	st.StartTime = &p.started
	if p.phase == corev1.PodRunning {
		st.PodIP = p.ip
		st.PodIPs = []corev1.PodIP{{IP: p.ip}}
	}
	allReady := true
	st.ContainerStatuses = st.ContainerStatuses[:0]
	for i, c := range p.containers {
		cs := corev1.ContainerStatus{
			Name: c.name, Image: c.image, ImageID: "k8stest://" + c.image,
			State: c.state, LastTerminationState: c.last,
			Ready: c.ready, RestartCount: c.restarts,
		}
		if c.state.Running != nil {
			cs.ContainerID = containerID(p.uid, c.name, c.instances)
		}
		if i == p.main && p.override != nil {
			p.applyOverride(&cs)
		}
		started := cs.State.Running != nil
		cs.Started = &started
		allReady = allReady && cs.Ready
		st.ContainerStatuses = append(st.ContainerStatuses, cs)
	}
	// Init containers have nothing to do here: report them done.
	st.InitContainerStatuses = st.InitContainerStatuses[:0]
	for _, c := range p.obj.Spec.InitContainers {
		st.InitContainerStatuses = append(st.InitContainerStatuses, corev1.ContainerStatus{
			Name: c.Name, Image: c.Image, ImageID: "k8stest://" + c.Image, Ready: true,
			ContainerID: containerID(p.uid, c.Name, 1),
			State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
				Reason: "Completed", StartedAt: p.started, FinishedAt: p.started,
				ContainerID: containerID(p.uid, c.Name, 1),
			}},
		})
	}
	running := p.phase == corev1.PodRunning
	setCondition(st, corev1.PodReadyToStartContainers, running)
	setCondition(st, corev1.PodInitialized, true)
	setCondition(st, corev1.ContainersReady, running && allReady)
	setCondition(st, corev1.PodReady, running && allReady)
}

func (p *pod) applyOverride(cs *corev1.ContainerStatus) {
	o := p.override
	cs.Ready, cs.RestartCount = o.Ready, o.Restarts
	cs.State, cs.LastTerminationState = corev1.ContainerState{}, corev1.ContainerState{}
	var term *corev1.ContainerStateTerminated
	if o.TerminatedReason != "" {
		term = &corev1.ContainerStateTerminated{
			Reason: o.TerminatedReason, ExitCode: o.ExitCode,
			StartedAt: p.started, FinishedAt: p.overrideAt,
		}
	}
	switch {
	case o.WaitingReason != "":
		cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: o.WaitingReason, Message: o.WaitingMessage}
		cs.LastTerminationState.Terminated = term
	case term != nil:
		cs.State.Terminated = term
	default:
		cs.State.Running = &corev1.ContainerStateRunning{StartedAt: p.started}
	}
}

// setCondition sets a condition, moving its transition time only when
// its status changes (Deployments count minReadySeconds from it).
func setCondition(st *corev1.PodStatus, typ corev1.PodConditionType, ok bool) {
	status := corev1.ConditionFalse
	if ok {
		status = corev1.ConditionTrue
	}
	for i := range st.Conditions {
		c := &st.Conditions[i]
		if c.Type == typ {
			if c.Status != status {
				c.Status, c.LastTransitionTime = status, metav1.Now()
			}
			return
		}
	}
	st.Conditions = append(st.Conditions, corev1.PodCondition{Type: typ, Status: status, LastTransitionTime: metav1.Now()})
}

// endpoint is the local port of a ready engine of this pod that serves
// targetPort, the container port a Service's port leads to.
func (p *pod) endpoint(target func(c *container) int) (int, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, c := range p.containers {
		if !c.engine || !c.ready || c.localPort == 0 {
			continue
		}
		if i == p.main && p.override != nil && !p.override.Ready {
			continue
		}
		if target(c) == c.containerPort {
			return c.localPort, true
		}
	}
	return 0, false
}
