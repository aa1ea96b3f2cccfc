package command_test

import (
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kraken-ops/kraken/bot/command"
)

// replies reads a run's Later to its end, failing if it does not close.
func replies(t *testing.T, first command.Reply, during func(command.Reply)) []command.Reply {
	t.Helper()
	var got []command.Reply
	timeout := time.After(time.Minute)
	for {
		select {
		case rep, open := <-first.Later:
			if !open {
				return got
			}
			got = append(got, rep)
			if during != nil {
				during(rep)
			}
		case <-timeout:
			t.Fatalf("the run's replies did not end; so far %+v", got)
		}
	}
}

var stepsDone = regexp.MustCompile(`Running \*flaky-retry\*… (\d) of 2 steps done: `)

// TestRunProgress: a run's Later brings progress as steps end, in
// order, then the result, then closes.
func TestRunProgress(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.provisioned()
	f.confirmed(owner, "deploy flaky-retry", "")
	first := f.reg.Do(ctx, command.Request{Actor: member, Channel: general, Text: "run flaky-retry"})
	if first.Later == nil || len(first.Buttons) != 1 || first.Buttons[0].Label != "Cancel" {
		t.Fatalf("a run's first answer: %+v", first)
	}
	got := replies(t, first, nil)
	if len(got) < 2 {
		t.Fatalf("want progress then the result, got %+v", got)
	}
	done, retried := -1, false
	for _, p := range got[:len(got)-1] {
		m := stepsDone.FindStringSubmatch(p.Text)
		if m == nil || !p.Progress || len(p.Buttons) != 1 || p.Buttons[0].Value != first.Buttons[0].Value || p.Failed || p.Details != "" {
			t.Fatalf("a progress reply: %+v", p)
		}
		n, _ := strconv.Atoi(m[1])
		if n < done {
			t.Errorf("progress went back: %q after %d steps done", p.Text, done)
		}
		done = n
		retried = retried || strings.Contains(p.Text, "flaky … (try ")
	}
	if !retried {
		t.Errorf("no progress reply told the retries: %q", texts(got))
	}
	final := got[len(got)-1]
	if !strings.HasPrefix(final.Text, "*flaky-retry* succeeded in ") || final.Progress || final.Image == nil || len(final.Buttons) != 0 ||
		!strings.Contains(final.Details, "• report: ") || !strings.Contains(final.Details, "after 2 retries") {
		t.Fatalf("the result: %+v", final)
	}
	// Wait gives the result as one message, details and all.
	again := f.reg.Do(ctx, command.Request{Actor: member, Channel: general, Text: "run flaky-retry"}).Wait(ctx)
	if !strings.Contains(again.Text, "succeeded in") || !strings.Contains(again.Text, "\n• report: ") || again.Details != "" || again.Later != nil {
		t.Errorf("Wait: %+v", again)
	}
}

func texts(reps []command.Reply) []string {
	out := make([]string, len(reps))
	for i, r := range reps {
		out[i] = r.Text
	}
	return out
}

// TestRunFailedProgress: a failed step shows in the progress, and the
// result says where it failed in its text and why in its details.
func TestRunFailedProgress(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.provisioned()
	f.confirmed(owner, "deploy failing-step", "")
	got := replies(t, f.reg.Do(ctx, command.Request{Actor: member, Channel: general, Text: "run failing-step"}), nil)
	final := got[len(got)-1]
	if !final.Failed || !strings.Contains(final.Text, "failed after") || !strings.Contains(final.Text, "at step validate") ||
		strings.Contains(final.Text, "orderId") || !strings.Contains(final.Details, "• step validate: ") || !strings.Contains(final.Details, "orderId") {
		t.Fatalf("the result: %+v", final)
	}
}

// TestRunCancelledMidway: the Cancel button of a progress reply stops
// the run, whose last reply says so.
func TestRunCancelledMidway(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.provisioned()
	files := map[string][]byte{
		"workflow.yaml":  []byte("name: slow\nversion: \"1.0\"\ntriggers:\n  - type: manual\nnodes:\n  first:\n    path: ./nodes/first.ts\n  wait:\n    path: ./nodes/wait.ts\nedges:\n  - from: first\n    to: wait\nconfig:\n  timeout: 60s\n"),
		"nodes/first.ts": []byte("export default async function run(ctx, input) { return { ok: true }; }\n"),
		"nodes/wait.ts":  []byte("export default async function run(ctx, input) { await new Promise((r) => setTimeout(r, 50000)); return {}; }\n"),
	}
	r := f.reg.ProposeDeploy(ctx, command.Request{Actor: owner, Channel: general}, files)
	if r.Confirm == nil {
		t.Fatalf("proposal: %+v", r)
	}
	f.reg.Click(ctx, command.Click{Actor: owner, Channel: general, Value: r.Confirm.ConfirmValue})

	start := time.Now()
	first := f.reg.Do(ctx, command.Request{Actor: member, Channel: general, Text: "run slow"})
	cancelled := false
	got := replies(t, first, func(p command.Reply) {
		if cancelled || !strings.Contains(p.Text, "1 of 2 steps done: first ✓, wait …") {
			return
		}
		// The run's record has the progress too, a second later at most.
		deadline := time.Now().Add(10 * time.Second)
		for list := ""; !strings.Contains(list, "running for ") || !strings.Contains(list, ", 1 step done"); list = f.ok(member, "runs slow").Text {
			if time.Now().After(deadline) {
				t.Fatalf("runs while it runs: %q", list)
			}
			time.Sleep(50 * time.Millisecond)
		}
		cancelled = true
		c := f.reg.Click(ctx, command.Click{Actor: member, Channel: general, Value: p.Buttons[0].Value})
		if !strings.Contains(c.Text, "Cancelling the run of *slow*") {
			t.Errorf("cancel: %+v", c)
		}
	})
	if !cancelled {
		t.Fatalf("no progress reply showed the wait: %q", texts(got))
	}
	if final := got[len(got)-1]; !strings.Contains(final.Text, "The run of *slow* was cancelled after") {
		t.Fatalf("the end of a cancelled run: %+v", final)
	}
	if took := time.Since(start); took > 40*time.Second {
		t.Errorf("the cancelled run went on for %s", took)
	}
	list := f.ok(member, "runs slow")
	if !strings.Contains(list.Text, "cancelled") {
		t.Errorf("runs: %q", list.Text)
	}
}
