package command_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/kraken-ops/kraken/bot/command"
	"github.com/kraken-ops/kraken/enclave"
	"github.com/kraken-ops/kraken/store"
)

type echoChat struct{ got []command.Request }

func (e *echoChat) Converse(_ context.Context, req command.Request) command.Reply {
	e.got = append(e.got, req)
	return command.Reply{Text: "chat: " + req.Text}
}

func TestPlainWordsGoToTheChat(t *testing.T) {
	f := newFixture(t)
	if r := f.do(owner, "what is running here?"); !r.Failed || !strings.Contains(r.Text, "no AI assistant") {
		t.Errorf("plain words without a chat: %+v", r)
	}
	for text, want := range map[string]bool{"deploy x": true, "": true, "  LIST": true, "what is running": false, "deplyo": false} {
		if got := f.reg.IsCommand(text); got != want {
			t.Errorf("IsCommand(%q) = %t", text, got)
		}
	}
	chat := &echoChat{}
	f.reg.SetChat(chat)
	if r := f.do(owner, "what is running here?"); r.Text != "chat: what is running here?" {
		t.Errorf("plain words with a chat: %+v", r)
	}
	if r := f.do(owner, "help"); strings.HasPrefix(r.Text, "chat:") || len(chat.got) != 1 {
		t.Errorf("a command went to the chat: %+v", r)
	}
	if r := f.do(owner, "deplyo"); !strings.Contains(r.Text, "/kraken deploy") || len(chat.got) != 1 {
		t.Errorf("a mistyped verb went to the chat: %+v", r)
	}
	if r := f.do(owner, "hello"); r.Text != "chat: hello" {
		t.Errorf("a greeting did not go to the chat: %+v", r)
	}
}

func TestToolsFollowRights(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	req := func(who string) command.Request {
		return command.Request{Actor: enclave.Principal{TeamID: team, UserID: who}, Channel: general}
	}
	names := func(who string) []string {
		tools, err := f.reg.Tools(ctx, req(who))
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, c := range tools {
			out = append(out, c.Name)
		}
		return out
	}
	if got := names("UOWNER"); !slices.Contains(got, "provision") || slices.Contains(got, "deploy") {
		t.Errorf("tools before provision: %v", got)
	}
	if role, err := f.reg.Role(ctx, req("UOWNER")); role != "" || err != nil {
		t.Errorf("role before provision: %q %v", role, err)
	}
	f.provisioned()
	for who, want := range map[string]string{"UOWNER": "owner", "UMEMBER": "member", "UOTHER": "other"} {
		if role, err := f.reg.Role(ctx, req(who)); role != want || err != nil {
			t.Errorf("Role(%s) = %q, %v", who, role, err)
		}
	}
	f.ok(owner, "mode team-run")
	owns, member, outsider := names("UOWNER"), names("UMEMBER"), names("UOTHER")
	for _, want := range []string{"deploy", "run", "mode", "deprovision", "audit"} {
		if !slices.Contains(owns, want) {
			t.Errorf("owner lacks %s: %v", want, owns)
		}
	}
	if !slices.Contains(member, "run") || slices.Contains(member, "deploy") || slices.Contains(member, "deprovision") {
		t.Errorf("member's tools under team-run: %v", member)
	}
	if slices.Contains(outsider, "list") || slices.Contains(outsider, "run") {
		t.Errorf("outsider's tools: %v", outsider)
	}
	for _, tools := range [][]string{owns, member, outsider} {
		if slices.Contains(tools, "help") || slices.Contains(tools, "secret") || slices.Contains(tools, "provision") {
			t.Errorf("tools include help, secret or provision: %v", tools)
		}
	}
}

func TestCommandLine(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name string
		args map[string]any
		want string
		err  string
	}{
		{"run", map[string]any{"tentacle": "hello", "input": map[string]any{"n": 1}}, `run hello {"n":1}`, ""},
		{"run", map[string]any{"tentacle": "hello"}, "run hello", ""},
		{"run", map[string]any{}, "", "needs tentacle"},
		{"run", map[string]any{"tentacle": "hello; deprovision"}, "", "not a single word"},
		{"run", map[string]any{"tentacle": "hello", "enclave": "other"}, "", `no argument "enclave"`},
		{"transfer", map[string]any{"person": "U123"}, "transfer <@U123>", ""},
		{"transfer", map[string]any{"person": "<@U123|bob>"}, "transfer <@U123>", ""},
		{"transfer", map[string]any{"person": "<!channel>"}, "", "person's id"},
		{"logs", map[string]any{"tentacle": "hello", "lines": 20.0}, "logs hello 20", ""},
		{"logs", map[string]any{"tentacle": "hello", "lines": -3.0}, "", "positive whole number"},
		{"mode", map[string]any{"mode": "team-run"}, "mode team-run", ""},
		{"nope", nil, "", "no command"},
		{"run", map[string]any{"tentacle": 42.0}, "", "must be text"},
	}
	for _, tt := range tests {
		got, err := f.reg.CommandLine(tt.name, tt.args)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("CommandLine(%s, %v) = %q, %v; want error %q", tt.name, tt.args, got, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("CommandLine(%s, %v) = %q, %v; want %q", tt.name, tt.args, got, err, tt.want)
		}
	}
}

func TestProposeDeploy(t *testing.T) {
	f := newFixture(t)
	f.provisioned()
	files := map[string][]byte{
		"workflow.yaml": []byte("name: written\nversion: \"1.0\"\ntriggers:\n  - type: manual\nnodes:\n  hi:\n    path: ./nodes/hi.ts\nedges: []\n"),
		"nodes/hi.ts":   []byte("export default async function run(ctx, input) { return { hi: true }; }\n"),
	}
	req := command.Request{Actor: member, Channel: general, Via: command.ViaLLM}
	r := f.reg.ProposeDeploy(context.Background(), req, files)
	if r.Confirm == nil || r.Image == nil || !strings.Contains(r.Text, "from what I wrote") {
		t.Fatalf("proposal: %+v", r)
	}
	done := f.reg.Click(context.Background(), command.Click{Actor: member, Channel: general, Value: r.Confirm.ConfirmValue})
	if done.Failed {
		t.Fatalf("deploying the proposal: %+v", done)
	}
	if run := f.ok(member, "run written"); !strings.Contains(run.Text, "succeeded") {
		t.Errorf("run of the written tentacle: %q", run.Text)
	}
	bad := map[string][]byte{"workflow.yaml": []byte("name: [\n")}
	if r := f.reg.ProposeDeploy(context.Background(), req, bad); !r.Failed || !strings.Contains(r.Text, "workflow.yaml:") {
		t.Errorf("a broken proposal: %+v", r)
	}
}

func TestSecretForm(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.provisioned()
	f.confirmed(owner, "deploy hello-fanout", "")
	r := f.ok(member, "secret hello-fanout api_key")
	if r.Secret == nil || !r.Private || r.Secret.Key != "api_key" {
		t.Fatalf("secret form: %+v", r)
	}
	if r := f.do(member, "secret hello-fanout ../etc"); !r.Failed {
		t.Errorf("a bad secret name: %+v", r)
	}
	if got := f.reg.SubmitSecret(ctx, command.SecretSubmission{Actor: other, Token: r.Secret.Token, Value: "s3cr3t"}); !got.Failed {
		t.Errorf("someone else submitted the form: %+v", got)
	}
	// A submission that sets nothing leaves the form usable.
	f.confirmed(owner, "undeploy hello-fanout", "")
	if got := f.reg.SubmitSecret(ctx, command.SecretSubmission{Actor: member, Token: r.Secret.Token, Value: "s3cr3t"}); !got.Failed {
		t.Fatalf("a secret set on an undeployed tentacle: %+v", got)
	}
	f.confirmed(owner, "deploy hello-fanout", "")
	got := f.reg.SubmitSecret(ctx, command.SecretSubmission{Actor: member, Token: r.Secret.Token, Value: "s3cr3t"})
	if got.Failed || strings.Contains(got.Text, "s3cr3t") {
		t.Fatalf("submit: %+v", got)
	}
	if again := f.reg.SubmitSecret(ctx, command.SecretSubmission{Actor: member, Token: r.Secret.Token, Value: "x"}); !again.Failed {
		t.Errorf("a form used twice: %+v", again)
	}
	entries, _ := f.db.ListAudit(ctx, store.AuditQuery{Verb: "secret", Limit: 10})
	for _, e := range entries {
		if strings.Contains(e.Args["args"]+e.Error+e.Reason, "s3cr3t") {
			t.Errorf("the audit log has the secret: %+v", e)
		}
	}
	if len(entries) < 2 {
		t.Errorf("secret not audited: %+v", entries)
	}
}

func TestUsageInInfo(t *testing.T) {
	f := newFixture(t)
	f.provisioned()
	if err := f.reg.RecordUsage(context.Background(), "payments", "UMEMBER", 1200); err != nil {
		t.Fatal(err)
	}
	if err := f.reg.RecordUsage(context.Background(), "payments", "UOWNER", 300); err != nil {
		t.Fatal(err)
	}
	r := f.ok(member, "info")
	if !slices.Contains(r.Fields, command.Field{Label: "AI assistant", Value: "1500 tokens so far, 1200 of them yours"}) {
		t.Errorf("info: %+v", r.Fields)
	}
}
