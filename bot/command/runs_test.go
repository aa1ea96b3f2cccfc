package command_test

import (
	"context"
	"strings"
	"testing"

	"github.com/kraken-ops/kraken/bot/command"
	"github.com/kraken-ops/kraken/tentacle"
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

type webhooks struct{}

func (webhooks) Secret(enc, name string, t tentacle.Trigger) string {
	return "sec-" + enc + "-" + name + "-" + t.Path
}
func (webhooks) URL(enc, name, path string) string {
	return "https://kraken.example/hooks/" + enc + "/" + name + "/" + path
}

func TestWebhooksVerb(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.provisioned()
	files := map[string][]byte{
		"workflow.yaml": []byte("name: hooked\nversion: \"1.0\"\ntriggers:\n  - type: webhook\n    path: /push\n    provider: github\n    event: push\nnodes:\n  hi:\n    path: ./nodes/hi.ts\nedges: []\n"),
		"nodes/hi.ts":   []byte("export default async function run(ctx, input) { return { hi: true }; }\n"),
	}
	r := f.reg.ProposeDeploy(ctx, command.Request{Actor: owner, Channel: general}, files)
	if r.Confirm == nil {
		t.Fatalf("proposal: %+v", r)
	}
	f.reg.Click(ctx, command.Click{Actor: owner, Channel: general, Value: r.Confirm.ConfirmValue})
	if r := f.do(owner, "webhooks hooked"); !r.Failed || !strings.Contains(r.Text, "not set up") {
		t.Errorf("webhooks without webhooks: %+v", r)
	}
	f.reg.SetWebhooks(webhooks{})
	got := f.ok(owner, "webhooks hooked")
	if !got.Private || !strings.Contains(got.Text, "https://kraken.example/hooks/payments/hooked//push") || !strings.Contains(got.Text, "sec-payments-hooked-/push") || !strings.Contains(got.Text, "GitHub") {
		t.Errorf("webhooks: %+v", got)
	}
	if r := f.do(other, "webhooks hooked"); !r.Failed || strings.Contains(r.Text, "sec-") {
		t.Errorf("an outsider saw the webhooks: %+v", r)
	}
}
