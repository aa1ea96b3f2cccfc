package prompts

import (
	"strings"
	"testing"
	"text/template"
)

func TestPromptsAreEmbedded(t *testing.T) {
	for name, text := range map[string]string{"system": System(), "authoring": Authoring(), "author tool": AuthorTool()} {
		if len(strings.TrimSpace(text)) < 100 {
			t.Errorf("%s prompt is missing or too short: %q", name, text)
		}
	}
}

// The system prompt is a template the loop fills; a typo in a field name
// would only show at the first conversation.
func TestSystemTemplate(t *testing.T) {
	tpl, err := template.New("system").Option("missingkey=error").Parse(System())
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	data := struct{ Date, Enclave, Role string }{"Monday 23 November 2026", "This channel's enclave is called payments.", "a member of this enclave"}
	if err := tpl.Execute(&b, data); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Monday 23 November 2026", "payments", "a member", "[redacted]", "/kraken secret", "author_tentacle"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("system prompt lacks %q", want)
		}
	}
}

// The authoring prompt carries the facts a model needs to write a
// tentacle that passes: the node signature, the fixture path and the
// answer's shape.
func TestAuthoringFacts(t *testing.T) {
	for _, want := range []string{
		"export default async function run(ctx: Context, input: unknown)",
		`import type { Context } from "tentacular";`,
		"tests/fixtures/<node>.json",
		`{"files": {`,
		"ctx.fetch",
		"kebab-case",
	} {
		if !strings.Contains(Authoring(), want) {
			t.Errorf("authoring prompt lacks %q", want)
		}
	}
}
