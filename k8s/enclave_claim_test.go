package k8s

import (
	"context"
	"errors"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kraken-ops/kraken/enclave"
	"github.com/kraken-ops/kraken/k8s/k8stest"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// otherProvenance is a channel other than testEnclave's asking for the
// same enclave name.
var otherProvenance = enclave.Provenance{Actor: "U0002", Channel: "C0002", At: testProvenance.At.Add(time.Hour)}

// An enclave belongs to the channel that provisioned it: another channel
// asking for the same name is told the name is taken, and nothing of the
// first channel's enclave changes, whether it is ready or half made.
func TestProvisionRefusesAnotherChannelsEnclave(t *testing.T) {
	t.Parallel()
	cs := k8stest.Clientset(t)
	c := newEnclaveClient(t, k8stest.Config(t), nil)
	ctx := enclaveCtx(t, time.Minute)

	others := map[string]enclave.Channel{
		"another channel":                      {TeamID: "T0001", ID: "C0002", Name: "payments"},
		"another channel, same name":           {TeamID: "T0001", ID: "C0002", Name: "data-team"},
		"the same channel id, in another team": {TeamID: "T0002", ID: "C0001", Name: "data-team"},
	}
	for _, ready := range []bool{true, false} {
		t.Run(map[bool]string{true: "ready", false: "half made"}[ready], func(t *testing.T) {
			t.Parallel()
			name := enclaveName(t, "enc-claim")
			if ready {
				noErr(t, c.Provision(ctx, testEnclave(name), testProvenance))
			} else {
				// The namespace is created, then the connection is cut.
				rc, rec := recordedConfig(k8stest.Config(t))
				rec.cutAfter = 1
				if err := newEnclaveClient(t, rc, nil).Provision(ctx, testEnclave(name), testProvenance); !errors.Is(err, ErrUnreachable) {
					t.Fatalf("Provision through an outage = %v, want ErrUnreachable", err)
				}
			}
			before := enclaveObjects(t, cs, name)
			nsBefore, err := cs.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
			noErr(t, err)

			for what, ch := range others {
				e := testEnclave(name)
				e.Channel, e.Owner, e.Quota.Pods = ch, "U0002", 9
				err := c.Provision(ctx, e, otherProvenance)
				if !errors.Is(err, enclave.ErrNameTaken) {
					t.Fatalf("Provision of %s's enclave by %s = %v, want ErrNameTaken", name, what, err)
				}
				if want := "the enclave name " + name + " is already used by another channel; pick another name"; !strings.Contains(err.Error(), want) {
					t.Errorf("%v\ndoes not say %q", err, want)
				}
				t.Logf("%s: %v", what, err)
			}
			if after := enclaveObjects(t, cs, name); !maps.Equal(before, after) {
				t.Errorf("another channel's Provision touched the enclave:\nbefore %v\nafter  %v", before, after)
			}
			ns, err := cs.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
			noErr(t, err)
			if !maps.Equal(ns.Annotations, nsBefore.Annotations) {
				t.Errorf("annotations changed:\nbefore %v\nafter  %v", nsBefore.Annotations, ns.Annotations)
			}

			// The channel it belongs to still finishes or converges it.
			noErr(t, c.Provision(ctx, testEnclave(name), testProvenance))
			assertWholeEnclave(t, cs, name)
			got, err := c.Get(ctx, name)
			noErr(t, err)
			if !got.Ready || got.Channel != testEnclave(name).Channel || got.Owner != "U0001" {
				t.Errorf("after its own channel provisioned it again: %+v", got)
			}
		})
	}
}

// Two channels asking for the same new name at once: one gets it, the
// other is told it is taken, and the enclave is the winner's.
func TestProvisionSameNameByTwoChannelsConcurrently(t *testing.T) {
	t.Parallel()
	name := enclaveName(t, "enc-claimrace")
	ctx := enclaveCtx(t, time.Minute)
	a, b := testEnclave(name), testEnclave(name)
	b.Channel, b.Owner = enclave.Channel{TeamID: "T0001", ID: "C0002", Name: "payments"}, "U0002"
	ps := []enclave.Provenance{testProvenance, otherProvenance}

	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i, e := range []enclave.Enclave{a, b} {
		c := newEnclaveClient(t, k8stest.Config(t), nil)
		wg.Go(func() { errs[i] = c.Provision(ctx, e, ps[i]) })
	}
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil:
			winner = i
		case !errors.Is(err, enclave.ErrNameTaken):
			t.Errorf("channel %d: %v, want nil or ErrNameTaken", i, err)
		}
	}
	if (errs[0] == nil) == (errs[1] == nil) {
		t.Fatalf("both channels' Provision = %v; want exactly one to succeed and the other ErrNameTaken", errs)
	}
	got, err := newEnclaveClient(t, k8stest.Config(t), nil).Get(ctx, name)
	noErr(t, err)
	want := []enclave.Enclave{a, b}[winner]
	if got.Channel != want.Channel || got.Owner != want.Owner || !got.Ready {
		t.Errorf("the enclave is %+v, want the winner's (%+v)", got, want)
	}
}

// A reconcile by the enclave's own channel converges it, even under a
// new channel name, but does not change who owns it: that is a transfer,
// not a reconcile.
func TestProvisionKeepsTheOwner(t *testing.T) {
	t.Parallel()
	cs := k8stest.Clientset(t)
	c := newEnclaveClient(t, k8stest.Config(t), nil)
	name := enclaveName(t, "enc-owner")
	ctx := enclaveCtx(t, time.Minute)
	noErr(t, c.Provision(ctx, testEnclave(name), testProvenance))

	renamed := testEnclave(name)
	renamed.Channel.Name = "data-team-renamed"
	renamed.Owner = "U0002"
	renamed.Quota.Pods = 7
	noErr(t, c.Provision(ctx, renamed, otherProvenance))
	got, err := c.Get(ctx, name)
	noErr(t, err)
	if !got.Ready || got.Channel != renamed.Channel || got.Quota.Pods != 7 {
		t.Errorf("after a reconcile under a new channel name: %+v, want channel %+v and 7 pods", got, renamed.Channel)
	}
	if got.Owner != "U0001" {
		t.Errorf("a reconcile changed the owner to %q, want U0001 kept", got.Owner)
	}
	ns, err := cs.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
	noErr(t, err)
	if ns.Annotations[AnnotationOwner] != "U0001" || ns.Annotations[AnnotationActor] != "U0001" {
		t.Errorf("namespace annotations after the reconcile: %v", ns.Annotations)
	}

	// An enclave whose first provision stopped part way is not yet
	// anyone's: the provision that finishes it says who owns it.
	half := enclaveName(t, "enc-owner-half")
	rc, rec := recordedConfig(k8stest.Config(t))
	rec.cutAfter = 1
	if err := newEnclaveClient(t, rc, nil).Provision(ctx, testEnclave(half), testProvenance); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("Provision through an outage = %v, want ErrUnreachable", err)
	}
	e := testEnclave(half)
	e.Owner = "U0002"
	noErr(t, c.Provision(ctx, e, otherProvenance))
	if got, err := c.Get(ctx, half); err != nil || got.Owner != "U0002" || !got.Ready {
		t.Errorf("a half-made enclave finished by U0002: %+v, %v", got, err)
	}
}

// The frozen state is SetFrozen's: a reconcile that carries another
// Frozen does not thaw an archived channel's enclave, nor freeze an
// active one.
func TestProvisionKeepsTheFrozenState(t *testing.T) {
	t.Parallel()
	cs := k8stest.Clientset(t)
	c := newEnclaveClient(t, k8stest.Config(t), nil)
	name := enclaveName(t, "enc-keepfrozen")
	ctx := enclaveCtx(t, time.Minute)
	e := testEnclave(name)
	noErr(t, c.Provision(ctx, e, testProvenance))

	freeze := enclave.Provenance{Actor: "U0009", Channel: "C0001", At: testProvenance.At.Add(time.Minute)}
	for _, frozen := range []bool{true, false} {
		noErr(t, c.SetFrozen(ctx, name, frozen, freeze))
		nsBefore, err := cs.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
		noErr(t, err)

		e.Frozen = !frozen
		noErr(t, c.Provision(ctx, e, enclave.Provenance{Actor: "system", At: freeze.At.Add(time.Hour)}))
		got, err := c.Get(ctx, name)
		noErr(t, err)
		if got.Frozen != frozen || !got.Ready {
			t.Errorf("SetFrozen(%t), then Provision with Frozen=%t: Frozen=%t Ready=%t, want the recorded state kept", frozen, e.Frozen, got.Frozen, got.Ready)
		}
		ns, err := cs.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
		noErr(t, err)
		wantState := map[bool]string{true: StateFrozen, false: StateActive}[frozen]
		for k, want := range map[string]string{
			AnnotationFrozen:   map[bool]string{true: "true", false: "false"}[frozen],
			AnnotationState:    wantState,
			AnnotationFrozenBy: "U0009",
			AnnotationFrozenAt: nsBefore.Annotations[AnnotationFrozenAt],
		} {
			if ns.Annotations[k] != want {
				t.Errorf("after the reconcile, %s = %q, want %q", k, ns.Annotations[k], want)
			}
		}

		// And a reconcile after that changes nothing.
		before := enclaveObjects(t, cs, name)
		noErr(t, c.Provision(ctx, e, enclave.Provenance{Actor: "system", At: freeze.At.Add(2 * time.Hour)}))
		if after := enclaveObjects(t, cs, name); !maps.Equal(before, after) {
			t.Errorf("a second reconcile changed objects:\nbefore %v\nafter  %v", before, after)
		}
	}

	// A new enclave may start frozen (its channel was archived while it
	// was being provisioned).
	fresh := testEnclave(enclaveName(t, "enc-newfrozen"))
	fresh.Frozen = true
	noErr(t, c.Provision(ctx, fresh, testProvenance))
	if got, err := c.Get(ctx, fresh.Name); err != nil || !got.Frozen || !got.Ready {
		t.Errorf("a new enclave provisioned frozen: %+v, %v", got, err)
	}
}

// A Deprovision whose context has no deadline does not wait forever for
// a namespace stuck terminating: it gives up after deprovisionTimeout.
//
// Not parallel: it shortens deprovisionTimeout, a package variable, and
// parallel tests only start once the sequential ones are done.
func TestDeprovisionWithoutDeadlineGivesUp(t *testing.T) {
	old := deprovisionTimeout
	deprovisionTimeout = 2 * time.Second
	t.Cleanup(func() { deprovisionTimeout = old })

	cs := k8stest.Clientset(t)
	c := newEnclaveClient(t, k8stest.Config(t), nil)
	name := enclaveName(t, "enc-nodeadline")
	setup := enclaveCtx(t, time.Minute)
	noErr(t, c.Provision(setup, testEnclave(name), testProvenance))
	holdNamespace(t, cs, name)

	ctx, cancel := context.WithCancel(t.Context()) // no deadline
	defer cancel()
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- c.Deprovision(ctx, name, testProvenance) }()
	var err error
	select {
	case err = <-done:
	case <-time.After(30 * time.Second):
		cancel()
		<-done
		t.Fatalf("Deprovision with no deadline still waiting after 30 s on a namespace stuck terminating; want it to give up after %s", deprovisionTimeout)
	}
	var stuck *StuckTerminatingError
	if !errors.As(err, &stuck) || stuck.Namespace != name || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Deprovision of a held namespace with no deadline = %v, want a *StuckTerminatingError wrapping the deadline", err)
	}
	if took := time.Since(start); took < deprovisionTimeout {
		t.Errorf("gave up after %s, before the %s timeout", took, deprovisionTimeout)
	}
	t.Logf("%v", err)
}

// holdNamespace puts a ConfigMap with a finalizer in ns, which keeps the
// namespace terminating once deleted, and releases it when the test ends.
func holdNamespace(t *testing.T, cs kubernetes.Interface, ns string) {
	t.Helper()
	ctx := enclaveCtx(t, 30*time.Second)
	_, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "held", Finalizers: []string{holdFinalizer}},
	}, metav1.CreateOptions{})
	noErr(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cm, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, "held", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return
		}
		if err == nil {
			cm.Finalizers = nil
			_, err = cs.CoreV1().ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{})
		}
		if err != nil {
			t.Errorf("release %s: %v", ns, err)
		}
	})
}

// Between Provision's read of the namespace and its last write (the
// namespace itself), the enclave is deprovisioned and another channel
// takes the name: the last write fails rather than relabel the new
// channel's enclave.
func TestProvisionDoesNotOverwriteANamespaceMadeSince(t *testing.T) {
	t.Parallel()
	cs := k8stest.Clientset(t)
	name := enclaveName(t, "enc-replaced")
	ctx := enclaveCtx(t, 2*time.Minute)
	noErr(t, newEnclaveClient(t, k8stest.Config(t), nil).Provision(ctx, testEnclave(name), testProvenance))

	theirs := testEnclave(name)
	theirs.Channel, theirs.Owner = enclave.Channel{TeamID: "T0001", ID: "C0002", Name: "payments"}, "U0002"
	rc, rec := recordedConfig(k8stest.Config(t))
	const last = 8 // writes of a reconcile, see TestProvisionTwiceChangesNothing
	rec.beforeWrite = func(n int) {
		if n != last {
			return
		}
		noErr(t, cs.CoreV1().Namespaces().Delete(ctx, name, metav1.DeleteOptions{}))
		for {
			_, err := cs.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				break
			}
			noErr(t, err)
			select {
			case <-ctx.Done():
				t.Fatalf("namespace %s not gone: %v", name, ctx.Err())
			case <-time.After(100 * time.Millisecond):
			}
		}
		q, err := resolveQuota(theirs.Quota, enclave.Quota{})
		noErr(t, err)
		record, err := recordAnnotations(theirs)
		noErr(t, err)
		_, err = cs.CoreV1().Namespaces().Create(ctx, namespaceObject(theirs, q, provisionMeta{by: "U0002", at: "2026-01-02T04:04:05Z"}, record), metav1.CreateOptions{})
		noErr(t, err)
	}
	err := newEnclaveClient(t, rc, nil).Provision(ctx, testEnclave(name), testProvenance)
	if err == nil || !strings.Contains(err.Error(), "deleted or replaced while provisioning") {
		t.Errorf("Provision whose namespace was replaced before its last write = %v, want an error saying so", err)
	}
	t.Logf("%v", err)
	ns, err := cs.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
	noErr(t, err)
	if ns.Annotations[AnnotationChannel] != "C0002" || ns.Annotations[AnnotationOwner] != "U0002" || ns.Annotations[AnnotationState] != StateProvisioning {
		t.Errorf("the other channel's namespace was overwritten: %v", ns.Annotations)
	}
}
