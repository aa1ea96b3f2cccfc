package chat

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/kraken-ops/kraken/bot/command"
)

// maxToolResult bounds what one tool result adds to the conversation.
const maxToolResult = 6000

// call runs one tool call. It returns the result for the model or, when
// the turn ends with the call, how it ended.
func (t *turn) call(ctx context.Context, call ToolCall, offered map[string]bool) (string, *outcome) {
	if !offered[call.Name] {
		// Offered is all the model may use: the registry knows verbs
		// (help, secret, provision after the fact) it must not call.
		return fmt.Sprintf("There is no tool called %q here. Use only the tools you were given.", call.Name), nil
	}
	args, err := arguments(call.Arguments)
	if err != nil {
		return "invalid arguments: " + err.Error(), nil
	}
	if call.Name == AuthorTool {
		return t.author(ctx, args)
	}
	line, err := t.c.cfg.Registry.CommandLine(call.Name, args)
	if err != nil {
		return "invalid arguments: " + err.Error(), nil
	}
	// A run answers at once and finishes later: the model reads how it
	// ended.
	rep := t.c.cfg.Registry.Do(ctx, t.toolRequest(line)).Wait(ctx)
	if note, ok := forThePerson(rep); ok {
		return "", &outcome{reply: rep, note: note}
	}
	// A refusal is private only to spare the channel the noise; a
	// private answer is the registry saying who may read it.
	t.private = t.private || rep.Private && !rep.Failed
	return toolResult(rep), nil
}

// arguments decodes a tool call's arguments, which must be a JSON object
// (or nothing, for a tool without parameters).
func arguments(raw string) (map[string]any, error) {
	if strings.TrimSpace(raw) == "" {
		return map[string]any{}, nil
	}
	var args map[string]any
	if err := json.Unmarshal([]byte(raw), &args); err != nil {
		return nil, fmt.Errorf("they must be one JSON object: %v", err)
	}
	if args == nil {
		return nil, errors.New("they must be a JSON object, not null")
	}
	return args, nil
}

// forThePerson reports whether a reply asks the person to act (a
// confirmation card, a private form), and what the thread remembers of
// it. Such a reply goes to the person as it is: the model can't press its
// buttons, and must not be able to. Other buttons (Run, Runs, Retry) are
// shortcuts: the model reads the reply's words and the person never sees
// them through it.
func forThePerson(rep command.Reply) (string, bool) {
	switch {
	case rep.Confirm != nil:
		return fmt.Sprintf("(I showed a confirmation card: %s. Nothing happens unless the person confirms it.)", rep.Confirm.Title), true
	case rep.Secret != nil:
		return "(I showed the person a private form to set a secret.)", true
	}
	return "", false
}

// toolResult is a reply as the model reads it: words and labelled facts,
// marked when the request did not work, without Slack's escaping.
func toolResult(rep command.Reply) string {
	var b strings.Builder
	if rep.Failed {
		b.WriteString("This did not work: ")
	}
	b.WriteString(unescape(rep.Text))
	for _, f := range rep.Fields {
		fmt.Fprintf(&b, "\n%s: %s", f.Label, unescape(f.Value))
	}
	if rep.Image != nil {
		fmt.Fprintf(&b, "\n(The person is shown a picture: %s.)", rep.Image.Alt)
	}
	s := b.String()
	if len(s) > maxToolResult {
		s = strings.ToValidUTF8(s[:maxToolResult], "") + "\n(cut short)"
	}
	return s
}

// mention is a person mentioned the way replies name people.
var mention = regexp.MustCompile(`^<@[A-Za-z0-9._-]{1,64}>`)

var unescaper = strings.NewReplacer("&lt;", "<", "&gt;", ">", "&amp;", "&")

func unescape(s string) string { return unescaper.Replace(s) }

// plain makes the model's words safe to post: secret-looking values
// hidden, and Slack markup that pings or links (<!channel>, <url|text>)
// shown as text, since the model may have been talked into writing it.
// Mentions of people (<@U123>) stay: replies name people that way.
func plain(s string) string {
	s = Redact(strings.TrimSpace(s))
	var b bytes.Buffer
	for s != "" {
		i := strings.IndexAny(s, "<>&")
		if i < 0 {
			b.WriteString(s)
			break
		}
		b.WriteString(s[:i])
		s = s[i:]
		if m := mention.FindString(s); m != "" {
			b.WriteString(m)
			s = s[len(m):]
			continue
		}
		switch s[0] {
		case '<':
			b.WriteString("&lt;")
		case '>':
			b.WriteString("&gt;")
		case '&':
			b.WriteString("&amp;")
		}
		s = s[1:]
	}
	return b.String()
}
