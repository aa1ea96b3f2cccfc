package slack

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	slackapi "github.com/slack-go/slack"

	"github.com/kraken-ops/kraken/bot/command"
)

// Block and action ids on the bot's cards. Only the typed name is read
// back; buttons are known by their values.
const (
	blockTypeName  = "kraken_type_name"
	actionTypeName = "name"
	blockExpires   = "kraken_expires"
	blockButtons   = "kraken_buttons"
)

// Slack's Block Kit limits.
const (
	maxBlocks        = 50 // in a message
	maxHomeBlocks    = 100
	maxSectionText   = 3000
	maxFieldText     = 2000
	maxFields        = 10 // per section
	maxHeaderText    = 150
	maxButtonText    = 75
	maxButtonValue   = 2000
	maxButtons       = 25 // per actions block
	maxFallbackText  = 4000
	maxPlaceholder   = 150
	maxContextText   = 2000
	maxInputLabel    = 2000
	truncationMarker = "…"
)

// render turns a reply into a message: the fallback text (what
// notifications and screen readers show) and the blocks. asked, when set,
// is a line saying who asked. Pictures are uploaded separately.
func render(rep command.Reply, asked string) (string, []slackapi.Block) {
	var blocks []slackapi.Block
	c := rep.Confirm
	if c != nil && c.Title != "" {
		blocks = append(blocks, slackapi.NewHeaderBlock(plain(truncate(c.Title, maxHeaderText))))
	}
	// Details the caller did not put in a thread stay with the text.
	text := joinDetails(rep)
	if c != nil && c.Title != "" && strings.TrimRight(text, "?.") == c.Title {
		text = "" // the header says it already
	}
	if rep.Failed && text != "" {
		text = ":warning: " + text
	}
	for _, chunk := range split(text, maxSectionText) {
		blocks = append(blocks, slackapi.NewSectionBlock(mrkdwn(chunk), nil, nil))
	}
	blocks = append(blocks, fieldSections(rep.Fields)...)
	if c != nil {
		if c.Prompt != "" {
			for _, chunk := range split(c.Prompt, maxSectionText) {
				blocks = append(blocks, slackapi.NewSectionBlock(mrkdwn(chunk), nil, nil))
			}
		}
		if c.TypeName != "" {
			in := slackapi.NewPlainTextInputBlockElement(plain(truncate(c.TypeName, maxPlaceholder)), actionTypeName)
			label := plain(truncate("Type "+c.TypeName+" to confirm", maxInputLabel))
			blocks = append(blocks, slackapi.NewInputBlock(blockTypeName, label, nil, in))
		}
		if !c.Expires.IsZero() {
			blocks = append(blocks, slackapi.NewContextBlock(blockExpires, mrkdwn("Expires "+slackDate(c.Expires))))
		}
	}
	if els := buttons(rep); len(els) > 0 {
		blocks = append(blocks, slackapi.NewActionBlock(blockButtons, els...))
	}
	if asked != "" {
		blocks = append(blocks, slackapi.NewContextBlock("", mrkdwn(truncate(asked, maxContextText))))
	}
	return fallback(rep), fit(blocks, maxBlocks)
}

// renderOutcome is a card after a click: what it said, without its
// buttons, inputs and expiry, then who did what and the outcome.
func renderOutcome(original json.RawMessage, rep command.Reply, by string) (string, []slackapi.Block) {
	var kept []slackapi.Block
	var old slackapi.Blocks
	if len(original) > 0 && json.Unmarshal(original, &old) == nil {
		for _, b := range old.BlockSet {
			switch b.BlockType() {
			case slackapi.MBTAction, slackapi.MBTInput:
				continue
			case slackapi.MBTContext:
				if b.ID() == blockExpires {
					continue
				}
			}
			kept = append(kept, b)
		}
	}
	if len(kept) > 0 {
		kept = append(kept, slackapi.NewDividerBlock())
	}
	if by != "" {
		kept = append(kept, slackapi.NewContextBlock("", mrkdwn(truncate(by, maxContextText))))
	}
	_, blocks := render(rep, "")
	return fallback(rep), fit(append(kept, blocks...), maxBlocks)
}

// buttons are a reply's buttons, then its confirmation's.
func buttons(rep command.Reply) []slackapi.BlockElement {
	var els []slackapi.BlockElement
	add := func(label, value, style string) {
		if value == "" || len(value) > maxButtonValue || len(els) == maxButtons {
			return
		}
		b := slackapi.NewButtonBlockElement(fmt.Sprintf("kraken_button_%d", len(els)), value, plain(truncate(label, maxButtonText)))
		switch style {
		case "primary":
			b = b.WithStyle(slackapi.StylePrimary)
		case "danger":
			b = b.WithStyle(slackapi.StyleDanger)
		}
		els = append(els, b)
	}
	for _, b := range rep.Buttons {
		add(b.Label, b.Value, b.Style)
	}
	if c := rep.Confirm; c != nil {
		add(orDefault(c.ConfirmLabel, "Confirm"), c.ConfirmValue, "danger")
		add(orDefault(c.CancelLabel, "Cancel"), c.CancelValue, "")
	}
	return els
}

// fieldSections lays fields out two columns wide, ten to a section.
func fieldSections(fields []command.Field) []slackapi.Block {
	var out []slackapi.Block
	for len(fields) > 0 {
		n := min(len(fields), maxFields)
		var objs []*slackapi.TextBlockObject
		for _, f := range fields[:n] {
			objs = append(objs, mrkdwn(truncate("*"+f.Label+"*\n"+f.Value, maxFieldText)))
		}
		out = append(out, slackapi.NewSectionBlock(nil, objs, nil))
		fields = fields[n:]
	}
	return out
}

// fallback is a message's text: the reply's, with the fields, so a
// notification or a client without blocks still says everything.
func fallback(rep command.Reply) string {
	var b strings.Builder
	if rep.Confirm != nil && rep.Confirm.Title != "" && !strings.HasPrefix(rep.Text, rep.Confirm.Title) {
		b.WriteString(rep.Confirm.Title + ": ")
	}
	b.WriteString(rep.Text)
	for _, f := range rep.Fields {
		fmt.Fprintf(&b, "\n%s: %s", f.Label, f.Value)
	}
	if s := b.String(); s != "" {
		return truncate(s, maxFallbackText)
	}
	return "(no text)"
}

// fit keeps a message within Slack's block limit, saying what was cut.
func fit(blocks []slackapi.Block, limit int) []slackapi.Block {
	if len(blocks) <= limit {
		return blocks
	}
	out := append([]slackapi.Block(nil), blocks[:limit-1]...)
	return append(out, slackapi.NewContextBlock("", mrkdwn("(the rest did not fit in one message)")))
}

func plain(s string) *slackapi.TextBlockObject {
	return slackapi.NewTextBlockObject(slackapi.PlainTextType, s, false, false)
}

func mrkdwn(s string) *slackapi.TextBlockObject {
	return slackapi.NewTextBlockObject(slackapi.MarkdownType, s, false, false)
}

// split cuts text into pieces of at most n bytes, at line ends where it
// can, never inside a UTF-8 character.
func split(text string, n int) []string {
	text = strings.TrimRight(text, "\n")
	var out []string
	for len(text) > n {
		cut := strings.LastIndexByte(text[:n], '\n')
		if cut <= 0 {
			cut = n
			for cut > 0 && !utf8.RuneStart(text[cut]) {
				cut--
			}
		}
		out = append(out, text[:cut])
		text = strings.TrimLeft(text[cut:], "\n")
	}
	if text != "" {
		out = append(out, text)
	}
	return out
}

// truncate cuts s to at most n bytes, marking the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - len(truncationMarker)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + truncationMarker
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// escape makes text safe inside mrkdwn: Slack reads &, < and > as markup.
func escape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// slackDate shows a time in each reader's own time zone.
func slackDate(t time.Time) string {
	return fmt.Sprintf("<!date^%d^{date_short_pretty} at {time}|%s>", t.Unix(), t.UTC().Format("2006-01-02 15:04 UTC"))
}

// renderHome is a person's App Home: their enclaves, then their latest
// runs.
func renderHome(h command.Home) []slackapi.Block {
	blocks := []slackapi.Block{slackapi.NewHeaderBlock(plain("Your enclaves"))}
	if len(h.Enclaves) == 0 {
		blocks = append(blocks, slackapi.NewSectionBlock(mrkdwn("You are not in any enclave yet. Invite me to a channel, or type `/kraken provision` in one, to make it an enclave."), nil, nil))
	}
	for _, e := range h.Enclaves {
		where := "#" + e.ChannelName
		if e.ChannelID != "" {
			where = "<#" + e.ChannelID + ">"
		}
		tentacles := fmt.Sprintf("%d tentacles", e.Tentacles)
		if e.Tentacles == 1 {
			tentacles = "1 tentacle"
		}
		blocks = append(blocks, slackapi.NewSectionBlock(mrkdwn(truncate(fmt.Sprintf("*%s* in %s\nYou are %s · %s · %s", e.Name, where, article(e.Role), e.State, tentacles), maxSectionText)), nil, nil))
	}
	blocks = append(blocks, slackapi.NewDividerBlock(), slackapi.NewHeaderBlock(plain("Recent runs")))
	if len(h.Runs) == 0 {
		blocks = append(blocks, slackapi.NewSectionBlock(mrkdwn("No runs yet. `/kraken run <tentacle>` starts one."), nil, nil))
	}
	for _, r := range h.Runs {
		mark := ":white_check_mark:"
		if !r.OK {
			mark = ":x:"
		}
		line := fmt.Sprintf("%s *%s* in %s, %s, took %s", mark, r.Tentacle, r.Enclave, slackDate(r.At), r.Duration.Round(time.Millisecond))
		if r.Actor != "" {
			line += fmt.Sprintf(", by <@%s>", r.Actor)
		}
		if r.Summary != "" {
			line += "\n" + r.Summary
		}
		blocks = append(blocks, slackapi.NewSectionBlock(mrkdwn(truncate(line, maxSectionText)), nil, nil))
	}
	return fit(blocks, maxHomeBlocks)
}

// article puts "an" or "a" before a role: "an owner", "a member".
func article(role string) string {
	if role == "" {
		return "a member"
	}
	if strings.ContainsRune("aeiou", rune(role[0])) {
		return "an " + role
	}
	return "a " + role
}
