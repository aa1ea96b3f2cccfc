package dev

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kraken-ops/kraken/tentacle"
)

// vault is a tentacle whose node tells which secrets it sees, and the
// values of x and keep reversed (so that a value showing in a log can
// only have come from somewhere else than the run's output).
func vault(t *testing.T, version string, secrets map[string]any) *tentacle.Bundle {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
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
	for p, content := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := tentacle.LoadBundle(dir, secrets)
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

// peek runs the vault: the names of the secrets its node saw, and the
// values of x and keep ("" when missing).
func peek(t *testing.T, r *Runtime, enc string) (keys []string, x, keep string) {
	t.Helper()
	res := run(t, r, enc, "vault", `{}`)
	if !res.Success {
		t.Fatalf("run: %+v", res)
	}
	var out struct {
		Keys    []string
		X, Keep *string
	}
	if err := json.Unmarshal(res.Outputs["peek"], &out); err != nil {
		t.Fatal(err)
	}
	if out.X != nil {
		x = reverse(*out.X)
	}
	if out.Keep != nil {
		keep = reverse(*out.Keep)
	}
	return out.Keys, x, keep
}

// TestSetSecret sets, changes and removes a secret of a tentacle and runs
// it each time: the next run sees the change, the other secret stays, a
// redeploy without secrets and a rollback keep it, and the value shows
// nowhere but in the secrets file.
func TestSetSecret(t *testing.T) {
	dir := t.TempDir()
	r, rlogs := open(t, dir)
	tc := r.Tentacles()
	provision(t, r, "vs")
	const keep = "kept-in-the-bundle"
	const v1 = `p@ss "wörd" 🐙 \n 7f3a91c2`
	const v2 = "second-value-0b5e77d4"

	for _, enc := range []string{"vs", "nowhere"} {
		if err := tc.SetSecret(ctx(t), enc, "vault", "x", v1, alice); !errors.Is(err, tentacle.ErrNotDeployed) {
			t.Errorf("SetSecret in %s before a deploy: %v", enc, err)
		}
	}

	deploy(t, r, "vs", vault(t, "1.0", map[string]any{"keep": keep}), alice)
	if keys, x, k := peek(t, r, "vs"); !slices.Equal(keys, []string{"keep"}) || x != "" || k != keep {
		t.Fatalf("before: %v %q %q", keys, x, k)
	}

	if err := tc.SetSecret(ctx(t), "vs", "vault", "x", v1, bob); err != nil {
		t.Fatal(err)
	}
	if keys, x, k := peek(t, r, "vs"); !slices.Equal(keys, []string{"keep", "x"}) || x != v1 || k != keep {
		t.Fatalf("after setting x: %v %q %q", keys, x, k)
	}
	tdir := filepath.Join(dir, "enclaves", "vs", "tentacles", "vault")
	if fi, err := os.Stat(filepath.Join(tdir, "secrets", "x")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("secret file: %v %v", fi, err)
	}
	if data, _ := os.ReadFile(filepath.Join(tdir, "secrets", "x")); string(data) != mustJSON(t, v1) {
		t.Errorf("secret file holds %q, want the value as JSON", data)
	}

	// A redeploy from Slack carries no secrets: x stays; so does it
	// through a rollback.
	deploy(t, r, "vs", vault(t, "1.1", nil), alice)
	if keys, x, k := peek(t, r, "vs"); !slices.Equal(keys, []string{"keep", "x"}) || x != v1 || k != keep {
		t.Fatalf("after a redeploy without secrets: %v %q %q", keys, x, k)
	}
	if _, err := tc.Rollback(ctx(t), "vs", "vault", 1, alice); err != nil {
		t.Fatal(err)
	}
	if _, x, _ := peek(t, r, "vs"); x != v1 {
		t.Fatalf("after a rollback: x = %q", x)
	}

	if err := tc.SetSecret(ctx(t), "vs", "vault", "x", v2, bob); err != nil {
		t.Fatal(err)
	}
	if _, x, k := peek(t, r, "vs"); x != v2 || k != keep {
		t.Fatalf("after changing x: %q %q", x, k)
	}

	if err := tc.SetSecret(ctx(t), "vs", "vault", "x", "", bob); err != nil {
		t.Fatal(err)
	}
	if keys, x, k := peek(t, r, "vs"); !slices.Equal(keys, []string{"keep"}) || x != "" || k != keep {
		t.Fatalf("after removing x: %v %q %q", keys, x, k)
	}
	// Removing what is not there changes nothing, and is no error.
	if err := tc.SetSecret(ctx(t), "vs", "vault", "x", "", bob); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(tdir); slices.ContainsFunc(entries, func(e os.DirEntry) bool {
		return strings.HasPrefix(e.Name(), ".secrets-") && e.Name() != filepath.Base(mustReadlink(t, filepath.Join(tdir, "secrets")))
	}) {
		t.Fatalf("old secret sets were left behind: %v", entries)
	}

	evs, err := tc.Events(ctx(t), "vs", "vault")
	if err != nil {
		t.Fatal(err)
	}
	if !hasEvent(evs, "SecretSet", "secret x set by U-bob", false) || !hasEvent(evs, "SecretRemoved", "secret x removed by U-bob", false) {
		t.Errorf("events = %+v", evs)
	}
	var all strings.Builder
	all.WriteString(rlogs.String())
	all.WriteString(logsOf(t, r, "vs", "vault", 1000))
	for _, e := range evs {
		fmt.Fprintln(&all, e.Reason, e.Message)
	}
	for _, v := range []string{v1, v2, `"wörd"`, "7f3a91c2", "0b5e77d4"} {
		if strings.Contains(all.String(), v) {
			t.Errorf("the value %q shows in the logs or events:\n%s", v, all.String())
		}
	}
	if !strings.Contains(rlogs.String(), "tentacle secret changed") || !strings.Contains(rlogs.String(), "secret=x") {
		t.Errorf("the log does not say which secret changed:\n%s", rlogs.String())
	}
	// Each change retired the worker: one engine start per run above.
	if got := logsOf(t, r, "vs", "vault", 1000); strings.Count(got, `msg="engine started"`) != 6 {
		t.Errorf("want six engine starts in the logs:\n%s", got)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestSetSecretRefuses: what SetSecret refuses, with nothing changed, and
// errors that never hold the value.
func TestSetSecretRefuses(t *testing.T) {
	dir := t.TempDir()
	r, _ := open(t, dir)
	tc := r.Tentacles()
	provision(t, r, "vr")
	deploy(t, r, "vr", vault(t, "1.0", map[string]any{"keep": "k"}), alice)
	tdir := filepath.Join(dir, "enclaves", "vr", "tentacles", "vault")
	before, err := readSecrets(tdir)
	if err != nil {
		t.Fatal(err)
	}
	const value = "never-shown-value"
	bad := []string{"", ".hidden", "..data", "a/b", "../x", `a\b`, "x y", "tab\t", "ключ", "new\nline", strings.Repeat("k", 254)}
	for _, key := range bad {
		err := tc.SetSecret(ctx(t), "vr", "vault", key, value, alice)
		if err == nil || errors.Is(err, tentacle.ErrNotDeployed) || !strings.Contains(err.Error(), "a secret name must be") {
			t.Errorf("SetSecret with the key %q: %v", key, err)
		} else if strings.Contains(err.Error(), value) {
			t.Errorf("the error shows the value: %v", err)
		}
	}
	if err := tc.SetSecret(ctx(t), "nowhere", "vault", ".bad", value, alice); errors.Is(err, tentacle.ErrNotDeployed) {
		t.Errorf("a bad key is checked first: %v", err)
	}
	for _, v := range []string{strings.Repeat("v", tentacle.MaxSecretValue+1), "bad \xff utf-8"} {
		err := tc.SetSecret(ctx(t), "vr", "vault", "x", v, alice)
		switch {
		case err == nil:
			t.Errorf("SetSecret with a value of %d bytes went through", len(v))
		case len(v) > tentacle.MaxSecretValue && !errors.Is(err, tentacle.ErrTooLarge):
			t.Errorf("a value over 64 KiB: %v, want ErrTooLarge", err)
		case strings.Contains(err.Error(), "vvvv") || strings.Contains(err.Error(), "bad \xff"):
			t.Errorf("the error shows the value: %v", err)
		}
	}
	if after, err := readSecrets(tdir); err != nil || !maps.EqualFunc(after, before, func(a, b []byte) bool { return string(a) == string(b) }) {
		t.Errorf("secrets changed from %q to %q (%v)", before, after, err)
	}
	if err := tc.SetSecret(ctx(t), "vr", "vault", strings.Repeat("k", 253), strings.Repeat("v", tentacle.MaxSecretValue), alice); err != nil {
		t.Errorf("a 253-character key and a value of exactly 64 KiB: %v", err)
	}

	// One value more than a Secret holds: refused as too large, and the
	// ones set before stay.
	big := strings.Repeat("b", tentacle.MaxSecretValue)
	var i int
	for i = 0; i < 20; i++ {
		if err = tc.SetSecret(ctx(t), "vr", "vault", fmt.Sprintf("k%02d", i), big, alice); err != nil {
			break
		}
	}
	if i != 14 || !errors.Is(err, tentacle.ErrTooLarge) || strings.Contains(err.Error(), "bbbb") {
		t.Fatalf("value %d: %v, want the 15th refused with ErrTooLarge (beside the 64 KiB one)", i+1, err)
	}
	if got, _ := readSecrets(tdir); len(got) != 2+14 {
		t.Errorf("%d secrets, want keep, the long key's and the 14 set", len(got))
	}
}

// TestSetSecretAndDeploys: the same sharing of the secrets between
// SetSecret and deploys as the cluster's (k8s TestSetSecretAndDeploys),
// kept across a restart of the dev cluster.
func TestSetSecretAndDeploys(t *testing.T) {
	dir := t.TempDir()
	r, _ := open(t, dir)
	tc := r.Tentacles()
	provision(t, r, "vd")
	tdir := filepath.Join(dir, "enclaves", "vd", "tentacles", "vault")
	dep := func(version string, secrets map[string]any) {
		t.Helper()
		deploy(t, r, "vd", vault(t, version, secrets), alice)
	}
	want := func(when string, data map[string]string) {
		t.Helper()
		got, err := readSecrets(tdir)
		if err != nil {
			t.Fatal(err)
		}
		decoded := map[string]string{}
		for k, v := range got {
			var s string
			if err := json.Unmarshal(v, &s); err != nil {
				t.Fatalf("secret %s is not a JSON string: %q", k, v)
			}
			decoded[k] = s
		}
		if !maps.Equal(decoded, data) {
			t.Errorf("%s: secrets %q, want %q", when, decoded, data)
		}
	}
	set := func(key, value string) {
		t.Helper()
		if err := tc.SetSecret(ctx(t), "vd", "vault", key, value, alice); err != nil {
			t.Fatal(err)
		}
	}

	dep("1.1", map[string]any{"keep": "k1", "api": "a1", "same": "s1"})
	set("x", "x1")
	set("api", "a2")  // a deployed key, changed: SetSecret's now
	set("same", "s1") // the same value: still the deploys'
	want("after SetSecret", map[string]string{"keep": "k1", "api": "a2", "same": "s1", "x": "x1"})

	dep("1.2", nil)
	want("a deploy without secrets", map[string]string{"keep": "k1", "api": "a2", "same": "s1", "x": "x1"})
	if _, err := tc.Rollback(ctx(t), "vd", "vault", 1, alice); err != nil {
		t.Fatal(err)
	}
	want("a rollback", map[string]string{"keep": "k1", "api": "a2", "same": "s1", "x": "x1"})

	dep("1.3", map[string]any{"keep": "k2", "y": "y1"})
	want("a deploy with other secrets", map[string]string{"keep": "k2", "api": "a2", "x": "x1", "y": "y1"})

	// What SetSecret set is remembered by the dev cluster's files.
	r.Close()
	r, _ = open(t, dir)
	tc = r.Tentacles()

	dep("1.4", map[string]any{"x": "x2", "api": "a2"}) // x taken over, api shared
	want("a deploy setting x and api", map[string]string{"api": "a2", "x": "x2"})

	dep("1.5", map[string]any{})
	want("a deploy with no secrets at all", map[string]string{"api": "a2"})

	set("api", "")
	want("api removed", map[string]string{})
	dep("1.6", map[string]any{"api": "a3"})
	dep("1.7", map[string]any{})
	want("a removed secret is the deploys' again", map[string]string{})
}
