package dev

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kraken-ops/kraken/tentacle"
)

type watched struct {
	at time.Time
	p  tentacle.NodeProgress
}

func watch(t *testing.T, r *Runtime, encName, name, input string) (result, []watched) {
	t.Helper()
	var got []watched
	body, err := r.Tentacles().RunWatch(ctx(t), encName, name, json.RawMessage(input), func(p tentacle.NodeProgress) {
		got = append(got, watched{time.Now(), p})
	})
	if err != nil {
		t.Fatal(err)
	}
	var res result
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&res); err != nil {
		t.Fatalf("the result is not the engine's: %v\n%s", err, body)
	}
	return res, got
}

func steps(ws []watched) []string {
	out := make([]string, len(ws))
	for i, w := range ws {
		out[i] = fmt.Sprintf("%s %s %d", w.p.Node, w.p.State, w.p.Attempt)
	}
	return out
}

func TestRunWatch(t *testing.T) {
	r, _ := open(t, t.TempDir())
	provision(t, r, "demo")
	deploy(t, r, "demo", bundle(t, "hello-fanout", nil), alice)
	deploy(t, r, "demo", bundle(t, "flaky-retry", nil), alice)
	deploy(t, r, "demo", bundle(t, "failing-step", nil), alice)

	t.Run("every node, in order", func(t *testing.T) {
		res, got := watch(t, r, "demo", "hello-fanout", `{"name":"Ada"}`)
		if !res.Success || len(res.Outputs) != 5 || output(t, res, "merge")["shouted"] != "HELLO, ADA!" {
			t.Fatalf("result %+v", res)
		}
		s := steps(got)
		if len(s) != 10 || s[0] != "greet started 1" || s[1] != "greet succeeded 1" || s[8] != "merge started 1" || s[9] != "merge succeeded 1" {
			t.Fatalf("progress %q", s)
		}
		middle := slices.Sorted(slices.Values(s[2:8]))
		want := []string{"count started 1", "count succeeded 1", "reverse started 1", "reverse succeeded 1", "shout started 1", "shout succeeded 1"}
		if !reflect.DeepEqual(middle, want) {
			t.Fatalf("the fan-out's progress %q", s[2:8])
		}
		for _, w := range got {
			if w.p.State == tentacle.NodeSucceeded && w.p.Duration < 0 || w.p.Error != "" {
				t.Errorf("progress %+v", w.p)
			}
		}
	})

	t.Run("retries come as they happen", func(t *testing.T) {
		res, got := watch(t, r, "demo", "flaky-retry", `{}`)
		if !res.Success {
			t.Fatalf("result %+v", res)
		}
		want := []string{"flaky started 1", "flaky retrying 1", "flaky started 2", "flaky retrying 2", "flaky started 3", "flaky succeeded 3", "report started 1", "report succeeded 1"}
		if s := steps(got); !reflect.DeepEqual(s, want) {
			t.Fatalf("progress %q, want %q", s, want)
		}
		if !strings.Contains(got[1].p.Error, "temporary glitch, attempt 1") {
			t.Errorf("the retry does not say why: %+v", got[1].p)
		}
		// The second retry waits 200 ms after the first: events read at
		// the end of the run would come back together.
		if gap := got[3].at.Sub(got[1].at); gap < 100*time.Millisecond {
			t.Errorf("the retries came %s apart: the progress was not streamed", gap)
		}
	})

	t.Run("a failed step", func(t *testing.T) {
		res, got := watch(t, r, "demo", "failing-step", `{}`)
		if res.Success || !strings.Contains(res.Errors["validate"], "orderId") {
			t.Fatalf("result %+v", res)
		}
		last := got[len(got)-1].p
		if last.Node != "validate" || last.State != tentacle.NodeFailed || !strings.Contains(last.Error, "orderId") {
			t.Fatalf("progress %q, last %+v", steps(got), last)
		}
		// A failed run is the tentacle's last error, as with Run.
		if st, err := r.Tentacles().Status(ctx(t), "demo", "failing-step"); err != nil || !strings.HasPrefix(st.LastError, "validate: ") {
			t.Errorf("status %+v %v", st, err)
		}
	})

	t.Run("refusals", func(t *testing.T) {
		tc := r.Tentacles()
		if _, err := tc.RunWatch(ctx(t), "demo", "nope", nil, nil); !errors.Is(err, tentacle.ErrNotDeployed) {
			t.Errorf("an unknown tentacle: %v", err)
		}
		if _, err := tc.RunWatch(ctx(t), "demo", "hello-fanout", json.RawMessage(`{"name":`), nil); err == nil || !strings.Contains(err.Error(), "not valid JSON") {
			t.Errorf("invalid input: %v", err)
		}
		gone, cancel := context.WithCancel(t.Context())
		cancel()
		if _, err := tc.RunWatch(gone, "demo", "hello-fanout", nil, nil); !errors.Is(err, context.Canceled) {
			t.Errorf("a cancelled run: %v", err)
		}
	})
}
