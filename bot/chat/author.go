package chat

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/kraken-ops/kraken/bot/command"
	"github.com/kraken-ops/kraken/prompts"
)

// Bounds on what the model may write as one tentacle, checked before the
// checker reads it.
const (
	maxWrittenFiles = 64
	maxWrittenBytes = 1 << 20
	// maxProblemsShown is how many of the last problems a person is told
	// when the tentacle never passed.
	maxProblemsShown = 5
)

// author writes a tentacle for the person: the model writes the files (or
// gave them in the call), the checker validates them and runs their
// fixtures, and its problems go back to the model for a bounded number of
// repairs. A tentacle that passes is proposed like a deploy, with the
// picture, the files and a Deploy button; one that never passes is
// described and nothing is proposed. Either way the turn ends here: what
// the person sees is decided by the check, not by the model's summary of
// it.
func (t *turn) author(ctx context.Context, args map[string]any) (string, *outcome) {
	request, _ := args["request"].(string)
	given, err := givenFiles(args["files"])
	if err != nil {
		return "invalid arguments: " + err.Error(), nil
	}
	if strings.TrimSpace(request) == "" && given == nil {
		return `invalid arguments: give "request", what the tentacle should do`, nil
	}
	c := t.c
	if request == "" {
		request = "the tentacle below"
	}
	msgs := []Message{
		{Role: RoleSystem, Content: prompts.Authoring()},
		{Role: RoleUser, Content: "Write a tentacle that does this:\n" + request},
	}
	var files map[string][]byte
	var problems []string
	if given != nil {
		raw, _ := json.Marshal(map[string]any{"files": given})
		msgs = append(msgs, Message{Role: RoleAssistant, Content: string(raw)})
		files, problems = parseFiles(string(raw))
	}
	for try := 0; ; try++ {
		if files == nil && problems == nil {
			resp, err := t.complete(ctx, ModelRequest{Messages: msgs, MaxTokens: c.cfg.AuthorMaxTokens})
			if err != nil {
				c.log.Warn("the model did not answer while writing a tentacle", "channel", t.req.Channel.ID, "err", err)
				return "", &outcome{reply: unavailable}
			}
			msgs = append(msgs, Message{Role: RoleAssistant, Content: resp.Content})
			files, problems = parseFiles(resp.Content)
		}
		if files != nil {
			res, err := c.cfg.Checker.Check(ctx, files)
			if err != nil {
				c.log.Warn("a written tentacle was not checked", "channel", t.req.Channel.ID, "err", err)
				const text = "I wrote a tentacle but couldn't test it just now, so I'm not offering it to deploy. Try again in a few minutes."
				return "", &outcome{reply: command.Reply{Text: text, Failed: true}, note: text}
			}
			if res.OK {
				return "", t.propose(ctx, files, res)
			}
			problems = res.Problems
			if len(problems) == 0 {
				problems = []string{"the check failed without saying why"}
			}
		}
		if try >= c.cfg.MaxRepairs {
			return "", notPassing(try+1, problems)
		}
		msgs = append(msgs, Message{Role: RoleUser, Content: "The check found these problems:\n- " + strings.Join(problems, "\n- ") +
			"\nFix them and answer again with the whole set of files, as the JSON object only."})
		files, problems = nil, nil
	}
}

// propose shows a tentacle that passed its check, as a deploy would.
func (t *turn) propose(ctx context.Context, files map[string][]byte, res CheckResult) *outcome {
	rep := t.c.cfg.Registry.ProposeDeploy(ctx, t.toolRequest("deploy"), files)
	if rep.Failed {
		return &outcome{reply: rep, note: "(I wrote a tentacle, but it can't be offered to deploy: " + unescape(rep.Text) + ")"}
	}
	name := workflowName(files)
	tests := "it has no fixtures to run"
	if res.Fixtures > 0 {
		tests = fmt.Sprintf("%d of %d fixtures passed", res.Passed, res.Fixtures)
	}
	rep.Text = fmt.Sprintf("I wrote *%s*: %s. It passed its checks; %s.\n%s",
		plain(name), plain(strings.Join(slices.Sorted(maps.Keys(files)), ", ")), tests, rep.Text)
	return &outcome{reply: rep, note: fmt.Sprintf("(I wrote the tentacle %s and showed it with a Deploy button; it is deployed only if the person presses it.)", name)}
}

// notPassing says a tentacle never passed its check, with the last
// problems, in plain words.
func notPassing(tries int, problems []string) *outcome {
	shown := problems
	if len(shown) > maxProblemsShown {
		shown = shown[:maxProblemsShown]
	}
	lines := make([]string, len(shown))
	for i, p := range shown {
		if len(p) > 300 {
			p = strings.ToValidUTF8(p[:300], "") + "…"
		}
		lines[i] = "• " + plain(p)
	}
	text := fmt.Sprintf("I couldn't write a tentacle that passes its checks in %d tries, so nothing is offered to deploy. The last problems were:\n%s\n"+
		"Try describing it in more detail: its input, what each step does, and what it should return.", tries, strings.Join(lines, "\n"))
	return &outcome{reply: command.Reply{Text: text, Failed: true}, note: fmt.Sprintf("(I tried to write the tentacle %d times; it never passed its checks and nothing was offered to deploy.)", tries)}
}

// givenFiles reads the files the model passed to author_tentacle, if any.
func givenFiles(v any) (map[string]string, error) {
	if v == nil {
		return nil, nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf(`"files" must be an object of file paths to contents`)
	}
	out := make(map[string]string, len(m))
	for p, c := range m {
		s, ok := c.(string)
		if !ok {
			return nil, fmt.Errorf(`the content of %q must be a string`, p)
		}
		out[p] = s
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

// parseFiles reads the model's answer, {"files": {path: content}}, and
// says what is wrong with it instead when it can't be used. Models wrap
// JSON in code fences and a sentence now and then; that is forgiven.
func parseFiles(answer string) (map[string][]byte, []string) {
	s := strings.TrimSpace(answer)
	i, j := strings.Index(s, "{"), strings.LastIndex(s, "}")
	if i < 0 || j < i {
		return nil, []string{`your answer was not the JSON object {"files": {...}}; answer with that object only`}
	}
	var doc struct {
		Files map[string]string `json:"files"`
	}
	if err := json.Unmarshal([]byte(s[i:j+1]), &doc); err != nil {
		return nil, []string{fmt.Sprintf(`your answer was not valid JSON (%v); answer with the object {"files": {...}} only`, err)}
	}
	var problems []string
	if _, ok := doc.Files["workflow.yaml"]; !ok {
		problems = append(problems, "there is no workflow.yaml")
	}
	if len(doc.Files) > maxWrittenFiles {
		problems = append(problems, fmt.Sprintf("%d files is too many; at most %d", len(doc.Files), maxWrittenFiles))
	}
	files := make(map[string][]byte, len(doc.Files))
	total := 0
	for _, p := range slices.Sorted(maps.Keys(doc.Files)) {
		if clean := path.Clean(p); p == "" || clean != p || path.IsAbs(p) || clean == ".." || strings.HasPrefix(clean, "../") || strings.Contains(p, `\`) {
			problems = append(problems, fmt.Sprintf("%q is not a plain relative path like nodes/fetch.ts", p))
			continue
		}
		files[p] = []byte(doc.Files[p])
		total += len(doc.Files[p])
	}
	if total > maxWrittenBytes {
		problems = append(problems, "the files are too large together; keep them under 1 MiB")
	}
	if problems != nil {
		return nil, problems
	}
	return files, nil
}

// workflowName is the name a written workflow.yaml gives itself.
func workflowName(files map[string][]byte) string {
	var wf struct {
		Name string `yaml:"name"`
	}
	if err := yaml.Unmarshal(files["workflow.yaml"], &wf); err != nil || wf.Name == "" {
		return "the tentacle"
	}
	return wf.Name
}
