package command

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"unicode"

	"github.com/kraken-ops/kraken/enclave"
	"github.com/kraken-ops/kraken/tentacle"
)

// splitVerb splits "run hello {...}" into "run" and "hello {...}". A
// leading "/kraken" (typed in a mention or the console) is dropped, and
// the verb is matched in lower case.
func splitVerb(text string) (verb, rest string) {
	text = strings.TrimSpace(text)
	text = strings.TrimSpace(strings.TrimPrefix(text, "/kraken"))
	i := strings.IndexFunc(text, unicode.IsSpace)
	if i < 0 {
		return strings.ToLower(text), ""
	}
	return strings.ToLower(text[:i]), strings.TrimSpace(text[i:])
}

// fields splits arguments on spaces.
func fields(rest string) []string { return strings.Fields(rest) }

// mention matches a person as Slack escapes them in a command
// (<@U123|alice> or <@U123>), or as typed in the console (@alice).
var mention = regexp.MustCompile(`^(?:<@([A-Z0-9]+)(?:\|[^>]*)?>|@([A-Za-z0-9._-]+))$`)

// parseUser reads a person's id from a mention.
func parseUser(arg string) (string, bool) {
	m := mention.FindStringSubmatch(arg)
	if m == nil {
		return "", false
	}
	if m[1] != "" {
		return m[1], true
	}
	return m[2], true
}

// secretWords are the argument names whose values the audit log never
// keeps.
var secretWords = []string{"secret", "token", "password", "passwd", "key", "credential", "auth", "cookie", "session", "private"}

func secretName(name string) bool {
	n := strings.ToLower(name)
	for _, w := range secretWords {
		if strings.Contains(n, w) {
			return true
		}
	}
	return false
}

// redactLine keeps a command line for the audit log with the values of
// secret-looking JSON fields blanked. A line whose JSON does not parse
// loses everything after its first JSON character: better a short audit
// entry than a leaked secret.
func redactLine(rest string) string {
	i := strings.IndexAny(rest, "{[")
	if i < 0 {
		return rest
	}
	var v any
	if err := json.Unmarshal([]byte(rest[i:]), &v); err != nil {
		return rest[:i] + "(input not recorded)"
	}
	b, _ := json.Marshal(redactValue(v))
	return rest[:i] + string(b)
}

func redactValue(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, x := range t {
			if secretName(k) {
				t[k] = "[redacted]"
			} else {
				t[k] = redactValue(x)
			}
		}
	case []any:
		for i, x := range t {
			t[i] = redactValue(x)
		}
	}
	return v
}

// escape makes text the bot did not write (a node's output or error, a
// file's name, a log line) inert in a reply: Slack reads <, > and & as
// markup, and "<!channel>" in a run's output must not notify anyone.
func escape(s string) string { return markup.Replace(s) }

var markup = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

// explain turns an error from below into words for the person who asked:
// what went wrong and what to do. Details a person can't act on (object
// names, API messages) stay in the bot's log, which the caller writes.
func explain(what string, err error) string {
	var spec *tentacle.SpecError
	var trans *enclave.TransitionError
	switch {
	case errors.As(err, &spec):
		return "The tentacle has problems:\n" + escape(spec.Error())
	case errors.As(err, &trans):
		return fmt.Sprintf("I can't %s: %s.", what, trans.Reason)
	case errors.Is(err, enclave.ErrNameInvalid), errors.Is(err, enclave.ErrNameTaken):
		return fmt.Sprintf("I can't %s: %s.", what, afterSentinel(err))
	case errors.Is(err, enclave.ErrNotFound):
		return fmt.Sprintf("I can't %s: the enclave no longer exists.", what)
	case errors.Is(err, tentacle.ErrNotDeployed):
		return fmt.Sprintf("I can't %s: there is no such tentacle here. `/kraken list` shows what is deployed.", what)
	case errors.Is(err, tentacle.ErrNoRevision):
		return fmt.Sprintf("I can't %s: there is no such revision. `/kraken status <tentacle>` shows the current one.", what)
	case errors.Is(err, tentacle.ErrTooLarge), errors.Is(err, tentacle.ErrBadArchive):
		return fmt.Sprintf("I can't %s: %s.", what, escape(afterSentinel(err)))
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Sprintf("I couldn't %s in time. Try again; if it keeps happening, tell the platform team.", what)
	case errors.Is(err, context.Canceled):
		return fmt.Sprintf("I stopped trying to %s because the request was cancelled.", what)
	}
	if m := plainMessage(err); m != "" {
		return fmt.Sprintf("I couldn't %s: %s.", what, m)
	}
	return fmt.Sprintf("I couldn't %s because something went wrong on the platform's side. Try again in a minute; if it keeps happening, the platform team can find the details in the bot's log.", what)
}

// plainMessage is the person-facing text of an error that offers one.
// The cluster's errors (quota used up, cluster unreachable) do.
func plainMessage(err error) string {
	var p interface{ Plain() string }
	if errors.As(err, &p) {
		return strings.TrimSuffix(p.Plain(), ".")
	}
	return ""
}

// afterSentinel is an error's text from its last "sentinel: " prefix on,
// which for the domain's errors is the plain part.
func afterSentinel(err error) string {
	s := err.Error()
	for _, prefix := range []string{"invalid enclave name: ", "enclave name taken: ", "tentacle too large: ", "unusable archive: "} {
		if i := strings.LastIndex(s, prefix); i >= 0 {
			return strings.TrimSuffix(s[i+len(prefix):], ".")
		}
	}
	return strings.TrimSuffix(s, ".")
}

// osaDistance is the edit distance that counts swapping two neighbouring
// letters as one edit, as people mistype: "did you mean" and typo
// detection both use it.
func osaDistance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}
