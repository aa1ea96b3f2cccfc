package dev

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/kraken-ops/kraken/enclave"
	"github.com/kraken-ops/kraken/tentacle"
)

func TestDeployAndRunHelloFanout(t *testing.T) {
	r, _ := open(t, t.TempDir())
	provision(t, r, "demo")
	b := bundle(t, "hello-fanout", nil)
	rev := deploy(t, r, "demo", b, alice)
	if rev.Number != 1 || rev.Version != "1.0" || rev.Digest != b.Digest() || rev.DeployedBy != "U-alice" || rev.DeployedAt.IsZero() {
		t.Fatalf("revision = %+v", rev)
	}

	st, err := r.Tentacles().Status(ctx(t), "demo", "hello-fanout")
	if err != nil {
		t.Fatal(err)
	}
	want := tentacle.Status{Name: "hello-fanout", Version: "1.0", Revision: 1, Ready: true, Replicas: 1, ReadyReplicas: 1,
		DeployedAt: rev.DeployedAt, DeployedBy: "U-alice"}
	if !reflect.DeepEqual(st, want) {
		t.Fatalf("status = %+v\nwant     %+v", st, want)
	}

	res := run(t, r, "demo", "hello-fanout", `{"name":"Ada"}`)
	if !res.Success || len(res.Errors) != 0 {
		t.Fatalf("run failed: %+v", res)
	}
	wantOut := map[string]any{"shouted": "HELLO, ADA!", "letters": 8.0, "words": 2.0, "reversed": "!adA ,olleH"}
	if got := output(t, res, "merge"); !reflect.DeepEqual(got, wantOut) {
		t.Fatalf("merge = %v, want %v", got, wantOut)
	}
	if len(res.Outputs) != 5 || len(res.Timing.NodeTimings) != 5 {
		t.Fatalf("want every node's output and timing: %+v", res)
	}
	// No input is {}: greet falls back to its default.
	if got := output(t, run(t, r, "demo", "hello-fanout", ""), "greet")["text"]; got != "Hello, kraken!" {
		t.Fatalf("greet = %v", got)
	}

	logs := logsOf(t, r, "demo", "hello-fanout", 0)
	for _, want := range []string{`"[greet] greeting"`, "name=Ada", `"[merge] merged"`, `msg="run finished"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %s:\n%s", want, logs)
		}
	}
	if got := logsOf(t, r, "demo", "hello-fanout", 2); strings.Count(got, "\n") != 2 {
		t.Errorf("TailLines 2 gave:\n%s", got)
	}
	evs, err := r.Tentacles().Events(ctx(t), "demo", "hello-fanout")
	if err != nil || !hasEvent(evs, "Deployed", "revision 1 (version 1.0) deployed by U-alice", false) {
		t.Fatalf("events = %+v %v", evs, err)
	}
	if l, err := r.Tentacles().List(ctx(t), "demo"); err != nil || len(l) != 1 || l[0].Name != "hello-fanout" {
		t.Fatalf("list = %+v %v", l, err)
	}
	if _, err := r.Tentacles().Run(ctx(t), "demo", "hello-fanout", json.RawMessage(`{"name":`)); err == nil {
		t.Fatal("invalid JSON input was run")
	}
	gone, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := r.Tentacles().Run(gone, "demo", "hello-fanout", nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("run with a cancelled context: %v", err)
	}
}

func TestRevisionsRollbackFiles(t *testing.T) {
	r, _ := open(t, t.TempDir())
	tc := r.Tentacles()
	provision(t, r, "revs")
	b1 := bundle(t, "hello-fanout", nil)
	b2 := edited(t, b1, "nodes/greet.ts", "`Hello, ${name}!`", "`Hi, ${name}!`")

	r1 := deploy(t, r, "revs", b1, alice)
	greet := func() any { return output(t, run(t, r, "revs", "hello-fanout", `{"name":"Ada"}`), "greet")["text"] }
	if got := greet(); got != "Hello, Ada!" {
		t.Fatalf("r1 greets %v", got)
	}
	r2 := deploy(t, r, "revs", b2, bob)
	if r2.Number != 2 || r2.Digest == r1.Digest || r2.DeployedBy != "U-bob" {
		t.Fatalf("r2 = %+v", r2)
	}
	// The redeploy retired r1's worker: the run is r2's.
	if got := greet(); got != "Hi, Ada!" {
		t.Fatalf("r2 greets %v", got)
	}
	r3, err := tc.Rollback(ctx(t), "revs", "hello-fanout", 0, alice)
	if err != nil {
		t.Fatal(err)
	}
	if r3.Number != 3 || r3.Digest != r1.Digest || r3.Version != "1.0" {
		t.Fatalf("r3 = %+v, want r1's digest %s", r3, r1.Digest)
	}
	if got := greet(); got != "Hello, Ada!" {
		t.Fatalf("r3 greets %v", got)
	}

	revs, err := tc.Revisions(ctx(t), "revs", "hello-fanout")
	if err != nil {
		t.Fatal(err)
	}
	var nums []int
	for _, rv := range revs {
		nums = append(nums, rv.Number)
	}
	if !slices.Equal(nums, []int{3, 2, 1}) || revs[0].Digest != r1.Digest || !reflect.DeepEqual(revs[1], withoutWarnings(r2)) {
		t.Fatalf("revisions = %+v", revs)
	}

	for _, tt := range []struct {
		rev  int
		want map[string][]byte
	}{{0, b1.Files}, {1, b1.Files}, {2, b2.Files}, {3, b1.Files}} {
		got, err := tc.Files(ctx(t), "revs", "hello-fanout", tt.rev)
		if err != nil {
			t.Fatal(err)
		}
		if !maps.EqualFunc(got, tt.want, func(a, b []byte) bool { return string(a) == string(b) }) {
			t.Errorf("Files(%d) = %v, want %v", tt.rev, slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(tt.want)))
		}
	}
	if _, err := tc.Files(ctx(t), "revs", "hello-fanout", 9); !errors.Is(err, tentacle.ErrNoRevision) {
		t.Fatalf("Files(9): %v", err)
	}
	if _, err := tc.Rollback(ctx(t), "revs", "hello-fanout", 42, alice); !errors.Is(err, tentacle.ErrNoRevision) {
		t.Fatalf("Rollback(42): %v", err)
	}
	// Rolling back from r3 with no revision named goes to r2.
	r4, err := tc.Rollback(ctx(t), "revs", "hello-fanout", 0, alice)
	if err != nil || r4.Number != 4 || r4.Digest != r2.Digest {
		t.Fatalf("r4 = %+v %v", r4, err)
	}
	evs, _ := tc.Events(ctx(t), "revs", "hello-fanout")
	if !hasEvent(evs, "RolledBack", "rollback to the files of revision 1", false) || evs[0].Reason != "RolledBack" {
		t.Fatalf("events = %+v", evs)
	}

	// The same files again still make a revision, as in the cluster.
	r5 := deploy(t, r, "revs", b2, alice)
	if r5.Number != 5 || r5.Digest != r2.Digest {
		t.Fatalf("r5 = %+v", r5)
	}
	evs, _ = tc.Events(ctx(t), "revs", "hello-fanout")
	if !hasEvent(evs, "Deployed", "same files as revision 4", false) {
		t.Fatalf("events = %+v", evs)
	}
}

func withoutWarnings(rv tentacle.Revision) tentacle.Revision {
	rv.Warnings = nil
	return rv
}

func TestOldRevisionsArePruned(t *testing.T) {
	dir := t.TempDir()
	r, _ := open(t, dir)
	provision(t, r, "many")
	b := bundle(t, "hello-fanout", nil)
	for range MaxRevisions + 2 {
		deploy(t, r, "many", b, alice)
	}
	revs, err := r.Tentacles().Revisions(ctx(t), "many", "hello-fanout")
	if err != nil || len(revs) != MaxRevisions || revs[0].Number != MaxRevisions+2 || revs[len(revs)-1].Number != 3 {
		t.Fatalf("revisions = %+v %v", revs, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "enclaves", "many", "tentacles", "hello-fanout", "r2")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("r2's files are still there: %v", err)
	}
	if _, err := r.Tentacles().Rollback(ctx(t), "many", "hello-fanout", 2, alice); !errors.Is(err, tentacle.ErrNoRevision) {
		t.Fatalf("rollback to a pruned revision: %v", err)
	}
}

func TestUndeploy(t *testing.T) {
	r, _ := open(t, t.TempDir())
	tc := r.Tentacles()
	provision(t, r, "gone")
	deploy(t, r, "gone", bundle(t, "hello-fanout", nil), alice)
	run(t, r, "gone", "hello-fanout", `{}`)
	if err := tc.Undeploy(ctx(t), "gone", "hello-fanout", alice); err != nil {
		t.Fatal(err)
	}
	calls := map[string]func() error{
		"run":       func() error { _, err := tc.Run(ctx(t), "gone", "hello-fanout", nil); return err },
		"status":    func() error { _, err := tc.Status(ctx(t), "gone", "hello-fanout"); return err },
		"revisions": func() error { _, err := tc.Revisions(ctx(t), "gone", "hello-fanout"); return err },
		"files":     func() error { _, err := tc.Files(ctx(t), "gone", "hello-fanout", 0); return err },
		"logs":      func() error { _, err := tc.Logs(ctx(t), "gone", "hello-fanout", tentacle.LogOptions{}); return err },
		"events":    func() error { _, err := tc.Events(ctx(t), "gone", "hello-fanout"); return err },
		"restart":   func() error { return tc.Restart(ctx(t), "gone", "hello-fanout", alice) },
		"rollback":  func() error { _, err := tc.Rollback(ctx(t), "gone", "hello-fanout", 0, alice); return err },
		"undeploy":  func() error { return tc.Undeploy(ctx(t), "gone", "hello-fanout", alice) },
		"a path":    func() error { _, err := tc.Status(ctx(t), "gone", "../../gone"); return err },
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, tentacle.ErrNotDeployed) {
			t.Errorf("%s after undeploy: %v, want ErrNotDeployed", name, err)
		}
	}
	if l, err := tc.List(ctx(t), "gone"); err != nil || len(l) != 0 {
		t.Fatalf("list = %+v %v", l, err)
	}
	if err := tc.Undeploy(ctx(t), "nowhere", "hello-fanout", alice); !errors.Is(err, enclave.ErrNotFound) {
		t.Fatalf("undeploy in a missing enclave: %v", err)
	}
	// Deployed again it starts from revision 1.
	if rev := deploy(t, r, "gone", bundle(t, "hello-fanout", nil), alice); rev.Number != 1 {
		t.Fatalf("redeploy = %+v", rev)
	}
}

func TestDeployRefuses(t *testing.T) {
	r, _ := open(t, t.TempDir())
	provision(t, r, "strict")
	good := bundle(t, "hello-fanout", nil)
	noNode := bundle(t, "hello-fanout", nil)
	delete(noNode.Files, "nodes/merge.ts")
	badPath := bundle(t, "hello-fanout", nil)
	badPath.Files["../escape.ts"] = []byte("x")
	badName := edited(t, good, "workflow.yaml", "name: hello-fanout", "name: 9lives")
	badSecret := bundle(t, "hello-fanout", map[string]any{".hidden": "x"})
	otherSpec := bundle(t, "hello-fanout", nil)
	otherSpec.Files = edited(t, good, "workflow.yaml", "name: hello-fanout", "name: other").Files
	tests := []struct {
		name string
		enc  string
		b    *tentacle.Bundle
		want error // nil: any error
	}{
		{"missing enclave", "nowhere", good, enclave.ErrNotFound},
		{"invalid enclave name", "../strict", good, enclave.ErrNotFound},
		{"no bundle", "strict", nil, nil},
		{"no workflow", "strict", &tentacle.Bundle{Files: good.Files}, nil},
		{"node file missing", "strict", noNode, nil},
		{"path outside", "strict", badPath, nil},
		{"name not a DNS label", "strict", badName, nil},
		{"secret name", "strict", badSecret, nil},
		{"workflow.yaml names another tentacle", "strict", otherSpec, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := r.Tentacles().Deploy(ctx(t), tt.enc, tt.b, alice)
			if err == nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
	if l, _ := r.Tentacles().List(ctx(t), "strict"); len(l) != 0 {
		t.Fatalf("a refused deploy left %+v", l)
	}
	// Frozen is the caller's business: the cluster records the deploy.
	if err := r.Enclaves().SetFrozen(ctx(t), "strict", true, alice); err != nil {
		t.Fatal(err)
	}
	deploy(t, r, "strict", good, alice)
}

func TestFailedRunIsTheLastError(t *testing.T) {
	r, _ := open(t, t.TempDir())
	provision(t, r, "fail")
	deploy(t, r, "fail", bundle(t, "failing-step", nil), alice)
	res := run(t, r, "fail", "failing-step", `{}`)
	if res.Success || !strings.Contains(res.Errors["validate"], "order has no orderId") || res.Outputs["ship"] != nil {
		t.Fatalf("want validate to fail and ship not to run: %+v", res)
	}
	st, err := r.Tentacles().Status(ctx(t), "fail", "failing-step")
	if err != nil || !strings.HasPrefix(st.LastError, "validate: ") || !strings.Contains(st.LastError, "orderId") {
		t.Fatalf("status = %+v %v", st, err)
	}
	evs, _ := r.Tentacles().Events(ctx(t), "fail", "failing-step")
	if !hasEvent(evs, "RunFailed", "order has no orderId", true) {
		t.Fatalf("events = %+v", evs)
	}
	if res := run(t, r, "fail", "failing-step", `{"orderId":"A-1001"}`); !res.Success {
		t.Fatalf("run = %+v", res)
	}
	if st, _ := r.Tentacles().Status(ctx(t), "fail", "failing-step"); st.LastError != "" {
		t.Fatalf("a good run left LastError %q", st.LastError)
	}
}

func TestRestart(t *testing.T) {
	r, _ := open(t, t.TempDir())
	tc := r.Tentacles()
	provision(t, r, "rs")
	deploy(t, r, "rs", bundle(t, "hello-fanout", nil), alice)
	run(t, r, "rs", "hello-fanout", `{}`)
	for i := 1; i <= 2; i++ {
		if err := tc.Restart(ctx(t), "rs", "hello-fanout", bob); err != nil {
			t.Fatal(err)
		}
		if st, _ := tc.Status(ctx(t), "rs", "hello-fanout"); st.Restarts != i {
			t.Fatalf("restarts = %d, want %d", st.Restarts, i)
		}
		if res := run(t, r, "rs", "hello-fanout", `{}`); !res.Success {
			t.Fatalf("run after restart: %+v", res)
		}
	}
	evs, _ := tc.Events(ctx(t), "rs", "hello-fanout")
	if !hasEvent(evs, "Restarted", "restarted by U-bob", false) {
		t.Fatalf("events = %+v", evs)
	}
	if got := logsOf(t, r, "rs", "hello-fanout", 1000); strings.Count(got, `msg="engine started"`) != 3 {
		t.Fatalf("want three engine starts in the logs:\n%s", got)
	}
}

// Runs in flight keep their worker through a redeploy; the race detector
// checks the rest.
func TestConcurrentRunsAndDeploys(t *testing.T) {
	r, _ := open(t, t.TempDir())
	provision(t, r, "busy")
	b1 := bundle(t, "hello-fanout", nil)
	b2 := edited(t, b1, "nodes/greet.ts", "`Hello, ${name}!`", "`Hi, ${name}!`")
	deploy(t, r, "busy", b1, alice)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 16 {
		wg.Go(func() {
			body, err := r.Tentacles().Run(ctx(t), "busy", "hello-fanout", json.RawMessage(fmt.Sprintf(`{"name":"n%d"}`, i)))
			if err != nil {
				errs <- err
				return
			}
			var res result
			if err := json.Unmarshal(body, &res); err != nil || !res.Success {
				errs <- fmt.Errorf("run %d: %v %s", i, err, body)
			}
		})
		if i%4 == 0 {
			wg.Go(func() {
				if _, err := r.Tentacles().Deploy(ctx(t), "busy", []*tentacle.Bundle{b1, b2}[i/4%2], bob); err != nil {
					errs <- err
				}
			})
		}
		wg.Go(func() {
			if _, err := r.Tentacles().Status(ctx(t), "busy", "hello-fanout"); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// A runtime opened again on the same directory has everything back, and
// runs.
func TestReopenKeepsEverything(t *testing.T) {
	dir := t.TempDir()
	r1, _ := open(t, dir)
	provision(t, r1, "durable")
	b1 := bundle(t, "hello-fanout", nil)
	b2 := edited(t, b1, "nodes/greet.ts", "`Hello, ${name}!`", "`Hi, ${name}!`")
	deploy(t, r1, "durable", b1, alice)
	deploy(t, r1, "durable", b2, alice)
	run(t, r1, "durable", "hello-fanout", `{}`)
	wantEnc, _ := r1.Enclaves().Get(ctx(t), "durable")
	wantRevs, _ := r1.Tentacles().Revisions(ctx(t), "durable", "hello-fanout")
	if err := r1.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := r1.Tentacles().Run(ctx(t), "durable", "hello-fanout", nil); err == nil {
		t.Fatal("a closed runtime ran")
	}

	r2, _ := open(t, dir)
	if got, err := r2.Enclaves().Get(ctx(t), "durable"); err != nil || !reflect.DeepEqual(got, wantEnc) {
		t.Fatalf("enclave = %+v %v\nwant %+v", got, err, wantEnc)
	}
	if got, err := r2.Tentacles().Revisions(ctx(t), "durable", "hello-fanout"); err != nil || !reflect.DeepEqual(got, wantRevs) {
		t.Fatalf("revisions = %+v %v\nwant %+v", got, err, wantRevs)
	}
	if files, err := r2.Tentacles().Files(ctx(t), "durable", "hello-fanout", 1); err != nil || string(files["nodes/greet.ts"]) != string(b1.Files["nodes/greet.ts"]) {
		t.Fatalf("r1's files: %v", err)
	}
	if got := output(t, run(t, r2, "durable", "hello-fanout", `{"name":"Ada"}`), "greet")["text"]; got != "Hi, Ada!" {
		t.Fatalf("after reopening greet = %v", got)
	}
	if _, err := r2.Tentacles().Rollback(ctx(t), "durable", "hello-fanout", 0, alice); err != nil {
		t.Fatal(err)
	}
	if got := output(t, run(t, r2, "durable", "hello-fanout", `{"name":"Ada"}`), "greet")["text"]; got != "Hello, Ada!" {
		t.Fatalf("after rolling back greet = %v", got)
	}
}

// Secrets reach the nodes as the cluster's mount would give them, are
// private on disk, stay out of the logs, survive redeploys without
// secrets and rollbacks, and are replaced by a deploy with secrets.
func TestSecrets(t *testing.T) {
	const token = "tok-2f9a8c7e1d"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Header.Get("Authorization") != "Bearer "+token {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		fmt.Fprintf(w, `{"city":%q,"tempC":4,"summary":"sleet"}`, req.URL.Query().Get("city"))
	}))
	defer srv.Close()
	u, _ := url.Parse(srv.URL)

	dir := t.TempDir()
	r, rlogs := open(t, dir)
	tc := r.Tentacles()
	provision(t, r, "sec")
	b := edited(t, bundle(t, "weather-contract", nil), "workflow.yaml", "port: 18090", "port: "+u.Port())
	b.Secrets = map[string]any{"weather": map[string]any{"token": token}}
	deploy(t, r, "sec", b, alice)

	tdir := filepath.Join(dir, "enclaves", "sec", "tentacles", "weather-contract")
	link, err := os.Readlink(filepath.Join(tdir, "secrets"))
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(tdir, link)); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("secrets directory: %v %v", fi.Mode(), err)
	}
	if fi, err := os.Stat(filepath.Join(tdir, link, "weather")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("secret file: %v %v", fi.Mode(), err)
	}
	files, _ := tc.Files(ctx(t), "sec", "weather-contract", 0)
	for p, data := range files {
		if strings.Contains(string(data), token) {
			t.Fatalf("the secret is among the revision's files, in %s", p)
		}
	}

	forecast := func() result { return run(t, r, "sec", "weather-contract", `{"city":"Bergen"}`) }
	if res := forecast(); !res.Success || output(t, res, "forecast")["city"] != "Bergen" {
		t.Fatalf("run with the token: %+v", res)
	}
	// Without secrets a redeploy keeps them, and so does a rollback.
	b.Secrets = nil
	deploy(t, r, "sec", b, alice)
	if res := forecast(); !res.Success {
		t.Fatalf("after a redeploy without secrets: %+v", res)
	}
	if _, err := tc.Rollback(ctx(t), "sec", "weather-contract", 1, alice); err != nil {
		t.Fatal(err)
	}
	if res := forecast(); !res.Success {
		t.Fatalf("after a rollback: %+v", res)
	}
	// An empty set removes them: the service refuses.
	b.Secrets = map[string]any{}
	deploy(t, r, "sec", b, alice)
	if res := forecast(); res.Success || !strings.Contains(res.Errors["forecast"], "401") {
		t.Fatalf("without the token: %+v", res)
	}
	if entries, _ := os.ReadDir(tdir); slices.ContainsFunc(entries, func(e os.DirEntry) bool {
		return strings.HasPrefix(e.Name(), ".secrets-") && e.Name() != filepath.Base(mustReadlink(t, filepath.Join(tdir, "secrets")))
	}) {
		t.Fatalf("old secret sets were left behind: %v", entries)
	}

	if strings.Contains(rlogs.String(), token) || strings.Contains(logsOf(t, r, "sec", "weather-contract", 1000), token) {
		t.Fatal("the token is in the logs")
	}
}

func mustReadlink(t *testing.T, p string) string {
	t.Helper()
	l, err := os.Readlink(p)
	if err != nil {
		t.Fatal(err)
	}
	return l
}
