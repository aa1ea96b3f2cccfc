package command_test

import (
	"context"
	"strings"
	"testing"

	"github.com/kraken-ops/kraken/bot/command"
)

func TestRunsAreRecorded(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.provisioned()
	f.confirmed(owner, "deploy hello-fanout", "")
	first := f.reg.Do(ctx, command.Request{Actor: member, Channel: general, Text: `run hello-fanout {"name": "Ada"}`})
	if first.Later == nil || !strings.Contains(first.Text, "Running *hello-fanout*") || len(first.Buttons) != 1 || first.Buttons[0].Label != "Cancel" {
		t.Fatalf("a run's first answer: %+v", first)
	}
	final := first.Wait(ctx)
	if !strings.Contains(final.Text, "succeeded") || final.Image == nil {
		t.Fatalf("a run's result: %+v", final)
	}
	// The Cancel button of a run that ended says so.
	c := f.reg.Click(ctx, command.Click{Actor: member, Channel: general, Value: first.Buttons[0].Value})
	if !strings.Contains(c.Text, "not running any more") {
		t.Errorf("cancelling an ended run: %+v", c)
	}
	list := f.ok(member, "runs hello-fanout")
	if !strings.Contains(list.Text, "succeeded, 5 steps") || !strings.Contains(list.Text, "run by <@UMEMBER>") {
		t.Errorf("runs: %q", list.Text)
	}
	if r := f.do(other, "runs hello-fanout"); !r.Failed {
		t.Errorf("an outsider read the runs: %+v", r)
	}
	if r := f.do(member, "cancel nope"); !r.Failed || !strings.Contains(r.Text, "no run nope") {
		t.Errorf("cancelling a missing run: %+v", r)
	}
	id := first.Buttons[0].Value[len("run:cancel "):]
	if r := f.do(member, "retry "+id); !r.Failed || !strings.Contains(r.Text, "only an interrupted, failed or cancelled run") {
		t.Errorf("retrying a run that succeeded: %+v", r)
	}
	if r := f.do(member, "resume hello-fanout"); !r.Failed || !strings.Contains(r.Text, "Schedules don't run here") {
		t.Errorf("resume without schedules: %+v", r)
	}
	home, err := f.reg.Home(ctx, member)
	if err != nil || len(home.Runs) != 1 || !home.Runs[0].OK || !strings.HasPrefix(home.Runs[0].Summary, "succeeded") {
		t.Errorf("home runs: %+v %v", home.Runs, err)
	}
}
