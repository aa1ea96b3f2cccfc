package k8s

import (
	"bytes"
	"errors"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kraken-ops/kraken/enclave"
	"github.com/kraken-ops/kraken/k8s/k8stest"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// A real kube-apiserver dies in the middle of a Provision and comes back:
// the Provision fails with ErrUnreachable, the half-made enclave reads as
// not ready, and the next Provision finishes it.
//
// Restarting the shared control plane would pull it from under the other
// tests, so this test starts a private one (etcd + apiserver only, on
// ports of its own, from the same binaries) and restarts its apiserver.
func TestProvisionSurvivesAPIServerRestart(t *testing.T) {
	k8stest.Config(t) // the binaries are built once the shared one runs; fail as it does when it doesn't
	env := startPrivateControlPlane(t)

	rc, rec := recordedConfig(env.rest)
	broken := newEnclaveClient(t, rc, nil)
	name := k8stest.UniqueName("enc-restart")
	ctx := enclaveCtx(t, 2*time.Minute)

	// Writes 1-3 (namespace, RoleBinding, quota) land;
	// before the 4th is sent the apiserver is killed.
	rec.beforeWrite = func(n int) {
		if n == 4 {
			env.killAPIServer(t)
		}
	}
	err := broken.Provision(ctx, testEnclave(name), testProvenance)
	if !errors.Is(err, ErrUnreachable) {
		t.Fatalf("Provision while the apiserver dies = %v, want ErrUnreachable", err)
	}
	t.Logf("%v", err)

	env.restartAPIServer(t)
	c := newEnclaveClient(t, env.rest, nil)
	got, err := c.Get(ctx, name)
	noErr(t, err)
	if got.Ready {
		t.Fatalf("half-made enclave reads as ready: %+v", got)
	}
	half := enclaveObjects(t, env.cs, name)
	t.Logf("left by the interrupted Provision: %v", half)
	if len(half) != 3 {
		t.Errorf("%d objects before the outage, want 3 (namespace, RoleBinding, quota): %v", len(half), half)
	}

	noErr(t, c.Provision(ctx, testEnclave(name), testProvenance))
	assertWholeEnclave(t, env.cs, name)
	got, err = c.Get(ctx, name)
	noErr(t, err)
	if !got.Ready {
		t.Errorf("after provisioning again: %+v", got)
	}
	want := enclave.Quota{CPU: "2", Memory: "4Gi", Pods: 5}
	if got.Quota.CPU != want.CPU || got.Quota.Memory != want.Memory || got.Quota.Pods != want.Pods {
		t.Errorf("quota after restart = %+v, want %+v", got.Quota, want)
	}
}

// privateControlPlane is an etcd + kube-apiserver of this test's own,
// started by hack/kubetest/kube-testenv.sh in a run directory of its own.
type privateControlPlane struct {
	script, cache, run string
	rest               *rest.Config
	cs                 kubernetes.Interface
	apiserverArgs      []string
	restarted          *exec.Cmd
}

func startPrivateControlPlane(t *testing.T) *privateControlPlane {
	t.Helper()
	cache := os.Getenv("KUBETEST_CACHE")
	if cache == "" {
		cache = filepath.Join(os.Getenv("HOME"), ".cache", "kube-testenv")
	}
	script, err := filepath.Abs(filepath.Join("..", "hack", "kubetest", "kube-testenv.sh"))
	noErr(t, err)
	env := &privateControlPlane{script: script, cache: cache, run: t.TempDir()}

	out, err := env.command("start").Output()
	if err != nil {
		t.Fatalf("start a private control plane: %v\n%s", err, stderrOf(err))
	}
	// Registered after TempDir, so it runs before the directory goes.
	t.Cleanup(func() {
		if out, err := env.command("stop").CombinedOutput(); err != nil {
			t.Errorf("stop the private control plane: %v\n%s", err, out)
		}
	})
	env.rest, err = clientcmd.BuildConfigFromFlags("", strings.TrimSpace(string(out)))
	noErr(t, err)
	env.rest.QPS, env.rest.Burst = 200, 400
	env.cs, err = kubernetes.NewForConfig(env.rest)
	noErr(t, err)
	return env
}

func (env *privateControlPlane) command(verb string) *exec.Cmd {
	cmd := exec.Command(env.script, env.cache, verb)
	cmd.Env = append(os.Environ(),
		"KUBETEST_RUN_DIR="+env.run,
		"KUBETEST_CONTROLLERS=0",
		// The restart must find the data written before it.
		"KUBETEST_KEEP_DATA=1",
	)
	return cmd
}

func (env *privateControlPlane) pidFile() string { return filepath.Join(env.run, "kube-apiserver.pid") }

// killAPIServer SIGKILLs the apiserver (a crash, not a graceful stop),
// remembering its command line, and returns once its port refuses
// connections.
func (env *privateControlPlane) killAPIServer(t *testing.T) {
	b, err := os.ReadFile(env.pidFile())
	noErr(t, err)
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	noErr(t, err)
	cmdline, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
	noErr(t, err)
	env.apiserverArgs = strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
	if !strings.HasSuffix(env.apiserverArgs[0], "/kube-apiserver") {
		t.Fatalf("pid %d is not a kube-apiserver: %q", pid, env.apiserverArgs)
	}
	noErr(t, syscall.Kill(pid, syscall.SIGKILL))
	env.waitPort(t, false)
}

// restartAPIServer starts the apiserver again with the same command line
// (same port, same etcd), records its PID where the script's stop finds
// it, and returns once it is ready.
func (env *privateControlPlane) restartAPIServer(t *testing.T) {
	log, err := os.OpenFile(filepath.Join(env.run, "kube-apiserver.log"), os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
	noErr(t, err)
	defer log.Close()
	cmd := exec.Command(env.apiserverArgs[0], env.apiserverArgs[1:]...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	noErr(t, cmd.Start())
	env.restarted = cmd
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }() // reap it whoever stops it
	// The script's stop (registered earlier, so it runs later) stops etcd
	// after this; this stops the process the test started, by its PID.
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	noErr(t, os.WriteFile(env.pidFile(), []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o644))
	env.waitPort(t, true)

	// Listening is not ready: wait for /readyz.
	ctx := enclaveCtx(t, time.Minute)
	for {
		_, err := env.cs.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		if err == nil {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("restarted apiserver not ready: %v", err)
		case <-exited:
			t.Fatalf("restarted apiserver exited; see %s/kube-apiserver.log", env.run)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// waitPort waits until the apiserver's port accepts (up) or refuses
// (down) connections.
func (env *privateControlPlane) waitPort(t *testing.T, up bool) {
	t.Helper()
	u, err := url.Parse(env.rest.Host)
	noErr(t, err)
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		conn, err := net.DialTimeout("tcp", u.Host, time.Second)
		if err == nil {
			conn.Close()
		}
		if (err == nil) == up {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("apiserver port %s never went up=%t", u.Host, up)
}

func stderrOf(err error) []byte {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return bytes.TrimSpace(ee.Stderr)
	}
	return nil
}
