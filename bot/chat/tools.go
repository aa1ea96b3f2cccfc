package chat

import (
	"encoding/json"
	"strings"

	"github.com/kraken-ops/kraken/bot/command"
	"github.com/kraken-ops/kraken/prompts"
)

// AuthorTool is the one tool that is not a registry verb: writing a new
// tentacle, which ends, like a deploy, in a card the person confirms.
const AuthorTool = "author_tentacle"

// ToolSpecs describes the verbs a person may use as tools for the model,
// each with a JSON Schema built from its parameters. When the person may
// deploy and authoring is on, author_tentacle comes last.
func ToolSpecs(cmds []command.Command, authoring bool) []ToolSpec {
	out := make([]ToolSpec, 0, len(cmds)+1)
	deploy := false
	for _, c := range cmds {
		out = append(out, ToolSpec{Name: c.Name, Description: describe(c), Parameters: schema(c.Params)})
		deploy = deploy || c.Name == "deploy"
	}
	if authoring && deploy {
		out = append(out, authorSpec())
	}
	return out
}

// describe is a verb's summary as a sentence, saying for destructive
// verbs that calling them only proposes: the model must not tell the
// person a thing is done when a card is waiting.
func describe(c command.Command) string {
	d := strings.TrimSpace(c.Summary)
	if d != "" {
		d = strings.ToUpper(d[:1]) + d[1:]
		if !strings.HasSuffix(d, ".") {
			d += "."
		}
	}
	if c.Destructive {
		d += " This only shows the person a confirmation card; nothing happens unless they confirm."
	}
	return d
}

// schema is a JSON Schema object for a verb's parameters, strict about
// unknown names (the registry refuses them anyway, with a reason the
// model then reads).
func schema(params []command.Param) json.RawMessage {
	props := map[string]any{}
	var required []string
	for _, p := range params {
		prop := map[string]any{"description": p.Description}
		switch p.Kind {
		case command.ParamNumber:
			prop["type"], prop["minimum"] = "integer", 1
		case command.ParamPerson:
			prop["type"] = "string"
			prop["description"] = p.Description + ", as a mention like <@U123ABC>"
		case command.ParamJSON:
			// Any JSON value: no type.
		default:
			prop["type"] = "string"
		}
		props[p.Name] = prop
		if p.Required {
			required = append(required, p.Name)
		}
	}
	s := map[string]any{"type": "object", "properties": props, "additionalProperties": false}
	if len(required) > 0 {
		s["required"] = required
	}
	b, err := json.Marshal(s)
	if err != nil {
		panic("chat: a tool schema does not encode: " + err.Error()) // maps of strings always do
	}
	return b
}

func authorSpec() ToolSpec {
	return ToolSpec{
		Name:        AuthorTool,
		Description: prompts.AuthorTool(),
		Parameters: json.RawMessage(`{"type":"object","properties":{` +
			`"request":{"type":"string","description":"what the tentacle should do, with every detail the person gave"},` +
			`"files":{"type":"object","additionalProperties":{"type":"string"},"description":"only if you already wrote the tentacle: its files, path to content"}` +
			`},"additionalProperties":false}`),
	}
}
