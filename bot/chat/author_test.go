package chat_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/kraken-ops/kraken/bot/chat"
	"github.com/kraken-ops/kraken/bot/command"
	"github.com/kraken-ops/kraken/bot/llmtest"
)

// written is a tentacle as the model answers it: one node greeting by
// name, with a fixture expecting want.
func written(want string) string {
	files := map[string]string{
		"workflow.yaml": "name: greeter\nversion: \"1.0\"\ndescription: Greets someone by name.\ntriggers:\n  - type: manual\nnodes:\n  greet:\n    path: ./nodes/greet.ts\nedges: []\n",
		"nodes/greet.ts": `import type { Context } from "tentacular";

export default async function run(_ctx: Context, input: unknown): Promise<{ text: string }> {
  const name = typeof input === "object" && input !== null && typeof (input as { name?: unknown }).name === "string"
    ? (input as { name: string }).name
    : "kraken";
  return { text: "Hello, " + name + "!" };
}
`,
		"tests/fixtures/greet.json": `{"input": {"name": "Ada"}, "expected": {"text": "` + want + `"}}`,
	}
	b, _ := json.Marshal(map[string]any{"files": files})
	return string(b)
}

// authoring scripts the model asking to write a tentacle.
func (f *fixture) authoring() {
	f.llm.CallTools(call(chat.AuthorTool, `{"request": "greet someone by name"}`))
}

// TestAuthoringRepairsAndProposes: the first tentacle fails its fixture,
// the problem goes back to the model, the repaired one passes and is
// proposed with its picture, files and a Deploy button; deploying it by
// the card works.
func TestAuthoringRepairsAndProposes(t *testing.T) {
	f := newFixture(t, options{})
	f.authoring()
	f.llm.Reply(written("Hi, Ada!")) // wrong: the node says Hello
	f.llm.Reply("```json\n" + written("Hello, Ada!") + "\n```")
	r := f.say(owner, payments, "", "make a tentacle that greets someone by name")
	if r.Failed || r.Confirm == nil || r.Image == nil {
		t.Fatalf("reply %+v, want a deploy card with a picture", r)
	}
	for _, want := range []string{"*greeter*", "workflow.yaml", "nodes/greet.ts", "tests/fixtures/greet.json", "1 of 1 fixtures passed", "from what I wrote"} {
		if !strings.Contains(r.Text, want) {
			t.Errorf("reply lacks %q: %s", want, r.Text)
		}
	}
	reqs := f.llm.Requests()
	if len(reqs) != 3 {
		t.Fatalf("%d model requests, want 3 (the call, the tentacle, the repair)", len(reqs))
	}
	if sys := reqs[1].System(); !strings.Contains(sys, "export default async function run(ctx: Context, input: unknown)") || len(reqs[1].Tools) != 0 {
		t.Errorf("the authoring request: tools %v, system prompt %.80q", reqs[1].ToolNames(), sys)
	}
	if !strings.Contains(reqs[1].LastUserMessage(), "greet someone by name") {
		t.Errorf("the authoring request: %q", reqs[1].LastUserMessage())
	}
	repair := reqs[2].LastUserMessage()
	if !strings.Contains(repair, "The check found these problems") || !strings.Contains(repair, "greet") || !strings.Contains(repair, "Hi, Ada!") {
		t.Errorf("the repair request does not carry the problem: %q", repair)
	}
	if reqs[2].MaxTokens != 8192 {
		t.Errorf("authoring max tokens %d", reqs[2].MaxTokens)
	}
	// Nothing is deployed until the person presses Deploy.
	if l := f.ok(owner, payments, "list"); !strings.Contains(l.Text, "Nothing is deployed") {
		t.Errorf("deployed before the click: %q", l.Text)
	}
	done := f.reg.Click(context.Background(), command.Click{Actor: owner, Via: command.ViaSlack, Channel: payments, Value: r.Confirm.ConfirmValue})
	if done.Failed {
		t.Fatalf("deploying what was written: %+v", done)
	}
	if run := f.ok(owner, payments, `run greeter {"name": "Ada"}`); !strings.Contains(run.Text, "Hello, Ada!") {
		t.Errorf("run: %q", run.Text)
	}
}

// TestAuthoringGivesUp: a tentacle that never passes is described with
// its last problems, and nothing is offered.
func TestAuthoringGivesUp(t *testing.T) {
	f := newFixture(t, options{})
	f.authoring()
	f.llm.Reply("I'd rather not.") // not JSON
	for range 3 {
		f.llm.Reply(written("Bye, Ada!")) // never right
	}
	r := f.say(owner, payments, "", "write a tentacle that greets people")
	if !r.Failed || r.Confirm != nil {
		t.Fatalf("reply %+v", r)
	}
	for _, want := range []string{"couldn't write a tentacle that passes its checks in 4 tries", "nothing is offered to deploy", "Bye, Ada!"} {
		if !strings.Contains(r.Text, want) {
			t.Errorf("reply lacks %q: %s", want, r.Text)
		}
	}
	reqs := f.llm.Requests()
	if len(reqs) != 5 {
		t.Fatalf("%d model requests, want 5 (the call, then 1 + 3 repairs)", len(reqs))
	}
	if got := reqs[2].LastUserMessage(); !strings.Contains(got, "not the JSON object") {
		t.Errorf("the first repair: %q", got)
	}
	if l := f.ok(owner, payments, "list"); !strings.Contains(l.Text, "Nothing is deployed") {
		t.Errorf("something was deployed: %q", l.Text)
	}
}

// TestAuthoringWithFiles: the model may pass the files it wrote itself;
// they are checked the same way.
func TestAuthoringWithFiles(t *testing.T) {
	f := newFixture(t, options{})
	var doc struct {
		Files map[string]string `json:"files"`
	}
	if err := json.Unmarshal([]byte(written("Hello, Ada!")), &doc); err != nil {
		t.Fatal(err)
	}
	args, _ := json.Marshal(map[string]any{"request": "greet", "files": doc.Files})
	f.llm.CallTools(call(chat.AuthorTool, string(args)))
	r := f.say(owner, payments, "", "please ship the greeter you wrote")
	if r.Confirm == nil || !strings.Contains(r.Text, "*greeter*") {
		t.Fatalf("reply %+v", r)
	}
	if n := len(f.llm.Requests()); n != 1 {
		t.Errorf("%d model requests; files that pass need no more", n)
	}
}

// TestAuthoringModelDown: the model failing halfway says so plainly.
func TestAuthoringModelDown(t *testing.T) {
	f := newFixture(t, options{})
	f.authoring()
	f.llm.Handle(func(llmtest.Request) llmtest.Response { return llmtest.Response{Status: 500} })
	if r := f.say(owner, payments, "", "make me a tentacle that greets"); r.Text != unavailableText {
		t.Errorf("reply %+v", r)
	}
}
