package chat

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/kraken-ops/kraken/bot/command"
)

func TestToolSpecs(t *testing.T) {
	cmds := []command.Command{
		{Name: "list", Summary: "the tentacles deployed here"},
		{Name: "run", Summary: "run a tentacle now", Params: []command.Param{
			{Name: "tentacle", Kind: command.ParamWord, Required: true, Description: "the tentacle's name"},
			{Name: "input", Kind: command.ParamJSON, Description: "the run's input"},
		}},
		{Name: "logs", Summary: "log lines", Params: []command.Param{{Name: "lines", Kind: command.ParamNumber, Description: "how many"}}},
		{Name: "transfer", Summary: "give this enclave away", Destructive: true, Params: []command.Param{{Name: "person", Kind: command.ParamPerson, Required: true, Description: "the new owner"}}},
		{Name: "deploy", Summary: "deploy", Destructive: true},
	}
	specs := ToolSpecs(cmds, true)
	var names []string
	for _, s := range specs {
		names = append(names, s.Name)
	}
	if want := []string{"list", "run", "logs", "transfer", "deploy", AuthorTool}; !slices.Equal(names, want) {
		t.Fatalf("tools %v, want %v", names, want)
	}
	var run map[string]any
	if err := json.Unmarshal(specs[1].Parameters, &run); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"type": "object", "additionalProperties": false, "required": []any{"tentacle"},
		"properties": map[string]any{
			"tentacle": map[string]any{"type": "string", "description": "the tentacle's name"},
			"input":    map[string]any{"description": "the run's input"},
		},
	}
	if !reflect.DeepEqual(run, want) {
		t.Errorf("run's schema %v, want %v", run, want)
	}
	if !strings.Contains(string(specs[2].Parameters), `"type":"integer"`) || strings.Contains(string(specs[2].Parameters), "required") {
		t.Errorf("logs' schema %s", specs[2].Parameters)
	}
	if !strings.Contains(specs[3].Description, "confirmation card") || strings.Contains(specs[1].Description, "confirmation") {
		t.Errorf("descriptions: %q, %q", specs[3].Description, specs[1].Description)
	}
	if specs[0].Description != "The tentacles deployed here." {
		t.Errorf("list's description %q", specs[0].Description)
	}
	// No deploy right, or no checker: no authoring.
	if got := ToolSpecs(cmds[:4], true); slices.ContainsFunc(got, func(s ToolSpec) bool { return s.Name == AuthorTool }) {
		t.Error("author_tentacle offered to someone who can't deploy")
	}
	if got := ToolSpecs(cmds, false); slices.ContainsFunc(got, func(s ToolSpec) bool { return s.Name == AuthorTool }) {
		t.Error("author_tentacle offered without a checker")
	}
}

func TestArguments(t *testing.T) {
	for raw, ok := range map[string]bool{
		``: true, `{}`: true, `{"tentacle": "x", "n": 2}`: true,
		`{"name": "web", "replicas": `: false, `[1]`: false, `null`: false, `{} {}`: false, `"x"`: false,
	} {
		args, err := arguments(raw)
		if (err == nil) != ok || (ok && args == nil) {
			t.Errorf("arguments(%q) = %v, %v", raw, args, err)
		}
	}
}

func TestParseFiles(t *testing.T) {
	good := `{"files": {"workflow.yaml": "name: x\n", "nodes/a.ts": "export default async function run() {}"}}`
	for _, answer := range []string{good, "```json\n" + good + "\n```", "Here you go:\n" + good} {
		files, problems := parseFiles(answer)
		if problems != nil || len(files) != 2 || string(files["workflow.yaml"]) != "name: x\n" {
			t.Errorf("parseFiles(%q) = %v, %v", answer, files, problems)
		}
	}
	for answer, want := range map[string]string{
		"I can't do that":                                        "not the JSON object",
		`{"files": {"workflow.yaml": 1}}`:                        "not valid JSON",
		`{"files": {"nodes/a.ts": "x"}}`:                         "no workflow.yaml",
		`{"files": {"workflow.yaml": "", "../etc/passwd": "x"}}`: "plain relative path",
		`{"files": {"workflow.yaml": "", "/abs.ts": "x"}}`:       "plain relative path",
		`{"files": {"workflow.yaml": "", "nodes//a.ts": "x"}}`:   "plain relative path",
	} {
		files, problems := parseFiles(answer)
		if files != nil || len(problems) == 0 || !strings.Contains(strings.Join(problems, "; "), want) {
			t.Errorf("parseFiles(%q) = %v, %v; want a problem %q", answer, files, problems, want)
		}
	}
}

func TestBound(t *testing.T) {
	var msgs []Message
	for i := range 5 {
		msgs = append(msgs, Message{Role: RoleUser, Content: string(rune('a' + i))}, Message{Role: RoleAssistant, Content: "ok"})
	}
	got := bound(msgs, 5)
	if len(got) != 4 || got[0].Role != RoleUser || got[0].Content != "d" {
		t.Errorf("bound kept %v", got)
	}
	if got := bound(msgs, 100); len(got) != 10 {
		t.Errorf("bound dropped messages under the limit: %d", len(got))
	}
}

func TestPlain(t *testing.T) {
	for in, want := range map[string]string{
		"<!channel> look at <https://evil.example|this>": "&lt;!channel&gt; look at &lt;https://evil.example|this&gt;",
		"Deployed by <@UOWNER> & friends":                "Deployed by <@UOWNER> &amp; friends",
		"  *hello-fanout* is running  ":                  "*hello-fanout* is running",
		"token xoxb-1234567890-abcdefghij":               "token [redacted]",
	} {
		if got := plain(in); got != want {
			t.Errorf("plain(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPromptTokensCountTools(t *testing.T) {
	n := PromptTokens(nil)
	if n < 300 || n > 2000 {
		t.Errorf("the system prompt alone is %d tokens", n)
	}
	if PromptTokens(ToolSpecs([]command.Command{{Name: "list", Summary: "the tentacles"}}, false)) <= n {
		t.Error("tools cost nothing")
	}
}
