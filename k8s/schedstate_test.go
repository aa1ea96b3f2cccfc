package k8s_test

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/kraken-ops/kraken/k8s"
	"github.com/kraken-ops/kraken/k8s/k8stest/botenv"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestScheduleState writes the schedules' shared state as the bot, with
// the chart's RBAC only: what is written is read back, concurrent
// writers lose no update (compare-and-swap), an unchanged document is
// not written, and a missing ConfigMap says how to make it.
func TestScheduleState(t *testing.T) {
	t.Parallel()
	e := botenv.Install(t)
	ctx := testCtx(t, time.Minute)
	c, err := k8s.New(e.Config(t))
	if err != nil {
		t.Fatal(err)
	}
	st := c.ScheduleState()
	var data []byte
	eventually(t, ctx, "the bot's Role to take effect", func() error { data, err = st.Load(ctx); return err })
	if data != nil {
		t.Fatalf("a new state holds %q", data)
	}

	// Two writers, each adding one to a counter twenty times: every
	// increment must survive the other's writes.
	var wg sync.WaitGroup
	calls := make([]int, 2)
	for w := range 2 {
		wg.Go(func() {
			for range 20 {
				err := st.Update(ctx, func(cur []byte) ([]byte, error) {
					calls[w]++
					n := 0
					if len(cur) > 0 {
						var err error
						if n, err = strconv.Atoi(string(cur)); err != nil {
							return nil, err
						}
					}
					return []byte(strconv.Itoa(n + 1)), nil
				})
				if err != nil {
					t.Errorf("writer %d: %v", w, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if data, err = st.Load(ctx); err != nil || string(data) != "40" {
		t.Fatalf("after 40 increments by two writers the state is %q (%v), want 40", data, err)
	}
	t.Logf("40 increments took %d calls of change: %d conflicts", calls[0]+calls[1], calls[0]+calls[1]-40)

	admin := e.Admin.CoreV1().ConfigMaps(e.Options.Namespace)
	before, err := admin.Get(ctx, k8s.ScheduleStateConfigMap, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Update(ctx, func(cur []byte) ([]byte, error) { return bytes.Clone(cur), nil }); err != nil {
		t.Fatal(err)
	}
	after, err := admin.Get(ctx, k8s.ScheduleStateConfigMap, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if after.ResourceVersion != before.ResourceVersion {
		t.Error("an unchanged document was written")
	}

	boom := errors.New("boom")
	if err := st.Update(ctx, func([]byte) ([]byte, error) { return nil, boom }); !errors.Is(err, boom) {
		t.Errorf("change's error: got %v", err)
	}
	if err := st.Update(ctx, func([]byte) ([]byte, error) { return make([]byte, 1<<20), nil }); err == nil {
		t.Error("a document over a ConfigMap's limit was accepted")
	}

	if err := admin.Delete(ctx, k8s.ScheduleStateConfigMap, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err = st.Load(ctx)
	if !errors.Is(err, k8s.ErrScheduleStateMissing) {
		t.Fatalf("Load without the ConfigMap: %v, want ErrScheduleStateMissing", err)
	}
	t.Logf("without the ConfigMap: %v", err)
	err = st.Update(context.WithoutCancel(ctx), func([]byte) ([]byte, error) { return []byte("x"), nil })
	if !errors.Is(err, k8s.ErrScheduleStateMissing) {
		t.Fatalf("Update without the ConfigMap: %v, want ErrScheduleStateMissing", err)
	}
}
