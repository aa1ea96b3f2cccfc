package k8s

import (
	"bytes"
	"errors"
	"maps"
	"slices"
	"strconv"
	"testing"

	"github.com/kraken-ops/kraken/tentacle"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Files gives back exactly the files each kept revision deployed (text
// and binary alike, without the Secret), the deployed revision's for 0,
// and says which of "not deployed" and "no such revision" applies.
func TestFiles(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	ctx, ns, tc := h.ctx, h.ns, h.tc

	for _, rev := range []int{0, 1} {
		if _, err := tc.Files(ctx, ns, "echo", rev); !errors.Is(err, tentacle.ErrNotDeployed) {
			t.Errorf("Files(%d) before any deploy = %v, want ErrNotDeployed", rev, err)
		}
	}

	b1 := loadBundle(t, echoFiles("echo", "hello"))
	files2 := echoFiles("echo", "hi")
	files2["lib/blob.bin"] = string([]byte{0xff, 0xfe, 0x00, 0x80, 'k'}) // not UTF-8: a ConfigMap's binaryData
	b2 := loadBundle(t, files2)
	for _, b := range []*tentacle.Bundle{b1, b2} {
		_, err := tc.Deploy(ctx, ns, b, prov)
		must(t, err)
	}
	if _, ok := b2.Files["lib/blob.bin"]; !ok {
		t.Fatalf("the bundle has no binary file to test with: %v", slices.Sorted(maps.Keys(b2.Files)))
	}

	tests := []struct {
		rev  int
		want *tentacle.Bundle
	}{
		{0, b2}, // the deployed revision
		{1, b1},
		{2, b2},
	}
	for _, tt := range tests {
		t.Run("revision "+strconv.Itoa(tt.rev), func(t *testing.T) {
			h.n.snapshot()
			got, err := tc.Files(ctx, ns, "echo", tt.rev)
			must(t, err)
			if !maps.EqualFunc(got, tt.want.Files, slices.Equal) {
				t.Errorf("Files(%d) = %v\nwant the deployed bundle's %v", tt.rev, slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(tt.want.Files)))
			}
			for p, data := range got {
				if bytes.Contains(data, []byte(secretToken)) {
					t.Errorf("Files(%d): %s holds the tentacle's secret", tt.rev, p)
				}
			}
			n := h.n.snapshot()
			wantReads := map[bool]int{true: 2, false: 1}[tt.rev == 0]
			if n.reads != wantReads || n.writes != 0 {
				t.Errorf("Files(%d) made %d reads and %d writes, want %d and 0: %v", tt.rev, n.reads, n.writes, wantReads, n.log)
			}
		})
	}

	// After a rollback, the deployed revision (3) is revision 1's files.
	rb, err := tc.Rollback(ctx, ns, "echo", 1, prov)
	must(t, err)
	got, err := tc.Files(ctx, ns, "echo", 0)
	must(t, err)
	if rb.Number != 3 || !maps.EqualFunc(got, b1.Files, slices.Equal) {
		t.Errorf("after rolling back to 1 (revision %d), Files(0) = %v, want revision 1's", rb.Number, slices.Sorted(maps.Keys(got)))
	}

	for _, tt := range []struct {
		what string
		name string
		rev  int
		want error
	}{
		{"a revision never made", "echo", 9, tentacle.ErrNoRevision},
		{"a negative revision", "echo", -1, tentacle.ErrNoRevision},
		{"another tentacle", "other", 0, tentacle.ErrNotDeployed},
		{"another tentacle's revision", "other", 1, tentacle.ErrNotDeployed},
	} {
		if _, err := tc.Files(ctx, ns, tt.name, tt.rev); !errors.Is(err, tt.want) {
			t.Errorf("Files of %s = %v, want %v", tt.what, err, tt.want)
		} else {
			t.Logf("%s: %v", tt.what, err)
		}
	}

	// A ConfigMap named like a revision that is not the tentacle's is
	// not taken for one.
	_, err = h.cs.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: revisionName("echo", 99)}, // beyond what the deploys below reach
		Data:       map[string]string{"workflow.yaml": "name: echo"},
	}, metav1.CreateOptions{})
	must(t, err)
	if _, err := tc.Files(ctx, ns, "echo", 99); !errors.Is(err, tentacle.ErrNoRevision) {
		t.Errorf("Files of a ConfigMap that is not a revision = %v, want ErrNoRevision", err)
	}

	// Pruned revisions are gone for Files as for Rollback.
	for range MaxRevisions {
		_, err := tc.Deploy(ctx, ns, b2, prov)
		must(t, err)
	}
	if _, err := tc.Files(ctx, ns, "echo", 1); !errors.Is(err, tentacle.ErrNoRevision) {
		t.Errorf("Files of a pruned revision = %v, want ErrNoRevision", err)
	}

	// Once undeployed, nothing is deployed.
	must(t, tc.Undeploy(ctx, ns, "echo", prov))
	if _, err := tc.Files(ctx, ns, "echo", 0); !errors.Is(err, tentacle.ErrNotDeployed) {
		t.Errorf("Files after Undeploy = %v, want ErrNotDeployed", err)
	}
}
