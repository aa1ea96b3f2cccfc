package k8s

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/kraken-ops/kraken/tentacle"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// vaultFiles is a tentacle whose node tells which secrets it sees, and
// the values of x and keep reversed (so that a value showing in a log
// can only have come from somewhere else than the run's output).
func vaultFiles(version string) map[string]string {
	return map[string]string{
		"workflow.yaml": `name: vault
version: "` + version + `"
description: Tells which secrets it sees.
nodes:
  peek:
    path: ./nodes/peek.ts
`,
		"nodes/peek.ts": `export default async function run(ctx, input) {
  const s = ctx.secrets ?? {};
  const rev = (v) => typeof v === "string" ? [...v].reverse().join("") : null;
  return { keys: Object.keys(s).sort(), x: rev(s.x), keep: rev(s.keep) };
}
`,
	}
}

func vaultBundle(t testing.TB, version string, secrets map[string]any) *tentacle.Bundle {
	t.Helper()
	b, err := tentacle.LoadBundle(writeTentacle(t, vaultFiles(version)), secrets)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func reverse(s string) string {
	r := []rune(s)
	slices.Reverse(r)
	return string(r)
}

// peek is what the vault's node saw: its secrets' names, and the values
// of x and keep ("" when missing).
type peek struct {
	keys    []string
	x, keep string
}

func (h *harness) peek() peek {
	h.t.Helper()
	out, err := h.tc.Run(h.ctx, h.ns, "vault", json.RawMessage(`{}`))
	must(h.t, err)
	var res struct {
		Success bool
		Outputs map[string]struct {
			Keys    []string
			X, Keep *string
		}
	}
	if err := json.Unmarshal(out, &res); err != nil || !res.Success {
		h.t.Fatalf("run result %s (%v)", out, err)
	}
	o := res.Outputs["peek"]
	p := peek{keys: o.Keys}
	if o.X != nil {
		p.x = reverse(*o.X)
	}
	if o.Keep != nil {
		p.keep = reverse(*o.Keep)
	}
	return p
}

// waitRestarted waits for the vault's pods to be new ones (not before)
// and ready.
func (h *harness) waitRestarted(before string) {
	h.t.Helper()
	if _, err := h.tc.WaitReady(h.ctx, h.ns, "vault"); err != nil {
		h.t.Fatalf("WaitReady: %v", err)
	}
	pods := h.pods("vault")
	if len(pods) != 1 || pods[0].Name == before {
		h.t.Fatalf("pods %v: the pod %s was not replaced", podNames(pods), before)
	}
}

// vaultSecret is the vault's Secret's data, decoded as the engine reads it.
func (h *harness) vaultSecret() map[string]string {
	h.t.Helper()
	sec, err := h.cs.CoreV1().Secrets(h.ns).Get(h.ctx, "vault-secrets", metav1.GetOptions{})
	must(h.t, err)
	out := map[string]string{}
	for k, v := range sec.Data {
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			h.t.Fatalf("secret %s is not a JSON string: %q", k, v)
		}
		out[k] = s
	}
	return out
}

// TestSetSecret sets, changes and removes a secret of a running tentacle
// and runs it each time: the engine sees the change after the restart,
// the other secret stays, a redeploy from Slack (no secrets) keeps it,
// and the value shows nowhere but in the Secret.
func TestSetSecret(t *testing.T) {
	h := newHarness(t, harnessOptions{kubelet: true})
	ctx, ns, tc := h.ctx, h.ns, h.tc
	const keep = "kept-in-the-bundle"
	const v1 = `p@ss "wörd" 🐙 \n 7f3a91c2`
	const v2 = "second-value-0b5e77d4"

	_, err := tc.Deploy(ctx, ns, vaultBundle(t, "1.0", map[string]any{"keep": keep}), prov)
	must(t, err)
	if _, err := tc.WaitReady(ctx, ns, "vault"); err != nil {
		t.Fatal(err)
	}
	if p := h.peek(); !slices.Equal(p.keys, []string{"keep"}) || p.keep != keep || p.x != "" {
		t.Fatalf("before: %+v", p)
	}

	// Set: two metadata reads, the patch of the Secret, the restart.
	pod := h.pods("vault")[0].Name
	h.n.snapshot()
	must(t, tc.SetSecret(ctx, ns, "vault", "x", v1, prov))
	if n := h.n.snapshot(); n.reads != 2 || n.writes != 2 || n.requests() != 4 {
		t.Errorf("SetSecret made %d reads and %d writes, want 2 and 2: %q", n.reads, n.writes, n.log)
	}
	h.waitRestarted(pod)
	if p := h.peek(); !slices.Equal(p.keys, []string{"keep", "x"}) || p.x != v1 || p.keep != keep {
		t.Fatalf("after setting x: %+v", p)
	}
	if got := h.vaultSecret(); !maps.Equal(got, map[string]string{"keep": keep, "x": v1}) {
		t.Errorf("Secret data %q", got)
	}

	// A redeploy from Slack carries no secrets: x stays, and so does
	// keep, across the new revision's pods.
	pod = h.pods("vault")[0].Name
	rev, err := tc.Deploy(ctx, ns, vaultBundle(t, "1.1", nil), prov)
	must(t, err)
	h.waitRestarted(pod)
	if p := h.peek(); !slices.Equal(p.keys, []string{"keep", "x"}) || p.x != v1 || p.keep != keep {
		t.Fatalf("after a redeploy without secrets (revision %d): %+v", rev.Number, p)
	}

	// Change it.
	pod = h.pods("vault")[0].Name
	must(t, tc.SetSecret(ctx, ns, "vault", "x", v2, prov))
	h.waitRestarted(pod)
	if p := h.peek(); p.x != v2 || p.keep != keep {
		t.Fatalf("after changing x: %+v", p)
	}

	// Remove it: the next run has keep only.
	pod = h.pods("vault")[0].Name
	must(t, tc.SetSecret(ctx, ns, "vault", "x", "", prov))
	h.waitRestarted(pod)
	if p := h.peek(); !slices.Equal(p.keys, []string{"keep"}) || p.x != "" || p.keep != keep {
		t.Fatalf("after removing x: %+v", p)
	}
	if got := h.vaultSecret(); !maps.Equal(got, map[string]string{"keep": keep}) {
		t.Errorf("Secret data after removing x %q", got)
	}
	// Removing what is not there changes nothing, and is no error.
	must(t, tc.SetSecret(ctx, ns, "vault", "x", "", prov))

	// The values show nowhere else: not in the bot's log, the tentacle's
	// log, the events, the objects' annotations and labels.
	logs, err := tc.Logs(ctx, ns, "vault", tentacle.LogOptions{TailLines: 1000})
	must(t, err)
	podLogs, err := io.ReadAll(logs)
	logs.Close()
	must(t, err)
	var sb strings.Builder
	sb.WriteString(h.logs.String())
	sb.Write(podLogs)
	events, err := tc.Events(ctx, ns, "vault")
	must(t, err)
	for _, e := range events {
		fmt.Fprintln(&sb, e.Reason, e.Message)
	}
	sec, err := h.cs.CoreV1().Secrets(ns).Get(ctx, "vault-secrets", metav1.GetOptions{})
	must(t, err)
	dep, err := h.cs.AppsV1().Deployments(ns).Get(ctx, "vault", metav1.GetOptions{})
	must(t, err)
	meta := []metav1.ObjectMeta{sec.ObjectMeta, dep.ObjectMeta, dep.Spec.Template.ObjectMeta}
	for _, p := range h.pods("vault") {
		meta = append(meta, p.ObjectMeta)
	}
	for _, m := range meta {
		fmt.Fprintln(&sb, m.Annotations, m.Labels)
		for _, f := range m.ManagedFields {
			if f.FieldsV1 != nil {
				sb.Write(f.FieldsV1.Raw)
			}
		}
	}
	for _, v := range []string{v1, v2, `"wörd"`, "7f3a91c2", "0b5e77d4"} {
		if strings.Contains(sb.String(), v) {
			t.Errorf("the value %q shows outside the Secret:\n%s", v, sb.String())
		}
	}
	if !strings.Contains(h.logs.String(), "tentacle secret changed") || !strings.Contains(h.logs.String(), "secret=x") {
		t.Errorf("the bot's log does not say which secret changed:\n%s", h.logs.String())
	}
	if dep.Annotations[AnnotationRestartedBy] != prov.Actor {
		t.Errorf("restarted-by = %q", dep.Annotations[AnnotationRestartedBy])
	}
}

// TestSetSecretRefuses: what SetSecret refuses, with nothing written,
// and errors that never hold the value.
func TestSetSecretRefuses(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	ctx, ns, tc := h.ctx, h.ns, h.tc
	const value = "never-shown-value"

	// Nothing deployed: not deployed, whatever the enclave.
	for _, enc := range []string{ns, "no-such-enclave"} {
		h.n.snapshot()
		err := tc.SetSecret(ctx, enc, "vault", "x", value, prov)
		if !errors.Is(err, tentacle.ErrNotDeployed) {
			t.Errorf("SetSecret in %s before a deploy: %v", enc, err)
		}
		if n := h.n.snapshot(); n.writes != 0 {
			t.Errorf("SetSecret before a deploy wrote: %q", n.log)
		}
	}

	_, err := tc.Deploy(ctx, ns, vaultBundle(t, "1.0", nil), prov)
	must(t, err)
	objects := h.objects()

	bad := []string{"", ".hidden", "..data", "a/b", "../x", `a\b`, "x y", "tab\t", "ключ", "new\nline", strings.Repeat("k", 254)}
	for _, key := range bad {
		h.n.snapshot()
		err := tc.SetSecret(ctx, ns, "vault", key, value, prov)
		if err == nil || errors.Is(err, tentacle.ErrNotDeployed) || !strings.Contains(err.Error(), "a secret name must be") {
			t.Errorf("SetSecret with the key %q: %v", key, err)
		} else if strings.Contains(err.Error(), value) {
			t.Errorf("the error shows the value: %v", err)
		}
		if n := h.n.snapshot(); n.requests() != 0 {
			t.Errorf("SetSecret with the key %q sent %q", key, n.log)
		}
	}
	if err := tc.SetSecret(ctx, ns, "vault", strings.Repeat("k", 253), "ok", prov); err != nil {
		t.Errorf("a 253-character key: %v", err)
	}
	for _, v := range []string{strings.Repeat("v", tentacle.MaxSecretValue+1), "bad \xff utf-8"} {
		h.n.snapshot()
		err := tc.SetSecret(ctx, ns, "vault", "x", v, prov)
		switch {
		case err == nil:
			t.Errorf("SetSecret with a value of %d bytes went through", len(v))
		case len(v) > tentacle.MaxSecretValue && !errors.Is(err, tentacle.ErrTooLarge):
			t.Errorf("a value over 64 KiB: %v, want ErrTooLarge", err)
		case strings.Contains(err.Error(), "vvvv") || strings.Contains(err.Error(), "bad \xff"):
			t.Errorf("the error shows the value: %v", err)
		}
		if n := h.n.snapshot(); n.requests() != 0 {
			t.Errorf("SetSecret with a bad value sent %q", n.log)
		}
	}
	if err := tc.SetSecret(ctx, ns, "vault", "x", strings.Repeat("v", tentacle.MaxSecretValue), prov); err != nil {
		t.Errorf("a value of exactly 64 KiB: %v", err)
	}
	if got := h.objects(); !slices.Equal(got, objects) {
		t.Errorf("objects changed from %v to %v", objects, got)
	}

	// Someone else's Deployment of that name: not a tentacle.
	foreign := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "stranger"},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "stranger"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "stranger"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
			},
		},
	}
	_, err = h.cs.AppsV1().Deployments(ns).Create(ctx, foreign, metav1.CreateOptions{})
	must(t, err)
	if err := tc.SetSecret(ctx, ns, "stranger", "x", value, prov); !errors.Is(err, tentacle.ErrNotDeployed) {
		t.Errorf("SetSecret on someone else's Deployment: %v", err)
	}
	if _, err := h.cs.CoreV1().Secrets(ns).Get(ctx, "stranger-secrets", metav1.GetOptions{}); err == nil {
		t.Errorf("a Secret was made for someone else's Deployment")
	}

	// The Secret gone: it is made again, with the tentacle's labels.
	must(t, h.cs.CoreV1().Secrets(ns).Delete(ctx, "vault-secrets", metav1.DeleteOptions{}))
	must(t, tc.SetSecret(ctx, ns, "vault", "x", value, prov))
	sec, err := h.cs.CoreV1().Secrets(ns).Get(ctx, "vault-secrets", metav1.GetOptions{})
	must(t, err)
	if !isTentacles(sec.Labels, "vault") || string(sec.Data["x"]) != `"`+value+`"` || len(sec.Data) != 1 || sec.Type != corev1.SecretTypeOpaque {
		t.Errorf("Secret made again: labels %v, type %s, keys %v", sec.Labels, sec.Type, slices.Sorted(maps.Keys(sec.Data)))
	}
	// Gone again, this time for someone else's Secret of that name.
	must(t, h.cs.CoreV1().Secrets(ns).Delete(ctx, "vault-secrets", metav1.DeleteOptions{}))
	_, err = h.cs.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "vault-secrets"}}, metav1.CreateOptions{})
	must(t, err)
	if err := tc.SetSecret(ctx, ns, "vault", "x", value, prov); !errors.Is(err, ErrNameClash) {
		t.Errorf("SetSecret with someone else's Secret of that name: %v", err)
	}
	if sec, err := h.cs.CoreV1().Secrets(ns).Get(ctx, "vault-secrets", metav1.GetOptions{}); err != nil || len(sec.Data) != 0 {
		t.Errorf("someone else's Secret was written: %v %v", err, slices.Sorted(maps.Keys(sec.Data)))
	}
	if strings.Contains(h.logs.String(), value) {
		t.Errorf("a value was logged:\n%s", h.logs.String())
	}
}

// TestSetSecretWholeSecretTooLarge: one value more than the Secret can
// hold is refused as too large, and the secrets set before stay.
func TestSetSecretWholeSecretTooLarge(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	ctx, ns, tc := h.ctx, h.ns, h.tc
	_, err := tc.Deploy(ctx, ns, vaultBundle(t, "1.0", nil), prov)
	must(t, err)
	big := strings.Repeat("b", tentacle.MaxSecretValue)
	var i int
	for i = 0; i < 20; i++ {
		err = tc.SetSecret(ctx, ns, "vault", fmt.Sprintf("k%02d", i), big, prov)
		if err != nil {
			break
		}
	}
	// 16 values of 64 KiB and their quotes are more than 1 MiB.
	if i != 15 || !errors.Is(err, tentacle.ErrTooLarge) || strings.Contains(err.Error(), "bbbb") {
		t.Fatalf("value %d: %v, want the 16th refused with ErrTooLarge", i+1, err)
	}
	if got := h.vaultSecret(); len(got) != 15 {
		t.Errorf("the Secret has %d secrets, want the 15 set", len(got))
	}
}

// TestSetSecretAndDeploys pins how SetSecret and Deploy share the Secret
// under server-side apply: deploys without secrets leave it alone, a
// deploy with secrets replaces the ones deploys set but keeps the ones
// last set with SetSecret, unless it sets them to another value (it
// takes them over) or the same (they stay SetSecret's too).
func TestSetSecretAndDeploys(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	ctx, ns, tc := h.ctx, h.ns, h.tc
	deploy := func(version string, secrets map[string]any) {
		t.Helper()
		_, err := tc.Deploy(ctx, ns, vaultBundle(t, version, secrets), prov)
		must(t, err)
	}
	want := func(when string, data map[string]string) {
		t.Helper()
		if got := h.vaultSecret(); !maps.Equal(got, data) {
			t.Errorf("%s: Secret %q, want %q", when, got, data)
		}
	}
	set := func(key, value string) { t.Helper(); must(t, tc.SetSecret(ctx, ns, "vault", key, value, prov)) }

	deploy("1.1", map[string]any{"keep": "k1", "api": "a1", "same": "s1"})
	set("x", "x1")
	set("api", "a2")  // a deployed key, changed: SetSecret's now
	set("same", "s1") // the same value: still the deploys'
	want("after SetSecret", map[string]string{"keep": "k1", "api": "a2", "same": "s1", "x": "x1"})

	deploy("1.2", nil)
	want("a deploy without secrets", map[string]string{"keep": "k1", "api": "a2", "same": "s1", "x": "x1"})
	_, err := tc.Rollback(ctx, ns, "vault", 1, prov)
	must(t, err)
	want("a rollback", map[string]string{"keep": "k1", "api": "a2", "same": "s1", "x": "x1"})

	deploy("1.3", map[string]any{"keep": "k2", "y": "y1"})
	want("a deploy with other secrets", map[string]string{"keep": "k2", "api": "a2", "x": "x1", "y": "y1"})

	deploy("1.4", map[string]any{"x": "x2", "api": "a2"}) // x taken over, api shared
	want("a deploy setting x and api", map[string]string{"api": "a2", "x": "x2"})

	deploy("1.5", map[string]any{})
	want("a deploy with no secrets at all", map[string]string{"api": "a2"})

	set("api", "")
	want("api removed", map[string]string{})
}

// TestSetSecretConcurrently: secrets set at the same moment are all
// kept (each write is conditional on what it read).
func TestSetSecretConcurrently(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	ctx, ns, tc := h.ctx, h.ns, h.tc
	_, err := tc.Deploy(ctx, ns, vaultBundle(t, "1.0", map[string]any{"keep": "k"}), prov)
	must(t, err)
	want := map[string]string{"keep": "k"}
	var wg sync.WaitGroup
	for i := range 6 {
		key, value := fmt.Sprintf("s%d", i), fmt.Sprintf("v%d", i)
		want[key] = value
		wg.Go(func() {
			if err := tc.SetSecret(ctx, ns, "vault", key, value, prov); err != nil {
				t.Errorf("SetSecret %s: %v", key, err)
			}
		})
	}
	wg.Wait()
	if got := h.vaultSecret(); !maps.Equal(got, want) {
		t.Errorf("Secret %q, want %q", got, want)
	}
}
