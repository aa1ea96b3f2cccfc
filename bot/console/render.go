package console

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/kraken-ops/kraken/bot/command"
)

// style is how text is decorated: ANSI escapes on a terminal, nothing
// anywhere else (a file or a pipe gets plain text a script can read).
type style struct{ on bool }

func (s style) wrap(code, text string) string {
	if !s.on || text == "" {
		return text
	}
	return "\x1b[" + code + "m" + text + "\x1b[0m"
}

func (s style) bold(t string) string   { return s.wrap("1", t) }
func (s style) italic(t string) string { return s.wrap("3", t) }
func (s style) strike(t string) string { return s.wrap("9", t) }
func (s style) dim(t string) string    { return s.wrap("2", t) }
func (s style) red(t string) string    { return s.wrap("31", t) }

// render writes a reply as terminal text: the text, its fields, its
// buttons numbered, its confirmation as what to type, its picture saved
// to a file. It returns the lines.
func (c *Console) render(b *strings.Builder, rep command.Reply) {
	text := c.mrkdwn(rep.Text)
	if rep.Failed {
		text = c.style.red("✗") + " " + text
	}
	b.WriteString(text)
	b.WriteByte('\n')
	for _, f := range rep.Fields {
		fmt.Fprintf(b, "  %s: %s\n", f.Label, c.mrkdwn(f.Value))
	}
	if rep.Image != nil {
		b.WriteString("  " + c.saveImage(rep.Image) + "\n")
	}
	for i, btn := range rep.Buttons {
		fmt.Fprintf(b, "  [%d] %s %s\n", i+1, c.mrkdwn(btn.Label), c.style.dim(fmt.Sprintf("— type !click %d", i+1)))
	}
	if k := rep.Confirm; k != nil {
		if line := strings.Join(nonEmpty(k.Title, k.Prompt), ": "); line != "" {
			b.WriteString("  " + c.style.bold(c.mrkdwn(line)) + "\n")
		}
		confirm := "!confirm"
		if k.TypeName != "" {
			confirm += " " + k.TypeName
		}
		what := strings.ToLower(k.ConfirmLabel)
		if what == "" {
			what = "go ahead"
		}
		until := ""
		if !k.Expires.IsZero() {
			until = fmt.Sprintf(" (until %s)", k.Expires.Local().Format("15:04"))
		}
		fmt.Fprintf(b, "  Type %s to %s, or !cancel%s.\n", c.style.bold(confirm), what, until)
	}
	if f := rep.Secret; f != nil {
		fmt.Fprintf(b, "  Type %s to set it (an empty value removes it).\n", c.style.bold("!secret <value>"))
	}
}

// saveImage writes a reply's picture where the person can open it and
// says where. A terminal shows no pictures; a file path is the next best.
func (c *Console) saveImage(img *command.Image) string {
	what := "Picture"
	if img.Title != "" {
		what += " of " + img.Title
	}
	if c.cfg.ImageDir == "" {
		return fmt.Sprintf("%s not saved (no picture directory): %s", what, img.Alt)
	}
	name := safeName(img.Name)
	if !strings.HasSuffix(strings.ToLower(name), ".png") {
		name += ".png"
	}
	path := filepath.Join(c.cfg.ImageDir, name)
	if err := os.MkdirAll(c.cfg.ImageDir, 0o700); err != nil {
		c.log.Warn("picture not saved", "path", path, "err", err)
		return fmt.Sprintf("%s not saved: %v", what, err)
	}
	if err := os.WriteFile(path, img.PNG, 0o600); err != nil {
		c.log.Warn("picture not saved", "path", path, "err", err)
		return fmt.Sprintf("%s not saved: %v", what, err)
	}
	return fmt.Sprintf("%s: %s", what, path)
}

// safeName keeps a file name to letters, digits, dots, dashes and
// underscores, without directories: it comes from a tentacle's name,
// which its author chose.
func safeName(name string) string {
	name = filepath.Base(name)
	var b strings.Builder
	for _, r := range name {
		if r < utf8.RuneSelf && (unicode.IsLetter(r) || unicode.IsDigit(r) || r == '.' || r == '-' || r == '_') {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	s := strings.TrimLeft(b.String(), ".")
	if s == "" {
		s = "picture"
	}
	return s
}

// mrkdwn turns the registry's chat markup into terminal text. Code blocks
// are indented and left alone, inline `code` keeps its backticks (it is
// what to type), mentions and links become their readable part, and
// *bold*, _italic_ and ~strike~ lose their marks (and are styled on a
// terminal).
func (c *Console) mrkdwn(text string) string {
	var b strings.Builder
	for i, part := range strings.Split(text, "```") {
		if i%2 == 1 {
			part = strings.Trim(part, "\n")
			for _, line := range strings.Split(part, "\n") {
				b.WriteString("    " + line + "\n")
			}
			continue
		}
		if i > 0 {
			part = strings.TrimPrefix(part, "\n")
		}
		b.WriteString(c.inline(part))
	}
	// The registry escapes text it did not write (a node's output, a
	// file's name) as Slack wants; a terminal shows it as it was.
	return entities.Replace(strings.TrimRight(b.String(), "\n"))
}

var entities = strings.NewReplacer("&lt;", "<", "&gt;", ">", "&amp;", "&")

// inline handles text outside code blocks: what is between single
// backticks stays as it is.
func (c *Console) inline(text string) string {
	parts := strings.Split(text, "`")
	if len(parts)%2 == 0 { // an unmatched backtick: take it literally
		parts[len(parts)-2] += "`" + parts[len(parts)-1]
		parts = parts[:len(parts)-1]
	}
	for i := range parts {
		if i%2 == 1 {
			parts[i] = "`" + parts[i] + "`"
			continue
		}
		s := links.ReplaceAllStringFunc(parts[i], link)
		s = emphasis(s, '*', c.style.bold)
		s = emphasis(s, '_', c.style.italic)
		s = emphasis(s, '~', c.style.strike)
		parts[i] = s
	}
	return strings.Join(parts, "")
}

// links are Slack's escapes: <@U1>, <@U1|name>, <#C1|name>, <!here>,
// <https://…|label>. A bare <word> (as in "provision <name>") is text.
var links = regexp.MustCompile(`<(?:[@#!][^<>|\s]+|(?:https?|mailto):[^<>|\s]+)(?:\|[^<>]*)?>`)

func link(s string) string {
	s = s[1 : len(s)-1]
	target, label, hasLabel := strings.Cut(s, "|")
	switch target[0] {
	case '@':
		if hasLabel && label != "" {
			return "@" + strings.TrimPrefix(label, "@")
		}
		return target
	case '#':
		if hasLabel && label != "" {
			return "#" + label
		}
		return target
	case '!':
		return "@" + strings.TrimPrefix(target, "!")
	}
	if hasLabel && label != "" && label != target {
		return label + " (" + target + ")"
	}
	return target
}

// emphasis replaces mark-delimited spans the way Slack reads them: the
// opening mark starts a word, the closing one ends a word, both on one
// line, so "2*3*4" and "snake_case_name" are left alone.
func emphasis(s string, mark byte, style func(string) string) string {
	var b strings.Builder
	for {
		i := strings.IndexByte(s, mark)
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		j := closing(s, i, mark)
		if j < 0 {
			b.WriteString(s[:i+1])
			s = s[i+1:]
			continue
		}
		b.WriteString(s[:i])
		b.WriteString(style(s[i+1 : j]))
		s = s[j+1:]
	}
}

// closing finds the mark that closes the one at i, or -1.
func closing(s string, i int, mark byte) int {
	if i > 0 && wordByte(s[i-1]) {
		return -1
	}
	if i+1 >= len(s) || s[i+1] == ' ' || s[i+1] == '\n' || s[i+1] == mark {
		return -1
	}
	for j := i + 2; j < len(s); j++ {
		switch {
		case s[j] == '\n':
			return -1
		case s[j] == mark && s[j-1] != ' ' && (j+1 == len(s) || !wordRuneAt(s, j+1)):
			return j
		}
	}
	return -1
}

func wordByte(c byte) bool {
	return c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= utf8.RuneSelf
}

// wordRuneAt reports whether the character at s[k:] is part of a word:
// punctuation such as "…" ends one.
func wordRuneAt(s string, k int) bool {
	r, _ := utf8.DecodeRuneInString(s[k:])
	return r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r)
}

func nonEmpty(xs ...string) []string {
	var out []string
	for _, x := range xs {
		if x != "" {
			out = append(out, x)
		}
	}
	return out
}
