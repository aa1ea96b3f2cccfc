// Package prompts holds the text the language model is given: the
// conversation loop's system prompt, the tentacle-authoring prompt and the
// descriptions of tools that are not registry verbs. They are text files
// embedded into the binary, so they are reviewed like code and changed
// without touching Go.
package prompts

import (
	_ "embed"
	"strings"
)

var (
	//go:embed system.md
	system string
	//go:embed authoring.md
	authoring string
	//go:embed author_tool.md
	authorTool string
)

// System is the conversation loop's system prompt, a text/template
// expecting .Date, .Enclave and .Role.
func System() string { return system }

// Authoring is the system prompt for writing a tentacle: the
// workflow.yaml format, the node signature and ctx, fixtures, and the
// JSON shape the answer must take.
func Authoring() string { return authoring }

// AuthorTool describes the author_tentacle tool to the model.
func AuthorTool() string { return strings.TrimSpace(authorTool) }
