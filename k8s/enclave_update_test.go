package k8s

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kraken-ops/kraken/enclave"
	"github.com/kraken-ops/kraken/k8s/k8stest"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

var updateProvenance = enclave.Provenance{Actor: "U0009", Channel: "C0001", At: testProvenance.At.Add(time.Hour)}

// getNamespace reads the namespace as the test's admin.
func getNamespace(t testing.TB, cs kubernetes.Interface, name string) *corev1.Namespace {
	t.Helper()
	ns, err := cs.CoreV1().Namespaces().Get(enclaveCtx(t, 30*time.Second), name, metav1.GetOptions{})
	noErr(t, err)
	return ns
}

// setAnnotations changes (or, for a nil value, removes) annotations as
// someone editing the namespace by hand would.
func setAnnotations(t testing.TB, cs kubernetes.Interface, name string, ann map[string]*string) {
	t.Helper()
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": ann}})
	noErr(t, err)
	_, err = cs.CoreV1().Namespaces().Patch(enclaveCtx(t, 30*time.Second), name, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: "kubectl-edit"})
	noErr(t, err)
}

// Each field Update records goes in and reads back, alone and all at
// once; nothing else on the namespace changes, and Update returns what
// Get then reads.
func TestUpdateRoundTrip(t *testing.T) {
	t.Parallel()
	cs := k8stest.Clientset(t)
	rc, rec := recordedConfig(k8stest.Config(t))
	c := newEnclaveClient(t, rc, nil)
	ctx := enclaveCtx(t, 2*time.Minute)

	tests := []struct {
		name   string
		change func(e *enclave.Enclave)
		// ann are annotations the change must leave as given.
		ann map[string]string
	}{
		{"owner", func(e *enclave.Enclave) { e.Owner = "U0042" }, map[string]string{AnnotationOwner: "U0042"}},
		{"channel name", func(e *enclave.Enclave) { e.Channel.Name = "data-team-renamed" }, map[string]string{AnnotationName: "data-team-renamed"}},
		{"frozen", func(e *enclave.Enclave) { e.Frozen = true }, map[string]string{
			AnnotationFrozen: "true", AnnotationState: StateFrozen, AnnotationFrozenBy: "U0009", AnnotationFrozenAt: "2026-01-02T04:04:05Z",
		}},
		{"members added", func(e *enclave.Enclave) { e.Members = append(e.Members, "U0004") }, map[string]string{AnnotationMembers: `["U0002","U0003","U0004"]`}},
		{"members removed", func(e *enclave.Enclave) { e.Members = e.Members[1:] }, map[string]string{AnnotationMembers: `["U0003"]`}},
		{"no members", func(e *enclave.Enclave) { e.Members = nil }, map[string]string{AnnotationMembers: `[]`}},
		{"mode", func(e *enclave.Enclave) { e.Mode = enclave.ModePrivate }, map[string]string{AnnotationMode: "rwx------"}},
		{"zero mode", func(e *enclave.Enclave) { e.Mode = 0 }, map[string]string{AnnotationMode: "---------"}},
		{"tentacle mode added", func(e *enclave.Enclave) { e.TentacleModes["echo"] = enclave.ModeOpenRun },
			map[string]string{AnnotationTentacleModes: `{"echo":"rwxrwxr-x","greeter":"rwxr-x---"}`}},
		{"tentacle mode removed", func(e *enclave.Enclave) { delete(e.TentacleModes, "greeter") }, map[string]string{AnnotationTentacleModes: `{}`}},
		{"require identity", func(e *enclave.Enclave) { e.RequireIdentity = true }, map[string]string{AnnotationRequireIdentity: "true"}},
		{"archived", func(e *enclave.Enclave) { e.Archived = true }, map[string]string{AnnotationArchived: "true"}},
		{"frozen by owner", func(e *enclave.Enclave) { e.FrozenByOwner = true }, map[string]string{AnnotationFrozenByOwner: "true"}},
		{"channel deleted", func(e *enclave.Enclave) { e.ChannelDeleted = true }, map[string]string{AnnotationChannelDeleted: "true"}},
		{"needs owner", func(e *enclave.Enclave) { e.NeedsOwner = true }, map[string]string{AnnotationNeedsOwner: "true"}},
		{"everything at once", func(e *enclave.Enclave) {
			e.Owner, e.Channel.Name, e.Frozen = "U0042", "renamed", true
			e.Governance = enclave.Governance{
				Members: []string{"U0007"}, Mode: enclave.ModeOpenRead,
				TentacleModes:   map[string]enclave.Mode{"a": enclave.ModePrivate, "b": enclave.ModeTeam},
				RequireIdentity: true, Archived: true, FrozenByOwner: true, ChannelDeleted: true, NeedsOwner: true,
			}
		}, map[string]string{
			AnnotationOwner: "U0042", AnnotationName: "renamed", AnnotationFrozen: "true", AnnotationState: StateFrozen,
			AnnotationFrozenBy: "U0009", AnnotationFrozenAt: "2026-01-02T04:04:05Z",
			AnnotationMembers: `["U0007"]`, AnnotationMode: "rwxrwxr--", AnnotationTentacleModes: `{"a":"rwx------","b":"rwxrwx---"}`,
			AnnotationRequireIdentity: "true", AnnotationArchived: "true", AnnotationFrozenByOwner: "true",
			AnnotationChannelDeleted: "true", AnnotationNeedsOwner: "true",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			name := enclaveName(t, "enc-update")
			noErr(t, c.Provision(ctx, testEnclave(name), testProvenance))
			before, err := c.Get(ctx, name)
			noErr(t, err)
			nsBefore := getNamespace(t, cs, name)

			want := cloneEnclave(before)
			tt.change(&want)
			// None reads back as nil, however the change said it.
			if len(want.Members) == 0 {
				want.Members = nil
			}
			if len(want.TentacleModes) == 0 {
				want.TentacleModes = nil
			}
			got, err := c.Update(ctx, name, func(e *enclave.Enclave) error { tt.change(e); return nil }, updateProvenance)
			noErr(t, err)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Update returned\n%+v\nwant\n%+v", got, want)
			}
			read, err := c.Get(ctx, name)
			noErr(t, err)
			if !reflect.DeepEqual(read, got) {
				t.Errorf("Get after Update reads\n%+v\nUpdate returned\n%+v", read, got)
			}

			ns := getNamespace(t, cs, name)
			for k, v := range tt.ann {
				if ns.Annotations[k] != v {
					t.Errorf("annotation %s = %q, want %q", k, ns.Annotations[k], v)
				}
			}
			// Nothing else changed: not the labels, not the annotations the
			// change left alone.
			if !maps.Equal(ns.Labels, nsBefore.Labels) {
				t.Errorf("labels changed:\nbefore %v\nafter  %v", nsBefore.Labels, ns.Labels)
			}
			for k, v := range nsBefore.Annotations {
				if _, changed := tt.ann[k]; !changed && ns.Annotations[k] != v {
					t.Errorf("annotation %s = %q, was %q", k, ns.Annotations[k], v)
				}
			}
			for k := range ns.Annotations {
				if _, was := nsBefore.Annotations[k]; !was && tt.ann[k] == "" {
					t.Errorf("annotation %s appeared: %q", k, ns.Annotations[k])
				}
			}
			// The annotations it wrote are Update's field manager's.
			if !slices.ContainsFunc(ns.ManagedFields, func(f metav1.ManagedFieldsEntry) bool {
				return f.Manager == governanceFieldManager && f.Operation == metav1.ManagedFieldsOperationApply
			}) {
				t.Errorf("no apply by %s in %+v", governanceFieldManager, ns.ManagedFields)
			}
		})
	}

	// An Update that changes nothing writes nothing, and returns the
	// enclave as recorded.
	t.Run("no change", func(t *testing.T) {
		t.Parallel()
		name := enclaveName(t, "enc-update-noop")
		noErr(t, c.Provision(ctx, testEnclave(name), testProvenance))
		rv := getNamespace(t, cs, name).ResourceVersion
		before, err := c.Get(ctx, name)
		noErr(t, err)
		for what, change := range map[string]func(e *enclave.Enclave){
			"nothing":           func(e *enclave.Enclave) {},
			"the same owner":    func(e *enclave.Enclave) { e.Owner = "U0001" },
			"the same members":  func(e *enclave.Enclave) { e.Members = []string{"U0002", "U0003"} },
			"the same modes":    func(e *enclave.Enclave) { e.TentacleModes = map[string]enclave.Mode{"greeter": enclave.ModeTeamRun} },
			"a flag there+back": func(e *enclave.Enclave) { e.Archived = true; e.Archived = false },
		} {
			got, err := c.Update(ctx, name, func(e *enclave.Enclave) error { change(e); return nil }, updateProvenance)
			noErr(t, err)
			if !reflect.DeepEqual(got, before) {
				t.Errorf("Update changing %s returned %+v, want %+v", what, got, before)
			}
		}
		if after := getNamespace(t, cs, name).ResourceVersion; after != rv {
			t.Errorf("Updates that change nothing wrote the namespace (resourceVersion %s, was %s)", after, rv)
		}
	})

	// One read and one write when nothing gets in the way.
	t.Run("requests", func(t *testing.T) {
		name := enclaveName(t, "enc-update-reqs")
		noErr(t, c.Provision(ctx, testEnclave(name), testProvenance))
		rec.counts()
		_, err := c.Update(ctx, name, func(e *enclave.Enclave) error { e.Mode = enclave.ModeTeamRun; return nil }, updateProvenance)
		noErr(t, err)
		if reads, writes, reqs := rec.counts(); reads != 1 || writes != 1 {
			t.Errorf("Update made %d reads and %d writes, want 1 and 1: %v", reads, writes, reqs)
		}
	})
}

// Updates from several bot replicas at once, each adding its own
// members, all land: a write that lost the race is made again from the
// record the winner left.
func TestUpdateConcurrently(t *testing.T) {
	t.Parallel()
	name := enclaveName(t, "enc-update-race")
	ctx := enclaveCtx(t, 2*time.Minute)
	noErr(t, newEnclaveClient(t, k8stest.Config(t), nil).Provision(ctx, testEnclave(name), testProvenance))

	const replicas, each = 6, 3
	var calls atomic.Int32
	errs := make([]error, replicas)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range replicas {
		c := newEnclaveClient(t, k8stest.Config(t), nil)
		wg.Go(func() {
			<-start
			for j := range each {
				id := fmt.Sprintf("U1%d%d", i, j)
				_, err := c.Update(ctx, name, func(e *enclave.Enclave) error {
					calls.Add(1)
					if !slices.Contains(e.Members, id) {
						e.Members = append(e.Members, id)
					}
					return nil
				}, updateProvenance)
				if err != nil {
					errs[i] = err
					return
				}
			}
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("replica %d: %v", i, err)
		}
	}
	got, err := newEnclaveClient(t, k8stest.Config(t), nil).Get(ctx, name)
	noErr(t, err)
	want := []string{"U0002", "U0003"}
	for i := range replicas {
		for j := range each {
			want = append(want, fmt.Sprintf("U1%d%d", i, j))
		}
	}
	members := slices.Sorted(slices.Values(got.Members))
	if slices.Sort(want); !slices.Equal(members, want) {
		t.Errorf("members after concurrent updates = %v\nwant %v", members, want)
	}
	t.Logf("%d updates ran their change %d times", replicas*each, calls.Load())
}

// Update refuses to change what it does not record, and to record an
// invalid mode; an error of the change itself comes back as it is. In
// every case nothing is written.
func TestUpdateRefuses(t *testing.T) {
	t.Parallel()
	cs := k8stest.Clientset(t)
	c := newEnclaveClient(t, k8stest.Config(t), nil)
	ctx := enclaveCtx(t, 2*time.Minute)
	name := enclaveName(t, "enc-update-refuse")
	noErr(t, c.Provision(ctx, testEnclave(name), testProvenance))
	rv := getNamespace(t, cs, name).ResourceVersion

	errOwn := errors.New("the change's own reason")
	tests := []struct {
		what    string
		change  func(e *enclave.Enclave) error
		want    error
		mention string
	}{
		{"the name", func(e *enclave.Enclave) error { e.Name = "other"; return nil }, ErrNotUpdatable, "name"},
		{"the channel id", func(e *enclave.Enclave) error { e.Channel.ID = "C0002"; return nil }, ErrNotUpdatable, "channel"},
		{"the team id", func(e *enclave.Enclave) error { e.Channel.TeamID = "T0002"; return nil }, ErrNotUpdatable, "channel"},
		{"the quota", func(e *enclave.Enclave) error { e.Quota.Pods = 99; return nil }, ErrNotUpdatable, "quota"},
		{"readiness", func(e *enclave.Enclave) error { e.Ready = false; return nil }, ErrNotUpdatable, "readiness"},
		{"termination", func(e *enclave.Enclave) error { e.Terminating = true; return nil }, ErrNotUpdatable, "termination"},
		{"the creation time", func(e *enclave.Enclave) error { e.CreatedAt = e.CreatedAt.Add(time.Hour); return nil }, ErrNotUpdatable, "creation"},
		{"an invalid mode", func(e *enclave.Enclave) error { e.Mode = 0o1777; return nil }, enclave.ErrInvalidMode, "mode"},
		{"an invalid tentacle mode", func(e *enclave.Enclave) error { e.TentacleModes["x"] = 0o1000; return nil }, enclave.ErrInvalidMode, "tentacle x"},
		{"with an error of its own", func(e *enclave.Enclave) error { e.Owner = "U0042"; return errOwn }, errOwn, ""},
	}
	for _, tt := range tests {
		t.Run(tt.what, func(t *testing.T) {
			_, err := c.Update(ctx, name, tt.change, updateProvenance)
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.mention) {
				t.Fatalf("Update changing %s = %v, want %v mentioning %q", tt.what, err, tt.want, tt.mention)
			}
			if tt.want == errOwn && err != errOwn {
				t.Errorf("the change's error came back as %v, want it as it is", err)
			}
			t.Logf("%v", err)
		})
	}
	if after := getNamespace(t, cs, name).ResourceVersion; after != rv {
		t.Errorf("refused Updates wrote the namespace (resourceVersion %s, was %s)", after, rv)
	}
	if _, err := c.Update(ctx, name, nil, updateProvenance); err == nil {
		t.Errorf("Update with no change function succeeded")
	}
}

// An enclave that is not there, or not the bot's, is ErrNotFound and the
// change never runs; one being removed is ErrTerminating; one deleted
// and made again between Update's read and its write is ErrNotFound, and
// the new one is left alone.
func TestUpdateMissingOrGoing(t *testing.T) {
	t.Parallel()
	cs := k8stest.Clientset(t)
	c := newEnclaveClient(t, k8stest.Config(t), nil)
	ctx := enclaveCtx(t, 2*time.Minute)
	ran := false
	change := func(e *enclave.Enclave) error { ran = true; e.Owner = "U0042"; return nil }

	absent := enclaveName(t, "enc-update-absent")
	unmanaged := k8stest.Namespace(t, "enc-update-unmanaged")
	for _, name := range []string{absent, unmanaged, "kube-system", "Not A Name"} {
		if _, err := c.Update(ctx, name, change, updateProvenance); !errors.Is(err, enclave.ErrNotFound) {
			t.Errorf("Update of %q = %v, want ErrNotFound", name, err)
		}
	}
	if _, err := cs.CoreV1().Namespaces().Get(ctx, absent, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("Update of an absent enclave left a namespace: %v", err)
	}
	if ns := getNamespace(t, cs, unmanaged); ns.Annotations[AnnotationOwner] != "" {
		t.Errorf("Update wrote on a namespace that is not an enclave: %v", ns.Annotations)
	}

	going := enclaveName(t, "enc-update-going")
	noErr(t, c.Provision(ctx, testEnclave(going), testProvenance))
	holdNamespace(t, cs, going)
	noErr(t, cs.CoreV1().Namespaces().Delete(ctx, going, metav1.DeleteOptions{}))
	if _, err := c.Update(ctx, going, change, updateProvenance); !errors.Is(err, ErrTerminating) {
		t.Errorf("Update of a terminating enclave = %v, want ErrTerminating", err)
	}
	if ran {
		t.Errorf("the change ran on an enclave that is missing, not the bot's or terminating")
	}

	// Replaced between the read and the write.
	replaced := enclaveName(t, "enc-update-replaced")
	noErr(t, c.Provision(ctx, testEnclave(replaced), testProvenance))
	theirs := testEnclave(replaced)
	theirs.Channel, theirs.Owner = enclave.Channel{TeamID: "T0001", ID: "C0002", Name: "payments"}, "U0002"
	rc, rec := recordedConfig(k8stest.Config(t))
	var once sync.Once
	rec.beforeWrite = func(int) { once.Do(func() { recreate(t, ctx, cs, theirs) }) }
	_, err := newEnclaveClient(t, rc, nil).Update(ctx, replaced, change, updateProvenance)
	if !errors.Is(err, enclave.ErrNotFound) {
		t.Errorf("Update of an enclave replaced before its write = %v, want ErrNotFound", err)
	}
	if ns := getNamespace(t, cs, replaced); ns.Annotations[AnnotationOwner] != "U0002" || ns.Annotations[AnnotationChannel] != "C0002" {
		t.Errorf("the namespace made since was written: %v", ns.Annotations)
	}
}

// recreate deletes e's namespace, waits until it is gone and makes it
// again as e, half made, the way another channel's provision would.
func recreate(t testing.TB, ctx context.Context, cs kubernetes.Interface, e enclave.Enclave) {
	t.Helper()
	noErr(t, cs.CoreV1().Namespaces().Delete(ctx, e.Name, metav1.DeleteOptions{}))
	for {
		_, err := cs.CoreV1().Namespaces().Get(ctx, e.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			break
		}
		noErr(t, err)
		select {
		case <-ctx.Done():
			t.Fatalf("namespace %s not gone: %v", e.Name, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
	q, err := resolveQuota(e.Quota, enclave.Quota{})
	noErr(t, err)
	record, err := recordAnnotations(e)
	noErr(t, err)
	_, err = cs.CoreV1().Namespaces().Create(ctx, namespaceObject(e, q, provisionMeta{by: e.Owner, at: "2026-01-02T04:04:05Z"}, record), metav1.CreateOptions{})
	noErr(t, err)
}

// A governance record damaged by hand reads so that it allows less: a
// missing or unreadable mode, or unreadable tentacle modes, as a damaged
// mode that leaves the owner only the owner-only ops; unreadable members
// as none. An Update that leaves the damage alone keeps it (no default
// is written in its place); the owner setting the mode repairs it; a
// reconcile keeps it as it is.
func TestDamagedGovernanceFailsClosed(t *testing.T) {
	t.Parallel()
	cs := k8stest.Clientset(t)
	c := newEnclaveClient(t, k8stest.Config(t), nil)
	ctx := enclaveCtx(t, 2*time.Minute)
	str := func(s string) *string { return &s }

	tests := []struct {
		name        string
		damage      map[string]*string
		modeDamaged bool
		check       func(t *testing.T, e enclave.Enclave)
	}{
		{"mode missing", map[string]*string{AnnotationMode: nil}, true, nil},
		{"mode unreadable", map[string]*string{AnnotationMode: str("rwxrwxrwz")}, true, nil},
		{"mode empty", map[string]*string{AnnotationMode: str("")}, true, nil},
		{"tentacle modes unreadable", map[string]*string{AnnotationTentacleModes: str("{greeter: team")}, true, func(t *testing.T, e enclave.Enclave) {
			if e.TentacleModes != nil {
				t.Errorf("unreadable tentacle modes read as %v", e.TentacleModes)
			}
		}},
		{"one tentacle mode unreadable", map[string]*string{AnnotationTentacleModes: str(`{"greeter":"everyone","echo":"rwx------"}`)}, false, func(t *testing.T, e enclave.Enclave) {
			if m := e.TentacleModes["greeter"]; m.Valid() || e.TentacleModes["echo"] != enclave.ModePrivate {
				t.Errorf("tentacle modes read as %v, want greeter's damaged and echo's private", e.TentacleModes)
			}
			a := enclave.AccessOf(e)
			member := enclave.Principal{TeamID: "T0001", UserID: "U0002"}
			if d := enclave.Decide(member, a, enclave.TentacleAccessOf(e, "greeter", ""), enclave.OpRun); d.Allowed {
				t.Errorf("a member may run a tentacle whose mode is damaged: %s", d.Reason)
			}
		}},
		{"members unreadable", map[string]*string{AnnotationMembers: str(`["U0002",`)}, false, func(t *testing.T, e enclave.Enclave) {
			if e.Members != nil || e.IsMember("U0002") {
				t.Errorf("unreadable members read as %v", e.Members)
			}
		}},
		{"a flag unreadable", map[string]*string{AnnotationRequireIdentity: str("perhaps")}, false, func(t *testing.T, e enclave.Enclave) {
			if !e.RequireIdentity {
				t.Errorf("an unreadable require-identity reads as false")
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			name := enclaveName(t, "enc-damaged")
			noErr(t, c.Provision(ctx, testEnclave(name), testProvenance))
			setAnnotations(t, cs, name, tt.damage)
			damaged := getNamespace(t, cs, name).Annotations

			e, err := c.Get(ctx, name)
			noErr(t, err)
			if e.Mode.Valid() == tt.modeDamaged {
				t.Errorf("mode reads as %s, want damaged=%t", e.Mode, tt.modeDamaged)
			}
			if tt.check != nil {
				tt.check(t, e)
			}
			owner := enclave.Principal{TeamID: "T0001", UserID: "U0001"}
			if tt.modeDamaged {
				a := enclave.AccessOf(e)
				if d := enclave.Decide(owner, a, nil, enclave.OpStatus); d.Allowed {
					t.Errorf("the owner may look with a damaged mode: %s", d.Reason)
				}
				if d := enclave.Decide(owner, a, nil, enclave.OpMode); !d.Allowed {
					t.Errorf("the owner may not set a damaged mode again: %s", d.Reason)
				}
			}

			// Changing something else keeps the damage as it is.
			_, err = c.Update(ctx, name, func(e *enclave.Enclave) error { e.NeedsOwner = true; return nil }, updateProvenance)
			noErr(t, err)
			// So does a reconcile, whatever e says.
			noErr(t, c.Provision(ctx, testEnclave(name), testProvenance))
			ns := getNamespace(t, cs, name)
			for k, v := range tt.damage {
				got, ok := ns.Annotations[k]
				if v == nil && ok || v != nil && got != *v {
					t.Errorf("%s = %q (there: %t) after an Update of something else and a reconcile, want it kept as %q", k, got, ok, damaged[k])
				}
			}
			if !tt.modeDamaged {
				return
			}
			// The owner sets the mode again: that repairs it.
			got, err := c.Update(ctx, name, func(e *enclave.Enclave) error { e.Mode = enclave.ModeTeamRun; return nil }, updateProvenance)
			noErr(t, err)
			if got.Mode != enclave.ModeTeamRun {
				t.Errorf("after setting the mode it reads %s", got.Mode)
			}
			if d := enclave.Decide(owner, enclave.AccessOf(got), nil, enclave.OpStatus); !d.Allowed {
				t.Errorf("after setting the mode the owner may not look: %s", d.Reason)
			}
		})
	}
}

// A reconcile keeps the record Update and SetFrozen wrote (owner, frozen
// state, governance) whatever the enclave it is given says, changes
// nothing when nothing else changed, and does not revert an Update that
// lands between its read and its last write. A half-made enclave takes
// its governance from the provision that finishes it.
func TestProvisionKeepsGovernance(t *testing.T) {
	t.Parallel()
	cs := k8stest.Clientset(t)
	c := newEnclaveClient(t, k8stest.Config(t), nil)
	ctx := enclaveCtx(t, 2*time.Minute)
	name := enclaveName(t, "enc-keepgov")
	e := testEnclave(name)
	noErr(t, c.Provision(ctx, e, testProvenance))

	updated, err := c.Update(ctx, name, func(e *enclave.Enclave) error {
		e.Owner, e.Frozen = "U0042", true
		e.Governance = enclave.Governance{
			Members: []string{"U0007", "U0008"}, Mode: enclave.ModeOpenRun,
			TentacleModes:   map[string]enclave.Mode{"echo": enclave.ModePrivate},
			RequireIdentity: true, FrozenByOwner: true, NeedsOwner: true,
		}
		return nil
	}, updateProvenance)
	noErr(t, err)
	nsBefore := getNamespace(t, cs, name)

	// testEnclave's owner, governance and Frozen=false are not the
	// reconcile's to restore.
	system := enclave.Provenance{Actor: "system", At: updateProvenance.At.Add(time.Hour)}
	noErr(t, c.Provision(ctx, e, system))
	got, err := c.Get(ctx, name)
	noErr(t, err)
	if !reflect.DeepEqual(got, updated) {
		t.Errorf("after a reconcile:\n%+v\nwant what Update recorded:\n%+v", got, updated)
	}
	ns := getNamespace(t, cs, name)
	if !maps.Equal(ns.Annotations, nsBefore.Annotations) {
		t.Errorf("a reconcile changed annotations:\nbefore %v\nafter  %v", nsBefore.Annotations, ns.Annotations)
	}
	// The first reconcile after an Update takes a share in the fields
	// Update took over (a change of managedFields alone); the next one
	// changes nothing at all.
	objects := enclaveObjects(t, cs, name)
	noErr(t, c.Provision(ctx, e, system))
	if after := enclaveObjects(t, cs, name); !maps.Equal(objects, after) {
		t.Errorf("a second reconcile after an Update changed objects:\nbefore %v\nafter  %v", objects, after)
	}
	// Both managers own the record's annotations now, with the same
	// values: the next Update and the next reconcile don't fight over
	// them, and neither removes one by leaving it out.
	for _, m := range []string{FieldManager, governanceFieldManager} {
		if !ownsAnnotation(ns, m, AnnotationMembers) || !ownsAnnotation(ns, m, AnnotationMode) {
			t.Errorf("%s does not own the members and mode annotations: %+v", m, ns.ManagedFields)
		}
	}

	// An Update between the reconcile's read and its last write wins:
	// the write fails on the changed resourceVersion and is made again
	// from the new record.
	rc, rec := recordedConfig(k8stest.Config(t))
	const last = 8 // writes of a reconcile, see TestProvisionTwiceChangesNothing
	other := newEnclaveClient(t, k8stest.Config(t), nil)
	rec.beforeWrite = func(n int) {
		if n != last {
			return
		}
		_, err := other.Update(ctx, name, func(e *enclave.Enclave) error {
			e.Members = append(e.Members, "U0099")
			e.Mode = enclave.ModeTeam
			e.Frozen = false
			return nil
		}, updateProvenance)
		noErr(t, err)
	}
	noErr(t, newEnclaveClient(t, rc, nil).Provision(ctx, e, testProvenance))
	got, err = c.Get(ctx, name)
	noErr(t, err)
	if !slices.Equal(got.Members, []string{"U0007", "U0008", "U0099"}) || got.Mode != enclave.ModeTeam || got.Frozen || got.Owner != "U0042" || !got.Ready {
		t.Errorf("an Update during a reconcile was reverted: %+v", got)
	}
	if s := getNamespace(t, cs, name).Annotations[AnnotationState]; s != StateActive {
		t.Errorf("state = %q after an Update unfroze it during a reconcile, want %q", s, StateActive)
	}

	// A half-made enclave is the finishing provision's: its governance
	// comes from e, and an invalid mode is refused before any write.
	half := enclaveName(t, "enc-keepgov-half")
	rc, rec = recordedConfig(k8stest.Config(t))
	rec.cutAfter = 1
	if err := newEnclaveClient(t, rc, nil).Provision(ctx, testEnclave(half), testProvenance); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("Provision through an outage = %v, want ErrUnreachable", err)
	}
	finish := testEnclave(half)
	finish.Mode = 0o1000
	if err := c.Provision(ctx, finish, testProvenance); !errors.Is(err, enclave.ErrInvalidMode) {
		t.Errorf("Provision of a half-made enclave with an invalid mode = %v, want ErrInvalidMode", err)
	}
	finish.Mode, finish.Members = enclave.ModePrivate, []string{"U0005"}
	noErr(t, c.Provision(ctx, finish, testProvenance))
	if got, err := c.Get(ctx, half); err != nil || got.Mode != enclave.ModePrivate || !slices.Equal(got.Members, []string{"U0005"}) || !got.Ready {
		t.Errorf("a half-made enclave finished with new governance: %+v, %v", got, err)
	}

	// A new enclave with an invalid mode is refused with nothing made.
	bad := testEnclave(enclaveName(t, "enc-badmode"))
	bad.TentacleModes = map[string]enclave.Mode{"x": 0o7777}
	if err := c.Provision(ctx, bad, testProvenance); !errors.Is(err, enclave.ErrInvalidMode) {
		t.Errorf("Provision with an invalid tentacle mode = %v, want ErrInvalidMode", err)
	}
	if _, err := cs.CoreV1().Namespaces().Get(ctx, bad.Name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("Provision with an invalid mode made a namespace: %v", err)
	}
}

// ownsAnnotation reports whether manager's apply owns annotation k.
func ownsAnnotation(ns *corev1.Namespace, manager, k string) bool {
	for _, f := range ns.ManagedFields {
		if f.Manager != manager || f.Operation != metav1.ManagedFieldsOperationApply || f.FieldsV1 == nil {
			continue
		}
		var fields struct {
			Metadata struct {
				Annotations map[string]any `json:"f:annotations"`
			} `json:"f:metadata"`
		}
		if json.Unmarshal(f.FieldsV1.Raw, &fields) == nil {
			if _, ok := fields.Metadata.Annotations["f:"+k]; ok {
				return true
			}
		}
	}
	return false
}

// SetFrozen and Update interleave without losing each other's writes,
// and a later reconcile keeps both.
func TestUpdateAndSetFrozen(t *testing.T) {
	t.Parallel()
	c := newEnclaveClient(t, k8stest.Config(t), nil)
	ctx := enclaveCtx(t, time.Minute)
	name := enclaveName(t, "enc-update-frozen")
	noErr(t, c.Provision(ctx, testEnclave(name), testProvenance))

	noErr(t, c.SetFrozen(ctx, name, true, testProvenance))
	_, err := c.Update(ctx, name, func(e *enclave.Enclave) error { e.Archived = true; return nil }, updateProvenance)
	noErr(t, err)
	noErr(t, c.Provision(ctx, testEnclave(name), testProvenance))
	got, err := c.Get(ctx, name)
	noErr(t, err)
	if !got.Frozen || !got.Archived || !got.Ready {
		t.Errorf("after SetFrozen(true), an Update archiving it and a reconcile: %+v", got)
	}
	// Update thaws it, SetFrozen freezes it again; each sees the other's.
	_, err = c.Update(ctx, name, func(e *enclave.Enclave) error { e.Frozen, e.Archived = false, false; return nil }, updateProvenance)
	noErr(t, err)
	if got, err := c.Get(ctx, name); err != nil || got.Frozen || got.Archived {
		t.Errorf("after Update unfroze it: %+v, %v", got, err)
	}
	noErr(t, c.SetFrozen(ctx, name, true, testProvenance))
	_, err = c.Update(ctx, name, func(e *enclave.Enclave) error { e.FrozenByOwner = true; return nil }, updateProvenance)
	noErr(t, err)
	noErr(t, c.Provision(ctx, testEnclave(name), testProvenance))
	if got, err := c.Get(ctx, name); err != nil || !got.Frozen || !got.FrozenByOwner || got.Archived || !got.Ready {
		t.Errorf("after SetFrozen(true), Update and a reconcile: %+v, %v", got, err)
	}
}
